//! A minimal qemu-guest-agent client over QEMU's unix socket: sync, `guest-exec` and
//! `guest-exec-status`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::ExecOutput;

struct Conn {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Conn {
    fn open(sock: &Path, timeout: Duration) -> Result<Conn> {
        let stream = UnixStream::connect(sock).with_context(|| format!("connecting to {}", sock.display()))?;
        stream.set_read_timeout(Some(timeout))?;
        let reader = BufReader::new(stream.try_clone()?);
        let mut c = Conn { stream, reader };
        // guest-sync flushes anything stale and proves the agent is there.
        let id: u64 = std::process::id() as u64 * 1000 + (Instant::now().elapsed().as_nanos() % 1000) as u64;
        c.send(&json!({"execute": "guest-sync", "arguments": {"id": id}}))?;
        loop {
            let v = c.recv()?;
            if v["return"] == json!(id) {
                return Ok(c);
            }
        }
    }

    fn send(&mut self, v: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(v)?;
        line.push(b'\n');
        self.stream.write_all(&line).context("writing to the guest agent")
    }

    fn recv(&mut self) -> Result<Value> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line).context("reading from the guest agent")?;
            if n == 0 {
                bail!("the guest agent closed the connection");
            }
            // Sync responses may be preceded by a 0xFF delimiter; skip noise lines.
            let trimmed = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{ff}');
            if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
                return Ok(v);
            }
        }
    }

    fn call(&mut self, v: &Value) -> Result<Value> {
        self.send(v)?;
        let r = self.recv()?;
        if let Some(e) = r.get("error") {
            bail!("guest agent: {}", e["desc"].as_str().unwrap_or("error"));
        }
        Ok(r["return"].clone())
    }
}

/// Is the agent answering?
pub fn ping(sock: &Path, timeout: Duration) -> Result<()> {
    Conn::open(sock, timeout).map(drop)
}

fn start(conn: &mut Conn, script: &str, capture: bool) -> Result<i64> {
    let r = conn.call(&json!({
        "execute": "guest-exec",
        "arguments": {"path": "/bin/sh", "arg": ["-c", script], "capture-output": capture}
    }))?;
    r["pid"].as_i64().ok_or_else(|| anyhow!("guest-exec returned no pid"))
}

/// Run `script` and wait for it; stdout/stderr decoded from base64.
pub fn exec(sock: &Path, script: &str, timeout: Duration) -> Result<ExecOutput> {
    let mut conn = Conn::open(sock, Duration::from_secs(30))?;
    let pid = start(&mut conn, script, true)?;
    let deadline = Instant::now() + timeout;
    loop {
        let s = conn.call(&json!({"execute": "guest-exec-status", "arguments": {"pid": pid}}))?;
        if s["exited"] == json!(true) {
            let dec = |k: &str| -> Result<String> {
                let b = s[k].as_str().unwrap_or("");
                let bytes = base64::engine::general_purpose::STANDARD.decode(b).context("decoding guest output")?;
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            };
            let code = s["exitcode"].as_i64().or_else(|| s["signal"].as_i64().map(|sig| 128 + sig)).unwrap_or(-1);
            return Ok(ExecOutput { code, stdout: dec("out-data")?, stderr: dec("err-data")? });
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Write `data` to `path` in the guest (guest-file-open/write/close), in 48 KiB chunks.
pub fn write_file(sock: &Path, path: &str, data: &[u8]) -> Result<()> {
    let mut conn = Conn::open(sock, Duration::from_secs(60))?;
    let handle = conn.call(&json!({"execute": "guest-file-open", "arguments": {"path": path, "mode": "w"}}))?;
    let handle = handle.as_i64().ok_or_else(|| anyhow!("guest-file-open returned no handle"))?;
    for chunk in data.chunks(48 << 10) {
        let b64 = base64::engine::general_purpose::STANDARD.encode(chunk);
        conn.call(&json!({"execute": "guest-file-write", "arguments": {"handle": handle, "buf-b64": b64}}))?;
    }
    conn.call(&json!({"execute": "guest-file-close", "arguments": {"handle": handle}}))?;
    Ok(())
}

/// Start `script` without waiting (for reboot/poweroff, which end the agent).
pub fn exec_nowait(sock: &Path, script: &str) -> Result<()> {
    let mut conn = Conn::open(sock, Duration::from_secs(30))?;
    start(&mut conn, script, false).map(drop)
}
