//! Running external programs with logged command lines and stderr captured into errors.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

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
    if !a.is_empty()
        && a.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
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
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("spawning {}", cmd.get_program().to_string_lossy()))?;
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
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer2)
        .spawn()
        .with_context(|| format!("spawning {}", cmd.get_program().to_string_lossy()))?;
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
        bail!(
            "{} failed ({}): {}",
            cmd.get_program().to_string_lossy(),
            status,
            Vec::from(last).join(" | ")
        );
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
        let err = run(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]))
            .unwrap_err()
            .to_string();
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
        run_streaming(Command::new("sh").args(["-c", "echo a; echo b >&2; echo c"]), |l| {
            seen.push(l.to_string())
        })
        .unwrap();
        assert_eq!(seen, ["a", "b", "c"]);
        let err = run_streaming(Command::new("sh").args(["-c", "echo x; echo boom >&2; exit 4"]), |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("x | boom"), "{err}");
    }

    #[test]
    fn stdout_is_returned() {
        assert_eq!(run_stdout(Command::new("echo").arg("hi")).unwrap(), "hi\n");
    }
}
