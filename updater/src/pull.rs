//! Pulling from a remote with libostree: GPG verification as the remote is configured (on by
//! default), static deltas when the server has them, a progress bar with objects and bytes, and
//! resumption of an interrupted pull (objects already fetched stay in the repo's staging area).

use anyhow::{anyhow, Context, Result};
use glib::prelude::*;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ostree::gio;

/// What to fetch.
pub struct PullRequest<'a> {
    pub remote: &'a str,
    pub ref_name: &'a str,
    /// Fetch this commit of `ref_name` instead of its tip.
    pub commit: Option<&'a str>,
    /// Only the commit object(s), for `--check` and history walks.
    pub commit_only: bool,
    /// History depth of commit objects to fetch (0: just the one).
    pub depth: i32,
    /// Show a progress bar on stderr.
    pub progress: bool,
}

/// Bytes fetched by the last pull (for benchmarks and `--json`).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct PullStats {
    pub bytes_transferred: u64,
    pub objects_fetched: u32,
    pub delta_parts: u32,
}

impl std::ops::AddAssign for PullStats {
    fn add_assign(&mut self, o: PullStats) {
        self.bytes_transferred += o.bytes_transferred;
        self.objects_fetched += o.objects_fetched;
        self.delta_parts += o.delta_parts;
    }
}

/// Pull, returning the checksum now at `remote:ref_name` (or the requested commit).
pub fn pull(repo: &ostree::Repo, req: &PullRequest) -> Result<(String, PullStats)> {
    let opts = glib::VariantDict::new(None);
    opts.insert_value("refs", &vec![req.ref_name.to_string()].to_variant());
    if let Some(c) = req.commit {
        opts.insert_value("override-commit-ids", &vec![c.to_string()].to_variant());
    }
    let mut flags = ostree::RepoPullFlags::NONE;
    if req.commit_only {
        flags |= ostree::RepoPullFlags::COMMIT_ONLY;
    }
    opts.insert_value("flags", &(flags.bits() as i32).to_variant());
    opts.insert_value("depth", &req.depth.to_variant());
    opts.insert_value("n-network-retries", &3u32.to_variant());

    let bar = if req.progress && !req.commit_only {
        let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        b.set_style(
            ProgressStyle::with_template("{spinner} pulling [{elapsed_precise}] {wide_msg}").expect("valid template"),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(150));
        b
    } else {
        ProgressBar::hidden()
    };
    let progress = ostree::AsyncProgress::new();
    let stats = std::rc::Rc::new(std::cell::Cell::new(PullStats::default()));
    {
        let bar = bar.clone();
        let stats = stats.clone();
        progress.connect_changed(move |p| {
            let s = PullStats {
                bytes_transferred: p.uint64("bytes-transferred"),
                objects_fetched: p.uint("fetched"),
                delta_parts: p.uint("fetched-delta-parts"),
            };
            stats.set(s);
            let requested = p.uint("requested");
            let total_delta = p.uint64("total-delta-part-size");
            let msg = if p.uint("total-delta-parts") > 0 {
                format!(
                    "delta parts {}/{} ({} of {} to download)",
                    s.delta_parts,
                    p.uint("total-delta-parts"),
                    human(s.bytes_transferred),
                    human(total_delta)
                )
            } else {
                format!("objects {}/{} ({})", s.objects_fetched, requested, human(s.bytes_transferred))
            };
            bar.set_message(msg);
        });
    }
    let r = repo.pull_with_options(req.remote, &opts.end(), Some(&progress), gio::Cancellable::NONE);
    progress.finish();
    // The last "changed" may still be queued on the main context.
    while glib::MainContext::default().iteration(false) {}
    bar.finish_and_clear();
    r.with_context(|| format!("pulling {}:{}", req.remote, req.commit.unwrap_or(req.ref_name)))?;
    let csum = match req.commit {
        Some(c) => c.to_string(),
        None => repo
            .resolve_rev(&format!("{}:{}", req.remote, req.ref_name), false)?
            .ok_or_else(|| anyhow!("{}:{} not found after pulling", req.remote, req.ref_name))?
            .to_string(),
    };
    Ok((csum, stats.get()))
}

/// What pulling a commit's content will cost, given what the repo already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Needed {
    /// Bytes to download.
    pub download: u64,
    /// Bytes the new objects take in the repo once written.
    pub unpacked: u64,
}

/// What fetching `commit` (whose commit object is already in the repo, e.g. after a
/// commit-only pull) would cost, counting only objects the repo lacks: from libostree's full
/// `ostree.sizes` index when the commit has one; else from the sparse `atoll.sizes` indexes of
/// the commits between it and the newest ancestor the repo holds completely (compose-tree's);
/// else from the server's static delta to it. `None`: none of these is available.
pub fn needed(repo: &ostree::Repo, remote: &str, ref_name: &str, commit: &str) -> Option<Needed> {
    needed_from_full_index(repo, commit)
        .or_else(|| needed_from_index(repo, remote, ref_name, commit))
        .or_else(|| delta_size(repo, remote, ref_name, Some(commit)))
}

