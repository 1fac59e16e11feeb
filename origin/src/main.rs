use clap::Parser;
use origin::config::{Cli, Command};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(&cli.command, Command::Serve(args) if args.log_format == "json");
    // The log filter applies to the log only; exported spans have their own (`telemetry`).
    let filter = EnvFilter::try_from_env("MCPBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let log = if json_logs {
        log.json().with_filter(filter).boxed()
    } else {
        log.with_filter(filter).boxed()
    };
    let traces = match &cli.command {
        Command::Serve(args) => origin::telemetry::start(&args.tracing),
        _ => Ok(None),
    };
    let mut layers = vec![log];
    let telemetry = match traces {
        Ok(Some((layer, telemetry))) => {
            layers.push(layer);
            Some(telemetry)
        }
        Ok(None) => None,
        Err(err) => {
            eprintln!("error: cannot set up trace export: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing_subscriber::registry().with(layers).init();
    if let (Some(_), Command::Serve(args)) = (&telemetry, &cli.command) {
        let to = args.tracing.describe().unwrap_or_default();
        tracing::info!(to, "exporting traces over OTLP/HTTP");
    }
    let outcome = match cli.command {
        Command::Serve(args) => origin::app::serve(*args).await,
        Command::Admin { command } => origin::cli::run(command).await,
        Command::Backup { storage, to, force } => origin::cli::backup(storage, to, force).await,
        Command::Restore {
            storage,
            from,
            force,
        } => origin::cli::restore(storage, from, force).await,
    };
    if let Some(telemetry) = telemetry {
        // Off the async workers: flushing blocks (bounded) on the exporter's thread.
        let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    }
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
