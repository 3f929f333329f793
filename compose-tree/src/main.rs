//! `compose-tree`: a thin shim over [`compose_tree::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let verbose = args.iter().filter(|a| a.to_str().is_some_and(|s| s == "-v" || s == "--verbose")).count()
        + args.iter().filter(|a| a.to_str() == Some("-vv")).count() * 2;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    atoll_utils::entry::main(level, || compose_tree::cli::run_from_iter(args).map(|()| 0))
}
