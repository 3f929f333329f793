//! `host remote add` and `host remote list`: remotes of the sysroot repo, with GPG verification
//! on unless `--no-gpg-verify` is said explicitly.

use std::path::Path;

use anyhow::{bail, Context, Result};
use glib::prelude::*;
use ostree::gio;
use serde::Serialize;

/// Add `name` → `url`. With verification on, a key must be imported now.
pub fn add(repo: &ostree::Repo, name: &str, url: &str, gpg_import: Option<&Path>, no_gpg_verify: bool) -> Result<()> {
    if !no_gpg_verify && gpg_import.is_none() {
        bail!("remote {name}: GPG verification is on by default; give --gpg-import KEYFILE or say --no-gpg-verify");
    }
    if !["http://", "https://", "file:/"].iter().any(|p| url.starts_with(p)) {
        bail!("remote {name}: `{url}` is not an http(s):// or file:/ URL");
    }
    let c = gio::Cancellable::NONE;
    if repo.remote_list().iter().any(|r| r.as_str() == name) {
        bail!("remote {name} already exists");
    }
    // Read the key first so a bad key file changes nothing.
    let key = match gpg_import {
        Some(k) => Some(std::fs::read(k).with_context(|| format!("reading {}", k.display()))?),
        None => None,
    };
    let opts = glib::VariantDict::new(None);
    opts.insert_value("gpg-verify", &(!no_gpg_verify).to_variant());
    repo.remote_add(name, Some(url), Some(&opts.end()), c).with_context(|| format!("adding remote {name}"))?;
    if let (Some(bytes), Some(path)) = (key, gpg_import) {
        if let Err(e) = atoll_utils::gpg::import_all_keys(repo, name, &bytes) {
            // Leave no half-configured remote behind.
            let _ = repo.remote_delete(name, c);
            return Err(e).with_context(|| format!("reading {}", path.display()));
        }
    }
    Ok(())
}

/// One configured remote.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteInfo {
    pub name: String,
    pub url: String,
    pub gpg_verify: bool,
}

pub fn list(repo: &ostree::Repo) -> Result<Vec<RemoteInfo>> {
    let mut out = Vec::new();
    for name in repo.remote_list() {
        let url = repo.remote_get_url(&name).with_context(|| format!("reading remote {name}"))?.to_string();
        let gpg_verify = repo.remote_get_gpg_verify(&name).unwrap_or(true);
        out.push(RemoteInfo { name: name.to_string(), url, gpg_verify });
    }
    Ok(out)
}
