//! The boot switch: make the boot loader follow ostree's deployment list.
//!
//! ostree keeps its list in `/boot/loader.N` and flips the `/boot/loader` symlink; Linux sees that
//! flip atomically, but a boot loader reads `/boot` without replaying its journal and can find the
//! symlink's inode freed and the old directory deleted (issue 28). Atoll's boot loader never
//! reads ostree's directories. It reads one of two menu slots, `/boot/atoll/slot-{a,b}.cfg`,
//! named by the `atoll_slot` variable of `/boot/grub/grubenv`. [`sync`]:
//! 1. renders the deployments into a menu whose `ostree=` arguments name links Atoll owns
//!    (`/ostree/boot-1/OS/CSUM.SERIAL`, which ostree's cleanup of `/ostree/boot.N` never
//!    removes), and returns if the active slot already holds it;
//! 2. writes the menu into the inactive slot and syncs it;
//! 3. checkpoints `/boot` (freeze/thaw), so the new slot and every kernel it names are complete
//!    on disk as a journal-ignoring reader sees them;
//! 4. rewrites `grubenv` in place: one byte in one data block, no metadata, the switch;
//! 5. removes links no slot names any more.
//!
//! A power cut before step 4 boots the active slot, whose default entry is the deployment that
//! was booted (kept by ostree, with its kernel and its link); after it, the new slot. The next
//! `sync` (at boot, by `atoll-boot-sync.service`) finishes an interrupted switch.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use ostree::gio::prelude::FileExt;

use crate::{freeze, grubenv, menu};

/// Where the slots live, relative to the boot partition.
pub const SLOT_DIR: &str = "atoll";
/// The environment block, relative to the boot partition.
pub const GRUBENV: &str = "grub/grubenv";
/// The grubenv variable naming the active slot.
pub const SLOT_VAR: &str = "atoll_slot";
/// Atoll's deployment links, relative to the sysroot: `LINK_DIR/OS/CHECKSUM.SERIAL`. The name
/// fits the pattern ostree's system generator reads the stateroot from (`/ostree/boot.[01]/OS/`,
/// any character before the digit) to mount `/var`, without being one of ostree's `boot.N`.
pub const LINK_DIR: &str = "ostree/boot-1";

/// The two slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    A,
    B,
}

impl Slot {
    pub fn name(self) -> &'static str {
        match self {
            Slot::A => "a",
            Slot::B => "b",
        }
    }
    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "a" => Some(Slot::A),
            "b" => Some(Slot::B),
            _ => None,
        }
    }
    /// The slot's file, relative to the boot partition.
    pub fn file(self) -> String {
        format!("{SLOT_DIR}/slot-{}.cfg", self.name())
    }
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncResult {
    /// The slot the boot loader reads now.
    pub slot: Slot,
    /// Whether this call switched slots.
    pub switched: bool,
    /// The menu's titles, default first.
    pub entries: Vec<String>,
}

/// One deployment as the menu needs it.
struct Booting {
    entry: menu::Entry,
    /// The link's path relative to the sysroot, and the deployment directory it points at.
    link: String,
    target: String,
}

fn bootings(sysroot: &ostree::Sysroot) -> Result<Vec<Booting>> {
    let mut out = Vec::new();
    for d in sysroot.deployments() {
        if d.is_staged() {
            continue;
        }
        let (os, csum, serial) = (d.osname(), d.csum(), d.deployserial());
        let what = format!("deployment {os} {csum}.{serial}");
        let bc = d.bootconfig().with_context(|| format!("{what} has no boot entry"))?;
        let get = |k: &str| bc.get(k).map(|v| v.to_string());
        let link = format!("{LINK_DIR}/{os}/{csum}.{serial}");
        let mut args: Vec<String> = get("options")
            .with_context(|| format!("{what}: its boot entry has no options"))?
            .split_whitespace()
            .filter(|a| !a.starts_with("ostree="))
            .map(String::from)
            .collect();
        args.push(format!("ostree=/{link}"));
        let entry = menu::Entry {
            title: get("title").unwrap_or_else(|| what.clone()),
            linux: get("linux").with_context(|| format!("{what}: its boot entry has no kernel"))?,
            initrd: get("initrd"),
            args,
        };
        out.push(Booting { entry, link, target: sysroot.deployment_dirpath(&d).to_string() });
    }
    if out.is_empty() {
        bail!("the sysroot has no deployment to boot");
    }
    Ok(out)
}

/// `rel`'s path relative to the directory of `from` (both relative to the same root).
fn relative(from: &str, to: &str) -> String {
    let depth = from.matches('/').count();
    format!("{}{to}", "../".repeat(depth))
}

fn fsync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir).and_then(|f| f.sync_all()).with_context(|| format!("syncing {}", dir.display()))
}

