//! Reading the build host's apt sources (one-line and deb822) and writing the sources a compose
//! uses. With no `debian.mirror`, a compose uses whatever archive the build host itself uses.

use std::path::Path;

use anyhow::{bail, Result};

/// One `deb` source: where, which suites, and the key that signs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub signed_by: Option<String>,
}

/// Parse a deb822 `.sources` file.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for para in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in para.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.clone());
        let words = |k: &str| get(k).map(|v| v.split_whitespace().map(String::from).collect::<Vec<_>>());
        if get("enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        if !words("types").unwrap_or_default().iter().any(|t| t == "deb") {
            continue;
        }
        let (Some(uris), Some(suites)) = (words("uris"), words("suites")) else { continue };
        // An inline key block is not a path; leave those to the host's trusted keys.
        let signed_by = get("signed-by").filter(|s| s.starts_with('/') && !s.contains(' '));
        out.push(Source { uris, suites, signed_by });
    }
    out
}

/// Parse one-line `sources.list` format.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ").or_else(|| line.strip_prefix("deb\t")) else { continue };
        let mut rest = rest.trim();
        let mut signed_by = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, tail)) = opts.split_once(']') else { continue };
            for o in opts.split_whitespace() {
                if let Some(v) = o.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = tail.trim();
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else { continue };
        out.push(Source { uris: vec![uri.into()], suites: vec![suite.into()], signed_by });
    }
    out
}

/// Every enabled `deb` source the host's apt uses, read from `etc_apt` (normally `/etc/apt`).
pub fn host_sources(etc_apt: &Path) -> Vec<Source> {
    let mut out = Vec::new();
    if let Ok(t) = std::fs::read_to_string(etc_apt.join("sources.list")) {
        out.extend(parse_one_line(&t));
    }
    let mut files: Vec<_> =
        std::fs::read_dir(etc_apt.join("sources.list.d")).into_iter().flatten().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in files {
        let Ok(t) = std::fs::read_to_string(&f) else { continue };
        match f.extension().and_then(|e| e.to_str()) {
            Some("list") => out.extend(parse_one_line(&t)),
            Some("sources") => out.extend(parse_deb822(&t)),
            _ => {}
        }
    }
    out
}

/// True for `suite` itself and its companions (`bookworm-updates`, `bookworm-security`,
/// the old `bookworm/updates`).
fn serves(host_suite: &str, suite: &str) -> bool {
    host_suite == suite
        || host_suite.strip_prefix(suite).is_some_and(|rest| rest.starts_with('-') || rest.starts_with('/'))
}

/// The deb822 text for a compose of `suite`/`components`: from `mirror` when given, otherwise
/// from every host source that serves `suite` or its updates/security companions.
pub fn compose_sources(host: &[Source], suite: &str, components: &[String], mirror: Option<&str>) -> Result<String> {
    let comps = components.join(" ");
    if let Some(m) = mirror {
        return Ok(format!("Types: deb\nURIs: {m}\nSuites: {suite}\nComponents: {comps}\n"));
    }
    let mut text = String::new();
    for s in host {
        let suites: Vec<&str> = s.suites.iter().map(String::as_str).filter(|h| serves(h, suite)).collect();
        if suites.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {comps}\n",
            s.uris.join(" "),
            suites.join(" ")
        ));
        if let Some(k) = &s.signed_by {
            text.push_str(&format!("Signed-By: {k}\n"));
        }
    }
    if text.is_empty() {
        bail!(
            "no apt source of this build host serves suite `{suite}` (read /etc/apt/sources.list and sources.list.d); set debian.mirror in the treefile"
        );
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# a comment\nURIs: http://archive.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb deb-src\nURIs: http://security.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nEnabled: no\nURIs: http://off.example\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://other.example\nSuites: nodistro\nComponents: main\n";

    #[test]
    fn deb822_keeps_enabled_deb_entries() {
        let s = parse_deb822(DEB822);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/usr/share/keyrings/debian-archive-keyring.gpg"));
        assert_eq!(s[1].signed_by, None);
    }

    #[test]
    fn one_line_with_options() {
        let s = parse_one_line(
            "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main contrib\ndeb-src http://b bookworm main\ndeb http://c.example/debian bookworm-updates main # c\n",
        );
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uris, ["http://a.example/debian"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(s[1].suites, ["bookworm-updates"]);
    }

    #[test]
    fn compose_sources_picks_suite_and_companions() {
        let host = parse_deb822(DEB822);
        let text = compose_sources(&host, "bookworm", &["main".into(), "contrib".into()], None).unwrap();
        assert!(text.contains("Suites: bookworm bookworm-updates\nComponents: main contrib"), "{text}");
        assert!(text.contains("Suites: bookworm-security\n"), "{text}");
        assert!(!text.contains("nodistro"), "{text}");
        assert!(!text.contains("off.example"), "{text}");
        let err = compose_sources(&host, "trixie", &["main".into()], None).unwrap_err().to_string();
        assert!(err.contains("suite `trixie`"), "{err}");
    }

    #[test]
    fn mirror_overrides_host() {
        let text = compose_sources(&[], "bookworm", &["main".into()], Some("http://127.0.0.1:1/d")).unwrap();
        assert_eq!(text, "Types: deb\nURIs: http://127.0.0.1:1/d\nSuites: bookworm\nComponents: main\n");
    }

    #[test]
    fn companion_suites() {
        assert!(serves("bookworm", "bookworm"));
        assert!(serves("bookworm-security", "bookworm"));
        assert!(serves("bookworm/updates", "bookworm"));
        assert!(!serves("bookwormx", "bookworm"));
        assert!(!serves("trixie", "bookworm"));
    }
}
