//! The treefile: TOML that says what goes into a host tree. Parsing, `include` merging and
//! validation live here; nothing in this module touches the tree being built.
//!
//! Parsing is split from I/O: [`parse_layer`] turns text into one [`Layer`], [`load`] reads files,
//! follows `include` and merges layers (scalars override, lists concatenate, tables merge by key),
//! then [`Layer::finish`] validates the merged result into a [`Treefile`].

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One treefile as written: every key optional so layers can be merged.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Layer {
    #[serde(rename = "ref")]
    pub ref_: Option<String>,
    pub automatic_version_prefix: Option<String>,
    pub packages: Option<Vec<String>>,
    pub exclude_packages: Option<Vec<String>>,
    pub include: Option<Include>,
    pub units: Option<Vec<String>>,
    pub default_target: Option<String>,
    pub add_files: Option<Vec<(String, String)>>,
    pub remove_files: Option<Vec<String>>,
    pub postprocess: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    pub debian: Option<DebianLayer>,
    /// Directory of the file this layer came from; `add-files` sources resolve against it.
    #[serde(skip)]
    dir: PathBuf,
    /// Sources of `add-files` already resolved to absolute paths (filled by `load`).
    #[serde(skip)]
    resolved_add_files: Vec<AddFile>,
}

/// `include = "base.toml"` or `include = ["a.toml", "b.toml"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Include {
    One(String),
    Many(Vec<String>),
}

impl Include {
    fn paths(&self) -> Vec<&str> {
        match self {
            Include::One(s) => vec![s.as_str()],
            Include::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// The `[debian]` table as written.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DebianLayer {
    pub suite: Option<String>,
    pub components: Option<Vec<String>>,
    pub mirror: Option<String>,
    pub variant: Option<String>,
    /// `.deb` files or directories of them, relative to the file that names them.
    pub local_packages: Option<Vec<String>>,
    /// `local-packages` already resolved to the `.deb` files they name (filled by `load`).
    #[serde(skip)]
    resolved_local: Vec<LocalPackage>,
}

/// One `.deb` from `debian.local-packages`: offered to the resolver beside the archive, so the
/// treefile's `packages` list picks it by name like any other package.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LocalPackage {
    /// Where it is on the build host (not hashed: its content is).
    #[serde(skip)]
    pub path: PathBuf,
    pub file_name: String,
    pub sha256: String,
}

/// A validated, merged treefile, ready to compose.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Treefile {
    /// The top-level file the user named.
    #[serde(skip)]
    pub path: PathBuf,
    /// Every file read (the treefile and its includes), in load order.
    #[serde(skip)]
    pub sources: Vec<PathBuf>,
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub automatic_version_prefix: Option<String>,
    pub packages: Vec<String>,
    pub exclude_packages: Vec<String>,
    pub units: Vec<String>,
    pub default_target: Option<String>,
    pub add_files: Vec<AddFile>,
    pub remove_files: Vec<String>,
    pub postprocess: Vec<String>,
    pub metadata: BTreeMap<String, String>,
    pub backend: Backend,
}

/// One `add-files` entry with its source resolved.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AddFile {
    /// Absolute path of the source on the build host (not hashed: its content is).
    #[serde(skip)]
    pub src: PathBuf,
    /// Absolute destination in the tree, under /usr or /etc.
    pub dest: String,
}

/// Where packages come from. Exactly one per treefile; RPM repositories join as a variant.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub enum Backend {
    Debian(DebianSource),
}

/// A validated `[debian]` table.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct DebianSource {
    pub suite: String,
    pub components: Vec<String>,
    /// `None`: use the build host's own apt sources for `suite`.
    pub mirror: Option<String>,
    /// mmdebstrap variant; `minbase` unless set.
    pub variant: String,
    /// Packages built on this host (Atoll's own `atoll-host`, say), sorted by file name.
    pub local_packages: Vec<LocalPackage>,
}

/// The architecture names a treefile can refer to.
#[derive(Debug, Clone, Copy)]
pub struct Arch {
    /// RPM-style name, substituted for `${basearch}` (x86_64, aarch64).
    pub basearch: &'static str,
    /// Debian's name for the same architecture (amd64, arm64).
    pub debian: &'static str,
}

