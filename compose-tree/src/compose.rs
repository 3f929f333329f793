//! The `compose` command: treefile → resolved package set → input hash → (if changed) root
//! filesystem → postprocess → OSTree commit. Everything that can be checked without building is
//! checked first; nothing in the repository changes until the final transaction commits.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use atoll_utils::progress::Phases;
use serde::Serialize;

use crate::backend::{debian, dpkg};
use crate::commit::{self, RepoModeArg};
use crate::inputhash;
use crate::postprocess::{self, kernel, layout, sandbox};
use crate::treefile::{self, Arch, Backend};

/// Options of one compose run.
#[derive(Debug, Clone)]
pub struct ComposeOptions {
    pub treefile: PathBuf,
    pub repo: PathBuf,
    pub repo_mode: RepoModeArg,
    pub force: bool,
    pub quiet: bool,
    pub cachedir: PathBuf,
    pub gpg_sign: Option<String>,
    pub gpg_homedir: Option<PathBuf>,
    /// Reuse package metadata refreshed less than this long ago.
    pub metadata_expire: std::time::Duration,
}

/// What a compose did, as printed by `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct ComposeResult {
    /// False when the inputs were unchanged and no commit was written.
    pub changed: bool,
    pub commit: String,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub version: Option<String>,
    pub parent: Option<String>,
    pub inputhash: String,
    pub packages: usize,
    pub kernel: Option<String>,
    /// Bytes of regular files in the committed tree.
    pub tree_size: u64,
    /// Files, directories and symlinks in the committed tree.
    pub entries: u64,
    /// Seconds spent in each phase, keyed by phase name.
    pub timings: BTreeMap<String, f64>,
}

impl ComposeResult {
    /// The one-line human summary.
    pub fn summary(&self) -> String {
        let v = self.version.as_deref().unwrap_or("(no version)");
        if self.changed {
            format!(
                "{} => {} (version {v}, {} packages, {:.1} MiB)",
                self.ref_name,
                self.commit,
                self.packages,
                self.tree_size as f64 / 1048576.0
            )
        } else {
            format!("no changes since {}", self.version.as_deref().unwrap_or(&self.commit))
        }
    }
}

/// Hold an exclusive lock on the cache directory for the duration of a compose, so two composes
/// never share its scratch space or package cache half-written.
fn lock_cache(cachedir: &Path) -> Result<File> {
    std::fs::create_dir_all(cachedir).with_context(|| format!("creating cache directory {}", cachedir.display()))?;
    let path = cachedir.join("lock");
    let f = File::create(&path).with_context(|| format!("opening {}", path.display()))?;
    if f.try_lock().is_err() {
        tracing::info!("waiting for another compose using {}", cachedir.display());
        f.lock().with_context(|| format!("locking {}", path.display()))?;
    }
    Ok(f)
}

/// Run a compose.
pub fn compose(opts: &ComposeOptions) -> Result<ComposeResult> {
    let arch = Arch::host();
    let tf = treefile::load(&opts.treefile, arch)?;
    let Backend::Debian(src) = &tf.backend;
    atoll_utils::cmd::require("composing", debian::PROGRAMS)?;
    let _lock = lock_cache(&opts.cachedir)?;
    let mut phases = Phases::new(opts.quiet);

    let ph = phases.start("resolve");
    let apt = debian::Apt::prepare(&tf, src, &opts.cachedir, arch)?;
    ph.message("refreshing package metadata");
    apt.update(opts.metadata_expire)?;
    ph.message("resolving the package set");
    let resolved = apt.resolve()?;
    let inputhash = inputhash::compute(&tf, &resolved.packages)?;
    phases.done(ph);

    let previous = if opts.repo.join("config").exists() {
        commit::current(&commit::open(&opts.repo)?, &tf.ref_name)?
    } else {
        None
    };
    if let Some(prev) = previous.as_ref().filter(|p| p.inputhash.as_deref() == Some(inputhash.as_str())) {
        if !opts.force {
            return Ok(ComposeResult {
                changed: false,
                commit: prev.checksum.clone(),
                ref_name: tf.ref_name.clone(),
                version: prev.version.clone(),
                parent: None,
                inputhash,
                packages: prev.packages.len(),
                kernel: None,
                tree_size: 0,
                entries: 0,
                timings: timings(&phases),
            });
        }
    }

    let scratch = opts.cachedir.join("tmp");
    // Anything here is left over from a compose that was killed; we hold the lock.
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let work = tempfile::Builder::new().prefix("compose-").tempdir_in(&scratch).context("creating work directory")?;
    let root = work.path().join("rootfs");

    let ph = phases.start("rootfs");
    apt.build_rootfs(&root, |l| ph.message(l.to_string()))?;
    debian::check_rootfs(&root)?;
    phases.done(ph);

    let ph = phases.start("postprocess");
    postprocess::add_files(&root, &tf)?;
    postprocess::remove_files(&root, &tf)?;
    sandbox::enable_units(&root, &tf.units, tf.default_target.as_deref())?;
    sandbox::run_scripts(&root, &tf.postprocess, |l| ph.message(l.to_string()))?;
    phases.done(ph);

    let ph = phases.start("initramfs");
    let kver = kernel::find_kver(&root)?;
    kernel::install(&root, &kver, |l| ph.message(l.to_string()))?;
    phases.done(ph);

    let ph = phases.start("layout");
    let packages = dpkg::read_installed(&root.join("var/lib/dpkg"))?;
    let version = commit::next_version(
        tf.automatic_version_prefix.as_deref(),
        previous.as_ref().and_then(|p| p.version.as_deref()),
    );
    layout::convert(&root, version.as_deref())?;
    let (entries, tree_size) = tree_stats(&root)?;
    phases.done(ph);

    let ph = phases.start("commit");
    ph.set_length(entries);
    let open = commit::open_or_create(&opts.repo, opts.repo_mode)?;
    let bar = ph.counter();
    let parent = previous.as_ref().map(|p| p.checksum.clone());
    let req = commit::CommitRequest {
        root: &root,
        ref_name: &tf.ref_name,
        parent: parent.as_deref(),
        version: version.as_deref(),
        kver: Some(&kver),
        packages: &packages,
        inputhash: Some(&inputhash),
        extra: &tf.metadata,
        gpg_key: opts.gpg_sign.as_deref(),
        gpg_homedir: opts.gpg_homedir.as_deref(),
    };
    let checksum = commit_and_publish(&open, &req, bar)?;
    phases.done(ph);

    Ok(ComposeResult {
        changed: true,
        commit: checksum,
        ref_name: tf.ref_name.clone(),
        version,
        parent,
        inputhash,
        packages: packages.len(),
        kernel: Some(kver),
        tree_size,
        entries,
        timings: timings(&phases),
    })
}

