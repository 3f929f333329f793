//! `host upgrade`, `host deploy` and `host rebase`: pull the target commit of the origin and
//! deploy it, refusing downgrades unless allowed.

use anyhow::{anyhow, bail, Context, Result};
use atoll_utils::packages;
use serde::Serialize;

use crate::deploy::{self, Written};
use crate::pull::{self, PullRequest, PullStats};
use crate::sysroot::{self, Sysroot};

/// Options shared by upgrade, deploy and rebase.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    pub os: Option<String>,
    pub check: bool,
    pub preview: bool,
    pub download_only: bool,
    pub allow_downgrade: bool,
    pub progress: bool,
}

/// The result, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct UpgradeResult {
    /// `no-change`, `available`, `downloaded`, `staged` or `deployed`.
    pub outcome: &'static str,
    pub origin: String,
    pub from_checksum: String,
    pub from_version: Option<String>,
    pub to_checksum: String,
    pub to_version: Option<String>,
    pub pull: PullStats,
    /// Bytes to download, stated before downloading (`None`: not known before pulling).
    pub download_size: Option<u64>,
    /// Bytes the new objects take in the repo (`None`: not known before pulling).
    pub unpacked_size: Option<u64>,
    /// Packages changed, with `--preview`.
    pub packages: Option<packages::Diff>,
}

/// Package changes between two commits, from their `atoll.packages` metadata.
fn package_diff(repo: &ostree::Repo, from: &str, to: &str) -> Result<packages::Diff> {
    let list = |c: &str| -> Result<Vec<packages::Package>> {
        let v = repo.load_variant(ostree::ObjectType::Commit, c).with_context(|| format!("loading commit {c}"))?;
        Ok(packages::of_commit(&v))
    };
    Ok(packages::diff(&list(from)?, &list(to)?))
}