impl Arch {
    /// The architecture this program was built for.
    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "x86_64" => Arch { basearch: "x86_64", debian: "amd64" },
            "aarch64" => Arch { basearch: "aarch64", debian: "arm64" },
            "powerpc64" => Arch { basearch: "ppc64le", debian: "ppc64el" },
            "s390x" => Arch { basearch: "s390x", debian: "s390x" },
            other => Arch { basearch: "unknown", debian: leak(other) },
        }
    }
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Parse one treefile's text. `name` is used in errors, which come out as one line:
/// `FILE:LINE: message`.
pub fn parse_layer(text: &str, name: &str) -> Result<Layer> {
    parse_toml(text, name)
}

/// Deserialize TOML `text`, turning a parse error into one line: `NAME:LINE: message`.
pub(crate) fn parse_toml<T: serde::de::DeserializeOwned>(text: &str, name: &str) -> Result<T> {
    toml::from_str::<T>(text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        match line {
            Some(l) => anyhow!("{name}:{l}: {msg}"),
            None => anyhow!("{name}: {msg}"),
        }
    })
}

/// Read `path` and everything it includes, merge, substitute and validate.
pub fn load(path: &Path, arch: Arch) -> Result<Treefile> {
    let mut sources = Vec::new();
    let merged = load_layer(path, &mut Vec::new(), &mut sources)?;
    merged.finish(path, sources, arch)
}

fn load_layer(path: &Path, stack: &mut Vec<PathBuf>, sources: &mut Vec<PathBuf>) -> Result<Layer> {
    let canonical = path.canonicalize().with_context(|| format!("reading treefile {}", path.display()))?;
    if stack.contains(&canonical) {
        bail!("{}: include cycle", path.display());
    }
    let text = std::fs::read_to_string(&canonical).with_context(|| format!("reading treefile {}", path.display()))?;
    let mut layer = parse_layer(&text, &path.display().to_string())?;
    layer.dir = canonical.parent().map(Path::to_path_buf).unwrap_or_default();
    for (src, dest) in layer.add_files.take().unwrap_or_default() {
        let abs = layer.dir.join(&src);
        if !abs.is_file() {
            bail!("{}: add-files: source `{src}` not found (looked for {})", path.display(), abs.display());
        }
        layer.resolved_add_files.push(AddFile { src: abs, dest });
    }
    if let Some(d) = layer.debian.as_mut() {
        for p in d.local_packages.take().unwrap_or_default() {
            let found = local_debs(&layer.dir.join(&p))
                .with_context(|| format!("{}: debian.local-packages: `{p}`", path.display()))?;
            d.resolved_local.extend(found);
        }
    }
    sources.push(canonical.clone());
    stack.push(canonical);
    let mut base = Layer::default();
    if let Some(inc) = layer.include.take() {
        for p in inc.paths() {
            let inc_path = layer.dir.join(p);
            if !inc_path.exists() {
                bail!("{}: include `{p}` not found (looked for {})", path.display(), inc_path.display());
            }
            let inc_layer = load_layer(&inc_path, stack, sources)?;
            base = base.merge(inc_layer);
        }
    }
    stack.pop();
    Ok(base.merge(layer))
}

fn cat<T>(a: Option<Vec<T>>, b: Option<Vec<T>>) -> Option<Vec<T>> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            a.extend(b);
            Some(a)
        }
        (a, b) => a.or(b),
    }
}

impl Layer {
    /// Merge `over` on top of `self`: scalars in `over` win, lists concatenate (ours first),
    /// tables merge key by key.
    pub fn merge(self, over: Layer) -> Layer {
        let debian = match (self.debian, over.debian) {
            (Some(a), Some(b)) => Some(DebianLayer {
                suite: b.suite.or(a.suite),
                components: cat(a.components, b.components),
                mirror: b.mirror.or(a.mirror),
                variant: b.variant.or(a.variant),
                local_packages: None,
                resolved_local: [a.resolved_local, b.resolved_local].concat(),
            }),
            (a, b) => b.or(a),
        };
        let metadata = match (self.metadata, over.metadata) {
            (Some(mut a), Some(b)) => {
                a.extend(b);
                Some(a)
            }
            (a, b) => b.or(a),
        };
        let mut resolved_add_files = self.resolved_add_files;
        resolved_add_files.extend(over.resolved_add_files);
        Layer {
            ref_: over.ref_.or(self.ref_),
            automatic_version_prefix: over.automatic_version_prefix.or(self.automatic_version_prefix),
            packages: cat(self.packages, over.packages),
            exclude_packages: cat(self.exclude_packages, over.exclude_packages),
            include: None,
            units: cat(self.units, over.units),
            default_target: over.default_target.or(self.default_target),
            add_files: None,
            remove_files: cat(self.remove_files, over.remove_files),
            postprocess: cat(self.postprocess, over.postprocess),
            metadata,
            debian,
            dir: over.dir,
            resolved_add_files,
        }
    }

