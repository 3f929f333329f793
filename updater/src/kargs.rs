//! `host kargs`: edit kernel arguments by making a new deployment of the same commit.

use anyhow::{bail, Result};

/// An edit to a kernel command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Add `K=V` (or `K`).
    Append(String),
    /// Remove every `K` / `K=...` (given `K`), or exactly `K=V` (given `K=V`).
    Delete(String),
    /// Replace the value of every `K=...` with `K=V`.
    Replace(String),
}

fn key(arg: &str) -> &str {
    arg.split_once('=').map_or(arg, |(k, _)| k)
}

/// Apply `edits` in order to `current` (ostree's own `ostree=` argument is dropped: libostree
/// adds it back for the new deployment).
pub fn apply(current: &str, edits: &[Edit]) -> Result<Vec<String>> {
    let mut args: Vec<String> = current.split_whitespace().filter(|a| key(a) != "ostree").map(String::from).collect();
    for e in edits {
        match e {
            Edit::Append(a) => args.push(a.clone()),
            Edit::Delete(d) => {
                let before = args.len();
                if d.contains('=') {
                    args.retain(|a| a != d);
                } else {
                    args.retain(|a| key(a) != d);
                }
                if args.len() == before {
                    bail!("kernel argument `{d}` is not set");
                }
            }
            Edit::Replace(r) => {
                let k = key(r);
                let mut found = false;
                for a in args.iter_mut().filter(|a| key(a) == k) {
                    *a = r.clone();
                    found = true;
                }
                if !found {
                    bail!("kernel argument `{k}` is not set, nothing to replace");
                }
            }
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits() {
        let cur = "root=LABEL=root rw console=ttyS0 quiet ostree=/ostree/boot.1/a/b/0";
        let out = apply(
            cur,
            &[Edit::Append("foo=bar".into()), Edit::Delete("quiet".into()), Edit::Replace("console=tty0".into())],
        )
        .unwrap();
        assert_eq!(out, ["root=LABEL=root", "rw", "console=tty0", "foo=bar"]);
        assert!(apply(cur, &[Edit::Delete("nosuch".into())]).unwrap_err().to_string().contains("`nosuch` is not set"));
        assert!(apply(cur, &[Edit::Replace("nosuch=1".into())]).is_err());
        assert_eq!(apply("a=1 a=2", &[Edit::Delete("a=1".into())]).unwrap(), ["a=2"]);
    }
}
