//! A parallel directory writer: the same objects `ostree_repo_write_directory_to_mtree` would
//! write, but with file content objects checksummed (and, in archive repos, compressed) on every
//! core. libostree's own walk is single-threaded, and content is almost all of a commit's cost.
//!
//! 1. Walk the tree once, recording every entry's metadata and extended attributes.
//! 2. Worker threads, each with its own `Repo` handle and transaction, write the content objects
//!    of regular files and symlinks (hard links are written once). Their transactions commit
//!    before the caller's, so every object exists by the time anything references it.
//! 3. The caller's thread writes the dirmeta objects and builds the [`ostree::MutableTree`].

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Context, Result};
use glib::prelude::*;
use ostree::gio;
use ostree::gio::prelude::FileExt;

/// What we know of one tree entry.
struct Entry {
    /// Path relative to the root ("" for the root itself).
    rel: PathBuf,
    /// Index of the parent directory in the entry list (the root is its own parent).
    parent: usize,
    name: String,
    kind: Kind,
    uid: u32,
    gid: u32,
    mode: u32,
    size: u64,
    xattrs: Option<glib::Variant>,
    /// (dev, ino) of a regular file with more than one link.
    hardlink: Option<(u64, u64)>,
}

enum Kind {
    Dir,
    File,
    Symlink(String),
}

/// Extended attributes as ostree stores them: `a(ayay)`, names NUL-terminated, sorted by name.
fn read_xattrs(path: &Path) -> Result<Option<glib::Variant>> {
    let mut names: Vec<_> =
        xattr::list(path).with_context(|| format!("listing xattrs of {}", path.display()))?.collect();
    if names.is_empty() {
        return Ok(None);
    }
    names.sort();
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(names.len());
    for n in names {
        let value = xattr::get(path, &n)
            .with_context(|| format!("reading xattr {n:?} of {}", path.display()))?
            .unwrap_or_default();
        let mut name = std::os::unix::ffi::OsStrExt::as_bytes(n.as_os_str()).to_vec();
        name.push(0);
        out.push((name, value));
    }
    Ok(Some(out.to_variant()))
}

fn walk(root: &Path) -> Result<Vec<Entry>> {
    let md = std::fs::symlink_metadata(root).with_context(|| format!("reading {}", root.display()))?;
    let mut entries = vec![Entry {
        rel: PathBuf::new(),
        parent: 0,
        name: String::new(),
        kind: Kind::Dir,
        uid: md.uid(),
        gid: md.gid(),
        mode: md.mode(),
        size: 0,
        xattrs: read_xattrs(root)?,
        hardlink: None,
    }];
    let mut i = 0;
    while i < entries.len() {
        if matches!(entries[i].kind, Kind::Dir) {
            let dir = root.join(&entries[i].rel);
            let mut children: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .collect::<std::io::Result<_>>()
                .with_context(|| format!("reading {}", dir.display()))?;
            children.sort_by_key(|e| e.file_name());
            for c in children {
                let path = c.path();
                let name = c
                    .file_name()
                    .into_string()
                    .map_err(|n| anyhow!("{}: file name {n:?} is not UTF-8", dir.display()))?;
                let md = std::fs::symlink_metadata(&path).with_context(|| format!("reading {}", path.display()))?;
                let ft = md.file_type();
                let kind = if ft.is_dir() {
                    Kind::Dir
                } else if ft.is_file() {
                    Kind::File
                } else if ft.is_symlink() {
                    let t = std::fs::read_link(&path).with_context(|| format!("reading link {}", path.display()))?;
                    Kind::Symlink(
                        t.into_os_string()
                            .into_string()
                            .map_err(|t| anyhow!("{}: link target {t:?} is not UTF-8", path.display()))?,
                    )
                } else {
                    bail!("{}: OSTree can only store directories, regular files and symlinks", path.display());
                };
                let hardlink = (ft.is_file() && md.nlink() > 1).then(|| (md.dev(), md.ino()));
                entries.push(Entry {
                    rel: entries[i].rel.join(&name),
                    parent: i,
                    name,
                    size: if ft.is_file() { md.len() } else { 0 },
                    kind,
                    uid: md.uid(),
                    gid: md.gid(),
                    mode: md.mode(),
                    xattrs: read_xattrs(&path)?,
                    hardlink,
                });
            }
        }
        i += 1;
    }
    Ok(entries)
}

fn file_info(e: &Entry) -> gio::FileInfo {
    let info = gio::FileInfo::new();
    info.set_attribute_uint32("unix::uid", e.uid);
    info.set_attribute_uint32("unix::gid", e.gid);
    info.set_attribute_uint32("unix::mode", e.mode);
    match &e.kind {
        Kind::Dir => info.set_file_type(gio::FileType::Directory),
        Kind::File => {
            info.set_file_type(gio::FileType::Regular);
            info.set_size(e.size as i64);
        }
        Kind::Symlink(t) => {
            info.set_file_type(gio::FileType::SymbolicLink);
            info.set_symlink_target(t);
        }
    }
    info
}

