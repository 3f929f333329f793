//! Test fixtures shared by Atoll's integration tests: a GPG signing key and an HTTP server on
//! 127.0.0.1 (Python's http.server) for serving OSTree repositories.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use atoll_utils::cmd::{self, run_stdout as run};

/// A GnuPG home holding one ed25519 signing key.
pub struct GpgKey {
    pub homedir: PathBuf,
    /// The key's fingerprint, usable as a key ID.
    pub id: String,
    /// The ASCII-armored public key.
    pub public: PathBuf,
}

/// Make a signing key named `name` under `dir`.
pub fn gpg_key(dir: &Path, name: &str) -> Result<GpgKey> {
    let homedir = dir.join(format!("gnupg-{name}"));
    std::fs::create_dir_all(&homedir)?;
    std::fs::set_permissions(&homedir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    let gpg = || {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&homedir).arg("--batch");
        c
    };
    run(gpg().args([
        "--passphrase",
        "",
        "--quick-gen-key",
        &format!("Atoll {name} <{name}@atoll.invalid>"),
        "ed25519",
        "sign",
        "never",
    ]))?;
    let list = run(gpg().args(["--list-keys", "--with-colons"]))?;
    let id = list
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .and_then(|l| l.split(':').nth(9))
        .context("no fingerprint in gpg --list-keys")?
        .to_string();
    let public = dir.join(format!("{name}.asc"));
    std::fs::write(&public, run(gpg().args(["--armor", "--export", &id]))?)?;
    Ok(GpgKey { homedir, id, public })
}

/// An HTTP server on 127.0.0.1, stopped on drop.
pub struct HttpServer {
    child: Child,
    pub port: u16,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serve `dir` over HTTP on a free loopback port.
pub fn serve(dir: &Path) -> Result<HttpServer> {
    serve_slowly(dir, std::time::Duration::ZERO)
}

/// Serve `dir` over HTTP on a free loopback port, answering each request only after `delay`
/// (several at a time): a slow link, so a test can interrupt a pull half way.
pub fn serve_slowly(dir: &Path, delay: std::time::Duration) -> Result<HttpServer> {
    const SERVER: &str = r#"
import functools, http.server, sys, time
class H(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        time.sleep(float(sys.argv[2]))
        super().do_GET()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), functools.partial(H, directory=sys.argv[3])).serve_forever()
"#;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let child = cmd::spawn(
        Command::new("python3")
            .args(["-c", SERVER, &port.to_string(), &delay.as_secs_f64().to_string()])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .context("starting a python3 http.server")?;
    let server = HttpServer { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(server);
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("http.server on 127.0.0.1:{port} did not start")
}
