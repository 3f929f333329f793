//! The kernel and initramfs: found in the tree, initramfs built by the tree's own dracut (generic,
//! with ostree's module), both placed in `/usr/lib/modules/$kver/` where ostree looks for them.

use std::path::Path;

use anyhow::{bail, Context, Result};
use atoll_utils::cmd;

use super::sandbox;

/// The one kernel version installed in the tree.
pub fn find_kver(root: &Path) -> Result<String> {
    let modules = root.join("usr/lib/modules");
    let mut kvers: Vec<String> = std::fs::read_dir(&modules)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|k| root.join("boot").join(format!("vmlinuz-{k}")).exists() || modules.join(k).join("vmlinuz").exists())
        .collect();
    kvers.sort();
    match kvers.as_slice() {
        [] => bail!("no kernel in the tree: add a kernel package (e.g. linux-image-amd64) to packages"),
        [k] => Ok(k.clone()),
        many => bail!("more than one kernel in the tree ({}); install exactly one", many.join(", ")),
    }
}

/// Build the initramfs and move kernel + initramfs into `/usr/lib/modules/$kver`. Empties `/boot`.
pub fn install(root: &Path, kver: &str, on_line: impl FnMut(&str)) -> Result<()> {
    if !root.join("usr/bin/dracut").exists() {
        bail!("the tree has no dracut: add dracut-core (and ostree-boot for its dracut module) to packages");
    }
    if !root.join("usr/lib/dracut/modules.d/98ostree").exists() {
        bail!("the tree has no ostree dracut module: add ostree-boot to packages");
    }
    let moddir = root.join("usr/lib/modules").join(kver);
    let boot_kernel = root.join("boot").join(format!("vmlinuz-{kver}"));
    if boot_kernel.exists() {
        std::fs::rename(&boot_kernel, moddir.join("vmlinuz"))
            .with_context(|| format!("moving {} into {}", boot_kernel.display(), moddir.display()))?;
    }
    let initramfs = format!("/usr/lib/modules/{kver}/initramfs.img");
    let mut c = sandbox::command(
        root,
        &[
            "dracut",
            "--no-hostonly",
            "--add",
            "ostree",
            "--reproducible",
            "--force",
            "--no-hostonly-cmdline",
            "--kver",
            kver,
            &initramfs,
        ],
    );
    cmd::run_streaming(&mut c, on_line).with_context(|| format!("building the initramfs for kernel {kver}"))?;
    std::fs::set_permissions(root.join(&initramfs[1..]), std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .context("setting initramfs mode")?;
    // /boot belongs to the deployment's boot loader, not the tree.
    let boot = root.join("boot");
    for e in std::fs::read_dir(&boot).with_context(|| format!("reading {}", boot.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let keep = ["config-", "System.map-"].iter().find_map(|pre| name.strip_prefix(pre).map(|_| *pre));
        if let Some(pre) = keep {
            // ostree keeps config & System.map beside the kernel when they are there.
            let dest = moddir.join(pre.trim_end_matches('-'));
            std::fs::rename(&p, &dest).with_context(|| format!("moving {}", p.display()))?;
        } else if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing {}", p.display()))?;
        } else {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    for link in ["vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"] {
        let p = root.join(link);
        if p.is_symlink() {
            std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    Ok(())
}
