//! Turning an installed root filesystem into a bootable OSTree tree.
//!
//! Order (documented in docs/treefile.md): `add-files`, `remove-files`, `units` and
//! `default-target`, `postprocess` scripts (sandboxed, no network), then the kernel and initramfs
//! ([`kernel`]), then the OSTree layout ([`layout`]).

pub mod kernel;
pub mod layout;
pub mod sandbox;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::treefile::Treefile;

/// Copy `add-files` into the tree, keeping the source's permission bits, owned by root.
pub fn add_files(root: &Path, tf: &Treefile) -> Result<()> {
    for f in &tf.add_files {
        let dest = root.join(&f.dest[1..]);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        if dest.is_symlink() || dest.is_file() {
            std::fs::remove_file(&dest).with_context(|| format!("replacing {}", dest.display()))?;
        }
        std::fs::copy(&f.src, &dest)
            .with_context(|| format!("add-files: copying {} to {}", f.src.display(), f.dest))?;
        let mode = std::fs::metadata(&f.src)?.permissions().mode() & 0o7777;
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(&dest, Some(0), Some(0)).with_context(|| format!("chown {}", dest.display()))?;
    }
    Ok(())
}

/// Delete `remove-files` paths (files or whole directories); a path that is absent is fine.
pub fn remove_files(root: &Path, tf: &Treefile) -> Result<()> {
    for rel in &tf.remove_files {
        let p = root.join(rel);
        let Ok(md) = std::fs::symlink_metadata(&p) else { continue };
        if md.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) }
            .with_context(|| format!("remove-files: removing /{rel}"))?;
    }
    Ok(())
}
