//! `compose-tree image`: an OSTree commit → a bootable disk image (raw or qcow2) that boots on
//! both BIOS and UEFI, the way coreos-assembler and bootc-image-builder do.
//!
//! The image is built in a scratch directory beside the output and renamed into place only when
//! complete; every loop device and mount is undone by [`disk::Disk`] on any exit, so a failed
//! build leaves neither an output file nor a mount behind.

pub mod boot;
pub mod deploy;
pub mod disk;
pub mod recipe;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use atoll_utils::{cmd, progress::Phases};
use serde::Serialize;

use crate::commit;
use recipe::Format;

/// Options of one image build.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    pub repo: PathBuf,
    pub ref_name: String,
    pub recipe: PathBuf,
    pub format: Format,
    pub output: PathBuf,
    pub quiet: bool,
}

/// What `--json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct ImageResult {
    pub output: PathBuf,
    pub format: Format,
    pub commit: String,
    pub version: Option<String>,
    /// The disk size the guest sees.
    pub virtual_size: u64,
    /// Bytes the image file takes on disk.
    pub file_size: u64,
    pub timings: BTreeMap<String, f64>,
}

/// The kernel arguments every image gets before the recipe's own.
const BASE_KARGS: &[&str] = &["root=LABEL=root", "rw"];

/// The programs an image build of `recipe` in `format` runs, checked before anything is written.
pub fn programs(recipe: &recipe::Recipe, format: Format) -> Vec<&'static str> {
    let mut p = vec!["sgdisk", "losetup", "partx", "mknod", "mount", "umount", "dd"];
    p.extend([disk::mkfs_program(recipe::RootFs::Ext4), disk::mkfs_program(recipe.root_fs)]);
    p.extend(["grub-mkimage", "mformat", "mmd", "mcopy"]);
    if format == Format::Qcow2 {
        p.push("qemu-img");
    }
    p.dedup();
    p
}

/// Build the image.
pub fn build(opts: &ImageOptions) -> Result<ImageResult> {
    let recipe = recipe::load(&opts.recipe)?;
    if !recipe.formats.contains(&opts.format) {
        bail!("{}: formats does not list {:?}", recipe.path.display(), opts.format);
    }
    cmd::require("building an image", &programs(&recipe, opts.format))?;
    let repo = commit::open(&opts.repo)?;
    let info = commit::commit_info(&repo, &opts.ref_name)?;
    let out_dir = match opts.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".compose-tree-image-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("creating scratch space in {}", out_dir.display()))?;
    let mut phases = Phases::new(opts.quiet);

    let ph = phases.start("partition");
    let raw = work.path().join("disk.raw");
    std::fs::File::create(&raw)
        .and_then(|f| f.set_len(recipe.size_bytes))
        .with_context(|| format!("creating {}", raw.display()))?;
    disk::partition(&raw)?;
    let (esp_off, esp_len) = disk::partition_extent(&raw, disk::PART_ESP)?;
    phases.done(ph);

    let ph = phases.start("filesystems");
    // Declared before the disk so the disk (and its mounts) goes first on drop.
    // A short mount path, whatever the output path: importing the remote's key runs GnuPG with a
    // home under the sysroot repo's tmp dir, and Unix socket paths are limited to 107 bytes.
    let mnt_dir = tempfile::Builder::new().prefix("atoll-image-").tempdir().context("creating a mount point")?;
    let mnt = mnt_dir.path().join("mnt");
    let mut d = disk::Disk::attach(&raw)?;
    disk::mkfs(recipe::RootFs::Ext4, &d.part(disk::PART_BOOT), "boot")?;
    disk::mkfs(recipe.root_fs, &d.part(disk::PART_ROOT), "root")?;
    d.mount(disk::PART_ROOT, &mnt)?;
    d.mount(disk::PART_BOOT, &mnt.join("boot"))?;
    boot::seed(&mnt.join("boot"))?;
    phases.done(ph);

    let ph = phases.start("deploy");
    ph.message(format!("{} ({})", opts.ref_name, info.checksum));
    let mut kargs: Vec<String> = BASE_KARGS.iter().map(|s| s.to_string()).collect();
    kargs.extend(recipe.kernel_args.iter().cloned());
    let deployed = deploy::deploy(&mnt, &opts.repo, &opts.ref_name, &info.checksum, &recipe, &kargs)?;
    let fstab = deployed.deploy_dir.join("etc/fstab");
    std::fs::write(
        &fstab,
        format!("LABEL=root / {} defaults 0 1\nLABEL=boot /boot ext4 defaults 0 2\n", recipe.root_fs.name()),
    )
    .with_context(|| format!("writing {}", fstab.display()))?;
    phases.done(ph);

    let ph = phases.start("bootloader");
    boot::install_bios(work.path(), &d.loopdev)?;
    let esp = boot::build_esp(work.path(), esp_len)?;
    let esp_dev = d.part(disk::PART_ESP);
    cmd::run(Command::new("dd").arg(format!("if={}", esp.display())).arg(format!("of={}", esp_dev.display())).args([
        "bs=1M",
        "conv=notrunc,fsync",
        "status=none",
    ]))
    .with_context(|| format!("writing the ESP at offset {esp_off}"))?;
    d.close()?;
    phases.done(ph);

    let ph = phases.start("write");
    let staged = match opts.format {
        Format::Raw => raw.clone(),
        Format::Qcow2 => {
            let q = work.path().join("disk.qcow2");
            cmd::run(Command::new("qemu-img").args(["convert", "-f", "raw", "-O", "qcow2"]).arg(&raw).arg(&q))
                .context("converting to qcow2")?;
            q
        }
    };
    std::fs::rename(&staged, &opts.output).with_context(|| format!("moving the image to {}", opts.output.display()))?;
    phases.done(ph);

    let md = std::fs::metadata(&opts.output)?;
    use std::os::unix::fs::MetadataExt;
    Ok(ImageResult {
        output: opts.output.clone(),
        format: opts.format,
        commit: info.checksum,
        version: info.version,
        virtual_size: recipe.size_bytes,
        file_size: md.blocks() * 512,
        timings: crate::compose::timings(&phases),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every program a compose or an image build needs is in the program → package table, so
    /// setup installs it and a missing one is named with its package before any work starts.
    #[test]
    fn preflight_programs_have_packages() {
        let recipe = recipe::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../image-recipes/atoll-host/image.toml"),
        )
        .unwrap();
        let qcow2 = programs(&recipe, Format::Qcow2);
        assert!(qcow2.contains(&"qemu-img") && !programs(&recipe, Format::Raw).contains(&"qemu-img"));
        for p in qcow2.iter().chain(crate::backend::debian::PROGRAMS) {
            assert!(cmd::package_of(p).is_some(), "{p} is not in utils/src/programs.txt");
        }
    }
}
