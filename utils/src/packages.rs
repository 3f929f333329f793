//! Package lists stored in commits and the differences between them: `compose-tree` writes the
//! list (`atoll.packages`, `a(sss)` of name, version, architecture) and reads it for `db list` /
//! `db diff`; `host upgrade --preview` reads it on the machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The commit metadata key holding a commit's package list.
pub const METADATA_KEY: &str = "atoll.packages";

/// One installed (or to-be-installed) package.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub version: String,
    pub arch: String,
}

/// The package list of a commit object (empty when the commit carries none).
pub fn of_commit(commit: &glib::Variant) -> Vec<Package> {
    glib::VariantDict::new(Some(&commit.child_value(0)))
        .lookup::<Vec<(String, String, String)>>(METADATA_KEY)
        .ok()
        .flatten()
        .unwrap_or_default()
        .into_iter()
        .map(|(name, version, arch)| Package { name, version, arch })
        .collect()
}

/// A package whose version (or architecture) differs between two commits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    pub name: String,
    pub from: String,
    pub to: String,
    pub arch: String,
}

/// What changed from one package list to another.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Diff {
    pub added: Vec<Package>,
    pub removed: Vec<Package>,
    pub changed: Vec<Changed>,
}

/// Compare package lists by name.
pub fn diff(old: &[Package], new: &[Package]) -> Diff {
    let o: BTreeMap<&str, &Package> = old.iter().map(|p| (p.name.as_str(), p)).collect();
    let n: BTreeMap<&str, &Package> = new.iter().map(|p| (p.name.as_str(), p)).collect();
    let mut d = Diff::default();
    for (name, p) in &n {
        match o.get(name) {
            None => d.added.push((*p).clone()),
            Some(q) if q.version != p.version || q.arch != p.arch => d.changed.push(Changed {
                name: name.to_string(),
                from: q.version.clone(),
                to: p.version.clone(),
                arch: p.arch.clone(),
            }),
            Some(_) => {}
        }
    }
    d.removed = o.iter().filter(|(k, _)| !n.contains_key(*k)).map(|(_, p)| (*p).clone()).collect();
    d
}

/// Human-readable rendering, in rpm-ostree's style.
pub fn render(d: &Diff) -> String {
    let mut s = String::new();
    if !d.changed.is_empty() {
        s.push_str("Changed:\n");
        for c in &d.changed {
            s.push_str(&format!("  {} {} -> {}\n", c.name, c.from, c.to));
        }
    }
    if !d.removed.is_empty() {
        s.push_str("Removed:\n");
        for p in &d.removed {
            s.push_str(&format!("  {}-{}.{}\n", p.name, p.version, p.arch));
        }
    }
    if !d.added.is_empty() {
        s.push_str("Added:\n");
        for p in &d.added {
            s.push_str(&format!("  {}-{}.{}\n", p.name, p.version, p.arch));
        }
    }
    if s.is_empty() {
        s.push_str("No package changes.\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: &str, v: &str) -> Package {
        Package { name: n.into(), version: v.into(), arch: "amd64".into() }
    }

    #[test]
    fn diff_added_removed_changed() {
        let d = diff(&[p("a", "1"), p("b", "1"), p("c", "1")], &[p("a", "1"), p("b", "2"), p("d", "1")]);
        assert_eq!(d.added, [p("d", "1")]);
        assert_eq!(d.removed, [p("c", "1")]);
        assert_eq!(d.changed, [Changed { name: "b".into(), from: "1".into(), to: "2".into(), arch: "amd64".into() }]);
        let text = render(&d);
        assert!(text.contains("Added:\n  d-1.amd64"), "{text}");
        assert!(text.contains("  b 1 -> 2"), "{text}");
        assert_eq!(render(&Diff::default()), "No package changes.\n");
    }
}
