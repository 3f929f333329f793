//! GRUB's environment block (`grubenv`): a 1024-byte file of `KEY=VALUE` lines padded with `#`,
//! which GRUB's `load_env` reads and `save_env` rewrites in place. Atoll rewrites it the same way
//! (never truncated, never renamed), so switching it changes one data block and no metadata.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// The size GRUB requires of an environment block.
pub const SIZE: usize = 1024;
const HEADER: &str = "# GRUB Environment Block\n";

/// The variables of a block, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env(pub Vec<(String, String)>);

impl Env {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Set `key`, keeping its place if present so the bytes before it do not move.
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }
}

/// Parse a block as GRUB does: the header, then `KEY=VALUE` lines; `#` lines are padding.
pub fn parse(bytes: &[u8]) -> Result<Env> {
    if bytes.len() != SIZE {
        bail!("is {} bytes, a GRUB environment block is {SIZE}", bytes.len());
    }
    let text = std::str::from_utf8(bytes).context("is not UTF-8")?;
    let body = text.strip_prefix(HEADER).context("does not start with the GRUB environment block header")?;
    let mut env = Env::default();
    for line in body.split('\n') {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').with_context(|| format!("line `{line}` is not KEY=VALUE"))?;
        env.0.push((k.to_string(), v.to_string()));
    }
    Ok(env)
}

/// Render `env` as a block (GRUB's escaping of `\` and newline is not needed: values are checked).
pub fn render(env: &Env) -> Result<[u8; SIZE]> {
    let mut text = String::from(HEADER);
    for (k, v) in &env.0 {
        if k.is_empty() || k.contains(['=', '\n', '\\', '#']) || v.contains(['\n', '\\']) {
            bail!("grubenv variable `{k}={v}` has a character the block cannot hold");
        }
        text.push_str(&format!("{k}={v}\n"));
    }
    if text.len() > SIZE {
        bail!("grubenv variables take {} bytes, more than the {SIZE}-byte block", text.len());
    }
    let mut out = [b'#'; SIZE];
    out[..text.len()].copy_from_slice(text.as_bytes());
    Ok(out)
}

/// Read the block at `path`.
pub fn read(path: &Path) -> Result<Env> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&bytes).with_context(|| format!("{}", path.display()))
}

/// Create the block at `path` (image build): written with data, not preallocated, so its blocks
/// are ordinary written extents that later in-place rewrites do not convert.
pub fn create(path: &Path, env: &Env) -> Result<()> {
    let bytes = render(env)?;
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(&bytes).and_then(|()| f.sync_all()).with_context(|| format!("writing {}", path.display()))
}

/// Rewrite the existing block at `path` in place and wait until its data is on disk. The file
/// keeps its inode and its blocks: a reader that ignores the filesystem journal (GRUB) sees the
/// old block or the new one.
pub fn write_in_place(path: &Path, env: &Env) -> Result<()> {
    let bytes = render(env)?;
    let f =
        std::fs::OpenOptions::new().write(true).open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata().with_context(|| format!("reading {}", path.display()))?.len();
    if len != SIZE as u64 {
        bail!("{} is {len} bytes, a GRUB environment block is {SIZE}", path.display());
    }
    f.write_all_at(&bytes, 0).and_then(|()| f.sync_data()).with_context(|| format!("rewriting {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_in_place_keeps_offsets() {
        let mut env = Env::default();
        env.set("atoll_slot", "a");
        env.set("other", "x y");
        let a = render(&env).unwrap();
        assert_eq!(parse(&a).unwrap(), env);
        env.set("atoll_slot", "b");
        let b = render(&env).unwrap();
        // Switching the slot changes exactly one byte, in the first sector.
        let diff: Vec<usize> = (0..SIZE).filter(|&i| a[i] != b[i]).collect();
        assert_eq!(diff.len(), 1);
        assert!(diff[0] < 512);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let mut env = Env::default();
        env.set("k", &"v".repeat(SIZE));
        assert!(render(&env).unwrap_err().to_string().contains("more than"));
        env.set("k", "a\nb");
        assert!(render(&env).is_err());
        assert!(parse(b"short").is_err());
        assert!(parse(&[b'#'; SIZE]).unwrap_err().to_string().contains("header"));
    }

    /// GRUB's own tool reads what we write, and we read what it writes.
    #[test]
    fn grub_editenv_agrees() {
        if !atoll_utils::cmd::on_path("grub-editenv") {
            panic!("grub-editenv is not installed: run ci/setup.sh");
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grubenv");
        let mut env = Env::default();
        env.set("atoll_slot", "b");
        create(&p, &env).unwrap();
        let out = atoll_utils::cmd::run_stdout(std::process::Command::new("grub-editenv").arg(&p).arg("list")).unwrap();
        assert_eq!(out.trim(), "atoll_slot=b");
        atoll_utils::cmd::run(std::process::Command::new("grub-editenv").arg(&p).args(["set", "boot_counter=3"]))
            .unwrap();
        let env = read(&p).unwrap();
        assert_eq!((env.get("atoll_slot"), env.get("boot_counter")), (Some("b"), Some("3")));
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&p).unwrap().ino();
        let mut env = env;
        env.set("atoll_slot", "a");
        write_in_place(&p, &env).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().ino(), ino);
        assert_eq!(read(&p).unwrap().get("atoll_slot"), Some("a"));
    }
}
