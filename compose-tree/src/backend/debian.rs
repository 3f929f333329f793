//! The Debian backend: a private apt state per package source (lists, resolution cache, .deb
//! cache) under the compose cache directory, dependency resolution with `apt-get --simulate`,
//! and the root filesystem built by `mmdebstrap` from those same lists and cached packages.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use atoll_utils::cmd;
use sha2::{Digest, Sha256};

use super::{apt_sources, Package, Resolved};
use crate::inputhash::hex;
use crate::treefile::{Arch, DebianSource, LocalPackage, Treefile};

/// The programs a Debian compose runs on the build machine (bwrap runs the postprocess scripts).
pub const PROGRAMS: &[&str] = &["apt-get", "apt-ftparchive", "mmdebstrap", "bwrap"];

/// A private apt configuration and state for one set of sources, kept in the cache directory
/// so metadata refreshes and package downloads are incremental.
pub struct Apt {
    root: PathBuf,
    debs: PathBuf,
    sources_file: PathBuf,
    prefs_file: PathBuf,
    /// The flat repository of `debian.local-packages`, and a digest of its index (`None`: no
    /// local packages).
    local: Option<(PathBuf, String)>,
    arch: Arch,
    src: DebianSource,
    packages: Vec<String>,
    excludes: Vec<String>,
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(text) {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

impl Apt {
    /// Set up (or reuse) the apt state for `tf`'s Debian source under `cache_dir`.
    pub fn prepare(tf: &Treefile, src: &DebianSource, cache_dir: &Path, arch: Arch) -> Result<Apt> {
        let host = apt_sources::host_sources(Path::new("/etc/apt"));
        let sources = apt_sources::compose_sources(&host, &src.suite, &src.components, src.mirror.as_deref())
            .with_context(|| format!("{}: debian", tf.path.display()))?;
        let key = hex(Sha256::digest(format!("{sources}\n{}", arch.debian)));
        let root = cache_dir.join("apt").join(&key[..16]);
        let debs = cache_dir.join("debs");
        for d in [
            "etc/sources.list.d",
            "etc/preferences.d",
            "etc/apt.conf.d",
            "lists/partial",
            "cache/archives/partial",
            "resolved",
        ] {
            std::fs::create_dir_all(root.join(d)).with_context(|| format!("creating {}", root.join(d).display()))?;
        }
        std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
        let dir = root.join("local");
        let local = if src.local_packages.is_empty() {
            if dir.exists() {
                std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
            None
        } else {
            let digest = sync_local_repo(&dir, &src.local_packages)
                .with_context(|| format!("{}: debian.local-packages", tf.path.display()))?;
            Some((dir, digest))
        };
        // The tree's own apt sources: the archive only, never this build host's local repository.
        write_if_changed(&root.join("tree.sources"), &sources)?;
        let mut sources = sources;
        if let Some((dir, _)) = &local {
            let d = dir.display().to_string();
            if d.contains(char::is_whitespace) {
                bail!("the compose cache directory {d} must not contain white space (apt cannot name it)");
            }
            // A flat repository: no signature, so it is trusted by path, which only root can write.
            sources.push_str(&format!("\nTypes: deb\nURIs: file:{d}\nSuites: ./\nTrusted: yes\n"));
        }
        let sources_file = root.join("etc/sources.list.d/atoll.sources");
        write_if_changed(&sources_file, &sources)?;
        write_if_changed(&root.join("status"), "")?;
        let prefs: String =
            tf.exclude_packages.iter().map(|p| format!("Package: {p}\nPin: version *\nPin-Priority: -1\n\n")).collect();
        let prefs_file = root.join("etc/preferences.d/atoll-exclude.pref");
        write_if_changed(&prefs_file, &prefs)?;
        Ok(Apt {
            root,
            debs,
            sources_file,
            prefs_file,
            local,
            arch,
            src: src.clone(),
            packages: tf.packages.clone(),
            excludes: tf.exclude_packages.clone(),
        })
    }

    fn apt(&self, program: &str) -> Command {
        let r = self.root.display();
        let mut c = Command::new(program);
        for o in [
            format!("Dir::Etc={r}/etc"),
            "Dir::Etc::SourceList=sources.list".into(),
            "Dir::Etc::TrustedParts=/etc/apt/trusted.gpg.d".into(),
            "Dir::Etc::Trusted=/etc/apt/trusted.gpg".into(),
            format!("Dir::State={r}/state"),
            format!("Dir::State::Lists={r}/lists"),
            format!("Dir::State::status={r}/status"),
            format!("Dir::Cache={r}/cache"),
            format!("APT::Architecture={}", self.arch.debian),
            format!("APT::Architectures={}", self.arch.debian),
            "APT::Install-Recommends=0".into(),
            "Debug::NoLocking=1".into(),
        ] {
            c.arg("-o").arg(o);
        }
        c.env("LC_ALL", "C.UTF-8");
        c
    }

    /// Refresh package metadata unless the last refresh is younger than `max_age` (like dnf's
    /// `metadata_expire`; zero always refreshes). Unchanged indexes are not downloaded again.
    /// Returns whether a refresh happened.
    /// A change in the local packages always refreshes.
    pub fn update(&self, max_age: Duration) -> Result<bool> {
        let stamp = self.root.join("refreshed");
        let age = std::fs::metadata(&stamp).and_then(|m| m.modified()).ok().and_then(|t| t.elapsed().ok());
        let local_digest = self.local.as_ref().map(|(_, d)| d.as_str()).unwrap_or_default();
        let local_same = std::fs::read_to_string(&stamp).is_ok_and(|s| s == local_digest);
        if age.is_some_and(|a| a < max_age) && local_same {
            tracing::debug!(?age, "package metadata is fresh enough");
            return Ok(false);
        }
        let uris = self.uris();
        cmd::run(self.apt("apt-get").args(["-q", "update", "--error-on=any"]))
            .with_context(|| format!("cannot refresh apt metadata from {uris}"))?;
        std::fs::write(&stamp, local_digest).with_context(|| format!("writing {}", stamp.display()))?;
        Ok(true)
    }

    fn uris(&self) -> String {
        let text = std::fs::read_to_string(&self.sources_file).unwrap_or_default();
        let uris: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("URIs: ")).collect();
        uris.join(", ")
    }

    /// SHA-256 over the Release files of every source: changes whenever the archive does.
    fn metadata_digest(&self) -> Result<String> {
        let lists = self.root.join("lists");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&lists)
            .with_context(|| format!("reading {}", lists.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with("Release")))
            .collect();
        names.sort();
        let mut h = Sha256::new();
        for n in &names {
            h.update(std::fs::read(n).with_context(|| format!("reading {}", n.display()))?);
        }
        Ok(hex(h.finalize()))
    }

    fn base_patterns(&self) -> Vec<String> {
        let mut v = vec!["?essential".to_string(), "apt".to_string()];
        match self.src.variant.as_str() {
            "required" => v.push("?priority(required)".into()),
            "important" => v.extend(["?priority(required)".into(), "?priority(important)".into()]),
            "standard" => {
                v.extend(["?priority(required)".into(), "?priority(important)".into(), "?priority(standard)".into()])
            }
            _ => {}
        }
        v
    }

    /// Which exact versions the treefile's package set resolves to, against the metadata from the
    /// last [`Apt::update`]. Cached by metadata and request, so an unchanged archive answers at once.
    pub fn resolve(&self) -> Result<Resolved> {
        let request = format!(
            "{}\n{:?}\n{:?}\n{:?}\n{}",
            self.metadata_digest()?,
            self.base_patterns(),
            self.packages,
            self.excludes,
            self.arch.debian
        );
        let cache = self.root.join("resolved").join(format!("{}.json", hex(Sha256::digest(&request))));
        if let Ok(text) = std::fs::read_to_string(&cache) {
            if let Ok(r) = serde_json::from_str::<Resolved>(&text) {
                tracing::debug!(cache = %cache.display(), "resolution cache hit");
                return Ok(r);
            }
        }
        let mut c = self.apt("apt-get");
        c.args(["-q", "--simulate", "install"]).args(self.base_patterns()).args(&self.packages);
        let out = c.stdin(std::process::Stdio::null()).output().context("running apt-get --simulate")?;
        if !out.status.success() {
            return Err(
                self.resolve_error(&String::from_utf8_lossy(&out.stdout), &String::from_utf8_lossy(&out.stderr))
            );
        }
        let resolved = Resolved { packages: parse_simulation(&String::from_utf8_lossy(&out.stdout)) };
        let tmp = cache.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_string(&resolved)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &cache).with_context(|| format!("writing {}", cache.display()))?;
        Ok(resolved)
    }

