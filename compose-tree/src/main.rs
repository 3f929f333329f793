//! `compose-tree`: a thin shim over [`compose_tree::cli`].

use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let verbose = args.iter().filter(|a| a.to_str().is_some_and(|s| s == "-v" || s == "--verbose")).count()
        + args.iter().filter(|a| a.to_str() == Some("-vv")).count() * 2;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)))
        .with_writer(std::io::stderr)
        .init();
    match compose_tree::cli::run_from_iter(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the libraries underneath put in their messages.
            eprintln!("error: {}", format!("{e:#}").replace('\n', "; "));
            ExitCode::FAILURE
        }
    }
}
