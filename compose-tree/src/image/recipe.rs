//! The image recipe (`image.toml`): disk size, stateroot, kernel arguments, root filesystem,
//! the update remote written into the image, and the formats to build.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Raw,
    Qcow2,
}

/// Root filesystem types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RootFs {
    Ext4,
    Xfs,
}

impl RootFs {
    pub fn name(self) -> &'static str {
        match self {
            RootFs::Ext4 => "ext4",
            RootFs::Xfs => "xfs",
        }
    }
}

/// The `[remote]` table: where the booted host's `host upgrade` pulls from.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Remote {
    pub name: String,
    pub url: String,
    /// ASCII-armored or binary public key file, relative to the recipe. Absent: no GPG check
    /// (only allowed with `gpg-verify = false`, said explicitly).
    pub gpg_key: Option<String>,
    #[serde(default = "yes")]
    pub gpg_verify: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRecipe {
    size: String,
    os_name: String,
    #[serde(default)]
    kernel_args: Vec<String>,
    #[serde(default = "ext4")]
    root_fs: RootFs,
    #[serde(default = "qcow2")]
    formats: Vec<Format>,
    remote: Remote,
}

fn ext4() -> RootFs {
    RootFs::Ext4
}
fn qcow2() -> Vec<Format> {
    vec![Format::Qcow2]
}

/// A validated recipe.
#[derive(Debug, Clone, Serialize)]
pub struct Recipe {
    #[serde(skip)]
    pub path: PathBuf,
    pub size_bytes: u64,
    pub os_name: String,
    pub kernel_args: Vec<String>,
    pub root_fs: RootFs,
    pub formats: Vec<Format>,
    pub remote: Remote,
    /// The GPG key file resolved against the recipe's directory.
    #[serde(skip)]
    pub gpg_key_path: Option<PathBuf>,
}

/// Smallest disk we build: partitions take 512 MiB, and a tree needs room.
pub const MIN_SIZE: u64 = 2 << 30;

/// `"8G"`, `"512M"`, `"10737418240"` → bytes.
pub fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => bail!("`{s}`: unknown size suffix `{c}` (use K, M, G or T)"),
            };
            (&s[..i], mult)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| anyhow!("`{s}` is not a size"))?;
    n.checked_mul(mult).ok_or_else(|| anyhow!("`{s}` is too large"))
}

/// Parse recipe text; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Recipe> {
    let name = path.display();
    let raw: RawRecipe = crate::treefile::parse_toml(text, &name.to_string())?;
    let size_bytes = parse_size(&raw.size).map_err(|e| anyhow!("{name}: size: {e}"))?;
    if size_bytes < MIN_SIZE {
        bail!("{name}: size: {} is smaller than the 2G minimum", raw.size);
    }
    let os_ok = !raw.os_name.is_empty() && raw.os_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
    if !os_ok {
        bail!("{name}: os-name: `{}` must be letters, digits, - and _", raw.os_name);
    }
    if let Some(k) = raw.kernel_args.iter().find(|k| k.is_empty() || k.contains(char::is_whitespace)) {
        bail!("{name}: kernel-args: `{k}` must be one argument without spaces");
    }
    if let Some(k) = raw.kernel_args.iter().find(|k| k.starts_with("ostree=") || k.starts_with("root=")) {
        bail!("{name}: kernel-args: `{k}` is set by the image builder");
    }
    if raw.formats.is_empty() {
        bail!("{name}: formats: name at least one of raw, qcow2");
    }
    let r = &raw.remote;
    if r.name.is_empty() || !r.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        bail!("{name}: remote.name: `{}` is not a remote name", r.name);
    }
    if !["http://", "https://", "file:/"].iter().any(|p| r.url.starts_with(p)) {
        bail!("{name}: remote.url: `{}` is not an http(s):// or file:/ URL", r.url);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let gpg_key_path = match (&r.gpg_key, r.gpg_verify) {
        (Some(k), _) => {
            let p = dir.join(k);
            if !p.is_file() {
                bail!("{name}: remote.gpg-key: `{k}` not found (looked for {})", p.display());
            }
            Some(p)
        }
        (None, true) => {
            bail!("{name}: remote: gpg-verify is on but no gpg-key is given (set gpg-verify = false to go without)")
        }
        (None, false) => None,
    };
    Ok(Recipe {
        path: path.to_path_buf(),
        size_bytes,
        os_name: raw.os_name,
        kernel_args: raw.kernel_args,
        root_fs: raw.root_fs,
        formats: raw.formats,
        remote: raw.remote,
        gpg_key_path,
    })
}

/// Read and parse the recipe at `path`.
pub fn load(path: &Path) -> Result<Recipe> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading image recipe {}", path.display()))?;
    parse(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "size = \"4G\"\nos-name = \"atoll\"\nkernel-args = [\"console=ttyS0,115200\"]\n[remote]\nname = \"atoll\"\nurl = \"http://10.0.2.2:8080/repo\"\ngpg-verify = false\n";

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("4X").is_err());
        assert!(parse_size("G").is_err());
    }

    #[test]
    fn defaults() {
        let r = parse(OK, Path::new("i.toml")).unwrap();
        assert_eq!(r.root_fs, RootFs::Ext4);
        assert_eq!(r.formats, [Format::Qcow2]);
        assert_eq!(r.gpg_key_path, None);
        assert!(!r.remote.gpg_verify);
    }

    #[test]
    fn rejections_name_file_and_field() {
        let cases = [
            (OK.replace("4G", "1G"), "size: 1G is smaller"),
            (OK.replace("\"atoll\"\nkernel", "\"at oll\"\nkernel"), "os-name"),
            (OK.replace("console=ttyS0,115200", "root=/dev/sda"), "kernel-args: `root=/dev/sda`"),
            (OK.replace("http://10.0.2.2:8080/repo", "ftp://x"), "remote.url"),
            (OK.replace("gpg-verify = false\n", ""), "no gpg-key"),
            (OK.replace("gpg-verify = false\n", "gpg-key = \"nope.asc\"\n"), "remote.gpg-key: `nope.asc` not found"),
            (format!("{OK}bogus = 1\n"), "unknown field `bogus`"),
            (OK.replace("size = \"4G\"\n", "size = \"4G\"\nroot-fs = \"btrfs\"\n"), "unknown variant `btrfs`"),
        ];
        for (text, want) in cases {
            let err = parse(&text, Path::new("i.toml")).unwrap_err().to_string();
            assert!(err.starts_with("i.toml") && err.contains(want), "want {want}: {err}");
        }
    }
}