    fn resolve_error(&self, stdout: &str, stderr: &str) -> anyhow::Error {
        let suite = &self.src.suite;
        for line in stderr.lines() {
            if let Some(p) = line.strip_prefix("E: Unable to locate package ") {
                return anyhow!("package `{}` not found in {suite} ({})", p.trim(), self.src.components.join(" "));
            }
            if let Some(p) = line.strip_prefix("E: Package '").and_then(|l| l.split('\'').next()) {
                return anyhow!("package `{p}` has no installable candidate in {suite}");
            }
        }
        // Dependency problems: apt lists them on stdout as "pkg : Depends: x but ...".
        let why: Vec<&str> =
            stdout.lines().map(str::trim).filter(|l| l.contains(": Depends:") || l.contains("Depends:")).collect();
        if !why.is_empty() {
            return anyhow!("cannot resolve packages (excluded: [{}]): {}", self.excludes.join(", "), why.join("; "));
        }
        anyhow!("apt-get could not resolve the package set: {}", cmd::tail(stderr.as_bytes(), 3))
    }

    /// Build the root filesystem into `target` (which must not exist) with mmdebstrap, using
    /// this state's lists and the shared .deb cache. Every line mmdebstrap prints goes to
    /// `on_line`.
    pub fn build_rootfs(&self, target: &Path, on_line: impl FnMut(&str)) -> Result<()> {
        let lists = self.root.join("lists");
        let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
        // Local packages go into the target's archive cache first, so apt never needs their
        // file: source inside the chroot, and a stale namesake in the shared cache cannot win;
        // they are taken out again before the cache is refilled.
        let (link_local, unlink_local) = match &self.local {
            Some((dir, _)) => (
                format!("cp -l {}/*.deb \"$1/var/cache/apt/archives/\" && ", q(dir)),
                self.src
                    .local_packages
                    .iter()
                    .map(|p| format!("rm -f \"$1/var/cache/apt/archives/{}\" ; ", p.file_name))
                    .chain([format!(
                        "for f in \"$1\"/etc/apt/sources.list.d/*{}; do cp {} \"$f\"; done ; ",
                        self.sources_file.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
                        q(&self.root.join("tree.sources"))
                    )])
                    .collect(),
            ),
            None => (String::new(), String::new()),
        };
        let mut c = Command::new("mmdebstrap");
        c.env("INITRD", "No") // the kernel's postinst must not build an initramfs; we do, once
            .env("LC_ALL", "C.UTF-8")
            .arg("--mode=root")
            .arg("--format=directory")
            .arg(format!("--variant={}", self.src.variant))
            .arg(format!("--architectures={}", self.arch.debian))
            .arg("--aptopt=APT::Install-Recommends \"0\"")
            .arg("--skip=update")
            .arg("--skip=download/empty")
            .arg(format!(
                "--setup-hook=mkdir -p \"$1/var/lib/apt/lists/partial\" \"$1/var/cache/apt/archives\" \"$1/etc/apt/preferences.d\" && cp {}/*Release {}/*_Packages* \"$1/var/lib/apt/lists/\" && cp {} \"$1/etc/apt/preferences.d/\" && {link_local}find {} -maxdepth 1 -name '*.deb' -exec cp -n -l -t \"$1/var/cache/apt/archives/\" {{}} +",
                q(&lists), q(&lists), q(&self.prefs_file), q(&self.debs)
            ))
            .arg(format!(
                "--customize-hook={unlink_local}find \"$1/var/cache/apt/archives\" -maxdepth 1 -name '*.deb' -exec cp -n -l -t {} {{}} + ; rm -f \"$1/etc/apt/preferences.d/{}\"",
                q(&self.debs),
                self.prefs_file.file_name().and_then(|n| n.to_str()).unwrap_or_default()
            ));
        if !self.packages.is_empty() {
            c.arg(format!("--include={}", self.packages.join(",")));
        }
        c.arg(&self.src.suite).arg(target).arg(&self.sources_file);
        cmd::run_streaming(&mut c, on_line).context("building the root filesystem with mmdebstrap")
    }
}

