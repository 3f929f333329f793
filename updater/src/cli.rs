//! `host` options and dispatch; the command bodies live in their own modules.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand};
use ostree::gio;

use crate::kargs::{self, Edit};
use crate::sysroot::{self, Sysroot};
use crate::upgrade::{self, Target, UpgradeOptions, UpgradeResult};
use crate::{remote, rollback};

/// Exit code for "nothing to do" with `--unchanged-exit-77`.
pub const EXIT_UNCHANGED: u8 = 77;

/// Atoll's host agent: atomic, staged OS updates with rollback.
#[derive(Debug, Parser)]
#[command(name = "host", version)]
pub struct Cli {
    /// The sysroot to act on.
    #[arg(long, global = true, default_value = "/")]
    pub sysroot: PathBuf,
    /// The stateroot (OS name); default: the booted or default deployment's.
    #[arg(long, global = true)]
    pub os: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show every deployment in boot order.
    Status {
        #[arg(long)]
        json: bool,
        /// Only the booted deployment.
        #[arg(long)]
        booted: bool,
    },
    /// Pull the newest commit of the origin and stage it.
    Upgrade {
        /// Only fetch metadata and say what would come.
        #[arg(long)]
        check: bool,
        /// Like --check, plus the package diff.
        #[arg(long)]
        preview: bool,
        /// Pull, but do not stage.
        #[arg(long)]
        download_only: bool,
        #[arg(long)]
        reboot: bool,
        #[arg(long)]
        allow_downgrade: bool,
        /// Exit 77 when there is nothing to upgrade to.
        #[arg(long)]
        unchanged_exit_77: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make the previous deployment the default (discarding a staged one).
    Rollback {
        #[arg(long)]
        reboot: bool,
        #[arg(long)]
        json: bool,
    },
    /// Deploy a version or commit from the origin's history.
    Deploy {
        /// A version (e.g. 2026.1.2) or a commit checksum (or unique prefix).
        target: String,
        #[arg(long)]
        reboot: bool,
        #[arg(long)]
        json: bool,
    },
    /// Switch to another REMOTE:REF.
    Rebase {
        refspec: String,
        #[arg(long)]
        reboot: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove deployments and repo data that are no longer needed.
    Cleanup {
        /// Remove a pending (staged, or not-yet-booted default) deployment.
        #[arg(long)]
        pending: bool,
        /// Remove the rollback deployment.
        #[arg(long)]
        rollback: bool,
    },
    /// Edit kernel arguments (makes a new deployment of the same commit).
    Kargs {
        #[arg(long, value_name = "K=V")]
        append: Vec<String>,
        #[arg(long, value_name = "K[=V]")]
        delete: Vec<String>,
        #[arg(long, value_name = "K=V")]
        replace: Vec<String>,
    },
    /// Pin a deployment (by boot-order index) so cleanup never removes it.
    Pin {
        index: usize,
        #[arg(long)]
        unpin: bool,
    },
    /// Point the boot loader at the current deployment list: write the inactive GRUB menu slot,
    /// then switch to it in place. Run after `ostree admin finalize-staged` at shutdown and at
    /// every boot; `host` runs it itself after each change it makes.
    BootSync {
        #[arg(long)]
        json: bool,
    },
    /// Manage the remotes updates come from.
    #[command(subcommand)]
    Remote(RemoteCommand),
}

#[derive(Debug, Subcommand)]
pub enum RemoteCommand {
    /// Add a remote; GPG verification is on unless --no-gpg-verify.
    Add {
        name: String,
        url: String,
        #[arg(long, value_name = "KEYFILE")]
        gpg_import: Option<PathBuf>,
        #[arg(long)]
        no_gpg_verify: bool,
    },
    /// List remotes.
    List {
        #[arg(long)]
        json: bool,
    },
}

/// Parse and run; returns the process exit code.
pub fn run_from_iter<I, T>(args: I) -> Result<u8>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    // libostree reports some things with g_print ("Freed objects: ..." after a prune): they go
    // to stderr, so stdout stays exactly what `host` prints (pure JSON with --json).
    glib::set_print_handler(|s| eprint!("{s}"));
    run(Cli::parse_from(args))
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn reboot_if(asked: bool, s: &Sysroot) -> Result<()> {
    if !asked {
        return Ok(());
    }
    if s.sysroot.booted_deployment().is_none() {
        bail!("--reboot: {} is not the booted system", s.path.display());
    }
    atoll_utils::cmd::run(std::process::Command::new("systemctl").arg("reboot")).context("rebooting")
}

/// `host status` for people, in rpm-ostree's layout: one block per deployment in boot order,
/// `●` marking the booted one.
fn render_status(deps: &[sysroot::DeploymentInfo]) -> String {
    let mut out = String::new();
    for d in deps {
        let mark = if d.booted { "●" } else { " " };
        out.push_str(&format!("{mark} {}\n", d.origin.as_deref().unwrap_or("(no origin)")));
        let when = glib::DateTime::from_unix_utc(d.timestamp as i64)
            .ok()
            .and_then(|t| t.format("%Y-%m-%dT%H:%M:%SZ").ok())
            .map(|t| t.to_string())
            .unwrap_or_else(|| d.timestamp.to_string());
        let version = d.version.as_deref().unwrap_or("(none)");
        out.push_str(&format!("{:>14}: {version} ({when})\n", "Version"));
        out.push_str(&format!("{:>14}: {}\n", "Commit", d.checksum));
        out.push_str(&format!("{:>14}: {} (index {i})\n", "Stateroot", d.osname, i = d.index));
        let mut state = Vec::new();
        for (on, t) in [
            (d.staged, "staged: becomes the default at the next shutdown"),
            (d.rollback, "rollback"),
            (d.pinned, "pinned"),
        ] {
            if on {
                state.push(t);
            }
        }
        if !state.is_empty() {
            out.push_str(&format!("{:>14}: {}\n", "State", state.join(", ")));
        }
    }
    out
}

fn report_upgrade(r: &UpgradeResult, json: bool) -> Result<()> {
    if json {
        return print_json(r);
    }
    let v = |ver: &Option<String>, c: &str| ver.clone().unwrap_or_else(|| c[..12.min(c.len())].to_string());
    match r.outcome {
        "no-change" => println!("No upgrade available (at {}).", v(&r.from_version, &r.from_checksum)),
        outcome => {
            println!(
                "{outcome}: {} -> {} ({})",
                v(&r.from_version, &r.from_checksum),
                v(&r.to_version, &r.to_checksum),
                r.origin
            );
            if outcome == "available" {
                match (r.download_size, r.unpacked_size) {
                    (Some(d), Some(u)) => {
                        println!("Download size: {} ({} unpacked).", crate::pull::human(d), crate::pull::human(u))
                    }
                    _ => println!("Download size: not known before pulling (no size index, no static delta)."),
                }
            } else if r.pull.bytes_transferred > 0 {
                println!("Downloaded {}.", crate::pull::human(r.pull.bytes_transferred));
            }
            if let Some(d) = &r.packages {
                print!("{}", atoll_utils::packages::render(d));
            }
            if outcome == "staged" {
                println!("Staged; it becomes the default when the system shuts down cleanly. Reboot to use it.");
            }
        }
    }
    Ok(())
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> Result<u8> {
    let os = cli.os.as_deref();
    match cli.command {
        Command::Status { json, booted } => {
            let s = Sysroot::open(&cli.sysroot)?;
            let mut deps = sysroot::deployments(&s)?;
            if let Some(o) = os {
                deps.retain(|d| d.osname == o);
            }
            if booted {
                deps.retain(|d| d.booted);
            }
            if json {
                print_json(&serde_json::json!({ "deployments": deps }))?;
            } else {
                print!("{}", render_status(&deps));
            }
            Ok(0)
        }
        Command::Upgrade { check, preview, download_only, reboot, allow_downgrade, unchanged_exit_77, json } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let opts = UpgradeOptions {
                os: cli.os.clone(),
                check: check || preview,
                preview,
                download_only,
                allow_downgrade,
                progress: !json,
            };
            let r = upgrade::run(&s, Target::Latest, &opts)?;
            report_upgrade(&r, json)?;
            if r.outcome == "no-change" {
                return Ok(if unchanged_exit_77 { EXIT_UNCHANGED } else { 0 });
            }
            reboot_if(reboot && matches!(r.outcome, "staged"), &s)?;
            Ok(0)
        }
        Command::Deploy { target, reboot, json } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let opts =
                UpgradeOptions { os: cli.os.clone(), progress: !json, allow_downgrade: true, ..Default::default() };
            let r = upgrade::run(&s, Target::Version(&target), &opts)?;
            report_upgrade(&r, json)?;
            reboot_if(reboot && r.outcome == "staged", &s)?;
            Ok(0)
        }
        Command::Rebase { refspec, reboot, json } => {
            if !refspec.contains(':') {
                bail!("rebase target `{refspec}` must be REMOTE:REF");
            }
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let opts =
                UpgradeOptions { os: cli.os.clone(), progress: !json, allow_downgrade: true, ..Default::default() };
            let r = upgrade::run(&s, Target::Rebase(&refspec), &opts)?;
            report_upgrade(&r, json)?;
            reboot_if(reboot && r.outcome == "staged", &s)?;
            Ok(0)
        }
        Command::Rollback { reboot, json } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let r = rollback::run(&s)?;
            if json {
                print_json(&r)?;
            } else {
                println!(
                    "Moved {} to be the default deployment{}. Reboot to use it.",
                    r.new_default_version.as_deref().unwrap_or(&r.new_default),
                    if r.discarded_staged { " (discarded the staged deployment)" } else { "" }
                );
            }
            reboot_if(reboot, &s)?;
            Ok(0)
        }
        Command::Cleanup { pending, rollback } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let deps = s.sysroot.deployments();
            let booted = s.sysroot.booted_deployment();
            let rb = sysroot::rollback_index(&deps, booted.as_ref());
            let keep: Vec<ostree::Deployment> = deps
                .iter()
                .enumerate()
                .filter(|(i, d)| {
                    let is_booted = booted.as_ref().is_some_and(|b| b.equal(d));
                    let is_pending = d.is_staged() || (booted.is_some() && *i == 0 && !is_booted);
                    d.is_pinned() || is_booted || !((pending && is_pending) || (rollback && rb == Some(*i)))
                })
                // Clone::clone shares the object (libostree matches the booted one by identity).
                .map(|(_, d)| Clone::clone(d))
                .collect();
            if keep.len() != deps.len() {
                s.sysroot.write_deployments(&keep, gio::Cancellable::NONE).context("writing the deployment list")?;
            }
            s.sysroot.cleanup(gio::Cancellable::NONE).context("cleaning up the sysroot")?;
            s.boot_sync()?;
            println!("Removed {} deployment(s); pruned unused repo objects.", deps.len() - keep.len());
            Ok(0)
        }
        Command::Kargs { append, delete, replace } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let merge = s.merge_deployment(os)?;
            let current = merge.bootconfig().and_then(|b| b.get("options")).map(|s| s.to_string()).unwrap_or_default();
            if append.is_empty() && delete.is_empty() && replace.is_empty() {
                println!("{}", kargs::apply(&current, &[])?.join(" "));
                return Ok(0);
            }
            let edits: Vec<Edit> = append
                .into_iter()
                .map(Edit::Append)
                .chain(delete.into_iter().map(Edit::Delete))
                .chain(replace.into_iter().map(Edit::Replace))
                .collect();
            let new = kargs::apply(&current, &edits)?;
            let new_ref: Vec<&str> = new.iter().map(String::as_str).collect();
            let origin = merge.origin().ok_or_else(|| anyhow!("deployment {} has no origin", merge.csum()))?;
            let w = crate::deploy::deploy(&s, &merge.osname(), &merge.csum(), &origin, &merge, Some(&new_ref))?;
            println!("Kernel arguments {:?}: {}", w, new.join(" "));
            Ok(0)
        }
        Command::Pin { index, unpin } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let deps = s.sysroot.deployments();
            let d = deps
                .get(index)
                .ok_or_else(|| anyhow!("no deployment at index {index} ({} deployments)", deps.len()))?;
            if d.is_staged() {
                bail!("deployment {index} is staged; pin it after it is finalized");
            }
            s.sysroot.deployment_set_pinned(d, !unpin).with_context(|| format!("pinning deployment {index}"))?;
            println!("Deployment {index} is {}.", if unpin { "unpinned" } else { "pinned" });
            Ok(0)
        }
        Command::BootSync { json } => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            let r = s.boot_sync()?;
            if json {
                print_json(&r)?;
            } else if r.switched {
                println!("The boot loader now reads slot {} ({} entries).", r.slot.name(), r.entries.len());
            } else {
                println!("The boot loader's slot {} already lists the deployments.", r.slot.name());
            }
            Ok(0)
        }
        Command::Remote(RemoteCommand::Add { name, url, gpg_import, no_gpg_verify }) => {
            let s = Sysroot::open_locked(&cli.sysroot)?;
            remote::add(&s.repo(), &name, &url, gpg_import.as_deref(), no_gpg_verify)?;
            Ok(0)
        }
        Command::Remote(RemoteCommand::List { json }) => {
            let s = Sysroot::open(&cli.sysroot)?;
            let list = remote::list(&s.repo())?;
            if json {
                print_json(&list)?;
            } else {
                for r in list {
                    println!("{}\t{}{}", r.name, r.url, if r.gpg_verify { "" } else { "\t(no GPG verification)" });
                }
            }
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn status_text_names_origin_version_date_and_state() {
        let d = |index, booted, staged, version: &str| sysroot::DeploymentInfo {
            index,
            osname: "atoll".into(),
            checksum: format!("{index}").repeat(64),
            serial: 0,
            version: Some(version.into()),
            timestamp: 1_795_487_390,
            origin: Some("atoll:atoll/x86_64/stable".into()),
            booted,
            staged,
            rollback: false,
            pinned: index == 1,
            kargs: None,
        };
        let text = render_status(&[d(0, false, true, "2026.1.1"), d(1, true, false, "2026.1")]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  atoll:atoll/x86_64/stable");
        assert_eq!(lines[1], "       Version: 2026.1.1 (2026-11-24T02:29:50Z)");
        assert_eq!(lines[3], "     Stateroot: atoll (index 0)");
        assert_eq!(lines[4], "         State: staged: becomes the default at the next shutdown");
        assert_eq!(lines[5], "● atoll:atoll/x86_64/stable");
        assert_eq!(lines.last().unwrap(), &"         State: pinned");
    }

    #[test]
    fn parses_fixed_names() {
        let c = Cli::try_parse_from(["host", "--sysroot", "/x", "upgrade", "--check", "--unchanged-exit-77"]).unwrap();
        assert_eq!(c.sysroot, PathBuf::from("/x"));
        assert!(matches!(c.command, Command::Upgrade { check: true, unchanged_exit_77: true, .. }));
        let c = Cli::try_parse_from(["host", "deploy", "2026.1.2", "--os", "atoll"]).unwrap();
        assert_eq!(c.os.as_deref(), Some("atoll"));
        assert!(Cli::try_parse_from(["host", "remote", "add", "n", "http://x", "--no-gpg-verify"]).is_ok());
        assert!(Cli::try_parse_from(["host", "pin", "1", "--unpin"]).is_ok());
        assert!(Cli::try_parse_from(["host", "kargs", "--append", "a=b", "--delete", "c"]).is_ok());
        assert!(Cli::try_parse_from(["host", "status", "--json", "--booted"]).is_ok());
    }
}
