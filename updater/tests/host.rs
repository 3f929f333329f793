//! `host` against a real sysroot in a temporary directory, updates served over HTTP on
//! 127.0.0.1 from a real archive repo with GPG-signed commits.
//!
//! Test scaffolding (making commits, the first deployment) uses the `ostree` CLI; everything
//! under test goes through `host`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HOST: &str = env!("CARGO_BIN_EXE_host");
const REF: &str = "test/x86_64/host";

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn ostree(args: &[&str]) -> String {
    sh(Command::new("ostree").args(args))
}

use vmtest::fixtures::{self, GpgKey, HttpServer};

/// A small bootable tree whose content differs by `version` (and kernel args test needs none).
fn make_tree(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join(format!("tree-{version}"));
    let _ = std::fs::remove_dir_all(&root);
    for d in ["usr/bin", "usr/etc", "usr/lib/modules/6.1.0-test", "var", "boot", "sysroot"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("usr/bin/tool"), format!("tool {version}\n")).unwrap();
    std::fs::write(root.join("usr/etc/atoll-release"), format!("{version}\n")).unwrap();
    std::fs::write(root.join("usr/etc/os-release"), "NAME=Atoll\nID=atoll\n").unwrap();
    // Kernels differ per version so the boot loader entries differ too.
    std::fs::write(root.join("usr/lib/modules/6.1.0-test/vmlinuz"), format!("kernel {version}")).unwrap();
    std::fs::write(root.join("usr/lib/modules/6.1.0-test/initramfs.img"), format!("initramfs {version}")).unwrap();
    root
}

