//! The reference recipe composed, built into images and booted under QEMU (TCG) on BIOS and UEFI.
//!
//! Needs root (loop devices, mounts), `ci/setup.sh`'s packages and the build host's Debian
//! archive. One test: the compose is shared by every step.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use vmtest::fixtures::{self, GpgKey};
use vmtest::{Firmware, Vm, VmConfig};

const BIN: &str = env!("CARGO_BIN_EXE_compose-tree");

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn tmp() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf()
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(BIN).args(args).output().expect("running compose-tree");
    eprintln!("compose-tree {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

/// `compose-tree image` of `ref_name` in `repo` with `recipe`, written to `output` as `format`.
fn image(repo: &Path, ref_name: &str, recipe: &Path, format: &str, output: &Path, extra: &[&str]) -> Output {
    let (repo, recipe, output) = (repo.to_str().unwrap(), recipe.to_str().unwrap(), output.to_str().unwrap());
    let args = ["image", "--repo", repo, "--ref", ref_name, "--recipe", recipe, "--format", format, "--output", output];
    run(&[&args[..], extra].concat())
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// No loop device still backed by a file under `dir`, and nothing mounted under it.
fn assert_no_leftovers(dir: &Path) {
    let loops = String::from_utf8(Command::new("losetup").arg("-a").output().unwrap().stdout).unwrap();
    assert!(!loops.contains(dir.to_str().unwrap()), "loop devices left: {loops}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(dir.to_str().unwrap()) && !mounts.contains("/atoll-image-"), "mounts left: {mounts}");
}

/// Compose `treefile` signed with `key` into `repo`; returns the version.
fn compose_signed(treefile: &Path, repo: &Path, key: &GpgKey) -> String {
    let c = json(&run(&[
        "compose",
        treefile.to_str().unwrap(),
        "--repo",
        repo.to_str().unwrap(),
        "--cachedir",
        tmp().join("compose-cache").to_str().unwrap(),
        "--json",
        "--gpg-sign",
        &key.id,
        "--gpg-homedir",
        key.homedir.to_str().unwrap(),
    ]));
    c["version"].as_str().unwrap().to_string()
}

/// What every booted image must show.
fn check_booted(vm: &mut Vm, firmware: Firmware, version: &str, ref_name: &str, url: &str) {
    let cmdline = vm.run("cat /proc/cmdline").unwrap();
    // GRUB boots through Atoll's own deployment link, which ostree's cleanup never removes.
    assert!(cmdline.contains("ostree=/ostree/boot-1/"), "{cmdline}");
    assert!(cmdline.contains("console=ttyS0"), "recipe kernel-args: {cmdline}");
    let efi = vm.exec("test -d /sys/firmware/efi").unwrap().code == 0;
    assert_eq!(efi, firmware == Firmware::Uefi, "booted through the expected firmware");
    let ro = vm.exec("touch /usr/.atoll-write-test").unwrap();
    assert_ne!(ro.code, 0, "/usr must be read-only");
    assert!(ro.stderr.contains("Read-only"), "{}", ro.stderr);
    vm.run("touch /etc/.atoll-write-test /var/.atoll-write-test").unwrap();
    let status = vm.run("ostree admin status").unwrap();
    assert!(status.contains(&format!("origin refspec: atoll:{ref_name}")), "{status}");
    assert_eq!(vm.run("ostree remote show-url atoll").unwrap().trim(), url);
    assert_eq!(vm.run("ostree config --repo=/ostree/repo get 'remote \"atoll\".gpg-verify'").unwrap().trim(), "true");
    assert_eq!(vm.run(". /usr/lib/os-release && echo $IMAGE_VERSION").unwrap().trim(), version);
    vm.run("journalctl -b --no-pager -q -n 1 >/dev/null && test -d /var/log/journal -o -d /run/log/journal").unwrap();
    // First boot grew the root filesystem to the 10 GiB disk.
    let size: u64 = vm.run("findmnt -bno SIZE /sysroot").unwrap().trim().parse().unwrap();
    assert!(size > 9 << 30, "root filesystem not grown: {size} bytes");
    vm.run("systemctl is-active atoll-growfs.service && systemd-analyze verify atoll-growfs.service").unwrap();
    vm.run("systemctl is-active atoll-boot-sync.service").unwrap();
    // --man=no: the tree drops man pages, and ostree's unit documents itself with one.
    vm.run("systemd-analyze verify --man=no atoll-boot-sync.service ostree-finalize-staged.service").unwrap();
    let sync: serde_json::Value = serde_json::from_str(&vm.run("host boot-sync --json").unwrap()).unwrap();
    assert_eq!(sync["switched"], false, "the menu slot already lists the deployments: {sync}");
    let log = vm.run("journalctl -b -u atoll-boot-sync -o cat --no-pager").unwrap();
    assert!(log.contains("already lists"), "the image's menu needs no switch at boot: {log}");
    assert!(vm.run("cat /etc/motd").unwrap().contains("Atoll"));
}

#[test]
fn reference_image_boots_on_bios_and_uefi_and_upgrades() {
    let ws = workspace();
    let out_dir = tempfile::tempdir_in(tmp()).unwrap();
    let out = out_dir.path();
    let key = fixtures::gpg_key(out, "atoll-test").unwrap();
    let srv = out.join("srv");
    let repo = srv.join("repo");
    let treefile = ws.join("image-recipes/atoll-host/treefile.toml");
    let ref_name = format!("atoll/{}/stable", std::env::consts::ARCH);
    let version = compose_signed(&treefile, &repo, &key);
    let server = fixtures::serve(&srv).unwrap();
    // The guest reaches the host's loopback as 10.0.2.2 through QEMU user networking.
    let url = format!("http://10.0.2.2:{}/repo", server.port);
    let recipe = out.join("image.toml");
    assert_eq!(key.public, out.join("atoll-test.asc"), "the recipe names the key beside it");
    std::fs::write(
        &recipe,
        std::fs::read_to_string(ws.join("image-recipes/atoll-host/image.toml"))
            .unwrap()
            .replace("http://10.0.2.2:8080/repo", &url)
            .replace("gpg-verify = false", "gpg-key = \"atoll-test.asc\""),
    )
    .unwrap();

    // Bad input: a ref that does not exist, and a failure halfway (an unreadable GPG key fails
    // the deploy step after partitions are mounted): no output, no loop device, no mount.
    let bad = image(&repo, "no/such/ref", &recipe, "raw", &out.join("bad.raw"), &[]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("no/such/ref"));
    let bad_recipe = out.join("bad-image.toml");
    let garbage_key = out.join("garbage.asc");
    std::fs::write(&garbage_key, "this is not a key\n").unwrap();
    std::fs::write(&bad_recipe, std::fs::read_to_string(&recipe).unwrap().replace("atoll-test.asc", "garbage.asc"))
        .unwrap();
    let bad = image(&repo, &ref_name, &bad_recipe, "raw", &out.join("bad.raw"), &[]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "garbage key accepted");
    assert!(stderr.contains("garbage.asc"), "error names the key file: {stderr}");
    assert!(!out.join("bad.raw").exists(), "failed build left an output");
    let left: Vec<String> =
        std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n.starts_with(".compose-tree-image") || n.ends_with(".raw")), "leftovers: {left:?}");
    assert_no_leftovers(out);

    // Both formats.
    let mut images = Vec::new();
    for format in ["raw", "qcow2"] {
        let path = out.join(format!("atoll.{format}"));
        let r = json(&image(&repo, &ref_name, &recipe, format, &path, &["--json"]));
        assert_eq!(r["version"], version.as_str());
        assert_eq!(r["virtual_size"], 6u64 << 30);
        eprintln!("BENCH image {format}: {:?}, {} MiB on disk", r["timings"], r["file_size"].as_u64().unwrap() >> 20);
        if format == "qcow2" {
            let info = Command::new("qemu-img").args(["info", "--output=json"]).arg(&path).output().unwrap();
            let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
            assert_eq!(info["format"], "qcow2");
            assert_eq!(info["virtual-size"], 6u64 << 30);
        }
        images.push(path);
    }
    assert_no_leftovers(out);
    let qcow2 = &images[1];

    let boot = |firmware| {
        let started = Instant::now();
        let cfg = VmConfig { firmware, disk_size: Some(10 << 30), ..Default::default() };
        let mut vm = Vm::boot(qcow2, cfg).unwrap();
        vm.wait_ready().unwrap();
        eprintln!(
            "BENCH boot {firmware:?}: ready (multi-user, no failed unit) after {:.0}s",
            started.elapsed().as_secs_f64()
        );
        check_booted(&mut vm, firmware, &version, &ref_name, &url);
        vm
    };
    let mut vm = boot(Firmware::Uefi);
    vm.shutdown().unwrap();
    vm.console().check().unwrap();
    drop(vm);

    // End to end on BIOS: upgrade to a v2 served from the host, reboot, roll back, reboot.
    let mut vm = boot(Firmware::Bios);
    // `host` and its units come from the atoll-host package the treefile lists.
    assert_eq!(vm.run("command -v host").unwrap().trim(), "/usr/bin/host");
    assert!(vm.run("dpkg-query -W -f '${Status} ${Version}' atoll-host").unwrap().starts_with("install ok installed"));
    vm.run("systemd-analyze verify atoll-upgrade.service atoll-upgrade.timer").unwrap();
    vm.run("echo kept > /etc/atoll-e2e.conf && mkdir -p /var/lib/atoll-e2e && echo data > /var/lib/atoll-e2e/file")
        .unwrap();
    // The unattended path: atoll-upgrade.service with nothing new exits 77, which it counts as success.
    let unit_log = |vm: &mut Vm| {
        let result =
            vm.run("systemctl start atoll-upgrade.service && systemctl show -P Result atoll-upgrade.service").unwrap();
        assert_eq!(result.trim(), "success");
        vm.run("journalctl -b -t atoll-upgrade -o cat --no-pager").unwrap()
    };
    let log = unit_log(&mut vm);
    assert!(log.contains("No upgrade available"), "{log}");
    let none = vm.exec("host upgrade --unchanged-exit-77").unwrap();
    assert_eq!(none.code, 77, "nothing new yet: {}{}", none.stdout, none.stderr);

    let v2_treefile = out.join("treefile-v2.toml");
    std::fs::write(&v2_treefile, format!("include = \"{}\"\npackages = [\"hello\"]\n", treefile.display())).unwrap();
    let v2 = compose_signed(&v2_treefile, &repo, &key);
    assert_ne!(v2, version);
    let check: serde_json::Value = serde_json::from_str(&vm.run("host upgrade --check --json").unwrap()).unwrap();
    assert_eq!(check["outcome"], "available", "{check}");
    assert!(check["download_size"].as_u64().unwrap() > 0, "size stated before downloading: {check}");
    // The timer's service stages v2; asking again finds it already staged.
    let log = unit_log(&mut vm);
    assert!(log.contains(&format!("staged: {version} -> {v2}")), "{log}");
    let up: serde_json::Value = serde_json::from_str(&vm.run("host upgrade --json").unwrap()).unwrap();
    assert_eq!(up["outcome"], "no-change", "already staged: {up}");
    assert_eq!(up["to_version"], v2.as_str());
    let st: serde_json::Value = serde_json::from_str(&vm.run("host status --json").unwrap()).unwrap();
    assert_eq!(st["deployments"][0]["staged"], true, "{st}");
    vm.reboot().unwrap();
    vm.wait_ready().unwrap();
    assert_eq!(vm.run(". /usr/lib/os-release && echo $IMAGE_VERSION").unwrap().trim(), v2);
    // The finalize switched GRUB to the other menu slot, once.
    let env = vm.run("cat /boot/grub/grubenv").unwrap();
    let logs = vm
        .run("journalctl -b -1 -u ostree-finalize-staged -o cat --no-pager; journalctl -b -u atoll-boot-sync -o cat --no-pager")
        .unwrap();
    assert!(env.contains("atoll_slot=b\n"), "{env}\n{logs}");
    assert!(vm.run("hello").unwrap().contains("Hello, world!"));
    assert_eq!(vm.run("cat /etc/atoll-e2e.conf").unwrap(), "kept\n", "/etc edit survives the upgrade");
    assert_eq!(vm.run("cat /var/lib/atoll-e2e/file").unwrap(), "data\n", "/var is untouched");
    let st: serde_json::Value = serde_json::from_str(&vm.run("host status --json").unwrap()).unwrap();
    assert_eq!(st["deployments"][0]["booted"], true);
    assert_eq!(st["deployments"][1]["rollback"], true);

    vm.run("host rollback").unwrap();
    vm.reboot().unwrap();
    vm.wait_ready().unwrap();
    assert_eq!(vm.run(". /usr/lib/os-release && echo $IMAGE_VERSION").unwrap().trim(), version, "rolled back");
    assert_eq!(vm.run("cat /var/lib/atoll-e2e/file").unwrap(), "data\n");
    assert_ne!(vm.exec("command -v hello").unwrap().code, 0, "v1 has no hello");
    vm.shutdown().unwrap();
    vm.console().check().unwrap();
}
