//! The `actas` binary: parses the command line, sets up logging, runs the command, and
//! turns an error into a message and a non-zero exit.

use clap::Parser;

// mimalloc instead of glibc's malloc: the request path allocates many small, short-lived
// objects across threads (see docs/BENCHMARKS.md for the measured difference).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACTAS_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = actas_proxy::cli::Cli::parse();
    match actas_proxy::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actas: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
