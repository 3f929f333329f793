//! Shared helpers used by every Atoll crate.
//!
//! - [`cmd`]: the one place external programs (mmdebstrap, dracut, bwrap, apt-get, qemu-img, ...)
//!   are run. Every invocation is logged with its full command line, and a failure carries the
//!   program's stderr tail in the error so the user sees *why* it failed in one line. A program
//!   that is not installed is named with its Debian package, from the one program → package
//!   table (`programs.txt`, which `ci/setup.sh` also checks); [`cmd::require`] checks a command's
//!   programs before it writes anything.
//! - [`entry`]: the common `main` of every binary: logging setup, one-line errors, exit codes.
//! - [`gpg`]: importing every key of a key file for an OSTree remote.
//! - [`packages`]: the package list each commit carries, and diffs between two lists.
//! - [`sizes`]: the sparse size index (`atoll.sizes`) commits carry, for download sizes.
//! - [`progress`]: per-phase spinners with elapsed time that fall silent for `--json` and
//!   non-terminal output, and record how long each phase took so callers can report timings.

pub mod cmd;
pub mod entry;
pub mod gpg;
pub mod packages;
pub mod progress;
pub mod sizes;