    /// Validate a fully merged layer. `path` names the treefile in errors.
    pub fn finish(self, path: &Path, sources: Vec<PathBuf>, arch: Arch) -> Result<Treefile> {
        let name = path.display();
        let ref_name = self
            .ref_
            .ok_or_else(|| anyhow!("{name}: missing required key `ref`"))?
            .replace("${basearch}", arch.basearch);
        validate_ref(&ref_name).map_err(|e| anyhow!("{name}: ref: {e}"))?;
        let packages = dedup(self.packages.unwrap_or_default());
        let exclude_packages = dedup(self.exclude_packages.unwrap_or_default());
        for p in packages.iter().chain(&exclude_packages) {
            validate_package_name(p).map_err(|e| anyhow!("{name}: packages: {e}"))?;
        }
        if let Some(p) = packages.iter().find(|p| exclude_packages.contains(p)) {
            bail!("{name}: package `{p}` is both in packages and exclude-packages");
        }
        let units = dedup(self.units.unwrap_or_default());
        for u in units.iter().chain(&self.default_target) {
            validate_unit_name(u).map_err(|e| anyhow!("{name}: units: {e}"))?;
        }
        let mut add_files = Vec::new();
        for mut f in self.resolved_add_files {
            f.dest = validate_add_dest(&f.dest).map_err(|e| anyhow!("{name}: add-files: {e}"))?;
            add_files.push(f);
        }
        let mut remove_files = Vec::new();
        for r in self.remove_files.unwrap_or_default() {
            remove_files.push(normalize_tree_path(&r).map_err(|e| anyhow!("{name}: remove-files: {e}"))?);
        }
        let metadata = self.metadata.unwrap_or_default();
        if let Some(k) = metadata.keys().find(|k| RESERVED_METADATA.contains(&k.as_str())) {
            bail!("{name}: metadata: key `{k}` is set by compose-tree itself");
        }
        let backend = match self.debian {
            Some(d) => Backend::Debian(d.finish(&name.to_string())?),
            None => bail!("{name}: no package source: add a [debian] table"),
        };
        Ok(Treefile {
            path: path.to_path_buf(),
            sources,
            ref_name,
            automatic_version_prefix: self.automatic_version_prefix,
            packages,
            exclude_packages,
            units,
            default_target: self.default_target,
            add_files,
            remove_files,
            postprocess: self.postprocess.unwrap_or_default(),
            metadata,
            backend,
        })
    }
}

/// Commit metadata keys compose-tree writes; a treefile may not override them.
pub const RESERVED_METADATA: &[&str] =
    &["version", "ostree.bootable", "ostree.linux", "atoll.inputhash", "atoll.packages", "atoll.sizes"];

impl DebianLayer {
    fn finish(self, name: &str) -> Result<DebianSource> {
        let suite = self.suite.ok_or_else(|| anyhow!("{name}: debian: missing required key `suite`"))?;
        if !suite.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || suite.is_empty() {
            bail!("{name}: debian.suite: `{suite}` is not a suite name");
        }
        let components = dedup(self.components.unwrap_or_else(|| vec!["main".into()]));
        if let Some(c) = components.iter().find(|c| c.is_empty() || c.contains(char::is_whitespace)) {
            bail!("{name}: debian.components: `{c}` is not a component name");
        }
        if let Some(m) = &self.mirror {
            let ok = ["http://", "https://", "file:/"].iter().any(|p| m.starts_with(p));
            if !ok || m.contains(char::is_whitespace) {
                bail!("{name}: debian.mirror: `{m}` is not an http(s):// or file:/ URL");
            }
        }
        let variant = self.variant.unwrap_or_else(|| "minbase".into());
        if !["minbase", "required", "important", "standard"].contains(&variant.as_str()) {
            bail!("{name}: debian.variant: `{variant}` is not one of minbase, required, important, standard");
        }
        let mut local_packages = self.resolved_local;
        local_packages.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        if let Some(w) = local_packages.windows(2).find(|w| w[0].file_name == w[1].file_name) {
            bail!(
                "{name}: debian.local-packages: `{}` is named twice ({} and {})",
                w[0].file_name,
                w[0].path.display(),
                w[1].path.display()
            );
        }
        Ok(DebianSource { suite, components, mirror: self.mirror, variant, local_packages })
    }
}