/// Make `dir` a flat apt repository of exactly `debs` (copied in; unchanged files are kept) with
/// `Packages` and `Release` from `apt-ftparchive`. The index is rewritten only when the packages
/// changed, so an unchanged set keeps its `Release` byte for byte. Returns a digest of the index.
fn sync_local_repo(dir: &Path, debs: &[LocalPackage]) -> Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".deb") && !debs.iter().any(|d| d.file_name == name) {
            std::fs::remove_file(e.path()).with_context(|| format!("removing {}", e.path().display()))?;
        }
    }
    for d in debs {
        let dest = dir.join(&d.file_name);
        let same = std::fs::read(&dest).is_ok_and(|data| hex(Sha256::digest(data)) == d.sha256);
        if !same {
            // A fresh inode: the old one may be hard-linked into a target's archive cache.
            let _ = std::fs::remove_file(&dest);
            std::fs::copy(&d.path, &dest)
                .with_context(|| format!("copying {} to {}", d.path.display(), dest.display()))?;
        }
    }
    let packages = cmd::run_stdout(Command::new("apt-ftparchive").arg("packages").arg(".").current_dir(dir))
        .context("indexing local packages with apt-ftparchive")?;
    let packages_file = dir.join("Packages");
    if std::fs::read_to_string(&packages_file).ok().as_deref() != Some(packages.as_str())
        || !dir.join("Release").is_file()
    {
        let _ = std::fs::remove_file(dir.join("Release"));
        std::fs::write(&packages_file, &packages).with_context(|| format!("writing {}", packages_file.display()))?;
        let release = cmd::run_stdout(Command::new("apt-ftparchive").arg("release").arg(".").current_dir(dir))
            .context("writing the local repository's Release with apt-ftparchive")?;
        std::fs::write(dir.join("Release"), release).with_context(|| format!("writing {}/Release", dir.display()))?;
    }
    Ok(hex(Sha256::digest(packages)))
}