/// tmpfs mounts a test made, unmounted (innermost first) when dropped.
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn tmpfs(&mut self, at: &Path, size: &str) {
        std::fs::create_dir_all(at).unwrap();
        sh(Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(at));
        self.0.push(at.to_path_buf());
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

struct Fixture {
    // Dropped first: the mounts go before the directory holding them is removed.
    _mounts: Mounts,
    dir: tempfile::TempDir,
    server_repo: PathBuf,
    sysroot: PathBuf,
    key: GpgKey,
    _server: HttpServer,
    port: u16,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture::build(|_, _| {}, std::time::Duration::ZERO)
    }

    /// `mount` may put the sysroot (and its /boot) on filesystems of its own before it is
    /// initialised; the server answers each request after `delay`.
    fn build(mount: impl FnOnce(&mut Mounts, &Path), delay: std::time::Duration) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let server_root = d.join("srv");
        let server_repo = server_root.join("repo");
        std::fs::create_dir_all(&server_root).unwrap();
        ostree(&["init", "--mode=archive", &format!("--repo={}", server_repo.display())]);
        let key = fixtures::gpg_key(&d, "good").unwrap();
        let pubkey = key.public.clone();
        let server = fixtures::serve_slowly(&server_root, delay).unwrap();
        let port = server.port;
        let mut mounts = Mounts(Vec::new());
        mount(&mut mounts, &d.join("sysroot"));
        let f = Fixture { _mounts: mounts, dir, server_repo, sysroot: d.join("sysroot"), key, _server: server, port };
        f.publish("1", true, None);

        // The machine: a sysroot with the remote (through `host`) and a first deployment.
        let sr = f.sysroot.to_str().unwrap().to_string();
        std::fs::create_dir_all(&f.sysroot).unwrap();
        ostree(&["admin", "init-fs", &sr]);
        ostree(&["admin", "os-init", "atoll", &format!("--sysroot={sr}")]);
        let url = format!("http://127.0.0.1:{port}/repo");
        let out = f.host(&["remote", "add", "atoll", &url]);
        assert!(!out.status.success(), "a remote without a key needs --no-gpg-verify");
        assert!(stderr(&out).contains("--no-gpg-verify"), "{}", stderr(&out));
        let out = f.host(&["remote", "add", "atoll", &url, "--gpg-import", pubkey.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        ostree(&[&format!("--repo={sr}/ostree/repo"), "pull", "atoll", REF]);
        ostree(&[
            "admin",
            "deploy",
            &format!("--sysroot={sr}"),
            "--os=atoll",
            "--karg=root=LABEL=root",
            "--karg=quiet",
            &format!("atoll:{REF}"),
        ]);
        f
    }

    /// Commit a tree for `version` on the server, signed with `key` (default: the good key).
    fn publish(&self, version: &str, sign: bool, key: Option<(&Path, &str)>) -> String {
        self.publish_with(version, sign, key, &[], |_| {})
    }

    /// [`Fixture::publish`] with extra `ostree commit` arguments and a hook that edits the tree.
    fn publish_with(
        &self,
        version: &str,
        sign: bool,
        key: Option<(&Path, &str)>,
        extra: &[&str],
        edit: impl FnOnce(&Path),
    ) -> String {
        let tree = make_tree(self.dir.path(), version);
        edit(&tree);
        let repo = format!("--repo={}", self.server_repo.display());
        let mut args = vec![
            repo.clone(),
            "commit".into(),
            format!("--branch={REF}"),
            format!("--add-metadata-string=version={version}"),
            // The package list compose-tree records, for `--preview`.
            format!("--add-metadata=atoll.packages=[('tool', '{version}', 'amd64'), ('base', '1', 'all')]"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        if sign {
            let (home, id) = key.unwrap_or((&self.key.homedir, &self.key.id));
            args.push(format!("--gpg-sign={id}"));
            args.push(format!("--gpg-homedir={}", home.display()));
        }
        args.push(tree.display().to_string());
        let csum = sh(Command::new("ostree").args(&args)).trim().to_string();
        ostree(&[&repo, "summary", "-u"]);
        csum
    }

    fn host(&self, args: &[&str]) -> Output {
        Command::new(HOST).arg("--sysroot").arg(&self.sysroot).args(args).output().unwrap()
    }

    fn host_ok(&self, args: &[&str]) -> String {
        let out = self.host(args);
        assert!(out.status.success(), "host {args:?}: {}", stderr(&out));
        String::from_utf8(out.stdout).unwrap()
    }

    fn status(&self) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&self.host_ok(&["status", "--json"])).unwrap();
        v["deployments"].as_array().unwrap().clone()
    }

    fn versions(&self) -> Vec<String> {
        self.status().iter().map(|d| d["version"].as_str().unwrap().to_string()).collect()
    }

    fn deploy_dir(&self, d: &serde_json::Value) -> PathBuf {
        self.sysroot.join(format!(
            "ostree/deploy/atoll/deploy/{}.{}",
            d["checksum"].as_str().unwrap(),
            d["serial"].as_i64().unwrap()
        ))
    }

    /// The deployment directory the first boot loader entry (the default) boots.
    fn default_entry_target(&self) -> PathBuf {
        let entries = self.sysroot.join("boot/loader/entries");
        let mut best: Option<(u64, String)> = None;
        for e in std::fs::read_dir(&entries).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            let n: u64 = text.lines().find_map(|l| l.strip_prefix("version ")).unwrap().trim().parse().unwrap();
            if best.as_ref().is_none_or(|(b, _)| n > *b) {
                best = Some((n, text));
            }
        }
        let text = best.unwrap().1;
        let opts = text.lines().find_map(|l| l.strip_prefix("options ")).unwrap();
        let ostree_arg = opts.split_whitespace().find_map(|a| a.strip_prefix("ostree=")).unwrap();
        let target = std::fs::canonicalize(self.sysroot.join(ostree_arg.trim_start_matches('/'))).unwrap();
        assert_eq!(self.grub_default_target(), target, "GRUB's active menu slot boots ostree's default entry");
        target
    }

    /// The deployment directory GRUB boots: the first entry of the menu slot grubenv names.
    fn grub_default_target(&self) -> PathBuf {
        let boot = self.sysroot.join("boot");
        let env = bootloader::grubenv::read(&boot.join(bootloader::sync::GRUBENV)).unwrap();
        let slot = bootloader::Slot::parse(env.get(bootloader::sync::SLOT_VAR).unwrap()).unwrap();
        let menu = std::fs::read_to_string(boot.join(slot.file())).unwrap();
        let linux = menu.lines().find(|l| l.trim_start().starts_with("linux ")).unwrap();
        let arg = linux.split('\'').find_map(|a| a.strip_prefix("ostree=")).unwrap();
        std::fs::canonicalize(self.sysroot.join(arg.trim_start_matches('/'))).unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn upgrade_rollback_deploy_kargs_and_refusals() {
    let f = Fixture::new();
    let st = f.status();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["version"], "1");
    let v1_commit = st[0]["checksum"].as_str().unwrap().to_string();
    assert_eq!(st[0]["origin"], format!("atoll:{REF}"));
    assert_eq!(st[0]["booted"], false);
    let list = f.host_ok(&["remote", "list"]);
    assert!(list.contains(&format!("http://127.0.0.1:{}/repo", f.port)), "{list}");

    // Nothing new yet: exit 77 on request.
    let out = f.host(&["upgrade", "--unchanged-exit-77"]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));

    // An /etc edit on the running deployment must survive upgrades.
    std::fs::write(f.deploy_dir(&st[0]).join("etc/local.conf"), "mine\n").unwrap();

    f.publish("2", true, None);
    let check: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--check", "--json"])).unwrap();
    assert_eq!(check["outcome"], "available");
    assert_eq!(check["to_version"], "2");
    assert_eq!(f.versions(), ["1"], "--check changes nothing");
    let preview: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--preview", "--json"])).unwrap();
    assert_eq!(
        preview["packages"]["changed"],
        serde_json::json!([{"name": "tool", "from": "1", "to": "2", "arch": "amd64"}]),
        "{preview}"
    );
    assert_eq!(preview["packages"]["added"], serde_json::json!([]));
    let text = f.host_ok(&["upgrade", "--preview"]);
    assert!(text.contains("Changed:\n  tool 1 -> 2"), "{text}");

    // The server publishes a static delta 1 -> 2: the size is known before downloading and the
    // pull uses the delta.
    let repo_arg = format!("--repo={}", f.server_repo.display());
    ostree(&[
        &repo_arg,
        "static-delta",
        "generate",
        &format!("--from={}", st[0]["checksum"].as_str().unwrap()),
        "--to",
        REF,
    ]);
    ostree(&[&repo_arg, "summary", "-u"]);
    let up: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--json"])).unwrap();
    assert_eq!(up["outcome"], "deployed", "{up}");
    assert!(up["pull"]["bytes_transferred"].as_u64().unwrap() > 0);
    assert!(up["pull"]["delta_parts"].as_u64().unwrap() > 0, "static delta used: {up}");
    assert!(up["download_size"].as_u64().unwrap() > 0, "size stated up front: {up}");
    let st = f.status();
    assert_eq!(f.versions(), ["2", "1"]);
    assert_eq!(st[1]["rollback"], true);
    assert_eq!(f.default_entry_target(), f.deploy_dir(&st[0]), "boot loader default is v2");
    assert_eq!(std::fs::read_to_string(f.deploy_dir(&st[0]).join("etc/local.conf")).unwrap(), "mine\n");
    assert_eq!(std::fs::read_to_string(f.deploy_dir(&st[0]).join("usr/bin/tool")).unwrap(), "tool 2\n");

    // Rollback: v1 boots next, entries swapped.
    f.host_ok(&["rollback"]);
    let st = f.status();
    assert_eq!(f.versions(), ["1", "2"]);
    assert_eq!(f.default_entry_target(), f.deploy_dir(&st[0]), "boot loader default is v1 again");
    // Each command switched GRUB's menu slot itself: a sync now finds nothing to do, and only the
    // links the menu names are left.
    let sync: serde_json::Value = serde_json::from_str(&f.host_ok(&["boot-sync", "--json"])).unwrap();
    assert_eq!(sync["switched"], false, "{sync}");
    assert_eq!(sync["entries"].as_array().unwrap().len(), 2, "{sync}");
    let links = std::fs::read_dir(f.sysroot.join(bootloader::sync::LINK_DIR).join("atoll")).unwrap().count();
    assert_eq!(links, 2, "one link per deployment");

    // Deploy by version from the history.
    f.publish("3", true, None);
    f.host_ok(&["deploy", "2"]);
    assert_eq!(f.versions()[0], "2");

    // Kernel arguments: a new deployment with the edited command line.
    f.host_ok(&["kargs", "--append", "atoll.test=1", "--delete", "quiet"]);
    let st = f.status();
    let kargs = st[0]["kargs"].as_str().unwrap();
    assert!(kargs.contains("atoll.test=1") && !kargs.contains("quiet") && kargs.contains("root=LABEL=root"), "{kargs}");
    assert_eq!(st[0]["version"], "2");
    // v1 was dropped by now, so the repo was pruned: its own objects are gone, v2's stay. Only
    // the current boot loader configuration is left.
    assert!(st.iter().all(|d| d["version"] != "1"), "{st:?}");
    let local = f.sysroot.join("ostree/repo");
    let has = |obj: &str| local.join("objects").join(&obj[..2]).join(format!("{}.file", &obj[2..])).exists();
    assert!(!has(&find_file_object(&f.server_repo, &v1_commit, "/usr/bin/tool")), "v1's tool pruned");
    assert!(has(&find_file_object(&f.server_repo, st[0]["checksum"].as_str().unwrap(), "/usr/bin/tool")));
    let loaders: Vec<_> = std::fs::read_dir(f.sysroot.join("boot"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("loader."))
        .collect();
    assert_eq!(loaders.len(), 1, "old boot loader configurations cleaned up");

    // Upgrade to 3, then the server goes back to 2: a downgrade, refused unless allowed.
    f.host_ok(&["upgrade"]);
    assert_eq!(f.versions()[0], "3");
    let before = f.status();
    let v2 = ostree(&[&format!("--repo={}", f.server_repo.display()), "rev-parse", &format!("{REF}^")]);
    ostree(&[&format!("--repo={}", f.server_repo.display()), "reset", REF, v2.trim()]);
    ostree(&[&format!("--repo={}", f.server_repo.display()), "summary", "-u"]);
    let out = f.host(&["upgrade"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("refusing to downgrade"), "{}", stderr(&out));
    assert_eq!(f.status(), before, "nothing staged after a refused downgrade");

    // An unsigned commit and one signed by an unknown key are refused, nothing deployed.
    f.publish("4-unsigned", false, None);
    let out = f.host(&["upgrade"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no signatures found"), "{}", stderr(&out));
    assert_eq!(f.status(), before);
    let stranger = fixtures::gpg_key(f.dir.path(), "stranger").unwrap();
    f.publish("5-stranger", true, Some((&stranger.homedir, &stranger.id)));
    let out = f.host(&["upgrade"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("public key not found"), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one-line error: {}", stderr(&out));
    assert_eq!(f.status(), before);

    // A tampered object: the pull fails its checksum, nothing deployed.
    let c6 = f.publish("6", true, None);
    let objects = f.server_repo.join("objects");
    let tool_obj = find_file_object(&f.server_repo, &c6, "/usr/bin/tool");
    let path = objects.join(&tool_obj[..2]).join(format!("{}.filez", &tool_obj[2..]));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = f.host(&["upgrade"]);
    assert!(!out.status.success(), "tampered object accepted");
    let err = stderr(&out);
    assert!(err.contains("Invalid compressed data") || err.contains("Corrupted"), "{err}");
    assert_eq!(f.status(), before);
}

/// The content checksum of `path` in `commit`.
fn find_file_object(repo: &Path, commit: &str, path: &str) -> String {
    let out = ostree(&[&format!("--repo={}", repo.display()), "ls", "-C", commit, path]);
    out.split_whitespace().nth(4).unwrap().to_string()
}

#[test]
fn concurrent_upgrades_do_not_interleave() {
    // A slow server keeps the first upgrade holding the lock while the second arrives.
    let f = Fixture::build(|_, _| {}, std::time::Duration::from_millis(30));
    f.publish("2", true, None);
    let spawn = || Command::new(HOST).arg("--sysroot").arg(&f.sysroot).args(["upgrade", "--json"]).output();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success() && b.status.success(), "{}\n{}", stderr(&a), stderr(&b));
    let outcomes: Vec<String> = [&a, &b]
        .iter()
        .map(|o| {
            serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["outcome"].as_str().unwrap().to_string()
        })
        .collect();
    let mut sorted = outcomes.clone();
    sorted.sort();
    assert_eq!(sorted, ["deployed", "no-change"], "exactly one upgrade happened: {outcomes:?}");
    // The one that waited said who held the lock.
    let waited: Vec<String> =
        [&a, &b].iter().map(|o| stderr(o)).filter(|e| e.contains("Waiting for the sysroot lock")).collect();
    assert_eq!(waited.len(), 1, "{waited:?}");
    assert!(waited[0].contains("held by pid") && waited[0].contains("host --sysroot"), "{}", waited[0]);
    assert_eq!(f.versions(), ["2", "1"]);
    let fsck = ostree(&[&format!("--repo={}/ostree/repo", f.sysroot.display()), "fsck"]);
    assert!(fsck.contains("no errors"), "{fsck}");
}

/// `len` bytes that do not compress (xorshift), so archived and unpacked sizes are both `len`.
fn incompressible(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn free_mib(path: &Path) -> u64 {
    let out = sh(Command::new("df").args(["--output=avail", "-B1M"]).arg(path));
    out.lines().nth(1).unwrap().trim().parse().unwrap()
}

#[test]
fn preflight_refuses_when_repo_or_boot_lack_room() {
    let f = Fixture::build(
        |m, sysroot| {
            m.tmpfs(sysroot, "48m");
            m.tmpfs(&sysroot.join("boot"), "4m");
        },
        std::time::Duration::ZERO,
    );
    let before = f.status();
    assert_eq!(before.len(), 1);
    let repo_dir = f.sysroot.join("ostree/repo");

    // 64 MiB that cannot be compressed, in a commit with a size index: it cannot fit.
    f.publish_with("2", true, None, &["--generate-sizes"], |root| {
        std::fs::create_dir_all(root.join("usr/share/big")).unwrap();
        std::fs::write(root.join("usr/share/big/blob"), incompressible(64 << 20, 7)).unwrap();
    });
    let check: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--check", "--json"])).unwrap();
    assert_eq!(check["outcome"], "available");
    assert!(check["download_size"].as_u64().unwrap() >= 64 << 20, "size index read: {check}");
    assert!(check["unpacked_size"].as_u64().unwrap() >= 64 << 20, "{check}");
    let free_before = free_mib(&repo_dir);
    let out = f.host(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");
    assert!(err.contains("not enough space in") && err.contains("ostree/repo") && err.contains("MiB is free"), "{err}");
    assert_eq!(f.status(), before, "nothing staged");
    assert!(
        free_mib(&repo_dir) + 1 >= free_before,
        "nothing pulled: {} MiB free, was {free_before}",
        free_mib(&repo_dir)
    );

    // A kernel + initramfs bigger than /boot's free space: the pull fits, the deployment does not.
    f.publish_with("3", true, None, &["--generate-sizes"], |root| {
        std::fs::write(root.join("usr/lib/modules/6.1.0-test/initramfs.img"), incompressible(6 << 20, 9)).unwrap();
    });
    let out = f.host(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one-line error: {err}");
    assert!(
        errors[0].contains("not enough space in") && errors[0].contains("/boot") && errors[0].contains("MiB is free"),
        "{err}"
    );
    assert_eq!(f.status(), before, "nothing staged");
    let entries = std::fs::read_dir(f.sysroot.join("boot/loader/entries")).unwrap().count();
    assert_eq!(entries, 1, "boot loader entries untouched");
}

/// Files of the bare repo's objects under `dir`, recursively.
fn count_objects(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                count_objects(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "file"))
            }
        })
        .sum()
}

#[test]
fn interrupted_pull_resumes() {
    // 60 ms per request: the 300 new objects take seconds to fetch, long enough to kill the pull.
    let f = Fixture::build(|_, _| {}, std::time::Duration::from_millis(60));
    f.publish_with("2", true, None, &[], |root| {
        std::fs::create_dir_all(root.join("usr/share/many")).unwrap();
        for i in 0..300 {
            std::fs::write(root.join(format!("usr/share/many/f{i}")), format!("file {i} of many\n")).unwrap();
        }
    });
    let tmp = f.sysroot.join("ostree/repo/tmp");
    let mut child = Command::new(HOST)
        .arg("--sysroot")
        .arg(&f.sysroot)
        .arg("upgrade")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count_objects(&tmp) < 40 {
        assert!(child.try_wait().unwrap().is_none(), "the pull finished before it could be interrupted");
        assert!(std::time::Instant::now() < deadline, "the pull made no progress");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = count_objects(&tmp);
    assert_eq!(f.versions(), ["1"], "nothing deployed by the interrupted upgrade");

    let up: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--json"])).unwrap();
    assert_eq!(up["outcome"], "deployed", "{up}");
    let fetched = up["pull"]["objects_fetched"].as_u64().unwrap() as usize;
    // A pull from scratch fetches at least the 300 new objects; a resumed one skips what it kept.
    assert!(fetched + kept <= 320, "not resumed: fetched {fetched} objects although {kept} were kept");
    assert_eq!(f.versions(), ["2", "1"]);
    assert_eq!(
        std::fs::read_to_string(f.deploy_dir(&f.status()[0]).join("usr/share/many/f299")).unwrap(),
        "file 299 of many\n"
    );
    let fsck = ostree(&[&format!("--repo={}", f.sysroot.join("ostree/repo").display()), "fsck"]);
    assert!(fsck.contains("no errors"), "{fsck}");
}

/// compose-tree's `commit`, beside `host` in the workspace's target directory (`cargo build
/// --workspace`, which ci/test.sh runs first, builds both).
fn compose_tree_bin() -> PathBuf {
    let p = Path::new(HOST).parent().unwrap().join("compose-tree");
    assert!(p.exists(), "{} missing: build the workspace first (cargo build --workspace)", p.display());
    p
}

#[test]
fn download_size_from_the_sparse_size_index() {
    let f = Fixture::new();
    // Two versions committed by compose-tree, each adding incompressible data: 1 MiB, then 2 MiB.
    // Each commit's index lists only what its parent lacks, so a v1 client must walk v3 -> v2.
    let publish = |version: &str, blob: usize| {
        let tree = make_tree(f.dir.path(), version);
        for (i, mib) in [1usize, 2].iter().take(blob).enumerate() {
            std::fs::write(tree.join(format!("usr/bin/blob{i}")), incompressible(mib << 20, i as u64 + 3)).unwrap();
        }
        let out = Command::new(compose_tree_bin())
            .arg("commit")
            .arg(&tree)
            .arg("--repo")
            .arg(&f.server_repo)
            .args(["--ref", REF, "--add-metadata-version", version, "--gpg-sign", &f.key.id, "--gpg-homedir"])
            .arg(&f.key.homedir)
            .output()
            .unwrap();
        assert!(out.status.success(), "compose-tree commit: {}", stderr(&out));
        ostree(&[&format!("--repo={}", f.server_repo.display()), "summary", "-u"]);
    };
    publish("2", 1);
    publish("3", 2);
    let check: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--check", "--json"])).unwrap();
    assert_eq!(check["to_version"], "3");
    let size = check["download_size"].as_u64().expect("size known from the index");
    assert!((3 << 20..(3 << 20) + (64 << 10)).contains(&size), "3 MiB of blobs and small files: {size}");
    assert!(check["unpacked_size"].as_u64().unwrap() >= 3 << 20, "{check}");
    let raw = f.host_ok(&["upgrade", "--json"]);
    let up: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(up["outcome"], "deployed");
    assert_eq!(up["download_size"], size, "{up}");
    let sent = up["pull"]["bytes_transferred"].as_u64().unwrap();
    assert!((size..size + (256 << 10)).contains(&sent), "stated {size}, transferred {sent}");

    // A file:// remote (a mirror on local disk, signed the same way): rebase onto it, upgrade from it.
    let url = format!("file://{}", f.server_repo.display());
    f.host_ok(&["remote", "add", "disk", &url, "--gpg-import", f.key.public.to_str().unwrap()]);
    let rebased: serde_json::Value =
        serde_json::from_str(&f.host_ok(&["rebase", &format!("disk:{REF}"), "--json"])).unwrap();
    assert_eq!(rebased["outcome"], "deployed", "{rebased}");
    assert_eq!(f.status()[0]["origin"], format!("disk:{REF}"));
    publish("4", 2);
    let up: serde_json::Value = serde_json::from_str(&f.host_ok(&["upgrade", "--json"])).unwrap();
    assert_eq!((up["outcome"].as_str(), up["to_version"].as_str()), (Some("deployed"), Some("4")), "{up}");
    assert_eq!(f.versions()[0], "4");
}
