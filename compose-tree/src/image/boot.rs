//! Boot loaders: GRUB on BIOS (core image embedded in the BIOS boot partition) and on UEFI
//! (`BOOTX64.EFI` on the ESP), both built from [`bootloader::EMBEDDED_CFG`], which reads the menu
//! slot `atoll_bootloader` keeps in step with ostree's deployments. Debian's GRUB has no `blscfg`,
//! and ostree itself writes only its boot entries (`sysroot.bootloader=none`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use atoll_utils::cmd;

/// Debian's grub-pc-bin: the BIOS modules, `boot.img`, and the tool that installs them (not on PATH).
pub const GRUB_PC_DIR: &str = "/usr/lib/grub/i386-pc";
pub const GRUB_BIOS_SETUP: &str = "/usr/lib/grub/i386-pc/grub-bios-setup";

/// Prepare `/boot` (mounted at `boot`) before the first deployment: `boot -> .` so ostree's
/// `/boot/...` paths also resolve inside the boot partition.
pub fn seed(boot: &Path) -> Result<()> {
    let p = boot.join("boot");
    std::os::unix::fs::symlink(".", &p).with_context(|| format!("linking {}", p.display()))
}

/// Build a GRUB core image for `format` (`i386-pc`, `x86_64-efi`) with the embedded configuration.
fn mkimage(work: &Path, format: &str, out: &Path, platform_modules: &[&str]) -> Result<()> {
    let cfg = work.join("grub-embedded.cfg");
    std::fs::write(&cfg, bootloader::EMBEDDED_CFG).with_context(|| format!("writing {}", cfg.display()))?;
    cmd::run(
        Command::new("grub-mkimage")
            .args(["-O", format, "-p", "/grub", "-o"])
            .arg(out)
            .arg("-c")
            .arg(&cfg)
            .args(bootloader::GRUB_MODULES)
            .args(platform_modules),
    )
    .with_context(|| format!("building the GRUB {format} image"))
}

/// BIOS: GRUB's `boot.img` in the MBR and its core image in the BIOS boot partition of `disk`
/// (a loop device), installed by grub-bios-setup. That tool insists on finding the device of the
/// directory holding the images, which it cannot for a loop partition without udev; so the
/// images sit on a small scratch filesystem of their own, a whole disk in the device map.
pub fn install_bios(work: &Path, disk: &Path) -> Result<()> {
    let dir = work.join("grub-bios");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let aux = work.join("grub-bios.img");
    std::fs::File::create(&aux)
        .and_then(|f| f.set_len(8 << 20))
        .with_context(|| format!("creating {}", aux.display()))?;
    cmd::run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&aux)).context("formatting the GRUB scratch disk")?;
    let mut mounted = super::disk::Disk::attach_whole(&aux)?;
    mounted.mount_whole(&dir)?;
    let core = dir.join("core.img");
    mkimage(work, "i386-pc", &core, &["biosdisk"])?;
    let boot_img = Path::new(GRUB_PC_DIR).join("boot.img");
    std::fs::copy(&boot_img, dir.join("boot.img")).with_context(|| format!("copying {}", boot_img.display()))?;
    let map = work.join("device.map");
    std::fs::write(&map, format!("(hd0) {}\n(hd1) {}\n", disk.display(), mounted.loopdev.display()))
        .with_context(|| format!("writing {}", map.display()))?;
    cmd::run(Command::new(GRUB_BIOS_SETUP).arg("-m").arg(&map).arg("-d").arg(&dir).arg(disk))
        .with_context(|| format!("installing GRUB into the MBR and BIOS boot partition of {}", disk.display()))?;
    mounted.close()
}

/// UEFI: build `BOOTX64.EFI` and write a FAT ESP image of `size` bytes (no vfat kernel module
/// needed: mtools writes the filesystem).
pub fn build_esp(work: &Path, size: u64) -> Result<PathBuf> {
    let efi = work.join("BOOTX64.EFI");
    mkimage(work, "x86_64-efi", &efi, &["all_video", "efi_gop"])?;
    let esp = work.join("esp.img");
    let f = std::fs::File::create(&esp).with_context(|| format!("creating {}", esp.display()))?;
    f.set_len(size)?;
    let img = esp.display().to_string();
    cmd::run(Command::new("mformat").args(["-i", &img, "-F", "-v", "ESP", "::"])).context("formatting the ESP")?;
    cmd::run(Command::new("mmd").args(["-i", &img, "::/EFI", "::/EFI/BOOT"]))?;
    cmd::run(Command::new("mcopy").args(["-i", &img]).arg(&efi).arg("::/EFI/BOOT/BOOTX64.EFI"))
        .context("copying BOOTX64.EFI into the ESP")?;
    Ok(esp)
}
