//! Opening a sysroot (the booted `/` or a directory), taking its lock, and describing its
//! deployments.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ostree::gio;
use serde::Serialize;

/// An open, loaded and locked sysroot. The lock is libostree's own, so `host`, `ostree admin`
/// and rpm-ostree-style tools never interleave mutations; it is released on drop.
pub struct Sysroot {
    pub sysroot: ostree::Sysroot,
    pub path: PathBuf,
    locked: bool,
}

/// Who holds the lock on `lockfile`: `pid 1234: host upgrade`. libostree takes an OFD lock,
/// which /proc/locks lists without a pid, so look for it in every process's fdinfo instead.
fn lock_holder(lockfile: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(lockfile).ok()?;
    let (major, minor) = (nix::sys::stat::major(md.dev()), nix::sys::stat::minor(md.dev()));
    // "lock:\t1: OFDLCK  ADVISORY  WRITE -1 fd:01:5678 0 EOF"
    let ours = |line: &str| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let id: Vec<&str> = f.get(6).map(|x| x.split(':').collect()).unwrap_or_default();
        id.len() == 3
            && u64::from_str_radix(id[0], 16).ok() == Some(major)
            && u64::from_str_radix(id[1], 16).ok() == Some(minor)
            && id[2].parse::<u64>().ok() == Some(md.ino())
    };
    let me = std::process::id().to_string();
    let pid = std::fs::read_dir("/proc").ok()?.flatten().find_map(|p| {
        let pid = p.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            return None;
        }
        let fds = std::fs::read_dir(p.path().join("fdinfo")).ok()?;
        fds.flatten()
            .any(|fd| {
                std::fs::read_to_string(fd.path()).is_ok_and(|t| t.lines().any(|l| l.starts_with("lock:") && ours(l)))
            })
            .then_some(pid)
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut words: Vec<String> =
        cmdline.split(|b| *b == 0).filter(|w| !w.is_empty()).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
    if let Some(argv0) = words.first_mut() {
        *argv0 = argv0.rsplit('/').next().unwrap_or_default().to_string();
    }
    let mut cmd = words.join(" ");
    if cmd.len() > 80 {
        cmd = format!("{}...", cmd.chars().take(77).collect::<String>());
    }
    Some(format!("pid {pid}: {cmd}"))
}

impl Sysroot {
    /// Open and load the sysroot at `path` without locking (read-only commands).
    pub fn open(path: &Path) -> Result<Sysroot> {
        let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(path)));
        sysroot.load(gio::Cancellable::NONE).with_context(|| format!("loading sysroot {}", path.display()))?;
        Ok(Sysroot { sysroot, path: path.to_path_buf(), locked: false })
    }

    /// Open, lock (waiting, and saying so, when another process holds it) and load.
    pub fn open_locked(path: &Path) -> Result<Sysroot> {
        let sysroot = ostree::Sysroot::new(Some(&gio::File::for_path(path)));
        // The lock lives in the sysroot; initialise the object first.
        sysroot.initialize().with_context(|| format!("opening sysroot {}", path.display()))?;
        if !sysroot.try_lock().with_context(|| format!("locking sysroot {}", path.display()))? {
            let holder = lock_holder(&path.join("ostree/lock")).unwrap_or_else(|| "another host/ostree command".into());
            eprintln!("Waiting for the sysroot lock on {} (held by {holder})...", path.display());
            sysroot.lock().with_context(|| format!("locking sysroot {}", path.display()))?;
        }
        sysroot.load(gio::Cancellable::NONE).with_context(|| format!("loading sysroot {}", path.display()))?;
        Ok(Sysroot { sysroot, path: path.to_path_buf(), locked: true })
    }

    pub fn repo(&self) -> ostree::Repo {
        self.sysroot.repo()
    }

    /// The deployment new work starts from: the booted one, else the default for `os`.
    pub fn merge_deployment(&self, os: Option<&str>) -> Result<ostree::Deployment> {
        if let Some(b) = self.sysroot.booted_deployment() {
            if os.is_none_or(|o| b.osname() == o) {
                return Ok(b);
            }
        }
        // Not booted: the stateroot of the default (first non-staged) deployment.
        let default_os =
            self.sysroot.deployments().into_iter().find(|d| !d.is_staged()).map(|d| d.osname().to_string());
        let os = os.map(str::to_string).or(default_os);
        self.sysroot.merge_deployment(os.as_deref()).ok_or_else(|| {
            anyhow!(
                "no deployment{} in {}",
                os.as_ref().map(|o| format!(" for os {o}")).unwrap_or_default(),
                self.path.display()
            )
        })
    }

    /// Point the boot loader at the deployment list as it is on disk now (after any write of it).
    pub fn boot_sync(&self) -> Result<bootloader::SyncResult> {
        self.sysroot.load_if_changed(gio::Cancellable::NONE).context("reloading the sysroot")?;
        bootloader::sync(&self.sysroot).with_context(|| format!("updating the boot menu of {}", self.path.display()))
    }

    /// The stateroot to act on: `--os`, else the merge deployment's.
    pub fn osname(&self, os: Option<&str>) -> Result<String> {
        Ok(self.merge_deployment(os)?.osname().to_string())
    }
}

