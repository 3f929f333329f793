//! Reading the dpkg status database of a built tree: the authoritative package list.

use std::path::Path;

use anyhow::{Context, Result};

use super::Package;

/// The installed packages in a dpkg `status` file, sorted by name.
pub fn parse_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut installed = false;
        for line in para.lines() {
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k {
                    "Package" => name = Some(v.to_string()),
                    "Version" => version = Some(v.to_string()),
                    "Architecture" => arch = Some(v.to_string()),
                    "Status" => installed = v.ends_with(" installed"),
                    _ => {}
                }
            }
        }
        if let (true, Some(name), Some(version), Some(arch)) = (installed, name, version, arch) {
            out.push(Package { name, version, arch });
        }
    }
    out.sort();
    out
}

/// The packages installed in the tree whose dpkg database is at `admindir`.
pub fn read_installed(admindir: &Path) -> Result<Vec<Package>> {
    let path = admindir.join("status");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(parse_status(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_installed_packages_are_listed() {
        let text = "Package: zlib1g\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 1:1.2.13.dfsg-1\nDescription: x\n multi\n\nPackage: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\nPackage: base-files\nStatus: install ok installed\nArchitecture: amd64\nVersion: 12.4+deb12u5\n";
        let p = parse_status(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].name, "base-files");
        assert_eq!(p[1].version, "1:1.2.13.dfsg-1");
        assert_eq!(p[1].arch, "amd64");
    }
}
