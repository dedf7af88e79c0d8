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
        // `actas audit export | head`: the reader has all it wanted. A failed command in a
        // pipeline with `pipefail` would fail the script for nothing.
        Err(e) if closed_output(&e) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("actas: {}", message(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each once: an error that already quotes its cause (as
/// `database error: …` does) is not followed by that cause again.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

/// Standard output was closed by its reader. Only a write's own error counts: a broken pipe
/// deeper in the chain (a database connection's socket) is a failure like any other.
fn closed_output(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