/// Write the commit, then the summary. If the commit fails, a repository this run created is
/// removed again; once the ref has moved, the repository stays whatever comes after.
fn commit_and_publish(
    open: &commit::OpenRepo,
    req: &commit::CommitRequest,
    on_file: impl Fn() + Sync,
) -> Result<String> {
    let checksum = match commit::write(open, req, &on_file) {
        Ok(c) => c,
        Err(e) => {
            open.remove_if_created();
            return Err(e);
        }
    };
    commit::update_summary(&open.repo, req.gpg_key, req.gpg_homedir)
        .with_context(|| format!("commit {checksum} is written and {} moved, but", req.ref_name))?;
    Ok(checksum)
}

/// Options of `compose-tree commit`: commit a root filesystem that is already in OSTree layout
/// (or any directory), like `rpm-ostree compose commit`.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    pub rootfs: PathBuf,
    pub repo: PathBuf,
    pub repo_mode: RepoModeArg,
    pub ref_name: String,
    pub version: Option<String>,
    pub quiet: bool,
    pub gpg_sign: Option<String>,
    pub gpg_homedir: Option<PathBuf>,
}

/// Run `compose-tree commit`. The package list is read from the tree's dpkg database when it has
/// one (under /usr after layout conversion), and the kernel from /usr/lib/modules.
pub fn commit_rootfs(opts: &CommitOptions) -> Result<ComposeResult> {
    let root = &opts.rootfs;
    if !root.is_dir() {
        anyhow::bail!("{}: not a directory", root.display());
    }
    let mut phases = Phases::new(opts.quiet);
    let db = [layout::DPKG_DB, "var/lib/dpkg"].iter().map(|d| root.join(d)).find(|d| d.join("status").exists());
    let packages = match db {
        Some(d) => dpkg::read_installed(&d)?,
        None => Vec::new(),
    };
    let kver = kernel::find_kver(root).ok();
    let (entries, tree_size) = tree_stats(root)?;
    let ph = phases.start("commit");
    ph.set_length(entries);
    let open = commit::open_or_create(&opts.repo, opts.repo_mode)?;
    let parent = commit::current(&open.repo, &opts.ref_name)?.map(|c| c.checksum);
    let extra = BTreeMap::new();
    let req = commit::CommitRequest {
        root,
        ref_name: &opts.ref_name,
        parent: parent.as_deref(),
        version: opts.version.as_deref(),
        kver: kver.as_deref(),
        packages: &packages,
        inputhash: None,
        extra: &extra,
        gpg_key: opts.gpg_sign.as_deref(),
        gpg_homedir: opts.gpg_homedir.as_deref(),
    };
    let checksum = commit_and_publish(&open, &req, ph.counter())?;
    phases.done(ph);
    Ok(ComposeResult {
        changed: true,
        commit: checksum,
        ref_name: opts.ref_name.clone(),
        version: opts.version.clone(),
        parent,
        inputhash: String::new(),
        packages: packages.len(),
        kernel: kver,
        tree_size,
        entries,
        timings: timings(&phases),
    })
}

/// Phase timings in seconds, rounded to milliseconds, for `--json`.
pub(crate) fn timings(p: &Phases) -> BTreeMap<String, f64> {
    p.timings().iter().map(|(n, d)| (n.clone(), (d.as_secs_f64() * 1000.0).round() / 1000.0)).collect()
}

/// Count entries (files, dirs, symlinks) and bytes of regular files under `root`.
fn tree_stats(root: &Path) -> Result<(u64, u64)> {
    let mut entries = 0u64;
    let mut bytes = 0u64;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let ft = e.file_type()?;
            entries += 1;
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                bytes += e.metadata()?.len();
            }
        }
    }
    Ok((entries + 1, bytes))
}
