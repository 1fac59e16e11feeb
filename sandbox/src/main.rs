use clap::Parser;
use sandbox::cli::{self, Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The zygote must stay single-threaded: no runtime, no logging threads.
    if let Command::Zygote {
        unguarded_python_for_layer_tests,
        packages_dir,
    } = cli.command
    {
        sandbox::zygote::run(unguarded_python_for_layer_tests, packages_dir);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPBOX_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("mcpbox-sandbox: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => match cli::serve(args).await {
                Ok(()) => 0,
                Err(err) => {
                    eprintln!("mcpbox-sandbox: {err:#}");
                    1
                }
            },
            Command::Exec(args) => cli::exec(args).await,
            Command::Doctor => cli::doctor().await,
            Command::Zygote { .. } => unreachable!("handled before the runtime starts"),
        }
    });
    std::process::ExitCode::from(status as u8)
}