/// What to move to.
pub enum Target<'a> {
    /// The newest commit of the origin.
    Latest,
    /// A version or checksum in the origin's history.
    Version(&'a str),
    /// The newest commit of another `remote:ref`.
    Rebase(&'a str),
}

/// Find `want` (a version string or a full/partial checksum) in the history of `remote:ref_name`,
/// pulling commit objects as needed.
fn find_in_history(repo: &ostree::Repo, remote: &str, ref_name: &str, want: &str) -> Result<String> {
    let (tip, _) = pull::pull(
        repo,
        &PullRequest { remote, ref_name, commit: None, commit_only: true, depth: -1, progress: false },
    )?;
    let mut history = Vec::new();
    let mut cur = Some(tip);
    while let Some(c) = cur {
        let (version, _) = sysroot::commit_meta(repo, &c)?;
        let commit = repo.load_variant(ostree::ObjectType::Commit, &c)?;
        cur = ostree::commit_get_parent(&commit)
            .map(|p| p.to_string())
            .filter(|p| matches!(repo.load_variant_if_exists(ostree::ObjectType::Commit, p), Ok(Some(_))));
        history.push((c, version));
    }
    // A version wins over a checksum prefix; a prefix needs 6+ hex digits and must be unique.
    if let Some((c, _)) = history.iter().find(|(_, v)| v.as_deref() == Some(want)) {
        return Ok(c.clone());
    }
    if want.len() >= 6 && want.chars().all(|ch| ch.is_ascii_hexdigit()) {
        let hits: Vec<&String> = history.iter().map(|(c, _)| c).filter(|c| c.starts_with(want)).collect();
        match hits.as_slice() {
            [one] => return Ok((*one).clone()),
            [] => {}
            _ => bail!("`{want}` matches more than one commit in {remote}:{ref_name}"),
        }
    }
    bail!("`{want}` is not a version or commit in the history of {remote}:{ref_name}")
}

/// Is `ancestor` in the (locally available) parent chain of `descendant`?
fn is_ancestor(repo: &ostree::Repo, ancestor: &str, descendant: &str) -> Result<bool> {
    let mut cur = descendant.to_string();
    loop {
        let Some(commit) = repo.load_variant_if_exists(ostree::ObjectType::Commit, &cur)? else { return Ok(false) };
        match ostree::commit_get_parent(&commit) {
            Some(p) if p.as_str() == ancestor => return Ok(true),
            Some(p) => cur = p.to_string(),
            None => return Ok(false),
        }
    }
}

/// Run upgrade / deploy / rebase on the locked sysroot.
pub fn run(s: &Sysroot, target: Target, opts: &UpgradeOptions) -> Result<UpgradeResult> {
    sysroot::require_deployments(s)?;
    let merge = s.merge_deployment(opts.os.as_deref())?;
    let os = merge.osname().to_string();
    let current = sysroot::origin_refspec(&merge)
        .ok_or_else(|| anyhow!("deployment {} has no origin to upgrade from", merge.csum()))?;
    let spec = match target {
        Target::Rebase(r) => r.to_string(),
        _ => current.clone(),
    };
    let (remote, ref_name) = sysroot::split_refspec(&spec);
    let remote = remote.ok_or_else(|| anyhow!("origin `{spec}` names no remote; use REMOTE:REF"))?;
    let repo = s.repo();
    let from = merge.csum().to_string();
    let (from_version, from_ts) = sysroot::commit_meta(&repo, &from)?;

    let pinned_commit = match target {
        Target::Version(v) => Some(find_in_history(&repo, remote, ref_name, v)?),
        _ => None,
    };
    // Metadata first: the commit object (GPG-verified as the remote requires) says what the
    // target is, whether it is new, older, already staged, and how much its content costs.
    let (to, meta_stats) = pull::pull(
        &repo,
        &PullRequest {
            remote,
            ref_name,
            commit: pinned_commit.as_deref(),
            commit_only: true,
            depth: 0,
            progress: false,
        },
    )?;
    let (to_version, to_ts) = sysroot::commit_meta(&repo, &to)?;
    let mut result = UpgradeResult {
        outcome: "no-change",
        origin: spec.clone(),
        from_checksum: from.clone(),
        from_version,
        to_checksum: to.clone(),
        to_version,
        pull: meta_stats,
        download_size: None,
        unpacked_size: None,
        packages: None,
    };
    if to == from && !matches!(target, Target::Rebase(_)) {
        return Ok(result);
    }
    // Already staged (or written as the next default): staging it again would change nothing,
    // and an unattended timer must not redo the work every day.
    let booted = s.sysroot.booted_deployment();
    let pending = s.sysroot.deployments().into_iter().next().filter(|d| {
        booted.as_ref().is_some_and(|b| !b.equal(d))
            && d.osname() == os
            && d.csum() == to
            && sysroot::origin_refspec(d).as_deref() == Some(spec.as_str())
    });
    if pending.is_some() {
        tracing::info!("{to} is already the pending deployment");
        return Ok(result);
    }
    if opts.preview {
        result.packages = Some(package_diff(&repo, &from, &to)?);
    }
    let older = to_ts < from_ts || is_ancestor(&repo, &to, &from)?;
    if older && !opts.allow_downgrade && !matches!(target, Target::Version(_)) {
        bail!(
            "refusing to downgrade from {} to {} (commit {to} is older); pass --allow-downgrade",
            result.from_version.as_deref().unwrap_or(&from),
            result.to_version.as_deref().unwrap_or(&to)
        );
    }
    let complete = pull::is_complete(&repo, &to);
    let needed = if complete { Some(pull::Needed::default()) } else { pull::needed(&repo, remote, ref_name, &to) };
    result.download_size = needed.map(|n| n.download);
    result.unpacked_size = needed.map(|n| n.unpacked);
    if opts.check {
        result.outcome = "available";
        return Ok(result);
    }
    if !complete {
        match needed {
            Some(n) => {
                // Refuse before pulling when the repo's filesystem lacks room for the new objects.
                let detail = format!(" ({} to download)", pull::human(n.download));
                deploy::require_room(&s.path.join("ostree/repo"), n.unpacked, "the new commit", &detail)?;
                if opts.progress {
                    eprintln!("Download size: {} ({} unpacked)", pull::human(n.download), pull::human(n.unpacked));
                }
            }
            None => {
                tracing::info!("the commit has no size index and the server no static delta: download size unknown")
            }
        }
        let (_, stats) = pull::pull(
            &repo,
            &PullRequest { remote, ref_name, commit: Some(&to), commit_only: false, depth: 0, progress: opts.progress },
        )?;
        // Metadata and content: everything this upgrade transferred.
        result.pull += stats;
    }
    if opts.download_only {
        result.outcome = "downloaded";
        return Ok(result);
    }
    let origin = s.sysroot.origin_new_from_refspec(&spec);
    let written = deploy::deploy(s, &os, &to, &origin, &merge, None).context("deploying the new commit")?;
    result.outcome = match written {
        Written::Staged => "staged",
        Written::Deployed => "deployed",
    };
    Ok(result)
}
