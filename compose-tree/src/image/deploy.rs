//! Populating the mounted root filesystem as an OSTree sysroot through libostree's Sysroot API:
//! init-fs, os-init, the update remote, pull-local of the commit, and the first deployment with
//! its kernel arguments and origin.

use std::path::Path;

use anyhow::{Context, Result};
use glib::prelude::*;
use ostree::gio;

use super::recipe::Recipe;

/// What was deployed.
pub struct Deployed {
    pub checksum: String,
    pub deploy_dir: std::path::PathBuf,
}

/// Pull `checksum` from `src_repo` into the sysroot at `mnt`, set up the recipe's remote and
/// deploy it with `kargs`; the origin names `remote:ref_name` so `host upgrade` knows where to go.
pub fn deploy(
    mnt: &Path,
    src_repo: &Path,
    ref_name: &str,
    checksum: &str,
    recipe: &Recipe,
    kargs: &[String],
) -> Result<Deployed> {
    let c = gio::Cancellable::NONE;
    let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(mnt)));
    sysroot.ensure_initialized(c).context("initialising the sysroot")?;
    for d in ["boot", "dev", "proc", "run", "sys", "tmp", "root"] {
        std::fs::create_dir_all(mnt.join(d)).with_context(|| format!("creating /{d} in the sysroot"))?;
    }
    sysroot.load(c).context("loading the sysroot")?;
    sysroot.init_osname(&recipe.os_name, c).with_context(|| format!("creating stateroot {}", recipe.os_name))?;
    let repo = sysroot.repo();

    // ostree writes only its boot entries; atoll_bootloader turns them into GRUB's menu slots.
    let cfg = repo.copy_config();
    cfg.set_string("sysroot", "bootloader", "none");
    repo.write_config(&cfg).context("configuring the sysroot repo")?;

    let r = &recipe.remote;
    let opts = glib::VariantDict::new(None);
    opts.insert_value("gpg-verify", &r.gpg_verify.to_variant());
    opts.insert_value("gpg-verify-summary", &false.to_variant());
    repo.remote_add(&r.name, Some(&r.url), Some(&opts.end()), c)
        .with_context(|| format!("adding remote {} ({})", r.name, r.url))?;
    if let Some(key) = &recipe.gpg_key_path {
        let bytes = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        atoll_utils::gpg::import_all_keys(&repo, &r.name, &bytes).with_context(|| format!("{}", key.display()))?;
    }

    let src_url = format!("file://{}", src_repo.canonicalize()?.display());
    let pull = glib::VariantDict::new(None);
    pull.insert_value("refs", &vec![checksum.to_string()].to_variant());
    pull.insert_value("gpg-verify", &false.to_variant());
    pull.insert_value("depth", &0i32.to_variant());
    repo.pull_with_options(&src_url, &pull.end(), None, c)
        .with_context(|| format!("pulling {checksum} from {}", src_repo.display()))?;
    // Record the ref locally under the remote's name, as a pull from it would.
    repo.set_ref_immediate(Some(&r.name), ref_name, Some(checksum), c)
        .with_context(|| format!("setting {}:{ref_name}", r.name))?;

    let origin = sysroot.origin_new_from_refspec(&format!("{}:{ref_name}", r.name));
    let kargs: Vec<&str> = kargs.iter().map(String::as_str).collect();
    let dep = sysroot
        .deploy_tree(Some(&recipe.os_name), checksum, Some(&origin), None, &kargs, c)
        .with_context(|| format!("deploying {checksum}"))?;
    sysroot
        .simple_write_deployment(Some(&recipe.os_name), &dep, None, ostree::SysrootSimpleWriteDeploymentFlags::NONE, c)
        .context("writing the deployment and boot loader configuration")?;
    sysroot.load(c).context("reloading the sysroot")?;
    bootloader::sync(&sysroot).context("writing the boot menu")?;
    let deploy_dir = mnt.join(sysroot.deployment_dirpath(&dep).as_str());
    Ok(Deployed { checksum: checksum.to_string(), deploy_dir })
}