/// Packages from `apt-get --simulate install` output: `Inst name (version suite [arch])`.
pub fn parse_simulation(text: &str) -> Vec<Package> {
    let mut out: Vec<Package> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("Inst ")?;
            let (name, rest) = rest.split_once(' ')?;
            let inner = rest.split_once('(')?.1.split_once(')')?.0;
            let version = inner.split_whitespace().next()?;
            let arch = inner.rsplit_once('[').and_then(|(_, a)| a.strip_suffix(']')).unwrap_or("all");
            Some(Package { name: name.into(), version: version.into(), arch: arch.into() })
        })
        .collect();
    out.sort();
    out
}

/// Check that mmdebstrap's result is a tree we can work with.
pub fn check_rootfs(root: &Path) -> Result<()> {
    if !root.join("var/lib/dpkg/status").is_file() {
        bail!("mmdebstrap produced no dpkg database in {}", root.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulation_lines() {
        let text = "NOTE: This is only a simulation!\nInst libc6 (2.36-9+deb12u9 Debian:12.9/stable [amd64])\nInst tzdata (2024a-0+deb12u1 Debian:bookworm-updates [all])\nConf libc6 (2.36-9+deb12u9 Debian:12.9/stable [amd64])\nInst base-files [12.4] (12.4+deb12u9 Debian:12.9/stable [amd64])\n";
        let p = parse_simulation(text);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0], Package { name: "base-files".into(), version: "12.4+deb12u9".into(), arch: "amd64".into() });
        assert_eq!(p[2].name, "tzdata");
        assert_eq!(p[2].arch, "all");
    }
}
