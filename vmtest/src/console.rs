//! The serial console log of one boot: waiting for markers and spotting failures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

/// Lines that end a test at once.
pub const FATAL: &[&str] =
    &["Kernel panic", "emergency mode", "Entering emergency", "dracut: Refusing", "Failed to start", "FAILED"];

/// A console log file written by QEMU.
#[derive(Debug, Clone)]
pub struct Console {
    path: PathBuf,
}

impl Console {
    pub fn new(path: PathBuf) -> Self {
        Console { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything printed so far (ANSI colour codes kept).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.path).unwrap_or_default()).into_owned()
    }

    /// How many bytes have been printed so far.
    pub fn printed(&self) -> usize {
        std::fs::metadata(&self.path).map_or(0, |m| m.len() as usize)
    }

    /// The last `n` lines, joined for an error message.
    pub fn tail(&self, n: usize) -> String {
        let t = self.text();
        let lines: Vec<&str> = t.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Fail if the console shows any [`FATAL`] line.
    pub fn check(&self) -> Result<()> {
        check_text(&self.text())
    }

    /// Wait until `marker` appears, failing on a fatal line, a timeout, or `alive` turning false.
    pub fn wait_for(&self, marker: &str, timeout: Duration, mut alive: impl FnMut() -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let t = self.text();
            check_text(&t)?;
            if t.contains(marker) {
                return Ok(());
            }
            if !alive() {
                bail!("QEMU exited before `{marker}` appeared; console: {}", self.tail(15));
            }
            if Instant::now() > deadline {
                bail!("`{marker}` did not appear on the console within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The first fatal line in `text`, as an error.
pub fn check_text(text: &str) -> Result<()> {
    for line in text.lines() {
        if let Some(f) = FATAL.iter().find(|f| line.contains(*f)) {
            bail!("console shows `{f}`: {}", strip_ansi(line).trim());
        }
    }
    Ok(())
}

/// Remove ANSI escape sequences for readable errors.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_lines_are_caught() {
        assert!(check_text("[  OK  ] Reached target multi-user.target\n").is_ok());
        let err =
            check_text("ok\n[\u{1b}[0;1;31mFAILED\u{1b}[0m] Failed to start \u{1b}[0;1;39mssh.service\u{1b}[0m.\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("Failed to start ssh.service") || err.contains("FAILED] Failed to start ssh.service"),
            "{err}"
        );
        assert!(check_text("[    1.0] Kernel panic - not syncing: VFS").is_err());
        assert!(check_text("You are in emergency mode. After logging in").is_err());
        assert!(check_text("dracut: Refusing to continue").is_err());
    }

    #[test]
    fn wait_for_sees_marker_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let c = Console::new(dir.path().join("c.log"));
        std::fs::write(c.path(), "Linux version 6.1\n").unwrap();
        c.wait_for("Linux version", Duration::from_secs(1), || true).unwrap();
        let err = c.wait_for("never", Duration::from_millis(600), || true).unwrap_err().to_string();
        assert!(err.contains("did not appear"), "{err}");
        let err = c.wait_for("never", Duration::from_secs(5), || false).unwrap_err().to_string();
        assert!(err.contains("QEMU exited"), "{err}");
    }
}