/// The `.deb` files `path` names: itself, or every `*.deb` directly inside it (at least one).
fn local_debs(path: &Path) -> Result<Vec<LocalPackage>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "deb") && p.is_file())
            .collect();
        v.sort();
        if v.is_empty() {
            bail!("no .deb files in {}", path.display());
        }
        v
    } else if path.is_file() && path.extension().is_some_and(|e| e == "deb") {
        vec![path.to_path_buf()]
    } else if path.exists() {
        bail!("{} is neither a .deb file nor a directory", path.display());
    } else {
        bail!("not found (looked for {})", path.display());
    };
    files
        .into_iter()
        .map(|f| {
            let data = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            let sha256 = crate::inputhash::hex(Sha256::digest(&data));
            let file_name = f.file_name().unwrap_or_default().to_string_lossy().into_owned();
            if file_name.contains(char::is_whitespace) {
                bail!("{}: a package file name must not contain white space", f.display());
            }
            Ok(LocalPackage { path: f, file_name, sha256 })
        })
        .collect()
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(v.len());
    for s in v {
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn validate_ref(r: &str) -> Result<()> {
    let ok = !r.is_empty()
        && !r.starts_with('/')
        && !r.ends_with('/')
        && !r.contains("//")
        && r.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(())
    } else {
        bail!("`{r}` is not a valid OSTree ref")
    }
}

/// Debian package names (policy 5.6.1), optionally with `:arch` or `=version`.
fn validate_package_name(p: &str) -> Result<()> {
    let name = p.split(['=', ':']).next().unwrap_or_default();
    let ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
        && !p.contains(char::is_whitespace);
    if ok {
        Ok(())
    } else {
        bail!("`{p}` is not a valid package name")
    }
}

fn validate_unit_name(u: &str) -> Result<()> {
    let ok =
        u.contains('.') && !u.contains('/') && u.chars().all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c));
    if ok {
        Ok(())
    } else {
        bail!("`{u}` is not a systemd unit name")
    }
}

/// Normalise a path inside the tree to a relative form (`usr/share/doc`), refusing `..`.
pub fn normalize_tree_path(p: &str) -> Result<String> {
    let mut parts = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::ParentDir | Component::Prefix(_) => bail!("`{p}` must not contain `..`"),
        }
    }
    if parts.is_empty() {
        bail!("`{p}` names the root of the tree");
    }
    Ok(parts.join("/"))
}

