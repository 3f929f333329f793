//! Booted tests for Atoll images: QEMU (TCG here; no KVM) with the serial console captured to a
//! file, commands run in the guest through qemu-guest-agent's `guest-exec`, reboots followed
//! across QEMU restarts, and timeouts everywhere.
//!
//! - [`Vm::boot`] starts QEMU on a copy-on-write overlay of the image (the image itself is never
//!   changed), with `-no-reboot` so a guest reboot ends QEMU and [`Vm::reboot`] starts it again on
//!   the same overlay: state persists across reboots exactly as on a real disk.
//! - [`Vm::wait_ready`] waits for the guest agent and `systemctl is-system-running --wait`, while
//!   [`Console`] watches the serial log for `Kernel panic`, emergency mode, `dracut: Refusing` and
//!   failed units, failing the test at the first sign.
//! - [`Vm::exec`] runs a command and returns its exit code, stdout and stderr.
//! - A boot that shows no kernel output in time is retried once (about 1 boot in 16 hangs early
//!   under TCG here); a boot whose console stops moving for [`VmConfig::hang_timeout`] before the
//!   guest agent answers fails at once.
//! - Power cuts: [`Vm::power_cut`] kills QEMU with SIGKILL at any moment (the disk keeps what the
//!   guest wrote; it is opened with `cache=writeback` by default, so the guest's flushes reach the
//!   host), [`Vm::power_on`] boots the same disk again and [`Vm::save_disk`] keeps a copy of it
//!   (qcow2, or raw for inspection with host tools).

mod console;
pub mod fixtures;
mod qga;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use atoll_utils::cmd;

pub use console::Console;

/// Which firmware boots the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS, QEMU's default.
    Bios,
    /// OVMF from Debian's `ovmf` package.
    Uefi,
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub firmware: Firmware,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Guest port 22 → this loopback port, and other forwards (host port, guest port).
    pub forwards: Vec<(u16, u16)>,
    /// How long a boot may take to reach a ready system.
    pub boot_timeout: Duration,
    /// How long after start the kernel must have printed something, or the boot is retried.
    pub early_timeout: Duration,
    /// Make the guest's disk this big (bytes) instead of the image's size, to test growing.
    pub disk_size: Option<u64>,
    /// QEMU's disk cache mode. `writeback` honours the guest's flushes; `unsafe` ignores them.
    pub cache: &'static str,
    /// A boot fails when its console shows nothing new for this long before the agent answers.
    pub hang_timeout: Duration,
}

impl Default for VmConfig {
    fn default() -> Self {
        VmConfig {
            firmware: Firmware::Bios,
            memory_mib: 1024,
            cpus: 2,
            forwards: Vec::new(),
            boot_timeout: Duration::from_secs(420),
            early_timeout: Duration::from_secs(120),
            disk_size: None,
            cache: "writeback",
            hang_timeout: Duration::from_secs(240),
        }
    }
}

/// The result of [`Vm::exec`].
#[derive(Debug, Clone)]
pub struct ExecOutput {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// A running (or between reboots, stopped) VM.
pub struct Vm {
    cfg: VmConfig,
    dir: tempfile::TempDir,
    overlay: PathBuf,
    vars: Option<PathBuf>,
    child: Option<Child>,
    boots: u32,
    console: Console,
}

const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

impl Vm {
    /// Boot `image` (qcow2 or raw) on a fresh overlay and wait until the kernel has started.
    pub fn boot(image: &Path, cfg: VmConfig) -> Result<Vm> {
        let dir = tempfile::Builder::new().prefix("vmtest-").tempdir().context("creating VM directory")?;
        let overlay = dir.path().join("overlay.qcow2");
        let fmt = if image.extension().is_some_and(|e| e == "qcow2") { "qcow2" } else { "raw" };
        let image = image.canonicalize().with_context(|| format!("finding {}", image.display()))?;
        cmd::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", fmt, "-b"])
                .arg(&image)
                .arg(&overlay)
                .args(cfg.disk_size.map(|s| s.to_string())),
        )
        .with_context(|| format!("creating an overlay on {}", image.display()))?;
        let vars = match cfg.firmware {
            Firmware::Uefi => {
                let v = dir.path().join("OVMF_VARS.fd");
                std::fs::copy(OVMF_VARS, &v).with_context(|| format!("copying {OVMF_VARS}"))?;
                Some(v)
            }
            Firmware::Bios => None,
        };
        let console = Console::new(dir.path().join("console-1.log"));
        let mut vm = Vm { cfg, dir, overlay, vars, child: None, boots: 0, console };
        vm.start_with_retry()?;
        Ok(vm)
    }

