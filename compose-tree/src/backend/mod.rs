//! Package backends: where a tree's packages come from and how the root filesystem is built.
//!
//! A backend does two things: [`Resolved`] answers "which exact package versions would this
//! treefile install right now?" cheaply (it feeds the input hash, so a no-change compose stops
//! before building anything), and `build_rootfs` installs them into an empty directory.
//! Debian (mmdebstrap) is the first backend; RPM repositories slot in beside it.

pub mod apt_sources;
pub mod debian;
pub mod dpkg;

pub use atoll_utils::packages::Package;
use serde::{Deserialize, Serialize};

/// The package set a treefile resolves to against the current repository metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    pub packages: Vec<Package>,
}