/// Create `link -> target` under `root` unless it is already that, atomically (a new name renamed
/// over the old).
fn ensure_link(root: &Path, link: &str, target: &str) -> Result<bool> {
    let path = root.join(link);
    let want = relative(link, target);
    if std::fs::read_link(&path).ok().as_deref() == Some(Path::new(&want)) {
        return Ok(false);
    }
    let dir = path.parent().expect("links live in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("link")));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&want, &tmp).with_context(|| format!("linking {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(true)
}

/// Remove links under `root/LINK_DIR` that `keep` does not name.
fn prune_links(root: &Path, keep: &BTreeSet<String>) -> Result<()> {
    let base = root.join(LINK_DIR);
    let Ok(oses) = std::fs::read_dir(&base) else { return Ok(()) };
    for os in oses {
        let os = os.with_context(|| format!("listing {}", base.display()))?;
        let Ok(links) = std::fs::read_dir(os.path()) else { continue };
        for l in links {
            let l = l.with_context(|| format!("listing {}", os.path().display()))?;
            let rel = format!("{LINK_DIR}/{}/{}", os.file_name().to_string_lossy(), l.file_name().to_string_lossy());
            if !keep.contains(&rel) {
                std::fs::remove_file(l.path()).with_context(|| format!("removing {}", l.path().display()))?;
            }
        }
    }
    Ok(())
}

/// The slot `grubenv` names, or `None` if there is no environment block yet.
pub fn active_slot(boot: &Path) -> Result<Option<Slot>> {
    let path = boot.join(GRUBENV);
    if !path.exists() {
        return Ok(None);
    }
    let env = grubenv::read(&path)?;
    Ok(Some(env.get(SLOT_VAR).and_then(Slot::parse).unwrap_or(Slot::A)))
}

/// Write `text` to `path` through a new file renamed into place, synced.
fn write_synced(path: &Path, text: &str) -> Result<()> {
    let dir = path.parent().expect("slots live in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension("cfg.tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    fsync_dir(dir)
}

/// Checkpoint `boot` when it is a filesystem of its own, as on every Atoll disk. A `/boot` inside
/// the sysroot's filesystem (test sysroots in a temporary directory) is only synced: freezing it
/// would freeze whatever filesystem holds the directory, and a process killed while it is frozen
/// would leave it so.
fn checkpoint(root: &Path, boot: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).with_context(|| format!("reading {}", p.display()));
    if dev(boot)? != dev(root)? {
        freeze::checkpoint(boot)
    } else {
        freeze::sync(boot)
    }
}

/// Make the boot loader of the sysroot (loaded) follow its deployments; see the module docs.
pub fn sync(sysroot: &ostree::Sysroot) -> Result<SyncResult> {
    let root: PathBuf = sysroot.path().path().context("the sysroot has no local path")?;
    let boot = root.join("boot");
    let bootings = bootings(sysroot)?;
    let entries: Vec<menu::Entry> = bootings.iter().map(|b| b.entry.clone()).collect();
    let titles = entries.iter().map(|e| e.title.clone()).collect();
    let text = menu::render(&entries);

    let active = active_slot(&boot)?;
    if let Some(slot) = active {
        let current = std::fs::read_to_string(boot.join(slot.file())).unwrap_or_default();
        if current == text {
            return Ok(SyncResult { slot, switched: false, entries: titles });
        }
    }

    // 1. Links on the root filesystem (Linux replays its journal: a synced link is there).
    let mut dirs = BTreeSet::new();
    for b in &bootings {
        if ensure_link(&root, &b.link, &b.target)? {
            dirs.insert(root.join(&b.link).parent().expect("in a directory").to_path_buf());
        }
    }
    for d in dirs {
        fsync_dir(&d)?;
    }
    // 2. The inactive slot.
    let next = active.map_or(Slot::A, Slot::other);
    write_synced(&boot.join(next.file()), &text)?;
    let env_path = boot.join(GRUBENV);
    if active.is_some() {
        // 3. Everything on /boot in place, as GRUB reads it.
        checkpoint(&root, &boot)?;
        // 4. The switch.
        let mut env = grubenv::read(&env_path)?;
        env.set(SLOT_VAR, next.name());
        grubenv::write_in_place(&env_path, &env)?;
    } else {
        // No boot loader reads this /boot yet (an image being built): the block is created, and
        // then everything, the block too, is put in place at once.
        let dir = env_path.parent().expect("in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut env = grubenv::Env::default();
        env.set(SLOT_VAR, next.name());
        grubenv::create(&env_path, &env)?;
        fsync_dir(dir)?;
        checkpoint(&root, &boot)?;
    }
    // 5. Links only the old slot named.
    prune_links(&root, &bootings.iter().map(|b| b.link.clone()).collect())?;
    tracing::info!("boot loader now reads slot {} ({} entries)", next.name(), bootings.len());
    Ok(SyncResult { slot: next, switched: true, entries: titles })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_relative_to_their_directory() {
        assert_eq!(
            relative("ostree/boot-1/debian/abc.0", "ostree/deploy/debian/deploy/abc.0"),
            "../../../ostree/deploy/debian/deploy/abc.0"
        );
    }

    /// ostree 2022.7's system generator takes the stateroot whose /var it mounts from the
    /// `ostree=` argument with `^/ostree/boot.[01]/([^/]+)/`; Atoll's links must match it.
    #[test]
    fn link_paths_give_the_generator_the_stateroot() {
        let arg = format!("/{LINK_DIR}/atoll/abc.0");
        let mut rest = arg.strip_prefix("/ostree/boot").unwrap().chars();
        rest.next().unwrap();
        assert!(matches!(rest.next(), Some('0' | '1')), "{arg}");
        assert_eq!(rest.as_str().split('/').nth(1), Some("atoll"), "{arg}");
        assert!(!arg.starts_with("/ostree/boot.0/") && !arg.starts_with("/ostree/boot.1/"), "not ostree's own");
    }

    #[test]
    fn slots() {
        assert_eq!(Slot::A.other(), Slot::B);
        assert_eq!(Slot::parse("b"), Some(Slot::B));
        assert_eq!(Slot::B.file(), "atoll/slot-b.cfg");
    }
}
