//! One menu slot: the GRUB configuration listing the deployments, newest first, as ostree's own
//! boot entries describe them (title, kernel, initramfs, arguments). Rendering is pure.

/// A boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub title: String,
    /// Kernel and initramfs paths as ostree wrote them, relative to the boot partition.
    pub linux: String,
    pub initrd: Option<String>,
    /// Kernel arguments, one per element.
    pub args: Vec<String>,
}

/// Quote `s` for GRUB's shell-like parser: single quotes hold everything but a single quote.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The configuration of a slot: the first entry is the default; a short timeout on the serial
/// and the graphical console.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from("# Written by Atoll (host boot-sync); do not edit.\nset default=0\nset timeout=1\n");
    for (i, e) in entries.iter().enumerate() {
        out.push_str(&format!("menuentry {} --id {} {{\n", quote(&e.title), quote(&format!("atoll-{i}"))));
        let args: Vec<String> = e.args.iter().map(|a| quote(a)).collect();
        out.push_str(&format!("  linux {} {}\n", quote(&e.linux), args.join(" ")));
        if let Some(initrd) = &e.initrd {
            out.push_str(&format!("  initrd {}\n", quote(initrd)));
        }
        out.push_str("}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(title: &str) -> Entry {
        Entry {
            title: title.into(),
            linux: "/ostree/debian-abc/vmlinuz-6.1.0-28-amd64".into(),
            initrd: Some("/ostree/debian-abc/initramfs-6.1.0-28-amd64.img".into()),
            args: vec!["root=LABEL=root".into(), "rw".into(), "ostree=/ostree/boot-1/debian/abc.0".into()],
        }
    }

    #[test]
    fn renders_default_first_and_quotes() {
        let text = render(&[entry("Atoll 2 (ostree:0)"), entry("it's $old; `x`")]);
        assert!(text.contains("set default=0"));
        assert!(text.find("Atoll 2").unwrap() < text.find("it'").unwrap());
        assert!(text.contains(r"menuentry 'it'\''s $old; `x`' --id 'atoll-1' {"));
        assert!(text.contains("  linux '/ostree/debian-abc/vmlinuz-6.1.0-28-amd64' 'root=LABEL=root' 'rw' "));
    }

    /// GRUB's own parser accepts what we write.
    #[test]
    fn grub_script_check_accepts_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("slot.cfg");
        std::fs::write(&p, render(&[entry("Atoll 2"), entry("it's $old; `x` {}")])).unwrap();
        atoll_utils::cmd::run(std::process::Command::new("grub-script-check").arg(&p)).unwrap();
        std::fs::write(&p, "menuentry 'x' {\n").unwrap();
        assert!(atoll_utils::cmd::run(std::process::Command::new("grub-script-check").arg(&p)).is_err());
    }
}
