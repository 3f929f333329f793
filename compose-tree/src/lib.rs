//! # compose-tree
//!
//! Turns a TOML treefile into a versioned, bootable OSTree commit, the way `rpm-ostree compose
//! tree` does, for Debian package sets (RPM repositories come next, as another backend).
//!
//! ## Flow of data
//!
//! 1. [`treefile`] reads the treefile and its `include`s into one validated [`treefile::Treefile`].
//!    Every static mistake (unknown key, bad destination, missing include) stops here, before
//!    anything touches the disk.
//! 2. [`backend`] resolves the package set against fresh repository metadata
//!    ([`backend::debian::Apt::resolve`], cached per metadata snapshot) and [`inputhash`] hashes
//!    treefile + added files + resolved versions. If the ref's commit carries the same hash, the
//!    compose ends here: "no changes since VERSION".
//! 3. The backend builds a root filesystem in scratch space (`mmdebstrap`, with a shared `.deb`
//!    cache), [`postprocess`] applies the treefile (add/remove files, units, sandboxed scripts),
//!    builds the initramfs with the tree's own dracut in a bubblewrap sandbox
//!    ([`postprocess::kernel`]) and rewrites the tree into the OSTree layout
//!    ([`postprocess::layout`]: `/usr/etc`, `/var` as tmpfiles.d, root symlinks).
//!    Packages built on the build host (`debian.local-packages`, e.g. Atoll's own `atoll-host`)
//!    join as a flat apt repository in the compose's private apt state, named in `packages` like
//!    any other; their content is part of the input hash.
//! 4. [`commit`] writes the tree through libostree in one transaction, with a sparse size
//!    index (`atoll.sizes`: the objects its parent lacks) so clients can state download sizes
//!    before pulling; the ref moves only when the commit (and its signature) is complete, then
//!    the summary is regenerated.
//!
//! [`image`] turns a commit into a bootable raw/qcow2 disk (hybrid GPT; GRUB on BIOS and UEFI
//! reading the menu slots of `atoll_bootloader`), deploying it with libostree's Sysroot API.
//! [`db`] answers package questions about commits from the package list stored in each commit.
//! [`cli`] holds the option structs and dispatch; [`compose`] orchestrates a run.

pub mod backend;
pub mod cli;
pub mod commit;
pub mod compose;
pub mod db;
pub mod image;
pub mod inputhash;
pub mod postprocess;
pub mod treefile;
