//! The disk: a sparse file partitioned as a hybrid GPT (BIOS boot, EFI system, `/boot`, root),
//! attached to a loop device, formatted and mounted. [`Disk`] undoes every mount and the loop
//! device when dropped, whatever happened in between.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use atoll_utils::cmd;

use super::recipe::RootFs;

/// Partition numbers, as the anchors lay them out.
pub const PART_BIOS: u32 = 1;
pub const PART_ESP: u32 = 2;
pub const PART_BOOT: u32 = 3;
pub const PART_ROOT: u32 = 4;
/// Sizes in MiB of the fixed partitions.
pub const ESP_MIB: u64 = 127;
pub const BOOT_MIB: u64 = 384;

/// Write the partition table onto `image` (a file of the final size).
pub fn partition(image: &Path) -> Result<()> {
    cmd::run(
        Command::new("sgdisk")
            .arg("--zap-all")
            .arg(format!("--new={PART_BIOS}:2048:+1M"))
            .arg(format!("--typecode={PART_BIOS}:ef02"))
            .arg(format!("--change-name={PART_BIOS}:BIOS-BOOT"))
            .arg(format!("--new={PART_ESP}:0:+{ESP_MIB}M"))
            .arg(format!("--typecode={PART_ESP}:ef00"))
            .arg(format!("--change-name={PART_ESP}:EFI-SYSTEM"))
            .arg(format!("--new={PART_BOOT}:0:+{BOOT_MIB}M"))
            .arg(format!("--typecode={PART_BOOT}:8300"))
            .arg(format!("--change-name={PART_BOOT}:boot"))
            .arg(format!("--new={PART_ROOT}:0:0"))
            .arg(format!("--typecode={PART_ROOT}:8304"))
            .arg(format!("--change-name={PART_ROOT}:root"))
            .arg(image),
    )
    .with_context(|| format!("partitioning {}", image.display()))
}

/// Byte offset and length of partition `n` of `image`, from the partition table.
pub fn partition_extent(image: &Path, n: u32) -> Result<(u64, u64)> {
    let out = cmd::run_stdout(Command::new("sgdisk").arg(format!("--info={n}")).arg(image))?;
    let field = |name: &str| -> Result<u64> {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("sgdisk --info={n}: no `{name}`"))
    };
    let first = field("First sector: ")?;
    let last = field("Last sector: ")?;
    Ok((first * 512, (last - first + 1) * 512))
}

/// A loop device with partitions, and the mounts made on it, undone on drop (innermost first).
pub struct Disk {
    pub loopdev: PathBuf,
    mounts: Vec<PathBuf>,
    /// Partition nodes made by hand with mknod; they outlive the loop device, so they go too.
    nodes: Vec<PathBuf>,
}

impl Disk {
    /// Attach `image` to a loop device and make sure its partition nodes exist (there is no udev
    /// here to create them).
    pub fn attach(image: &Path) -> Result<Disk> {
        let dev = cmd::run_stdout(Command::new("losetup").args(["--find", "--show", "--partscan"]).arg(image))
            .with_context(|| format!("attaching {} to a loop device", image.display()))?;
        let mut disk = Disk { loopdev: PathBuf::from(dev.trim()), mounts: Vec::new(), nodes: Vec::new() };
        let _ = cmd::run(Command::new("partx").arg("--add").arg(&disk.loopdev));
        let name = disk.loopdev.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        for n in [PART_BIOS, PART_ESP, PART_BOOT, PART_ROOT] {
            let node = disk.part(n);
            if node.exists() {
                continue;
            }
            let sys = format!("/sys/block/{name}/{name}p{n}/dev");
            let majmin = std::fs::read_to_string(&sys).with_context(|| format!("reading {sys}"))?;
            let (maj, min) = majmin.trim().split_once(':').with_context(|| format!("parsing {sys}"))?;
            cmd::run(Command::new("mknod").arg(&node).args(["b", maj, min]))?;
            disk.nodes.push(node);
        }
        Ok(disk)
    }

    /// Attach `image` (a filesystem without a partition table) to a loop device.
    pub fn attach_whole(image: &Path) -> Result<Disk> {
        let dev = cmd::run_stdout(Command::new("losetup").args(["--find", "--show"]).arg(image))
            .with_context(|| format!("attaching {} to a loop device", image.display()))?;
        Ok(Disk { loopdev: PathBuf::from(dev.trim()), mounts: Vec::new(), nodes: Vec::new() })
    }

    /// Mount the whole device (see [`Disk::attach_whole`]) on `at`; undone on drop.
    pub fn mount_whole(&mut self, at: &Path) -> Result<()> {
        std::fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
        cmd::run(Command::new("mount").arg(&self.loopdev).arg(at))
            .with_context(|| format!("mounting {} on {}", self.loopdev.display(), at.display()))?;
        self.mounts.push(at.to_path_buf());
        Ok(())
    }

    /// The device node of partition `n`.
    pub fn part(&self, n: u32) -> PathBuf {
        PathBuf::from(format!("{}p{n}", self.loopdev.display()))
    }

    /// Mount partition `n` on `at` (created if needed); undone on drop.
    pub fn mount(&mut self, n: u32, at: &Path) -> Result<()> {
        std::fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
        cmd::run(Command::new("mount").arg(self.part(n)).arg(at))
            .with_context(|| format!("mounting partition {n} on {}", at.display()))?;
        self.mounts.push(at.to_path_buf());
        Ok(())
    }

    /// Unmount everything and detach, reporting failures (drop does the same, silently).
    pub fn close(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        let mut first_err = None;
        while let Some(m) = self.mounts.pop() {
            if let Err(e) = cmd::run(Command::new("umount").arg(&m)) {
                // Busy (e.g. a lingering process): detach lazily so the loop device can go.
                let _ = cmd::run(Command::new("umount").arg("--lazy").arg(&m));
                first_err.get_or_insert(e);
            }
        }
        for node in self.nodes.drain(..) {
            let _ = std::fs::remove_file(&node);
        }
        if !self.loopdev.as_os_str().is_empty() {
            if let Err(e) = cmd::run(Command::new("losetup").arg("--detach").arg(&self.loopdev)) {
                first_err.get_or_insert(e);
            }
            self.loopdev = PathBuf::new();
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            tracing::warn!("cleaning up {}: {e:#}", self.loopdev.display());
        }
    }
}

/// The program that makes a filesystem of `fs`.
pub fn mkfs_program(fs: RootFs) -> &'static str {
    match fs {
        RootFs::Ext4 => "mkfs.ext4",
        RootFs::Xfs => "mkfs.xfs",
    }
}

/// Make a filesystem of `fs` labelled `label` on `dev`.
pub fn mkfs(fs: RootFs, dev: &Path, label: &str) -> Result<()> {
    let mut c = Command::new(mkfs_program(fs));
    match fs {
        RootFs::Ext4 => c.args(["-q", "-F", "-L", label]),
        RootFs::Xfs => c.args(["-q", "-f", "-L", label]),
    };
    cmd::run(c.arg(dev)).with_context(|| format!("making {} on {}", fs.name(), dev.display()))
}

/// The size in bytes of the image file, sanity-checked against what the recipe asked for.
pub fn check_size(image: &Path, want: u64) -> Result<()> {
    let got = std::fs::metadata(image).with_context(|| format!("reading {}", image.display()))?.len();
    if got != want {
        bail!("{} is {got} bytes, expected {want}", image.display());
    }
    Ok(())
}