    /// The serial console of the current boot.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// How many times QEMU has been started (1 + reboots + retries).
    pub fn boots(&self) -> u32 {
        self.boots
    }

    fn qga_socket(&self) -> PathBuf {
        self.dir.path().join("qga.sock")
    }

    fn start(&mut self) -> Result<()> {
        self.boots += 1;
        self.console = Console::new(self.dir.path().join(format!("console-{}.log", self.boots)));
        let mut c = Command::new("qemu-system-x86_64");
        c.args(["-accel", "tcg", "-no-reboot", "-nodefaults", "-display", "none", "-vga", "none"])
            .args(["-m", &self.cfg.memory_mib.to_string(), "-smp", &self.cfg.cpus.to_string()])
            .arg("-serial")
            .arg(format!("file:{}", self.console.path().display()))
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=qcow2,cache={}", self.overlay.display(), self.cfg.cache))
            .arg("-chardev")
            .arg(format!("socket,path={},server=on,wait=off,id=qga0", self.qga_socket().display()))
            .args(["-device", "virtio-serial", "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0"]);
        let mut nic = "user,model=virtio-net-pci".to_string();
        for (host, guest) in &self.cfg.forwards {
            nic.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
        }
        c.args(["-nic", &nic]);
        if let Some(vars) = &self.vars {
            c.arg("-drive").arg(format!("if=pflash,format=raw,readonly=on,file={OVMF_CODE}"));
            c.arg("-drive").arg(format!("if=pflash,format=raw,file={}", vars.display()));
        }
        tracing::info!(boot = self.boots, "starting qemu");
        let err_log = self.dir.path().join(format!("qemu-{}.err", self.boots));
        let err_file = std::fs::File::create(&err_log).with_context(|| format!("creating {}", err_log.display()))?;
        let child = cmd::spawn(c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err_file))
            .context("starting qemu-system-x86_64")?;
        self.child = Some(child);
        Ok(())
    }

    fn start_with_retry(&mut self) -> Result<()> {
        for attempt in 1..=2 {
            self.start()?;
            let (console, early) = (self.console.clone(), self.cfg.early_timeout);
            match console.wait_for("Linux version", early, || self.qemu_alive()) {
                Ok(()) => return Ok(()),
                Err(e) if attempt == 1 => {
                    tracing::warn!("boot {} showed no kernel in time, retrying once: {e:#}", self.boots);
                    self.kill();
                }
                Err(e) => return Err(e.context("the kernel did not start, twice")),
            }
        }
        unreachable!()
    }

    /// The QEMU process's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Cut the power: SIGKILL QEMU wherever the guest is. The disk keeps what reached it.
    pub fn power_cut(&mut self) {
        self.kill();
    }

    /// Boot the same disk again after [`Vm::power_cut`] (or a shutdown) and wait for the kernel.
    pub fn power_on(&mut self) -> Result<()> {
        self.kill();
        self.start_with_retry()
    }

    /// Start `script` in the guest without waiting for it (e.g. `systemctl reboot`, during which
    /// the agent goes away).
    pub fn spawn(&mut self, script: &str) -> Result<()> {
        qga::exec_nowait(&self.qga_socket(), script).with_context(|| format!("starting `{script}` in the guest"))
    }

    /// Whether QEMU is running.
    pub fn running(&mut self) -> bool {
        self.qemu_alive()
    }

    /// Copy the guest's disk as it is now (QEMU stopped) to `to`: a standalone raw image when
    /// `to` ends in `.raw` (sparse; for debugfs or grub-fstest), else qcow2.
    pub fn save_disk(&self, to: &Path) -> Result<()> {
        let fmt = if to.extension().is_some_and(|e| e == "raw") { "raw" } else { "qcow2" };
        cmd::run(Command::new("qemu-img").args(["convert", "-O", fmt]).arg(&self.overlay).arg(to))
            .with_context(|| format!("saving the disk to {}", to.display()))
    }

    fn qemu_alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.qga_socket());
    }

    /// Wait for the guest agent and a fully started system with no failed unit. Fails early on
    /// a panic, emergency mode or failed unit on the console.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + self.cfg.boot_timeout;
        let sock = self.qga_socket();
        let (mut seen, mut moved) = (0usize, Instant::now());
        loop {
            self.console.check()?;
            if !self.qemu_alive() {
                bail!("QEMU exited during boot; console: {}", self.console.tail(15));
            }
            let len = self.console.printed();
            if len != seen {
                (seen, moved) = (len, Instant::now());
            } else if moved.elapsed() > self.cfg.hang_timeout {
                bail!(
                    "the boot hung: no console output for {:?}; console: {}",
                    self.cfg.hang_timeout,
                    self.console.tail(15)
                );
            }
            if qga::ping(&sock, Duration::from_secs(5)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the guest agent did not answer within {:?}; console: {}",
                    self.cfg.boot_timeout,
                    self.console.tail(15)
                );
            }
            std::thread::sleep(Duration::from_secs(2));
        }
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(30));
        let state = self.exec_timeout("systemctl is-system-running --wait", left)?;
        let failed = self.exec("systemctl --failed --no-legend --plain")?;
        if state.stdout.trim() != "running" || !failed.stdout.trim().is_empty() {
            bail!("system is {:?}; failed units: {}", state.stdout.trim(), failed.stdout.trim());
        }
        self.console.check()
    }

    /// Run `script` with `/bin/sh -c` in the guest.
    pub fn exec(&mut self, script: &str) -> Result<ExecOutput> {
        self.exec_timeout(script, Duration::from_secs(300))
    }

    /// Run `script` with a timeout.
    pub fn exec_timeout(&mut self, script: &str, timeout: Duration) -> Result<ExecOutput> {
        qga::exec(&self.qga_socket(), script, timeout).with_context(|| format!("running `{script}` in the guest"))
    }

    /// Run `script` and require exit 0; returns stdout.
    pub fn run(&mut self, script: &str) -> Result<String> {
        let out = self.exec(script)?;
        if out.code != 0 {
            bail!("`{script}` exited {} in the guest: {}{}", out.code, out.stdout, out.stderr);
        }
        Ok(out.stdout)
    }

    /// Copy the local file `from` to `to` in the guest, with permission bits `mode`.
    pub fn copy_in(&mut self, from: &Path, to: &str, mode: u32) -> Result<()> {
        let data = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        qga::write_file(&self.qga_socket(), to, &data).with_context(|| format!("writing {to} in the guest"))?;
        self.run(&format!("chmod {mode:o} '{to}'")).map(drop)
    }

    /// Reboot the guest (a clean systemd reboot: shutdown services such as ostree's finalize
    /// run), then start QEMU again on the same disk and wait for the kernel.
    pub fn reboot(&mut self) -> Result<()> {
        let _ = qga::exec_nowait(&self.qga_socket(), "systemctl reboot");
        self.wait_exit(Duration::from_secs(180))?;
        self.start_with_retry()
    }

    /// Power the guest off and wait for QEMU to exit.
    pub fn shutdown(&mut self) -> Result<()> {
        let _ = qga::exec_nowait(&self.qga_socket(), "systemctl poweroff");
        self.wait_exit(Duration::from_secs(180))
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while self.qemu_alive() {
            if Instant::now() > deadline {
                self.kill();
                bail!("the guest did not shut down within {timeout:?}; console: {}", self.console.tail(15));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.child = None;
        let _ = std::fs::remove_file(self.qga_socket());
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("vmtest: console of boot {}:\n{}", self.boots, self.console.tail(60));
        }
    }
}
