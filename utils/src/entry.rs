//! What every Atoll binary's `main` does around its command: logging through `tracing` to
//! stderr (`RUST_LOG` overrides the level), and any error printed as one `error: ...` line with
//! its whole context chain, whatever the libraries underneath put in their messages.

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

/// Set up logging at `level` (unless `RUST_LOG` says otherwise), run `body`, and turn its
/// result into the process exit code: its own code on success, 1 on error.
pub fn main(level: &str, body: impl FnOnce() -> anyhow::Result<u8>) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level)))
        .with_writer(std::io::stderr)
        .init();
    match body() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', "; "));
            ExitCode::FAILURE
        }
    }
}