impl Drop for Sysroot {
    fn drop(&mut self) {
        if self.locked {
            self.sysroot.unlock();
        }
    }
}

/// The `remote:ref` a deployment follows.
pub fn origin_refspec(d: &ostree::Deployment) -> Option<String> {
    d.origin().and_then(|o| o.string("origin", "refspec").ok()).map(|s| s.to_string())
}

/// Split `remote:ref` (a bare ref has no remote).
pub fn split_refspec(spec: &str) -> (Option<&str>, &str) {
    match spec.split_once(':') {
        Some((r, rf)) => (Some(r), rf),
        None => (None, spec),
    }
}

/// One deployment as `host status` shows it. The JSON schema is documented in docs/host.md.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeploymentInfo {
    /// Position in boot order (0 boots next).
    pub index: usize,
    pub osname: String,
    pub checksum: String,
    pub serial: i32,
    pub version: Option<String>,
    /// Commit timestamp, seconds since the epoch.
    pub timestamp: u64,
    /// `remote:ref` from the origin file.
    pub origin: Option<String>,
    pub booted: bool,
    pub staged: bool,
    /// The deployment `host rollback` would make the default.
    pub rollback: bool,
    pub pinned: bool,
    /// Kernel arguments of the boot entry.
    pub kargs: Option<String>,
}

/// Version and timestamp of a commit in `repo`.
pub fn commit_meta(repo: &ostree::Repo, checksum: &str) -> Result<(Option<String>, u64)> {
    let c = repo
        .load_variant(ostree::ObjectType::Commit, checksum)
        .with_context(|| format!("loading commit {checksum}"))?;
    let meta = glib::VariantDict::new(Some(&c.child_value(0)));
    let version = meta.lookup::<String>("version").ok().flatten();
    Ok((version, ostree::commit_get_timestamp(&c)))
}

/// Every deployment in boot order.
pub fn deployments(s: &Sysroot) -> Result<Vec<DeploymentInfo>> {
    let repo = s.repo();
    let booted = s.sysroot.booted_deployment();
    let deps = s.sysroot.deployments();
    let rollback_idx = rollback_index(&deps, booted.as_ref());
    let mut out = Vec::new();
    for (i, d) in deps.iter().enumerate() {
        let (version, timestamp) = commit_meta(&repo, &d.csum())?;
        out.push(DeploymentInfo {
            index: i,
            osname: d.osname().to_string(),
            checksum: d.csum().to_string(),
            serial: d.deployserial(),
            version,
            timestamp,
            origin: origin_refspec(d),
            booted: booted.as_ref().is_some_and(|b| b.equal(d)),
            staged: d.is_staged(),
            rollback: rollback_idx == Some(i),
            pinned: d.is_pinned(),
            kargs: d.bootconfig().and_then(|b| b.get("options")).map(|s| s.to_string()),
        });
    }
    Ok(out)
}

/// Which deployment a rollback would make the default: the first non-staged deployment that is
/// neither the booted one (when booted) nor the current default.
pub fn rollback_index(deps: &[ostree::Deployment], booted: Option<&ostree::Deployment>) -> Option<usize> {
    let current = match booted {
        Some(b) => deps.iter().position(|d| d.equal(b))?,
        None => deps.iter().position(|d| !d.is_staged())?,
    };
    deps.iter().enumerate().position(|(i, d)| i != current && !d.is_staged())
}

/// Refuse unless the sysroot has a deployment to work from.
pub fn require_deployments(s: &Sysroot) -> Result<()> {
    if s.sysroot.deployments().is_empty() {
        bail!("{} has no deployments", s.path.display());
    }
    Ok(())
}
