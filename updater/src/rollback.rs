//! `host rollback`: the previous deployment becomes the default, as rpm-ostree does it: a
//! reorder of the deployment list written back with libostree's write-deployments (which swaps
//! the boot loader configuration atomically). A staged deployment is discarded.

use anyhow::{bail, Context, Result};
use ostree::gio;

use crate::sysroot::{self, Sysroot};

/// What rollback did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RollbackResult {
    pub new_default: String,
    pub new_default_version: Option<String>,
    pub discarded_staged: bool,
}

pub fn run(s: &Sysroot) -> Result<RollbackResult> {
    let all = s.sysroot.deployments();
    let discarded_staged = all.iter().any(|d| d.is_staged());
    let deps: Vec<ostree::Deployment> = all.into_iter().filter(|d| !d.is_staged()).collect();
    let booted = s.sysroot.booted_deployment();
    let Some(target) = sysroot::rollback_index(&deps, booted.as_ref()) else {
        bail!("no deployment to roll back to in {}", s.path.display());
    };
    // Clone::clone shares the object: libostree finds the booted deployment by identity.
    // (Deployment's inherent `clone` would make a copy.)
    let mut order = Vec::with_capacity(deps.len());
    order.push(Clone::clone(&deps[target]));
    order.extend(deps.iter().enumerate().filter(|(i, _)| *i != target).map(|(_, d)| Clone::clone(d)));
    s.sysroot.write_deployments(&order, gio::Cancellable::NONE).context("writing the reordered deployment list")?;
    s.boot_sync()?;
    let csum = order[0].csum().to_string();
    let (version, _) = sysroot::commit_meta(&s.repo(), &csum)?;
    Ok(RollbackResult { new_default: csum, new_default_version: version, discarded_staged })
}
