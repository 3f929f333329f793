//! `host`: a thin shim over [`updater::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    atoll_utils::entry::main("warn", || updater::cli::run_from_iter(args))
}
