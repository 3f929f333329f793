//! Making a new deployment of a commit that is already in the repo: pre-flight space checks,
//! then staged (finalized at shutdown by ostree-finalize-staged.service) on a booted host, or
//! written directly on a sysroot that is not booted. `/etc` gets libostree's 3-way merge from the
//! merge deployment; `/var` is shared and untouched.

use anyhow::{bail, Context, Result};
use ostree::gio;
use ostree::gio::prelude::*;

use crate::sysroot::Sysroot;

/// How the new deployment was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Written {
    /// Staged: becomes the default when the host shuts down cleanly.
    Staged,
    /// Written as the new default now (sysroot not booted).
    Deployed,
}

/// Bytes the kernel and initramfs of `checksum` need in `/boot`.
fn boot_bytes(repo: &ostree::Repo, checksum: &str) -> Result<u64> {
    let (root, _) =
        repo.read_commit(checksum, gio::Cancellable::NONE).with_context(|| format!("reading commit {checksum}"))?;
    let modules = root.resolve_relative_path("usr/lib/modules");
    let mut total = 0u64;
    let iter = modules
        .enumerate_children(
            "standard::name,standard::type",
            gio::FileQueryInfoFlags::NOFOLLOW_SYMLINKS,
            gio::Cancellable::NONE,
        )
        .with_context(|| format!("listing /usr/lib/modules of {checksum}"))?;
    while let Some(info) = iter.next_file(gio::Cancellable::NONE)? {
        let dir = modules.child(info.name());
        for f in ["vmlinuz", "initramfs.img"] {
            if let Ok(i) =
                dir.child(f).query_info("standard::size", gio::FileQueryInfoFlags::NONE, gio::Cancellable::NONE)
            {
                total += i.size() as u64;
            }
        }
    }
    Ok(total)
}

/// Bytes available to unprivileged writers on the filesystem holding `path`.
fn free_bytes(path: &std::path::Path) -> Result<u64> {
    let st = nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    Ok(st.blocks_available() as u64 * st.fragment_size() as u64)
}

/// Refuse, stating both numbers, when the filesystem holding `path` lacks room for `need`
/// bytes plus a margin (10% and 1 MiB, for metadata and filesystem overhead). The error reads
/// `not enough space in PATH: WHAT needs N DETAIL, M is free`.
pub fn require_room(path: &std::path::Path, need: u64, what: &str, detail: &str) -> Result<()> {
    let free = free_bytes(path)?;
    let want = need + need / 10 + (1 << 20);
    if free < want {
        bail!(
            "not enough space in {}: {what} needs {}{detail}, {} is free",
            path.display(),
            crate::pull::human(want),
            crate::pull::human(free)
        );
    }
    Ok(())
}

/// Refuse before changing anything when `/boot` lacks room for the new kernel + initramfs
/// (ostree copies them unless an identical pair is already there).
pub fn preflight(s: &Sysroot, checksum: &str) -> Result<()> {
    let need = boot_bytes(&s.repo(), checksum)?;
    require_room(&s.path.join("boot"), need, "the new deployment", " for its kernel and initramfs")
}

/// Deploy `checksum` with `origin` on top of `merge`. `kargs`: `None` keeps the merge
/// deployment's kernel arguments.
pub fn deploy(
    s: &Sysroot,
    os: &str,
    checksum: &str,
    origin: &glib::KeyFile,
    merge: &ostree::Deployment,
    kargs: Option<&[&str]>,
) -> Result<Written> {
    preflight(s, checksum)?;
    let opts = ostree::SysrootDeployTreeOpts { override_kernel_argv: kargs, ..Default::default() };
    let c = gio::Cancellable::NONE;
    if s.sysroot.booted_deployment().is_some() {
        s.sysroot
            .stage_tree_with_options(Some(os), checksum, Some(origin), Some(merge), &opts, c)
            .with_context(|| format!("staging {checksum}"))?;
        Ok(Written::Staged)
    } else {
        let new = s
            .sysroot
            .deploy_tree_with_options(Some(os), checksum, Some(origin), Some(merge), Some(&opts), c)
            .with_context(|| format!("deploying {checksum}"))?;
        let before = identities(s);
        s.sysroot
            .simple_write_deployment(
                Some(os),
                &new,
                Some(merge),
                ostree::SysrootSimpleWriteDeploymentFlags::NO_CLEAN,
                c,
            )
            .context("writing the new deployment list")?;
        cleanup_after_write(s, &before)?;
        s.boot_sync()?;
        Ok(Written::Deployed)
    }
}

/// Which deployments exist: (stateroot, commit, serial).
fn identities(s: &Sysroot) -> Vec<(String, String, i32)> {
    s.sysroot.deployments().iter().map(|d| (d.osname().to_string(), d.csum().to_string(), d.deployserial())).collect()
}

/// After a new deployment list is written: remove the old boot loader configuration and any
/// deployment directories left behind, and prune the repo only when a deployment was dropped.
/// When every deployment is kept no commit lost its last user, so a prune (a walk over every
/// object of every deployment) would free nothing; it happens with the next upgrade that does
/// drop one, or `host cleanup`.
fn cleanup_after_write(s: &Sysroot, before: &[(String, String, i32)]) -> Result<()> {
    let c = gio::Cancellable::NONE;
    s.sysroot.load_if_changed(c).context("reloading the sysroot")?;
    let after = identities(s);
    if before.iter().any(|d| !after.contains(d)) {
        s.sysroot.cleanup(c).context("cleaning up dropped deployments and pruning the repo")
    } else {
        s.sysroot.prepare_cleanup(c).context("cleaning up old boot loader configuration")
    }
}
