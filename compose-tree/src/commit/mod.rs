//! Writing a tree into an OSTree repository through libostree: one transaction that writes the
//! objects and the commit, signs it, and only then moves the ref; the summary is regenerated
//! after the transaction. A failure anywhere before the ref moves leaves the ref untouched.
//! File content is written by [`writer`] on every core.

pub mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use glib::prelude::*;
use ostree::gio;

use crate::backend::Package;

/// Repository modes `compose --repo-mode` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RepoModeArg {
    /// Compressed objects, servable over plain HTTP (the default).
    Archive,
    /// Uncompressed objects usable by an unprivileged user.
    BareUser,
}

/// An open repository and whether this run created it (so a failed first compose can remove it).
pub struct OpenRepo {
    pub repo: ostree::Repo,
    pub path: PathBuf,
    /// This run initialised the repository.
    pub created: bool,
    /// ... and also created the directory it lives in.
    pub created_dir: bool,
}

impl OpenRepo {
    /// Undo [`open_or_create`]'s creation: remove what it made, leave a pre-existing directory.
    pub fn remove_if_created(&self) {
        if !self.created {
            return;
        }
        if self.created_dir {
            let _ = std::fs::remove_dir_all(&self.path);
            return;
        }
        for e in std::fs::read_dir(&self.path).into_iter().flatten().flatten() {
            let p = e.path();
            let _ = if p.is_dir() && !p.is_symlink() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
}

/// Open the repository at `path`, creating it (with `mode`) if missing.
pub fn open_or_create(path: &Path, mode: RepoModeArg) -> Result<OpenRepo> {
    let repo = ostree::Repo::new_for_path(path);
    if path.join("config").exists() {
        repo.open(gio::Cancellable::NONE).with_context(|| format!("opening repo {}", path.display()))?;
        return Ok(OpenRepo { repo, path: path.to_path_buf(), created: false, created_dir: false });
    }
    let created_dir = !path.exists();
    if !created_dir && std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} exists, is not empty and is not an OSTree repository", path.display());
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating repo directory {}", path.display()))?;
    let m = match mode {
        RepoModeArg::Archive => ostree::RepoMode::Archive,
        RepoModeArg::BareUser => ostree::RepoMode::BareUser,
    };
    repo.create(m, gio::Cancellable::NONE).with_context(|| format!("creating repo {}", path.display()))?;
    Ok(OpenRepo { repo, path: path.to_path_buf(), created: true, created_dir })
}

/// Open an existing repository (for read-only commands).
pub fn open(path: &Path) -> Result<ostree::Repo> {
    let repo = ostree::Repo::new_for_path(path);
    repo.open(gio::Cancellable::NONE).with_context(|| format!("opening repo {}", path.display()))?;
    Ok(repo)
}

/// What we need to know about a commit already in the repository.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub checksum: String,
    pub version: Option<String>,
    pub inputhash: Option<String>,
    pub packages: Vec<Package>,
    pub timestamp: u64,
}

/// Resolve `rev` (a ref or checksum) and read its metadata.
pub fn commit_info(repo: &ostree::Repo, rev: &str) -> Result<CommitInfo> {
    let checksum = repo
        .resolve_rev(rev, false)
        .with_context(|| format!("resolving `{rev}`"))?
        .ok_or_else(|| anyhow!("no such ref or commit `{rev}`"))?
        .to_string();
    let commit = repo
        .load_variant(ostree::ObjectType::Commit, &checksum)
        .with_context(|| format!("loading commit {checksum}"))?;
    let meta = glib::VariantDict::new(Some(&commit.child_value(0)));
    let packages = atoll_utils::packages::of_commit(&commit);
    Ok(CommitInfo {
        version: meta.lookup::<String>("version").ok().flatten(),
        inputhash: meta.lookup::<String>("atoll.inputhash").ok().flatten(),
        packages,
        timestamp: ostree::commit_get_timestamp(&commit),
        checksum,
    })
}

/// The commit `ref_name` points at, if the ref exists.
pub fn current(repo: &ostree::Repo, ref_name: &str) -> Result<Option<CommitInfo>> {
    match repo.resolve_rev(ref_name, true).with_context(|| format!("resolving ref {ref_name}"))? {
        Some(c) => commit_info(repo, &c).map(Some),
        None => Ok(None),
    }
}

/// rpm-ostree's automatic versioning: the first compose under a prefix is the prefix itself,
/// then `prefix.1`, `prefix.2`, ... A previous version under another prefix restarts the count.
pub fn next_version(prefix: Option<&str>, previous: Option<&str>) -> Option<String> {
    let prefix = prefix?;
    let Some(prev) = previous else { return Some(prefix.to_string()) };
    if prev == prefix {
        return Some(format!("{prefix}.1"));
    }
    match prev.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')).and_then(|n| n.parse::<u64>().ok()) {
        Some(n) => Some(format!("{prefix}.{}", n + 1)),
        None => Some(prefix.to_string()),
    }
}

/// Everything that goes into one commit.
pub struct CommitRequest<'a> {
    pub root: &'a Path,
    pub ref_name: &'a str,
    pub parent: Option<&'a str>,
    pub version: Option<&'a str>,
    pub kver: Option<&'a str>,
    pub packages: &'a [Package],
    pub inputhash: Option<&'a str>,
    pub extra: &'a BTreeMap<String, String>,
    pub gpg_key: Option<&'a str>,
    pub gpg_homedir: Option<&'a Path>,
}

