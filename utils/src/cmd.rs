//! Running external programs with logged command lines and stderr captured into errors; a
//! program that is not installed is named with the Debian package that provides it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use anyhow::{anyhow, bail, Context, Result};

/// The programs Atoll spawns and their Debian packages (`PROGRAM PACKAGE [host]` lines), shared
/// with `ci/setup.sh`, which checks each is on PATH.
pub const PROGRAMS: &str = include_str!("programs.txt");

/// One row of [`PROGRAMS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Program {
    pub name: &'static str,
    pub package: &'static str,
    /// Run only on a booted Atoll host, not on the build machine.
    pub host_only: bool,
}

/// The rows of [`PROGRAMS`], comments and blank lines skipped.
pub fn programs() -> impl Iterator<Item = Program> {
    PROGRAMS.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).filter_map(|l| {
        let mut f = l.split_whitespace();
        Some(Program { name: f.next()?, package: f.next()?, host_only: f.next() == Some("host") })
    })
}

/// The Debian package that provides `program` (a name or a path), if the table lists it.
pub fn package_of(program: &str) -> Option<&'static str> {
    let name = Path::new(program).file_name()?.to_str()?;
    programs().find(|p| p.name == name).map(|p| p.package)
}

/// The error for a program that could not be started: when it is not installed, a one-line
/// message naming the program and its package; otherwise the OS error.
pub fn spawn_error(cmd: &Command, err: std::io::Error) -> anyhow::Error {
    let program = cmd.get_program().to_string_lossy();
    if let Some(dir) = cmd.get_current_dir().filter(|d| !d.is_dir()) {
        return anyhow::Error::new(err).context(format!("spawning {program} in {}", dir.display()));
    }
    if err.kind() == std::io::ErrorKind::NotFound {
        let hint = match package_of(&program) {
            Some(pkg) => format!("install the Debian package {pkg} (ci/setup.sh installs it)"),
            None => "it is not a known Atoll dependency".to_string(),
        };
        anyhow!("{program} is not installed (not found on PATH): {hint}")
    } else {
        anyhow::Error::new(err).context(format!("spawning {program}"))
    }
}

/// Where `program` is found as an executable file: on PATH, or given as a path, at that path.
pub fn which(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let exec = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        return exec(Path::new(program)).then(|| PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(program)).find(|p| exec(p))
}

/// Whether `program` is an executable file on PATH (or, given as a path, at that path).
pub fn on_path(program: &str) -> bool {
    which(program).is_some()
}

/// Check, before any work starts, that every program in `programs` is installed; `what` names
/// the work ("building an image"). The error is one line naming each missing program and its
/// Debian package.
pub fn require(what: &str, programs: &[&str]) -> Result<()> {
    let missing: Vec<String> = programs
        .iter()
        .filter(|p| !on_path(p))
        .map(|p| match package_of(p) {
            Some(pkg) => format!("{p} (Debian package {pkg})"),
            None => p.to_string(),
        })
        .collect();
    if !missing.is_empty() {
        bail!("{what} needs programs that are not installed: {}; ci/setup.sh installs them", missing.join(", "));
    }
    Ok(())
}

/// Spawn `cmd` as it is configured (for long-running children), logging its command line.
pub fn spawn(cmd: &mut Command) -> Result<Child> {
    let line = display(cmd);
    tracing::debug!(command = %line, "spawning");
    cmd.spawn().map_err(|e| spawn_error(cmd, e))
}

/// How many trailing stderr lines end up in an error message.
const STDERR_TAIL_LINES: usize = 3;

/// Render a command line for logs and error messages.
pub fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(a));
    }
    s
}