/// From libostree's own full index (`ostree commit --generate-sizes`), when a commit has one.
fn needed_from_full_index(repo: &ostree::Repo, commit: &str) -> Option<Needed> {
    let v = repo.load_variant(ostree::ObjectType::Commit, commit).ok()?;
    let entries = ostree::commit_get_object_sizes(&v).ok()?;
    if entries.is_empty() {
        return None;
    }
    let files = entries.iter().filter(|e| e.objtype() == ostree::ObjectType::File);
    Some(lacking(repo, files.map(|e| (e.checksum().to_string(), e.archived(), e.unpacked()))))
}

/// The sizes of the content objects among `objects` (checksum, archived, unpacked) that the
/// repo does not have.
fn lacking(repo: &ostree::Repo, objects: impl Iterator<Item = (String, u64, u64)>) -> Needed {
    let mut n = Needed::default();
    for (csum, archived, unpacked) in objects {
        if !repo.has_object(ostree::ObjectType::File, &csum, gio::Cancellable::NONE).unwrap_or(false) {
            n.download += archived;
            n.unpacked += unpacked;
        }
    }
    n
}

/// How many commits back [`needed`] walks before giving up on the size index.
const MAX_INDEX_WALK: usize = 64;

fn needed_from_index(repo: &ostree::Repo, remote: &str, ref_name: &str, target: &str) -> Option<Needed> {
    let c = gio::Cancellable::NONE;
    let mut new: std::collections::HashMap<String, (u64, u64)> = std::collections::HashMap::new();
    let mut cur = target.to_string();
    let mut covered = false;
    for _ in 0..MAX_INDEX_WALK {
        let commit = repo.load_variant(ostree::ObjectType::Commit, &cur).ok()?;
        for e in atoll_utils::sizes::of_commit(&commit)? {
            new.entry(e.checksum).or_insert((e.archived, e.unpacked));
        }
        // The root commit's index lists everything; a complete parent holds everything older.
        let Some(parent) = ostree::commit_get_parent(&commit).map(|p| p.to_string()) else {
            covered = true;
            break;
        };
        if is_complete(repo, &parent) {
            covered = true;
            break;
        }
        if !repo.has_object(ostree::ObjectType::Commit, &parent, c).unwrap_or(false) {
            let req =
                PullRequest { remote, ref_name, commit: Some(&parent), commit_only: true, depth: 0, progress: false };
            if let Err(e) = pull(repo, &req) {
                tracing::debug!("fetching commit {parent} for its size index: {e:#}");
                return None;
            }
        }
        cur = parent;
    }
    covered.then(|| lacking(repo, new.into_iter().map(|(csum, (archived, unpacked))| (csum, archived, unpacked))))
}

/// Whether every object of `commit` is in the repo (not just its commit object).
pub fn is_complete(repo: &ostree::Repo, commit: &str) -> bool {
    repo.load_commit(commit).is_ok_and(|(_, state)| !state.contains(ostree::RepoCommitState::PARTIAL))
}

/// How many bytes pulling `remote:ref_name` (or `commit`) would transfer, when the server has a
/// static delta to it from what we have (a dry-run pull reads the delta superblock only).
pub fn delta_size(repo: &ostree::Repo, remote: &str, ref_name: &str, commit: Option<&str>) -> Option<Needed> {
    let opts = glib::VariantDict::new(None);
    opts.insert_value("refs", &vec![ref_name.to_string()].to_variant());
    if let Some(c) = commit {
        opts.insert_value("override-commit-ids", &vec![c.to_string()].to_variant());
    }
    opts.insert_value("dry-run", &true.to_variant());
    opts.insert_value("require-static-deltas", &true.to_variant());
    opts.insert_value("n-network-retries", &0u32.to_variant());
    let progress = ostree::AsyncProgress::new();
    let r = repo.pull_with_options(remote, &opts.end(), Some(&progress), gio::Cancellable::NONE);
    while glib::MainContext::default().iteration(false) {}
    progress.finish();
    match r {
        Ok(()) if progress.uint("total-delta-parts") > 0 => Some(Needed {
            download: progress.uint64("total-delta-part-size"),
            unpacked: progress.uint64("total-delta-part-usize"),
        }),
        Ok(()) => None,
        Err(e) => {
            tracing::debug!("dry-run pull: {e}");
            None
        }
    }
}

/// `1.2 MiB`.
pub fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(5 << 30), "5.0 GiB");
    }
}