/// The commit's `atoll.sizes` index ([`atoll_utils::sizes`]): sizes of the content objects that
/// `parent` does not have, so clients can state a download's size before fetching any content.
fn size_index(repo: &ostree::Repo, parent: Option<&str>, contents: &[(String, u64)]) -> Result<glib::Variant> {
    let in_parent: std::collections::HashSet<String> = match parent {
        Some(p) => repo
            .traverse_commit(p, 0, gio::Cancellable::NONE)
            .with_context(|| format!("listing the objects of parent commit {p}"))?
            .into_iter()
            .filter(|o| o.object_type() == ostree::ObjectType::File)
            .map(|o| o.checksum().to_string())
            .collect(),
        None => Default::default(),
    };
    let mut entries = Vec::new();
    for (csum, unpacked) in contents.iter().filter(|(c, _)| !in_parent.contains(c)) {
        let archived = repo
            .query_object_storage_size(ostree::ObjectType::File, csum, gio::Cancellable::NONE)
            .with_context(|| format!("reading the stored size of object {csum}"))?;
        entries.push(atoll_utils::sizes::Entry { checksum: csum.clone(), archived, unpacked: *unpacked });
    }
    atoll_utils::sizes::encode(&entries)
}

fn metadata(req: &CommitRequest, sizes: glib::Variant) -> glib::Variant {
    let d = glib::VariantDict::new(None);
    d.insert_value(atoll_utils::sizes::METADATA_KEY, &sizes);
    for (k, v) in req.extra {
        d.insert_value(k, &v.to_variant());
    }
    if let Some(v) = req.version {
        d.insert_value("version", &v.to_variant());
    }
    if let Some(k) = req.kver {
        d.insert_value("ostree.bootable", &true.to_variant());
        d.insert_value("ostree.linux", &k.to_variant());
    }
    if let Some(h) = req.inputhash {
        d.insert_value("atoll.inputhash", &h.to_variant());
    }
    let pkgs: Vec<(String, String, String)> =
        req.packages.iter().map(|p| (p.name.clone(), p.version.clone(), p.arch.clone())).collect();
    d.insert_value(atoll_utils::packages::METADATA_KEY, &pkgs.to_variant());
    d.end()
}

/// Write `req.root` as a commit and move the ref, all in one transaction. `on_file` is called
/// once per file or directory as it is written (for progress). Returns the commit checksum.
pub fn write(repo: &OpenRepo, req: &CommitRequest, on_file: &(dyn Fn() + Sync)) -> Result<String> {
    let cancellable = gio::Cancellable::NONE;
    let (path, repo) = (&repo.path, &repo.repo);
    let tx = repo.auto_transaction(cancellable).context("starting repo transaction")?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let written = writer::write_tree(repo, path, req.root, threads, on_file)
        .with_context(|| format!("writing {} into the repo", req.root.display()))?;
    let sizes = size_index(repo, req.parent, &written.contents)?;
    let root = repo.write_mtree(&written.mtree, cancellable).context("writing the root tree")?;
    let root = root.downcast::<ostree::RepoFile>().map_err(|_| anyhow!("write_mtree returned no RepoFile"))?;
    let subject = req.version.map(|v| format!("{} {v}", req.ref_name));
    let checksum = repo
        .write_commit(req.parent, subject.as_deref(), None, Some(&metadata(req, sizes)), &root, cancellable)
        .context("writing the commit object")?
        .to_string();
    if let Some(key) = req.gpg_key {
        let home = req.gpg_homedir.map(|p| p.display().to_string());
        repo.sign_commit(&checksum, key, home.as_deref(), cancellable)
            .with_context(|| format!("signing commit {checksum} with GPG key {key}"))?;
    }
    repo.transaction_set_ref(None, req.ref_name, Some(&checksum));
    tx.commit(cancellable).with_context(|| format!("committing the transaction for {}", req.ref_name))?;
    Ok(checksum)
}

/// Regenerate (and sign, with a key) the repository summary so HTTP clients see the new ref.
pub fn update_summary(repo: &ostree::Repo, gpg_key: Option<&str>, gpg_homedir: Option<&Path>) -> Result<()> {
    repo.regenerate_summary(None, gio::Cancellable::NONE).context("regenerating the repo summary")?;
    if let Some(key) = gpg_key {
        let home = gpg_homedir.map(|p| p.display().to_string());
        repo.add_gpg_signature_summary(&[key], home.as_deref(), gio::Cancellable::NONE)
            .with_context(|| format!("signing the summary with GPG key {key}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_versions() {
        let cases = [
            (None, None, None),
            (Some("2026.1"), None, Some("2026.1")),
            (Some("2026.1"), Some("2026.1"), Some("2026.1.1")),
            (Some("2026.1"), Some("2026.1.1"), Some("2026.1.2")),
            (Some("2026.1"), Some("2026.1.9"), Some("2026.1.10")),
            (Some("2026.2"), Some("2026.1.9"), Some("2026.2")),
            (Some("2026.1"), Some("2026.10"), Some("2026.1")),
        ];
        for (prefix, prev, want) in cases {
            assert_eq!(next_version(prefix, prev).as_deref(), want, "{prefix:?} after {prev:?}");
        }
    }
}
