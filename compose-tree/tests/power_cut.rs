//! Power cuts while an Atoll host moves between versions (issue 28): the reference image boots
//! under QEMU, `host deploy` stages the other version, and QEMU is killed with SIGKILL at a chosen
//! moment: during the pull, after staging, in the finalizing shutdown (timed from the end of
//! `ostree admin finalize-staged`), or early in the next boot. After each cut:
//! - `/boot` read as GRUB reads it (grub-fstest, no journal replay) names a menu slot whose
//!   default kernel and initramfs are complete;
//! - the host boots the old or the new version within the boot timeout with no failed unit;
//! - the boot loader's default is ostree's default deployment (`host boot-sync` finds nothing to
//!   do), and the next cut starts from there, so every trial also checks that staging again works.
//!
//! Trials run in chains, one VM per firmware. `ATOLL_POWER_CUTS` picks them: unset, the fixed set
//! `.ci/run` runs; `window:B:U` B cuts on BIOS and U on UEFI spread over the finalize window;
//! `random:N[:SEED]` N cuts at random phases and moments (`ci/power-cut.sh`). A trial that fails
//! keeps its disk in the test's scratch directory and prints its path.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use atoll_utils::cmd;
use compose_tree::image::disk;
use vmtest::{fixtures, Firmware, Vm, VmConfig};

const BIN: &str = env!("CARGO_BIN_EXE_compose-tree");