fn validate_add_dest(dest: &str) -> Result<String> {
    if !dest.starts_with('/') {
        bail!("destination `{dest}` must be an absolute path");
    }
    let rel = normalize_tree_path(dest)?;
    let top = rel.split('/').next().unwrap_or_default();
    if !(top == "usr" || top == "etc") || !rel.contains('/') {
        bail!("destination `{dest}` is outside /usr and /etc");
    }
    Ok(format!("/{rel}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARCH: Arch = Arch { basearch: "x86_64", debian: "amd64" };

    fn finish(text: &str) -> Result<Treefile> {
        parse_layer(text, "t.toml")?.finish(Path::new("t.toml"), vec![], ARCH)
    }

    const MIN: &str = "ref = \"atoll/${basearch}/stable\"\n[debian]\nsuite = \"bookworm\"\n";

    #[test]
    fn minimal_treefile_gets_defaults() {
        let t = finish(MIN).unwrap();
        assert_eq!(t.ref_name, "atoll/x86_64/stable");
        let Backend::Debian(d) = &t.backend;
        assert_eq!(d.components, ["main"]);
        assert_eq!(d.variant, "minbase");
        assert_eq!(d.mirror, None);
    }

    #[test]
    fn unknown_key_is_one_line_naming_file_line_and_key() {
        let err = finish("ref = \"a\"\nbogus-key = 1\n").unwrap_err().to_string();
        assert!(err.starts_with("t.toml:2: unknown field `bogus-key`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = finish("ref = \"a\"\n[debian]\nsuite = \"x\"\nsweet = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `sweet`"), "{err}");
    }

    #[test]
    fn rejections_name_the_field() {
        let cases = [
            ("ref = \"a\"\n", "no package source"),
            ("[debian]\nsuite = \"b\"\n", "missing required key `ref`"),
            ("ref = \"a b\"\n[debian]\nsuite = \"b\"\n", "ref: `a b`"),
            ("ref = \"a\"\npackages = [\"Bad Name\"]\n[debian]\nsuite = \"b\"\n", "packages: `Bad Name`"),
            ("ref = \"a\"\nunits = [\"../x.service\"]\n[debian]\nsuite = \"b\"\n", "units:"),
            ("ref = \"a\"\nremove-files = [\"/usr/../etc\"]\n[debian]\nsuite = \"b\"\n", "remove-files:"),
            ("ref = \"a\"\n[metadata]\nversion = \"1\"\n[debian]\nsuite = \"b\"\n", "metadata: key `version`"),
            ("ref = \"a\"\n[debian]\nsuite = \"b\"\nmirror = \"ftp://x\"\n", "debian.mirror"),
            ("ref = \"a\"\n[debian]\n", "debian: missing required key `suite`"),
            ("ref = \"a\"\npackages = [\"x1\"]\nexclude-packages = [\"x1\"]\n[debian]\nsuite = \"b\"\n", "both"),
        ];
        for (text, want) in cases {
            let err = finish(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: got {err}");
            assert!(err.starts_with("t.toml"), "{err}");
        }
    }

    #[test]
    fn add_file_destinations() {
        assert_eq!(validate_add_dest("/etc/motd").unwrap(), "/etc/motd");
        assert_eq!(validate_add_dest("/usr//lib/./x").unwrap(), "/usr/lib/x");
        for bad in ["/var/x", "etc/motd", "/usr", "/usr/../var/x", "/usrx/y", "/"] {
            assert!(validate_add_dest(bad).is_err(), "{bad}");
        }
        let err = validate_add_dest("/var/lib/x").unwrap_err().to_string();
        assert!(err.contains("outside /usr and /etc"), "{err}");
    }

    #[test]
    fn merge_overrides_scalars_and_concatenates_lists() {
        let base = parse_layer(
            "ref = \"base\"\npackages = [\"a1\", \"b1\"]\n[metadata]\nk = \"1\"\nj = \"base\"\n[debian]\nsuite = \"bookworm\"\ncomponents = [\"main\"]\n",
            "b",
        )
        .unwrap();
        let top = parse_layer(
            "ref = \"top\"\npackages = [\"c1\", \"a1\"]\n[metadata]\nj = \"top\"\n[debian]\ncomponents = [\"contrib\"]\n",
            "t",
        )
        .unwrap();
        let t = base.merge(top).finish(Path::new("t"), vec![], ARCH).unwrap();
        assert_eq!(t.ref_name, "top");
        assert_eq!(t.packages, ["a1", "b1", "c1"]);
        assert_eq!(t.metadata["k"], "1");
        assert_eq!(t.metadata["j"], "top");
        let Backend::Debian(d) = &t.backend;
        assert_eq!(d.suite, "bookworm");
        assert_eq!(d.components, ["main", "contrib"]);
    }

    #[test]
    fn load_follows_includes_relative_to_each_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sub/files")).unwrap();
        std::fs::write(d.join("sub/files/motd"), "hi").unwrap();
        std::fs::write(
            d.join("sub/base.toml"),
            "packages = [\"base1\"]\nadd-files = [[\"files/motd\", \"/etc/motd\"]]\n[debian]\nsuite = \"bookworm\"\n",
        )
        .unwrap();
        std::fs::write(d.join("top.toml"), "include = \"sub/base.toml\"\nref = \"r\"\npackages = [\"top1\"]\n")
            .unwrap();
        let t = load(&d.join("top.toml"), ARCH).unwrap();
        assert_eq!(t.packages, ["base1", "top1"]);
        assert_eq!(t.add_files[0].src, d.join("sub/files/motd").canonicalize().unwrap());
        assert_eq!(t.sources.len(), 2);

        std::fs::write(d.join("bad.toml"), "include = \"nope.toml\"\nref = \"r\"\n").unwrap();
        let err = load(&d.join("bad.toml"), ARCH).unwrap_err().to_string();
        assert!(err.contains("include `nope.toml` not found"), "{err}");

        std::fs::write(d.join("cyc.toml"), "include = \"cyc.toml\"\n").unwrap();
        let err = format!("{:#}", load(&d.join("cyc.toml"), ARCH).unwrap_err());
        assert!(err.contains("include cycle"), "{err}");

        std::fs::write(d.join("nosrc.toml"), "add-files = [[\"missing\", \"/etc/x\"]]\n").unwrap();
        let err = load(&d.join("nosrc.toml"), ARCH).unwrap_err().to_string();
        assert!(err.contains("source `missing` not found"), "{err}");
    }
}
