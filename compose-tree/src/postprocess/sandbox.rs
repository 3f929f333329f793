//! Running programs inside the tree being composed: a bubblewrap sandbox with the tree as `/`,
//! fresh /proc, /dev, /tmp and /run, and no network.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use atoll_utils::cmd;

/// A command that runs `argv` with `root` as its root directory, without network access.
pub fn command(root: &Path, argv: &[&str]) -> Command {
    let mut c = Command::new("bwrap");
    c.arg("--bind")
        .arg(root)
        .arg("/")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run"])
        .args(["--unshare-all", "--die-with-parent", "--new-session", "--chdir", "/"])
        .args(["--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin"])
        .args(["--setenv", "LC_ALL", "C.UTF-8", "--setenv", "HOME", "/root"])
        .args(argv);
    c
}

/// Run each `postprocess` script (index-numbered in errors) inside the tree.
pub fn run_scripts(root: &Path, scripts: &[String], mut on_line: impl FnMut(&str)) -> Result<()> {
    for (i, script) in scripts.iter().enumerate() {
        let file = tempfile::Builder::new()
            .prefix("atoll-postprocess")
            .tempfile()
            .context("creating postprocess script file")?;
        std::fs::write(file.path(), script).with_context(|| format!("writing {}", file.path().display()))?;
        let interp = if script.starts_with("#!") {
            script.lines().next().unwrap_or_default()[2..].trim().to_string()
        } else {
            "/bin/sh".to_string()
        };
        let mut argv: Vec<&str> = interp.split_whitespace().collect();
        argv.push("/tmp/.atoll-postprocess");
        let mut c = Command::new("bwrap");
        // Same sandbox as `command`, plus the script bound read-only into the fresh /tmp.
        let inner = command(root, &[]);
        c.args(inner.get_args());
        c.arg("--ro-bind").arg(file.path()).arg("/tmp/.atoll-postprocess").args(&argv);
        cmd::run_streaming(&mut c, &mut on_line)
            .with_context(|| format!("treefile postprocess script #{} failed", i + 1))?;
    }
    Ok(())
}

/// Enable `units` and set the default target, with the tree's own systemctl.
pub fn enable_units(root: &Path, units: &[String], default_target: Option<&str>) -> Result<()> {
    if units.is_empty() && default_target.is_none() {
        return Ok(());
    }
    if !root.join("usr/bin/systemctl").exists() {
        anyhow::bail!("treefile names units but the tree has no systemctl (add systemd to packages)");
    }
    for u in units {
        cmd::run(&mut command(root, &["systemctl", "--root=/", "enable", u]))
            .with_context(|| format!("enabling unit `{u}` (treefile units)"))?;
    }
    if let Some(t) = default_target {
        cmd::run(&mut command(root, &["systemctl", "--root=/", "set-default", t]))
            .with_context(|| format!("setting default-target `{t}`"))?;
    }
    Ok(())
}