fn shell_quote(a: &OsStr) -> String {
    let a = a.to_string_lossy();
    if !a.is_empty() && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c)) {
        a.into_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

/// The last non-empty lines of `text`, joined with " | " so an error stays on one line.
pub fn tail(text: &[u8], lines: usize) -> String {
    let text = String::from_utf8_lossy(text);
    let mut v: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let start = v.len().saturating_sub(lines);
    v.drain(..start);
    v.join(" | ")
}

/// Run `cmd` to completion, capturing stdout and stderr. Fails (naming the program and the
/// tail of its stderr) unless it exits 0.
pub fn run_capture(cmd: &mut Command) -> Result<Output> {
    let line = display(cmd);
    tracing::debug!(command = %line, "running");
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| spawn_error(cmd, e))?;
    if !out.status.success() {
        tracing::debug!(command = %line, stderr = %String::from_utf8_lossy(&out.stderr), "failed");
        bail!(
            "{} failed ({}): {}",
            cmd.get_program().to_string_lossy(),
            out.status,
            tail(if out.stderr.is_empty() { &out.stdout } else { &out.stderr }, STDERR_TAIL_LINES)
        );
    }
    Ok(out)
}

/// Like [`run_capture`] but returns stdout as a string.
pub fn run_stdout(cmd: &mut Command) -> Result<String> {
    let out = run_capture(cmd)?;
    String::from_utf8(out.stdout).context("command output is not UTF-8")
}

/// Run `cmd`, handing each line it prints on stdout or stderr to `on_line` as it comes (for
/// progress). Fails like [`run_capture`], with the last lines printed in the error.
pub fn run_streaming(cmd: &mut Command, mut on_line: impl FnMut(&str)) -> Result<()> {
    use std::io::{BufRead, BufReader};
    let line = display(cmd);
    tracing::debug!(command = %line, "running");
    // One pipe for both streams keeps their order; a thread per stream would not.
    let (reader, writer) = std::io::pipe().context("creating pipe")?;
    let writer2 = writer.try_clone().context("cloning pipe")?;
    let mut child = cmd.stdin(Stdio::null()).stdout(writer).stderr(writer2).spawn().map_err(|e| spawn_error(cmd, e))?;
    // Drop our copies of the write end so the read loop ends when the child exits.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut last: std::collections::VecDeque<String> = Default::default();
    for l in BufReader::new(reader).lines() {
        let l = l.context("reading command output")?;
        tracing::trace!(target: "cmd", "{l}");
        on_line(&l);
        if !l.trim().is_empty() {
            if last.len() == STDERR_TAIL_LINES {
                last.pop_front();
            }
            last.push_back(l.trim().to_string());
        }
    }
    let status = child.wait().context("waiting for child")?;
    if !status.success() {
        bail!("{} failed ({}): {}", cmd.get_program().to_string_lossy(), status, Vec::from(last).join(" | "));
    }
    Ok(())
}