fn write_content(repo: &ostree::Repo, root: &Path, e: &Entry) -> Result<String> {
    let path = root.join(&e.rel);
    let info = file_info(e);
    let input: gio::InputStream = match e.kind {
        Kind::File => gio::File::for_path(&path)
            .read(gio::Cancellable::NONE)
            .with_context(|| format!("opening {}", path.display()))?
            .upcast(),
        _ => gio::MemoryInputStream::new().upcast(),
    };
    let (stream, len) = ostree::raw_file_to_content_stream(&input, &info, e.xattrs.as_ref(), gio::Cancellable::NONE)
        .with_context(|| format!("reading {}", path.display()))?;
    let csum = repo
        .write_content(None, &stream, len, gio::Cancellable::NONE)
        .with_context(|| format!("writing {} into the repo", path.display()))?;
    Ok(csum.to_hex())
}

/// Write every content object under `root` on `threads` threads; returns checksums by entry index.
fn write_contents(
    repo_path: &Path,
    root: &Path,
    entries: &[Entry],
    threads: usize,
    on_file: &(dyn Fn() + Sync),
) -> Result<Vec<Option<String>>> {
    // Work list: content entries, hard links after the first of their group skipped.
    let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
    let mut work = Vec::new();
    let mut alias = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if matches!(e.kind, Kind::Dir) {
            continue;
        }
        match e.hardlink.map(|k| *first_of.entry(k).or_insert(i)) {
            Some(first) if first != i => alias.push((i, first)),
            _ => work.push(i),
        }
    }
    // Biggest first, so one large file does not finish the run alone.
    work.sort_by_key(|&i| std::cmp::Reverse(entries[i].size));
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results = Mutex::new(vec![None; entries.len()]);
    std::thread::scope(|s| -> Result<()> {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    let repo = ostree::Repo::new_for_path(repo_path);
                    repo.open(gio::Cancellable::NONE)
                        .with_context(|| format!("opening repo {}", repo_path.display()))?;
                    let tx = repo.auto_transaction(gio::Cancellable::NONE).context("starting a writer transaction")?;
                    let mut mine = Vec::new();
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&i) = work.get(k) else { break };
                        match write_content(&repo, root, &entries[i]) {
                            Ok(c) => mine.push((i, c)),
                            Err(e) => {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                        on_file();
                    }
                    tx.commit(gio::Cancellable::NONE).context("committing a writer transaction")?;
                    let mut r = results.lock().expect("no poisoned lock");
                    for (i, c) in mine {
                        r[i] = Some(c);
                    }
                    Ok(())
                })
            })
            .collect();
        let mut first_err = None;
        for h in handles {
            if let Err(e) = h.join().map_err(|_| anyhow!("a writer thread panicked")).and_then(|r| r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    })?;
    let mut results = results.into_inner().expect("no poisoned lock");
    for (i, first) in alias {
        results[i] = results[first].clone();
        on_file();
    }
    Ok(results)
}

/// A tree written into the repo: what to commit, and every distinct content object in it with
/// its unpacked size (for the commit's size index).
pub struct WrittenTree {
    pub mtree: ostree::MutableTree,
    pub contents: Vec<(String, u64)>,
}

/// Write `root` into `repo` (which must be in a transaction, opened from `repo_path`) and return
/// the tree to commit. `on_file` is called once per entry written.
pub fn write_tree(
    repo: &ostree::Repo,
    repo_path: &Path,
    root: &Path,
    threads: usize,
    on_file: &(dyn Fn() + Sync),
) -> Result<WrittenTree> {
    let entries = walk(root)?;
    let contents = write_contents(repo_path, root, &entries, threads, on_file)?;
    let mut objects: HashMap<&str, u64> = HashMap::new();
    for (e, c) in entries.iter().zip(&contents) {
        if let Some(c) = c {
            objects.insert(c.as_str(), e.size);
        }
    }
    let mut objects: Vec<(String, u64)> = objects.into_iter().map(|(c, n)| (c.to_string(), n)).collect();
    objects.sort();
    let mut trees: Vec<Option<ostree::MutableTree>> = vec![None; entries.len()];
    let top = ostree::MutableTree::new();
    // Identical directory metadata (owner, mode, xattrs) is written once.
    type DirMetaKey = (u32, u32, u32, Option<Vec<u8>>);
    let mut dirmetas: HashMap<DirMetaKey, String> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        match e.kind {
            Kind::Dir => {
                let key = (e.uid, e.gid, e.mode, e.xattrs.as_ref().map(|x| x.data().to_vec()));
                let csum = match dirmetas.get(&key) {
                    Some(c) => c.clone(),
                    None => {
                        let meta = ostree::create_directory_metadata(&file_info(e), e.xattrs.as_ref());
                        let c = repo
                            .write_metadata(ostree::ObjectType::DirMeta, None, &meta, gio::Cancellable::NONE)
                            .with_context(|| format!("writing directory metadata of /{}", e.rel.display()))?
                            .to_hex();
                        dirmetas.insert(key, c.clone());
                        c
                    }
                };
                let t = if i == 0 {
                    top.clone()
                } else {
                    let parent = trees[e.parent].as_ref().expect("parents come first");
                    parent.ensure_dir(&e.name).with_context(|| format!("adding /{}", e.rel.display()))?
                };
                t.set_metadata_checksum(&csum);
                trees[i] = Some(t);
                on_file();
            }
            _ => {
                let parent = trees[e.parent].as_ref().expect("parents come first");
                let csum =
                    contents[i].as_deref().ok_or_else(|| anyhow!("no object written for /{}", e.rel.display()))?;
                parent.replace_file(&e.name, csum).with_context(|| format!("adding /{}", e.rel.display()))?;
            }
        }
    }
    Ok(WrittenTree { mtree: top, contents: objects })
}
