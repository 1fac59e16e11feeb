use clap::Parser;
use origin::config::{Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json_logs = matches!(&cli.command, Command::Serve(args) if args.log_format == "json");
    let filter = EnvFilter::try_from_env("MCPBOX_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json_logs {
        subscriber.json().init();
    } else {
        subscriber.init();
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
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
