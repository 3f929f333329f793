//! The input hash: one SHA-256 over everything that decides a compose's result, so an unchanged
//! input is recognised before anything is built (rpm-ostree's `rpmostree.inputhash`).

use std::os::unix::fs::PermissionsExt;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use crate::backend::Package;
use crate::treefile::Treefile;

/// Bumped whenever compose-tree changes what it does to a tree, so an upgrade of the tool
/// itself produces a new commit.
pub const LAYOUT_VERSION: u32 = 1;

/// Hash the normalised treefile (includes already merged, paths resolved), the content and mode
/// of every `add-files` source, and the resolved package versions.
pub fn compute(tf: &Treefile, packages: &[Package]) -> Result<String> {
    let mut h = Sha256::new();
    h.update(format!("atoll-compose-layout {LAYOUT_VERSION}\n"));
    h.update(serde_json::to_vec(tf).context("serialising treefile")?);
    for f in &tf.add_files {
        let data = std::fs::read(&f.src).with_context(|| format!("reading add-files source {}", f.src.display()))?;
        let mode = std::fs::metadata(&f.src)?.permissions().mode() & 0o7777;
        h.update(format!("\nadd-file {} {mode:o} {}\n", f.dest, data.len()));
        h.update(&data);
    }
    for p in packages {
        h.update(format!("\npkg {} {} {}", p.name, p.version, p.arch));
    }
    Ok(hex(h.finalize()))
}

/// Lower-case hex of a digest, as checksums are written everywhere in compose-tree.
pub fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::treefile::{parse_layer, Arch};
    use std::path::Path;

    fn tf(text: &str) -> Treefile {
        parse_layer(text, "t").unwrap().finish(Path::new("t"), vec![], Arch::host()).unwrap()
    }

    #[test]
    fn hash_follows_inputs() {
        let base = "ref = \"r\"\npackages = [\"aa\"]\n[debian]\nsuite = \"bookworm\"\n";
        let p1 = vec![Package { name: "aa".into(), version: "1".into(), arch: "amd64".into() }];
        let mut p2 = p1.clone();
        p2[0].version = "2".into();
        let a = compute(&tf(base), &p1).unwrap();
        assert_eq!(a, compute(&tf(base), &p1).unwrap());
        assert_ne!(a, compute(&tf(base), &p2).unwrap(), "package version change");
        let other = base.replace("[\"aa\"]", "[\"aa\", \"bb\"]");
        assert_ne!(a, compute(&tf(&other), &p1).unwrap(), "treefile change");
        // Comments and key order are not inputs.
        let reordered = "# hi\npackages = [\"aa\"]\nref = \"r\"\n[debian]\nsuite = \"bookworm\"\n";
        assert_eq!(a, compute(&tf(reordered), &p1).unwrap());
    }
}
