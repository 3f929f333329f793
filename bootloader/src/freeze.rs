//! Pushing everything a filesystem holds in its journal to its final place on disk, so that a
//! reader that does not replay the journal (a boot loader) sees it: a freeze/thaw cycle
//! (`FIFREEZE`/`FITHAW`), as libostree does before its own boot loader swap.

use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;

nix::ioctl_readwrite!(fifreeze, b'X', 119, nix::libc::c_int);
nix::ioctl_readwrite!(fithaw, b'X', 120, nix::libc::c_int);

/// Freeze and at once thaw the filesystem holding `dir`. A freeze writes back all dirty data,
/// commits the journal and checkpoints it, leaving the on-disk metadata complete without replay.
/// Filesystems that cannot freeze get a `syncfs` instead (and a warning).
pub fn checkpoint(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let fd = f.as_raw_fd();
    let mut arg: nix::libc::c_int = 0;
    // SAFETY: `fd` is an open descriptor for the call's duration; the argument is an ignored int.
    match unsafe { fifreeze(fd, &mut arg) } {
        Ok(_) => {
            // SAFETY: as above.
            unsafe { fithaw(fd, &mut arg) }.with_context(|| format!("thawing the filesystem of {}", dir.display()))?;
            Ok(())
        }
        Err(e @ (Errno::EOPNOTSUPP | Errno::ENOTTY | Errno::EINVAL)) => {
            tracing::warn!("{} cannot be frozen ({e}); syncing it instead", dir.display());
            syncfs(&f, dir)
        }
        Err(e) => Err(e).with_context(|| format!("freezing the filesystem of {}", dir.display())),
    }
}

/// Write back everything the filesystem holding `dir` has cached (`syncfs`); its journal may
/// still hold metadata that is not in place yet.
pub fn sync(dir: &Path) -> Result<()> {
    let f = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    syncfs(&f, dir)
}

fn syncfs(f: &std::fs::File, dir: &Path) -> Result<()> {
    nix::unistd::syncfs(f.as_raw_fd()).with_context(|| format!("syncing the filesystem of {}", dir.display()))
}
