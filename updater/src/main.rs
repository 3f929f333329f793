//! `host`: a thin shim over [`updater::cli`].

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")))
        .with_writer(std::io::stderr)
        .init();
    match updater::cli::run_from_iter(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // One line, whatever the libraries underneath put in their messages.
            eprintln!("error: {}", format!("{e:#}").replace('\n', "; "));
            ExitCode::FAILURE
        }
    }
}
