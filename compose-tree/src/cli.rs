//! Command-line options and dispatch. Command bodies live in their own modules.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::commit::{self, RepoModeArg};
use crate::compose::{self, ComposeOptions};
use crate::db;

/// Compose TOML treefiles into versioned, bootable OSTree commits.
#[derive(Debug, Parser)]
#[command(name = "compose-tree", version)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the tree a treefile describes and commit it (a no-op when nothing changed).
    Compose(ComposeArgs),
    /// Commit a prepared root filesystem directory (like `rpm-ostree compose commit`).
    Commit(CommitArgs),
    /// Build a bootable disk image (BIOS and UEFI) from a commit.
    Image(ImageArgs),
    /// Package-level queries on commits.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// The treefile (TOML).
    pub treefile: PathBuf,
    /// The OSTree repository to commit into; created if missing.
    #[arg(long)]
    pub repo: PathBuf,
    /// Mode of a repository this command creates.
    #[arg(long, value_enum, default_value = "archive")]
    pub repo_mode: RepoModeArg,
    /// Commit even when the inputs are unchanged.
    #[arg(long)]
    pub force: bool,
    /// Print the result as JSON on stdout (and no progress).
    #[arg(long)]
    pub json: bool,
    /// Package cache and scratch space.
    #[arg(long, default_value = "/var/cache/atoll/compose")]
    pub cachedir: PathBuf,
    /// Reuse package metadata refreshed less than this many seconds ago (0: always refresh).
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub metadata_expire: u64,
    /// Sign the commit and summary with this GPG key ID.
    #[arg(long, value_name = "KEYID")]
    pub gpg_sign: Option<String>,
    /// GnuPG home directory holding the signing key.
    #[arg(long, value_name = "DIR", requires = "gpg_sign")]
    pub gpg_homedir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// The root filesystem directory to commit.
    pub rootfs: PathBuf,
    /// The OSTree repository to commit into; created if missing.
    #[arg(long)]
    pub repo: PathBuf,
    /// Mode of a repository this command creates.
    #[arg(long, value_enum, default_value = "archive")]
    pub repo_mode: RepoModeArg,
    /// The ref to move to the new commit (its current commit becomes the parent).
    #[arg(long = "ref", value_name = "REF")]
    pub ref_name: String,
    /// The commit's `version` metadata.
    #[arg(long = "add-metadata-version", value_name = "VERSION")]
    pub version: Option<String>,
    /// Print the result as JSON on stdout (and no progress).
    #[arg(long)]
    pub json: bool,
    /// Sign the commit and summary with this GPG key ID.
    #[arg(long, value_name = "KEYID")]
    pub gpg_sign: Option<String>,
    /// GnuPG home directory holding the signing key.
    #[arg(long, value_name = "DIR", requires = "gpg_sign")]
    pub gpg_homedir: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The OSTree repository holding the commit.
    #[arg(long)]
    pub repo: PathBuf,
    /// The ref (or commit) to deploy.
    #[arg(long = "ref", value_name = "REF")]
    pub ref_name: String,
    /// The image recipe (TOML).
    #[arg(long)]
    pub recipe: PathBuf,
    /// Output format.
    #[arg(long, value_enum)]
    pub format: crate::image::recipe::Format,
    /// The image file to write (replaced only when the build succeeds).
    #[arg(long)]
    pub output: PathBuf,
    /// Print the result as JSON on stdout (and no progress).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Packages added, removed and changed between two commits.
    Diff {
        #[arg(long)]
        repo: PathBuf,
        rev1: String,
        rev2: String,
        #[arg(long)]
        json: bool,
    },
    /// The packages in a commit.
    List {
        #[arg(long)]
        repo: PathBuf,
        rev: String,
        #[arg(long)]
        json: bool,
    },
}

/// Parse `args` (including the program name) and run the command, printing its output.
pub fn run_from_iter<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run(Cli::parse_from(args))
}