/// Run `cmd`, discarding stdout.
pub fn run(cmd: &mut Command) -> Result<()> {
    run_capture(cmd).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_program_and_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"])).unwrap_err().to_string();
        assert!(err.starts_with("sh failed"), "{err}");
        assert!(err.contains("one | two"), "{err}");
        assert!(err.contains('3'), "{err}");
    }

    #[test]
    fn display_quotes_only_when_needed() {
        let mut c = Command::new("echo");
        c.args(["a-b", "two words", "it's"]);
        assert_eq!(display(&c), r#"echo a-b 'two words' 'it'\''s'"#);
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail(b"a\n\nb\nc\nd\n", 2), "c | d");
        assert_eq!(tail(b"", 2), "");
    }

    #[test]
    fn streaming_sees_lines_in_order_and_reports_failure() {
        let mut seen = Vec::new();
        run_streaming(Command::new("sh").args(["-c", "echo a; echo b >&2; echo c"]), |l| seen.push(l.to_string()))
            .unwrap();
        assert_eq!(seen, ["a", "b", "c"]);
        let err = run_streaming(Command::new("sh").args(["-c", "echo x; echo boom >&2; exit 4"]), |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("x | boom"), "{err}");
    }

    #[test]
    fn table_maps_programs_to_packages() {
        assert_eq!(package_of("qemu-img"), Some("qemu-utils"));
        assert_eq!(package_of("/usr/bin/qemu-system-x86_64"), Some("qemu-system-x86"));
        assert_eq!(package_of("mkfs.xfs"), Some("xfsprogs"));
        assert_eq!(package_of("systemctl"), Some("systemd"));
        assert_eq!(package_of("no-such-tool"), None);
        for l in PROGRAMS.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(matches!(f.as_slice(), [_, _] | [_, _, "host"]), "programs.txt: bad line {l:?}");
        }
    }

    /// PATH without the program, as on a machine where its package is not installed: every
    /// runner gives one line naming the program and its package.
    #[test]
    fn missing_program_names_its_package() {
        let empty = std::env::temp_dir().join(format!("atoll-empty-path-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let mk = || {
            let mut c = Command::new("qemu-img");
            c.arg("--version").env("PATH", &empty);
            c
        };
        let errs = [
            run(&mut mk()).unwrap_err(),
            run_streaming(&mut mk(), |_| {}).unwrap_err(),
            spawn(&mut mk()).map(drop).unwrap_err(),
        ];
        std::fs::remove_dir(&empty).unwrap();
        for e in errs {
            let msg = format!("{e:#}");
            assert_eq!(
                msg,
                "qemu-img is not installed (not found on PATH): install the Debian package qemu-utils (ci/setup.sh installs it)"
            );
        }
        assert!(on_path("sh") && on_path("/bin/sh") && !on_path("atoll-no-such-tool") && !on_path("/nonexistent/sh"));
        require("testing", &["sh", "true"]).unwrap();
        let err =
            format!("{:#}", require("testing", &["sh", "atoll-no-such-tool", "/nonexistent/mkfs.xfs"]).unwrap_err());
        assert_eq!(
            err,
            "testing needs programs that are not installed: atoll-no-such-tool, /nonexistent/mkfs.xfs (Debian package xfsprogs); ci/setup.sh installs them"
        );
        let err = format!("{:#}", run(&mut Command::new("atoll-no-such-tool")).unwrap_err());
        assert!(err.contains("atoll-no-such-tool is not installed") && !err.contains('\n'), "{err}");
        // A missing working directory is not a missing program.
        let err = format!("{:#}", run(Command::new("true").current_dir("/nonexistent-dir")).unwrap_err());
        assert!(err.starts_with("spawning true in /nonexistent-dir"), "{err}");
    }

    /// Every program the workspace spawns by a literal name (`Command::new` of a string) is in the table, so
    /// setup installs it and a missing one is reported with its package.
    #[test]
    fn every_spawned_program_is_listed() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy();
                if p.is_dir() && !name.starts_with('.') && name != "target" && name != "build" {
                    dirs.push(p);
                } else if name.ends_with(".rs") {
                    files.push(p);
                }
            }
        }
        assert!(files.len() > 20, "found only {} sources under {}", files.len(), root.display());
        let mut unlisted = Vec::new();
        let needle = "Command::new(\"";
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            for (i, _) in text.match_indices(needle) {
                let rest = &text[i + needle.len()..];
                let prog = &rest[..rest.find('"').unwrap()];
                if package_of(prog).is_none() {
                    unlisted.push(format!("{prog} ({})", f.display()));
                }
            }
        }
        // Spawned through a helper that takes the name (compose-tree's apt runner).
        assert_eq!(package_of("apt-get"), Some("apt"));
        unlisted.retain(|u| !u.starts_with("atoll-no-such-tool "));
        assert!(unlisted.is_empty(), "spawned but not in programs.txt: {unlisted:?}");
    }

    #[test]
    fn stdout_is_returned() {
        assert_eq!(run_stdout(Command::new("echo").arg("hi")).unwrap(), "hi\n");
    }
}
