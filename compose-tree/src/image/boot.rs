//! Boot loaders that follow ostree's deployment list: ostree's syslinux backend rewrites
//! `/boot/loader.N/syslinux.cfg` and swaps the `/boot/loader` symlink atomically; extlinux reads
//! it on BIOS, GRUB's `syslinux_configfile` reads it on UEFI. Debian's GRUB has no `blscfg`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use atoll_utils::cmd;

/// Where Debian's syslinux ships its BIOS modules and GPT MBR.
const SYSLINUX_MODULES: &str = "/usr/lib/syslinux/modules/bios";
const GPTMBR: &str = "/usr/lib/syslinux/mbr/gptmbr.bin";
/// Modules the menu UI needs at boot.
const MODULES: &[&str] = &["menu.c32", "libutil.c32", "libcom32.c32"];

/// Prepare `/boot` (mounted at `boot`) before the first deployment: a seed `loader.0` config that
/// ostree's syslinux backend recognises and rewrites, the `syslinux.cfg` symlink into it, and
/// `boot -> .` so ostree's `/boot/...` paths also resolve inside the boot partition.
pub fn seed(boot: &Path) -> Result<()> {
    let w = |p: &str, text: &str| -> Result<()> {
        let path = boot.join(p);
        std::fs::create_dir_all(path.parent().expect("has parent"))?;
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    w("loader.0/syslinux.cfg", "UI menu.c32\nPROMPT 0\nTIMEOUT 10\nSERIAL 0 115200\n")?;
    let link = |target: &str, at: &str| -> Result<()> {
        let p = boot.join(at);
        std::fs::create_dir_all(p.parent().expect("has parent"))?;
        std::os::unix::fs::symlink(target, &p).with_context(|| format!("linking {}", p.display()))
    };
    link("loader.0", "loader")?;
    link("../loader/syslinux.cfg", "syslinux/syslinux.cfg")?;
    link(".", "boot")?;
    Ok(())
}

/// BIOS: extlinux in `/boot/syslinux` plus the GPT MBR on `disk`.
pub fn install_bios(boot: &Path, disk: &Path) -> Result<()> {
    let dir = boot.join("syslinux");
    cmd::run(Command::new("extlinux").arg("--install").arg(&dir)).context("installing extlinux")?;
    for m in MODULES {
        let src = Path::new(SYSLINUX_MODULES).join(m);
        std::fs::copy(&src, dir.join(m)).with_context(|| format!("copying {}", src.display()))?;
    }
    let mbr = std::fs::read(GPTMBR).with_context(|| format!("reading {GPTMBR}"))?;
    use std::io::{Seek, Write};
    let mut f =
        std::fs::OpenOptions::new().write(true).open(disk).with_context(|| format!("opening {}", disk.display()))?;
    f.seek(std::io::SeekFrom::Start(0))?;
    f.write_all(&mbr[..mbr.len().min(440)]).with_context(|| format!("writing the MBR of {}", disk.display()))?;
    f.sync_all()?;
    Ok(())
}

/// The GRUB configuration embedded in the EFI binary: find the boot partition by label and read
/// ostree's syslinux config from it.
pub const GRUB_EMBEDDED: &str = "search --no-floppy --label boot --set root\nserial --unit=0 --speed=115200\nterminal_input console serial\nterminal_output console serial\nset timeout=1\nsyslinux_configfile -r / /loader/syslinux.cfg\n";

/// UEFI: build `BOOTX64.EFI` with grub-mkimage and write a FAT ESP image of `size` bytes (no
/// vfat kernel module needed: mtools writes the filesystem).
pub fn build_esp(work: &Path, size: u64) -> Result<std::path::PathBuf> {
    let cfg = work.join("grub-embedded.cfg");
    std::fs::write(&cfg, GRUB_EMBEDDED).with_context(|| format!("writing {}", cfg.display()))?;
    let efi = work.join("BOOTX64.EFI");
    cmd::run(
        Command::new("grub-mkimage")
            .args(["-O", "x86_64-efi", "-p", "/grub", "-o"])
            .arg(&efi)
            .arg("-c")
            .arg(&cfg)
            .args([
                "part_gpt",
                "part_msdos",
                "ext2",
                "xfs",
                "fat",
                "search",
                "search_label",
                "normal",
                "syslinuxcfg",
                "linux",
                "configfile",
                "echo",
                "test",
                "all_video",
                "efi_gop",
                "boot",
                "serial",
                "terminal",
            ]),
    )
    .context("building the GRUB EFI image")?;
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