/// Where a cut happens.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// `host deploy` is pulling: cut after this long.
    Pull(Duration),
    /// `host deploy` has returned with the deployment staged.
    Staged,
    /// The finalizing shutdown: this long after `ostree admin finalize-staged` returned.
    Finalize(Duration),
    /// The boot after a clean finalizing reboot: this long after the kernel started.
    EarlyBoot(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Cut {
    firmware: Firmware,
    phase: Phase,
}

/// One row of the results table.
struct Row {
    cut: Cut,
    from: String,
    to: String,
    booted: String,
    grub_default: String,
    ok: Result<(), String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn compose(treefile: &Path, repo: &Path) -> String {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-cache");
    let out = Command::new(BIN)
        .args(["compose"])
        .arg(treefile)
        .arg("--repo")
        .arg(repo)
        .arg("--cachedir")
        .arg(cache)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "compose: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["version"].as_str().unwrap().to_string()
}

/// A tiny deterministic generator for random cuts (no dependency for one test).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn plan() -> Vec<Cut> {
    let ms = Duration::from_millis;
    let spec = std::env::var("ATOLL_POWER_CUTS").unwrap_or_default();
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.as_slice() {
        [""] => vec![
            Cut { firmware: Firmware::Bios, phase: Phase::Finalize(ms(0)) },
            Cut { firmware: Firmware::Bios, phase: Phase::Finalize(ms(700)) },
            Cut { firmware: Firmware::Uefi, phase: Phase::Finalize(ms(350)) },
        ],
        ["window", b, u] => {
            let (b, u): (u64, u64) = (b.parse().unwrap(), u.parse().unwrap());
            // Spread over 0..2.5 s after finalize-staged returned: the boot-sync, the rest of the
            // shutdown and the unmount of /boot.
            let spread =
                |n: u64, fw| (0..n).map(move |i| Cut { firmware: fw, phase: Phase::Finalize(ms(i * 2500 / n)) });
            spread(b, Firmware::Bios).chain(spread(u, Firmware::Uefi)).collect()
        }
        ["random", n, rest @ ..] => {
            let n: u64 = n.parse().unwrap();
            let seed = rest.first().map_or(0x5eed_a7011, |s| s.parse().unwrap());
            let mut rng = Rng(seed);
            let mut cuts: Vec<Cut> = (0..n)
                .map(|_| {
                    let firmware = if rng.below(3) == 0 { Firmware::Uefi } else { Firmware::Bios };
                    let phase = match rng.below(10) {
                        0 => Phase::Pull(ms(rng.below(8000))),
                        1 => Phase::Staged,
                        2 => Phase::EarlyBoot(ms(rng.below(20000))),
                        _ => Phase::Finalize(ms(rng.below(3000))),
                    };
                    Cut { firmware, phase }
                })
                .collect();
            cuts.sort_by_key(|c| c.firmware == Firmware::Uefi);
            cuts
        }
        _ => panic!("ATOLL_POWER_CUTS={spec}: expected window:BIOS:UEFI or random:N[:SEED]"),
    }
}

/// The guest's version.
fn version(vm: &mut Vm) -> String {
    vm.run(". /usr/lib/os-release && echo $IMAGE_VERSION").unwrap().trim().to_string()
}

/// Markers on the serial console around the boot switch at shutdown: after ostree's finalize
/// (a drop-in sorted before Atoll's) and after Atoll's boot-sync (sorted after it).
const MARK_FINALIZED: &str = "ATOLL-TEST-FINALIZED";
const MARK_SWITCHED: &str = "ATOLL-TEST-SWITCHED";

fn install_markers(vm: &mut Vm) {
    let d = "/etc/systemd/system/ostree-finalize-staged.service.d";
    vm.run(&format!(
        "mkdir -p {d} && printf '[Service]\\nExecStop=/bin/sh -c \"echo {MARK_FINALIZED} > /dev/ttyS0\"\\n' > {d}/00-atoll-test.conf \
         && printf '[Service]\\nExecStop=/bin/sh -c \"echo {MARK_SWITCHED} > /dev/ttyS0\"\\n' > {d}/zz-atoll-test.conf \
         && systemctl daemon-reload"
    ))
    .unwrap();
}

/// Wait for `marker` on the console (polling fast: the cut's timing depends on it).
fn wait_marker(vm: &mut Vm, marker: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if vm.console().text().contains(marker) {
            return Ok(());
        }
        if !vm.running() {
            return Err(format!("QEMU exited before `{marker}`: {}", vm.console().tail(10)));
        }
        if Instant::now() > deadline {
            return Err(format!("`{marker}` not seen within {timeout:?}: {}", vm.console().tail(10)));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `/boot` as GRUB reads it (no journal replay): the slot grubenv names, and its default entry's
/// title, after reading its kernel and initramfs in full. Errors name what is missing.
fn grub_view(vm: &Vm, scratch: &Path) -> Result<String, String> {
    let raw = scratch.join("disk.raw");
    vm.save_disk(&raw).map_err(|e| format!("{e:#}"))?;
    let part = format!("(loop0,gpt{})", disk::PART_BOOT);
    let fstest = |verb: &str, path: &str| {
        cmd::run_stdout(Command::new("grub-fstest").arg(&raw).arg(verb).arg(format!("{part}{path}")))
            .map_err(|e| format!("GRUB cannot {verb} {path}: {e:#}"))
    };
    let env = fstest("cat", "/grub/grubenv")?;
    let slot = if env.contains("\natoll_slot=b\n") { "b" } else { "a" };
    let menu = fstest("cat", &format!("/atoll/slot-{slot}.cfg"))?;
    let title = menu.lines().find_map(|l| l.strip_prefix("menuentry '")).and_then(|l| l.split('\'').next());
    let title = title.ok_or(format!("slot {slot} has no menu entry: {menu}"))?.to_string();
    for key in ["linux", "initrd"] {
        let line = menu.lines().find(|l| l.trim_start().starts_with(&format!("{key} ")));
        let path = line.and_then(|l| l.split('\'').nth(1)).ok_or(format!("slot {slot}: no {key}"))?;
        fstest("crc", path)?;
    }
    let _ = std::fs::remove_file(&raw);
    Ok(format!("slot {slot}: {title}"))
}

/// After the host came back: ostree's default is what GRUB's active slot boots first, and the
/// boot-time sync left nothing to do.
fn invariants(vm: &mut Vm) -> Result<(), String> {
    let sync = vm.run("host boot-sync --json").map_err(|e| format!("{e:#}"))?;
    let sync: serde_json::Value = serde_json::from_str(&sync).unwrap();
    if sync["switched"] != false {
        return Err(format!("atoll-boot-sync.service had not finished the switch at boot: {sync}"));
    }
    let check = "set -e; slot=$(sed -n 's/^atoll_slot=//p' /boot/grub/grubenv); \
                 link=$(grep -o -m1 \"ostree=[^']*\" /boot/atoll/slot-${slot:-a}.cfg | cut -d= -f2); \
                 readlink -f /sysroot$link";
    let grub_default = vm.run(check).map_err(|e| format!("{e:#}"))?;
    let status: serde_json::Value = serde_json::from_str(&vm.run("host status --json").unwrap()).unwrap();
    let d = &status["deployments"][0];
    let want = format!("{}.{}", d["checksum"].as_str().unwrap(), d["serial"]);
    if !grub_default.trim().ends_with(&want) {
        return Err(format!("GRUB's default boots {} but ostree's default is {want}", grub_default.trim()));
    }
    Ok(())
}

/// Run `cuts` (all on one firmware) in one chain of boots.
fn chain(image: &Path, versions: &[String; 2], cuts: &[Cut], scratch: &Path, rows: &mut Vec<Row>) {
    let firmware = cuts[0].firmware;
    let cfg = VmConfig {
        firmware,
        boot_timeout: Duration::from_secs(300),
        early_timeout: Duration::from_secs(90),
        hang_timeout: Duration::from_secs(120),
        ..Default::default()
    };
    let mut vm = Vm::boot(image, cfg).unwrap();
    vm.wait_ready().unwrap();
    install_markers(&mut vm);
    for (i, cut) in cuts.iter().enumerate() {
        let from = version(&mut vm);
        let to = versions.iter().find(|v| **v != from).unwrap().clone();
        eprintln!("power cut {}/{} {firmware:?} {:?}: {from} -> {to}", i + 1, cuts.len(), cut.phase);
        // A pending deployment left by an earlier cut goes first, so `deploy` stages anew.
        vm.run("host cleanup --pending >/dev/null").unwrap();
        let deploy = format!("host deploy {to} >/dev/null");
        match cut.phase {
            Phase::Pull(after) => {
                vm.run("host cleanup --rollback >/dev/null").unwrap();
                vm.spawn(&deploy).unwrap();
                std::thread::sleep(after);
            }
            Phase::Staged => {
                vm.run(&deploy).unwrap();
            }
            Phase::Finalize(after) => {
                vm.run(&deploy).unwrap();
                vm.spawn("systemctl reboot").unwrap();
                if let Err(e) = wait_marker(&mut vm, MARK_FINALIZED, Duration::from_secs(180)) {
                    panic!("trial {}: {e}", i + 1);
                }
                std::thread::sleep(after);
            }
            Phase::EarlyBoot(after) => {
                vm.run(&deploy).unwrap();
                vm.reboot().unwrap();
                std::thread::sleep(after);
            }
        }
        vm.power_cut();
        let seen = vm.console().text();
        let window = match (seen.contains(MARK_FINALIZED), seen.contains(MARK_SWITCHED)) {
            (true, false) => " (before the switch)",
            (true, true) => " (after the switch)",
            _ => "",
        };
        let grub = grub_view(&vm, scratch);
        let mut booted = String::new();
        // Boot even when the GRUB view failed: the table says what the host did.
        let came_back = (|| {
            vm.power_on().map_err(|e| format!("{e:#}"))?;
            vm.wait_ready().map_err(|e| format!("{e:#}"))?;
            booted = version(&mut vm);
            if booted != from && booted != to {
                return Err(format!("booted {booted}, neither {from} nor {to}"));
            }
            invariants(&mut vm)
        })();
        let ok = grub.clone().map(drop).and(came_back);
        eprintln!("  cut{window}: GRUB reads {grub:?}; booted {booted:?}: {ok:?}");
        if ok.is_err() {
            // Outside the test's scratch directory, which goes when the test ends.
            let keep =
                Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("power-cut-failed-{firmware:?}-{}.qcow2", i + 1));
            vm.power_cut();
            vm.save_disk(&keep).unwrap();
            eprintln!("  kept the disk of the failed trial: {}", keep.display());
        }
        let failed = ok.is_err();
        rows.push(Row { cut: *cut, from, to, booted, grub_default: grub.unwrap_or_else(|e| e) + window, ok });
        if failed {
            // The chain cannot go on from a host that did not come back.
            return;
        }
    }
    // Finally a clean switch still works from where the cuts left the host.
    let from = version(&mut vm);
    let to = versions.iter().find(|v| **v != from).unwrap().clone();
    vm.run(&format!("host deploy {to} >/dev/null")).unwrap();
    vm.reboot().unwrap();
    vm.wait_ready().unwrap();
    assert_eq!(version(&mut vm), to, "a clean upgrade after the cuts");
    let bootdirs = vm.run("ls /boot/ostree").unwrap();
    assert_eq!(bootdirs.lines().count(), 2, "v1 and v2 boot their own kernel and initramfs: {bootdirs}");
    invariants(&mut vm).unwrap();
    vm.run("ostree fsck --quiet >/dev/null 2>&1 || ostree fsck").unwrap();
    vm.shutdown().unwrap();
}

#[test]
fn power_cuts_while_switching_versions_leave_a_bootable_host() {
    let ws = workspace();
    let out_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = out_dir.path();
    let srv = out.join("srv");
    let repo = srv.join("repo");
    let treefile = ws.join("image-recipes/atoll-host/treefile.toml");
    let v1 = compose(&treefile, &repo);
    let server = fixtures::serve(&srv).unwrap();
    let url = format!("http://10.0.2.2:{}/repo", server.port);
    let recipe = out.join("image.toml");
    std::fs::write(
        &recipe,
        std::fs::read_to_string(ws.join("image-recipes/atoll-host/image.toml"))
            .unwrap()
            .replace("http://10.0.2.2:8080/repo", &url),
    )
    .unwrap();
    let image = out.join("atoll.qcow2");
    let ref_name = format!("atoll/{}/stable", std::env::consts::ARCH);
    let st = Command::new(BIN)
        .args(["image", "--repo", repo.to_str().unwrap(), "--ref", &ref_name, "--recipe"])
        .arg(&recipe)
        .args(["--format", "qcow2", "--output"])
        .arg(&image)
        .status()
        .unwrap();
    assert!(st.success());
    // v2 adds a package and puts it into the initramfs: its boot checksum differs, so every
    // finalize (v1 -> v2 and back) writes a kernel and an initramfs into /boot.
    let v2_treefile = out.join("treefile-v2.toml");
    std::fs::write(out.join("atoll-v2-dracut.conf"), "install_items+=\" /usr/bin/hello \"\n").unwrap();
    std::fs::write(
        &v2_treefile,
        format!(
            "include = \"{}\"\npackages = [\"hello\"]\n\
             add-files = [[\"atoll-v2-dracut.conf\", \"/usr/lib/dracut/dracut.conf.d/90-atoll-test.conf\"]]\n",
            treefile.display()
        ),
    )
    .unwrap();
    let v2 = compose(&v2_treefile, &repo);
    let versions = [v1, v2];

    let cuts = plan();
    let mut rows = Vec::new();
    for fw in [Firmware::Bios, Firmware::Uefi] {
        let mine: Vec<Cut> = cuts.iter().copied().filter(|c| c.firmware == fw).collect();
        if !mine.is_empty() {
            chain(&image, &versions, &mine, out, &mut rows);
        }
    }
    println!("\n| # | firmware | phase | cut at | from → to | GRUB reads (no journal replay) | booted | invariants |");
    println!("|---|---|---|---|---|---|---|---|");
    for (i, r) in rows.iter().enumerate() {
        let (phase, at) = match r.cut.phase {
            Phase::Pull(d) => ("pull", format!("{:.2} s after start", d.as_secs_f64())),
            Phase::Staged => ("staged", "host deploy returned".into()),
            Phase::Finalize(d) => ("finalize", format!("+{:.2} s after finalize-staged", d.as_secs_f64())),
            Phase::EarlyBoot(d) => ("early boot", format!("{:.2} s after the kernel started", d.as_secs_f64())),
        };
        let ok = match &r.ok {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        println!(
            "| {} | {:?} | {phase} | {at} | {} → {} | {} | {} | {ok} |",
            i + 1,
            r.cut.firmware,
            r.from,
            r.to,
            r.grub_default,
            r.booted
        );
    }
    let failed = rows.iter().filter(|r| r.ok.is_err()).count();
    assert_eq!(rows.len(), cuts.len(), "a chain stopped at a failed trial");
    assert_eq!(failed, 0, "{failed} of {} power cuts left a host that did not come back", rows.len());
}
