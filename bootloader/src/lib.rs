//! How an Atoll host chooses what to boot, made atomic as the boot loader reads the disk.
//!
//! GRUB boots Atoll on BIOS and UEFI alike, with the same configuration embedded in its core
//! image ([`EMBEDDED_CFG`]): it finds the partition labelled `boot`, reads the `atoll_slot`
//! variable from `/grub/grubenv` ([`grubenv`]) and shows the menu in `/atoll/slot-a.cfg` or
//! `/atoll/slot-b.cfg` ([`menu`]). Nothing it reads is ever renamed or deleted while it is the
//! one read: [`sync::sync`] writes the other slot, checkpoints `/boot` ([`freeze`]) and then flips
//! the variable in place. ostree's own `/boot/loader` symlink swap, which a boot loader cannot
//! see atomically because it does not replay the ext4 journal, is never on the boot path.
//!
//! Who calls [`sync::sync`]: `compose-tree image` once the first deployment is written;
//! `host boot-sync`, which runs after `ostree admin finalize-staged` at shutdown (a drop-in of
//! `ostree-finalize-staged.service`) and at every boot (`atoll-boot-sync.service`, finishing a
//! switch a power cut interrupted); and every `host` command that rewrites the deployment list.
//! The environment block is also where boot counting will keep its counter.

pub mod freeze;
pub mod grubenv;
pub mod menu;
pub mod sync;

pub use sync::{sync, Slot, SyncResult};

/// The configuration built into GRUB's core image, for BIOS and UEFI. It never changes after the
/// image is built; the menus it reads do.
pub const EMBEDDED_CFG: &str = "\
search --no-floppy --label boot --set root
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set atoll_slot=a
load_env --file /grub/grubenv atoll_slot
if [ \"$atoll_slot\" != b ]; then set atoll_slot=a; fi
if [ -f /atoll/slot-$atoll_slot.cfg ]; then
  configfile /atoll/slot-$atoll_slot.cfg
fi
echo \"Atoll: no boot menu /atoll/slot-$atoll_slot.cfg on the partition labelled boot\"
";

/// GRUB modules every core image holds (the platform adds its disk and video drivers).
pub const GRUB_MODULES: &[&str] = &[
    "part_gpt",
    "part_msdos",
    "ext2",
    "xfs",
    "fat",
    "search",
    "search_label",
    "normal",
    "linux",
    "configfile",
    "loadenv",
    "echo",
    "test",
    "boot",
    "serial",
    "terminal",
];

#[cfg(test)]
mod tests {
    /// GRUB's own parser accepts the embedded configuration, and it names the files `sync` writes.
    #[test]
    fn embedded_cfg_is_valid_grub_and_matches_sync() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("embedded.cfg");
        std::fs::write(&p, super::EMBEDDED_CFG).unwrap();
        atoll_utils::cmd::run(std::process::Command::new("grub-script-check").arg(&p)).unwrap();
        assert!(super::EMBEDDED_CFG.contains(&format!("--file /{}", super::sync::GRUBENV)));
        assert!(super::EMBEDDED_CFG.contains(&format!("/{}/slot-$atoll_slot.cfg", super::sync::SLOT_DIR)));
        assert!(super::EMBEDDED_CFG.contains(super::sync::SLOT_VAR));
    }
}