/// Run an already parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compose(a) => {
            let opts = ComposeOptions {
                treefile: a.treefile,
                repo: a.repo,
                repo_mode: a.repo_mode,
                force: a.force,
                quiet: a.json,
                // apt and mmdebstrap are handed paths under it: make them absolute.
                cachedir: std::path::absolute(&a.cachedir)
                    .with_context(|| format!("resolving --cachedir {}", a.cachedir.display()))?,
                gpg_sign: a.gpg_sign,
                gpg_homedir: a.gpg_homedir,
                metadata_expire: std::time::Duration::from_secs(a.metadata_expire),
            };
            print_result(&compose::compose(&opts)?, a.json)?;
        }
        Command::Commit(a) => {
            let opts = compose::CommitOptions {
                rootfs: a.rootfs,
                repo: a.repo,
                repo_mode: a.repo_mode,
                ref_name: a.ref_name,
                version: a.version,
                quiet: a.json,
                gpg_sign: a.gpg_sign,
                gpg_homedir: a.gpg_homedir,
            };
            print_result(&compose::commit_rootfs(&opts)?, a.json)?;
        }
        Command::Image(a) => {
            let opts = crate::image::ImageOptions {
                repo: a.repo,
                ref_name: a.ref_name,
                recipe: a.recipe,
                format: a.format,
                output: a.output,
                quiet: a.json,
            };
            let r = crate::image::build(&opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} ({:?}, {} MiB on disk, commit {})",
                    r.output.display(),
                    r.format,
                    r.file_size >> 20,
                    r.version.as_deref().unwrap_or(&r.commit)
                );
            }
        }
        Command::Db(DbCommand::Diff { repo, rev1, rev2, json }) => {
            let repo = commit::open(&repo)?;
            let a = commit::commit_info(&repo, &rev1)?;
            let b = commit::commit_info(&repo, &rev2)?;
            let d = db::diff(&a.packages, &b.packages);
            if json {
                println!("{}", serde_json::to_string_pretty(&d)?);
            } else {
                print!(
                    "ostree diff commit from: {rev1} ({})\nostree diff commit to:   {rev2} ({})\n{}",
                    a.checksum,
                    b.checksum,
                    db::render(&d)
                );
            }
        }
        Command::Db(DbCommand::List { repo, rev, json }) => {
            let repo = commit::open(&repo)?;
            let info = commit::commit_info(&repo, &rev)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info.packages)?);
            } else {
                println!("ostree commit: {rev} ({})", info.checksum);
                for p in &info.packages {
                    println!(" {}-{}.{}", p.name, p.version, p.arch);
                }
            }
        }
    }
    Ok(())
}

fn print_result(r: &compose::ComposeResult, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
    } else {
        println!("{}", r.summary());
    }
    Ok(())
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
    fn parses_fixed_names() {
        let c = Cli::try_parse_from(["compose-tree", "compose", "t.toml", "--repo", "r", "--json", "--force"]).unwrap();
        let Command::Compose(a) = c.command else { panic!() };
        assert!(a.json && a.force);
        assert_eq!(a.repo_mode, RepoModeArg::Archive);
        let c = Cli::try_parse_from(["compose-tree", "db", "diff", "--repo", "r", "a", "b", "--json"]).unwrap();
        assert!(matches!(c.command, Command::Db(DbCommand::Diff { json: true, .. })));
        let c = Cli::try_parse_from(["compose-tree", "db", "list", "--repo", "r", "a"]).unwrap();
        assert!(matches!(c.command, Command::Db(DbCommand::List { json: false, .. })));
        assert!(Cli::try_parse_from(["compose-tree", "compose", "t.toml"]).is_err(), "--repo is required");
        assert!(Cli::try_parse_from(["compose-tree", "compose", "t", "--repo", "r", "--repo-mode", "bare"]).is_err());
    }
}
