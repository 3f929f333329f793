//! # updater: the on-host agent (`host`)
//!
//! Moves a machine between OSTree commits atomically, the way rpm-ostree and bootc do, through
//! libostree's Sysroot API (never the `ostree` CLI). Every command works on the booted `/` or on
//! a sysroot in a directory (`--sysroot`), so all of it is testable without booting.
//!
//! - [`sysroot`]: open + lock (libostree's sysroot lock: one mutation at a time) and describe
//!   deployments ([`sysroot::DeploymentInfo`], the `host status --json` schema).
//! - [`pull`]: fetch from a remote with GPG verification, static deltas, progress and resume;
//!   [`pull::needed`] states what a pull will cost before it starts, from size indexes in the
//!   commits (only objects the repo lacks count) or the server's static delta.
//! - [`deploy`]: the `/boot` space check, then stage (booted; finalized at shutdown by
//!   ostree-finalize-staged.service) or write (not booted) a new deployment with /etc merged.
//! - [`upgrade`]: `upgrade`, `deploy VERSION`, `rebase`. Metadata first (commit object only),
//!   so "nothing new", "already staged", a refused downgrade and a repo without room for the
//!   content are all decided before any content is fetched; a commit already local is not
//!   pulled again.
//! - [`rollback`]: reorder the deployment list so the previous deployment boots next.
//! - [`remote`], [`kargs`]: remotes of the sysroot repo; kernel-argument edits.
//! - [`cli`]: options and dispatch; exit code 77 for "nothing to do" with `--unchanged-exit-77`.
//!
//! The binary ships as the `atoll-host` Debian package (`cargo deb -p atoll-updater`), with
//! `atoll-upgrade.{service,timer}` from `systemd-units/` for unattended staging.

pub mod cli;
pub mod deploy;
pub mod kargs;
pub mod pull;
pub mod remote;
pub mod rollback;
pub mod sysroot;
pub mod upgrade;
