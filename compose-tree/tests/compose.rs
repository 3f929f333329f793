//! End-to-end composes of a real Debian package set into a real OSTree repository.
//!
//! Needs root (mmdebstrap in root mode, bwrap), the tools `ci/setup.sh` installs and access to
//! the build host's Debian archive. The heavy lifecycle runs as one test so composes do not
//! compete for the machine's two cores.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use atoll_utils::cmd;

const BIN: &str = env!("CARGO_BIN_EXE_compose-tree");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/small")
}

/// The package cache shared by every test run (downloads are the slow part of a cold run).
fn cachedir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("compose-cache")
}

fn require_root() {
    assert!(is_root(), "these tests compose real trees and must run as root (mmdebstrap --mode=root, bwrap)");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

fn compose(treefile: &Path, repo: &Path, extra: &[&str]) -> Output {
    let out = Command::new(BIN)
        .arg("compose")
        .arg(treefile)
        .arg("--repo")
        .arg(repo)
        .arg("--cachedir")
        .arg(cachedir())
        .args(extra)
        .output()
        .expect("running compose-tree");
    eprintln!("compose {} {extra:?}: {}\n{}", treefile.display(), out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "compose failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn ostree(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("ostree").arg(format!("--repo={}", repo.display())).args(args).output().unwrap();
    assert!(out.status.success(), "ostree {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn rev_parse(repo: &Path, r: &str) -> String {
    ostree(repo, &["rev-parse", r]).trim().to_string()
}

/// Copy the fixture directory so a test can edit the treefile.
fn copy_fixture(to: &Path) -> PathBuf {
    let src = fixture();
    let status = Command::new("cp").arg("-a").arg(&src).arg(to).status().unwrap();
    assert!(status.success());
    to.join("small")
}

/// A failed compose: non-zero exit, one error line naming `culprit`, and the ref where it was.
fn assert_refused(out: &Output, culprit: &str, repo: &Path, ref_name: &str, before: Option<&str>) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure naming {culprit}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "exactly one error line: {stderr}");
    assert!(errors[0].contains(culprit), "error should name {culprit}: {}", errors[0]);
    match before {
        Some(c) => assert_eq!(rev_parse(repo, ref_name), c, "ref moved after a failed compose"),
        None => assert!(!repo.exists(), "a failed first compose left a repo at {}", repo.display()),
    }
}

/// A directory holding every program of `utils/src/programs.txt` found on PATH except `without`,
/// to run compose-tree as on a machine where that program's package is not installed.
fn path_without(dir: &Path, without: &str) -> PathBuf {
    let bin = dir.join(format!("path-without-{without}"));
    std::fs::create_dir_all(&bin).unwrap();
    for prog in cmd::programs().map(|p| p.name).filter(|&p| p != without) {
        if let Some(found) = cmd::which(prog) {
            std::os::unix::fs::symlink(found, bin.join(prog)).unwrap();
        }
    }
    bin
}

/// A missing program is named with its Debian package before any work: one error line,
/// non-zero exit, nothing written.
#[test]
fn missing_program_is_named_with_its_package_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../image-recipes/atoll-host/image.toml");
    let out_dir = dir.path().join("out");
    let image = |path: &Path, format: &str| {
        Command::new(BIN)
            .args(["image", "--repo"])
            .arg(dir.path().join("no-repo"))
            .args(["--ref", "atoll/x86_64/stable", "--format", format, "--recipe"])
            .arg(&recipe)
            .arg("--output")
            .arg(out_dir.join(format!("atoll.{format}")))
            .env("PATH", path)
            .output()
            .unwrap()
    };
    let no_qemu_img = path_without(dir.path(), "qemu-img");
    let out = image(&no_qemu_img, "qcow2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("qemu-img (Debian package qemu-utils)"), "{stderr}");
    assert!(!out_dir.exists(), "a refused image build wrote {}", out_dir.display());
    // A raw image does not need qemu-img: the same PATH gets past the check (to the missing repo).
    let out = image(&no_qemu_img, "raw");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !stderr.contains("qemu-img") && stderr.contains("no-repo"), "{stderr}");

    let no_mmdebstrap = path_without(dir.path(), "mmdebstrap");
    let (repo, cache) = (dir.path().join("repo"), dir.path().join("cache"));
    let out = Command::new(BIN)
        .arg("compose")
        .arg(fixture().join("treefile.toml"))
        .arg("--repo")
        .arg(&repo)
        .arg("--cachedir")
        .arg(&cache)
        .env("PATH", &no_mmdebstrap)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("mmdebstrap (Debian package mmdebstrap)"), "{stderr}");
    assert!(!repo.exists() && !cache.exists(), "a refused compose wrote to disk");
}

#[test]
fn static_bad_input_fails_before_touching_disk() {
    let dir = tempfile::tempdir().unwrap();
    let tf = copy_fixture(dir.path());
    let repo = dir.path().join("repo");
    let cases: [(&str, &str, &str); 5] = [
        ("unknown key", "\nno-such-key = true\n", "no-such-key"),
        (
            "missing local package",
            "\n[debian]\nlocal-packages = [\"no-such-dir\"]\n",
            "debian.local-packages: `no-such-dir`",
        ),
        ("local package dir without debs", "\n[debian]\nlocal-packages = [\"files\"]\n", "no .deb files in"),
        ("missing include", "", "include `missing.toml` not found"),
        ("add-files outside /usr and /etc", "", "/var/lib/x"),
    ];
    for (i, (what, append, culprit)) in cases.into_iter().enumerate() {
        let mut text = std::fs::read_to_string(tf.join("treefile.toml")).unwrap();
        match what {
            "missing include" => text = text.replace("include = \"base.toml\"", "include = \"missing.toml\""),
            "add-files outside /usr and /etc" => text = text.replace("\"/etc/motd\"", "\"/var/lib/x\""),
            _ => text = format!("{text}{append}"),
        }
        let bad = tf.join(format!("bad-{i}.toml"));
        std::fs::write(&bad, text).unwrap();
        let out = compose(&bad, &repo, &[]);
        assert_refused(&out, culprit, &repo, "", None);
        assert!(String::from_utf8_lossy(&out.stderr).contains(&bad.display().to_string()), "{what}: names the file");
    }
}

#[test]
fn compose_lifecycle() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let tf_dir = copy_fixture(dir.path());
    let tf = tf_dir.join("treefile.toml");
    let repo = dir.path().join("repo");
    let ref_name = format!("test/{}/small", std::env::consts::ARCH);

    // Bad packages and sources fail at resolution: no repo is created.
    let text = std::fs::read_to_string(&tf).unwrap();
    let bad_pkg = tf_dir.join("bad-package.toml");
    std::fs::write(&bad_pkg, text.replace("ref =", "packages = [\"atoll-no-such-package\"]\nref =")).unwrap();
    assert_refused(&compose(&bad_pkg, &repo, &[]), "atoll-no-such-package", &repo, &ref_name, None);
    let bad_mirror = tf_dir.join("bad-mirror.toml");
    std::fs::write(&bad_mirror, format!("{text}\n[debian]\nmirror = \"http://127.0.0.1:9/debian\"\n")).unwrap();
    assert_refused(&compose(&bad_mirror, &repo, &[]), "127.0.0.1:9", &repo, &ref_name, None);

    // First compose.
    let first = json(&compose(&tf, &repo, &["--json"]));
    assert_eq!(first["changed"], true);
    assert_eq!(first["version"], "2026.1");
    assert_eq!(first["ref"], ref_name.as_str());
    let c1 = first["commit"].as_str().unwrap().to_string();
    assert_eq!(rev_parse(&repo, &ref_name), c1);
    for phase in ["resolve", "rootfs", "postprocess", "initramfs", "layout", "commit"] {
        assert!(first["timings"][phase].as_f64().is_some(), "timing for {phase}: {first}");
    }
    assert!(first["packages"].as_u64().unwrap() > 50);
    assert!(first["tree_size"].as_u64().unwrap() > 50 << 20);
    let fsck = ostree(&repo, &["fsck"]);
    assert!(fsck.contains("no errors found"), "{fsck}");
    assert!(std::fs::read_to_string(repo.join("config")).unwrap().contains("mode=archive"));
    assert!(repo.join("summary").exists(), "summary regenerated");

    // Tree layout.
    let kver = first["kernel"].as_str().unwrap();
    let ls = |p: &str| ostree(&repo, &["ls", &ref_name, p]);
    let top = ls("/");
    assert!(!top.lines().any(|l| l.ends_with(" /etc")), "no top-level /etc: {top}");
    assert!(top.contains("/home -> var/home") && top.contains("/ostree -> sysroot/ostree"), "{top}");
    assert!(top.contains("/sysroot"), "{top}");
    assert!(ls("/var").lines().count() == 1, "empty /var: {}", ls("/var"));
    assert!(ls("/usr/etc").contains("/usr/etc/passwd"));
    let moddir = ls(&format!("/usr/lib/modules/{kver}"));
    assert!(moddir.contains("/vmlinuz") && moddir.contains("/initramfs.img"), "{moddir}");
    assert_eq!(ls("/boot").lines().count(), 1, "empty /boot");
    let cat = |p: &str| ostree(&repo, &["cat", &ref_name, p]);
    let snippet = cat("/usr/lib/tmpfiles.d/atoll-var.conf");
    assert!(snippet.contains("d /var/roothome 0700") && snippet.contains("L /var/lib/dpkg"), "{snippet}");
    assert_eq!(cat("/usr/etc/machine-id"), "");
    assert!(cat("/usr/lib/os-release").contains("IMAGE_VERSION=\"2026.1\""));
    assert_eq!(cat("/usr/etc/motd"), "test tree motd\n");
    assert!(ls("/usr/libexec/atoll-hello").starts_with("-00755 0 0"), "add-files keeps the mode");
    assert_eq!(cat("/usr/lib/atoll-postprocess-marker"), "composed-by-postprocess\n");
    assert!(!ostree(&repo, &["ls", "-R", &ref_name, "/usr/share"]).contains("/usr/share/doc/"), "remove-files");
    assert!(
        ls("/usr/etc/systemd/system/multi-user.target.wants").contains("systemd-networkd.service"),
        "units enabled"
    );
    assert!(cat("/usr/share/dpkg/database/status").contains("Package: systemd"), "dpkg db readable under /usr");
    let meta = ostree(&repo, &["show", "--print-metadata-key=ostree.linux", &ref_name]);
    assert!(meta.contains(kver), "{meta}");
    let meta = ostree(&repo, &["show", "--print-metadata-key=atoll.stream", &ref_name]);
    assert!(meta.contains("test"), "{meta}");
    assert!(ostree(&repo, &["show", "--print-metadata-key=ostree.bootable", &ref_name]).contains("true"));

    // Unchanged: a no-op, in both output forms.
    let again = compose(&tf, &repo, &[]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), "no changes since 2026.1");
    assert_eq!(rev_parse(&repo, &ref_name), c1);
    let again = json(&compose(&tf, &repo, &["--json"]));
    assert_eq!(again["changed"], false);
    assert_eq!(again["commit"], c1.as_str());

    // A failing postprocess script: named, and nothing referenced changes.
    let bad_script = tf_dir.join("bad-script.toml");
    std::fs::write(&bad_script, text.replace("set -e\n", "set -e\necho about to fail\nexit 3\n")).unwrap();
    assert_refused(&compose(&bad_script, &repo, &[]), "postprocess script #1", &repo, &ref_name, Some(&c1));
    assert!(ostree(&repo, &["log", &ref_name]).matches("commit ").count() == 1);
    let scratch: Vec<_> = std::fs::read_dir(cachedir().join("tmp")).unwrap().collect();
    assert!(scratch.is_empty(), "scratch space cleaned after failure");

    // A changed treefile: next version, parented on the first, and db diff sees the package.
    std::fs::write(&tf, text.replace("ref =", "packages = [\"hello\"]\nref =")).unwrap();
    let second = json(&compose(&tf, &repo, &["--json"]));
    assert_eq!(second["changed"], true);
    assert_eq!(second["version"], "2026.1.1");
    assert_eq!(second["parent"], c1.as_str());
    let c2 = second["commit"].as_str().unwrap().to_string();
    assert_eq!(rev_parse(&repo, &format!("{ref_name}^")), c1);

    let diff = Command::new(BIN).args(["db", "diff", "--json", "--repo"]).arg(&repo).args([&c1, &c2]).output().unwrap();
    assert!(diff.status.success());
    let diff: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    let added: Vec<&str> = diff["added"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(added, ["hello"], "{diff}");
    assert!(diff["removed"].as_array().unwrap().is_empty());
    let text_diff =
        Command::new(BIN).args(["db", "diff", "--repo"]).arg(&repo).args([&c1, &ref_name]).output().unwrap();
    assert!(String::from_utf8_lossy(&text_diff.stdout).contains("Added:\n  hello-"));

    let list = Command::new(BIN).args(["db", "list", "--json", "--repo"]).arg(&repo).arg(&ref_name).output().unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"hello") && names.contains(&"systemd"), "{names:?}");
    let bad_rev = Command::new(BIN).args(["db", "list", "--repo"]).arg(&repo).arg("no/such/ref").output().unwrap();
    assert!(!bad_rev.status.success());
    assert!(String::from_utf8_lossy(&bad_rev.stderr).contains("no/such/ref"));

    // A package built on this host, named in `packages` like any other and taken from
    // `debian.local-packages`; rebuilding it with the same version still makes a new commit.
    let debs = dir.path().join("debs");
    build_deb(&debs, "atoll-test-local", "1.0-1", "first build");
    let with_local = text.replace("ref =", "packages = [\"hello\", \"atoll-test-local\"]\nref =");
    std::fs::write(&tf, format!("{with_local}\n[debian]\nlocal-packages = [\"../debs\"]\n")).unwrap();
    let third = json(&compose(&tf, &repo, &["--json"]));
    assert_eq!(third["changed"], true);
    assert_eq!(cat("/usr/bin/atoll-test-local"), "#!/bin/sh\necho first build\n");
    let meta = ostree(&repo, &["show", "--print-metadata-key=atoll.packages", &ref_name]);
    assert!(meta.contains("('atoll-test-local', '1.0-1', 'amd64')"), "{meta}");
    build_deb(&debs, "atoll-test-local", "1.0-1", "second build");
    let fourth = json(&compose(&tf, &repo, &["--json"]));
    assert_eq!(fourth["changed"], true, "a rebuilt local package is a new input");
    assert_eq!(fourth["parent"], third["commit"]);
    assert_eq!(
        cat("/usr/bin/atoll-test-local"),
        "#!/bin/sh\necho second build\n",
        "the rebuilt package, not a cached one"
    );
}

/// Build a real Debian package `name_version_amd64.deb` in `dir` holding `/usr/bin/NAME`, a
/// script that echoes `says`.
fn build_deb(dir: &Path, name: &str, version: &str, says: &str) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    std::fs::write(
        root.path().join("DEBIAN/control"),
        format!("Package: {name}\nVersion: {version}\nArchitecture: amd64\nMaintainer: Atoll tests <t@localhost>\nDescription: local package fixture\n"),
    )
    .unwrap();
    let bin = root.path().join("usr/bin").join(name);
    std::fs::write(&bin, format!("#!/bin/sh\necho {says}\n")).unwrap();
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(root.path())
        .arg(dir.join(format!("{name}_{version}_amd64.deb")))
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg-deb: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn commit_subcommand_commits_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("usr/bin/tool"), "#!/bin/sh\n").unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    let repo = dir.path().join("repo");
    let run = |args: &[&str]| {
        Command::new(BIN).arg("commit").arg(&root).arg("--repo").arg(&repo).args(args).output().unwrap()
    };
    let out = run(&["--ref", "t/one", "--add-metadata-version", "7", "--json", "--repo-mode", "bare-user"]);
    let first = json(&out);
    assert_eq!(first["version"], "7");
    assert_eq!(first["entries"], 5, "root, usr, usr/bin, tool, bin: {first}");
    assert!(std::fs::read_to_string(repo.join("config")).unwrap().contains("mode=bare-user"));
    assert_eq!(rev_parse(&repo, "t/one"), first["commit"].as_str().unwrap());
    assert!(ostree(&repo, &["ls", "t/one", "/bin"]).contains("/bin -> usr/bin"));
    // The first commit's size index lists both content objects (the file and the symlink);
    // each entry ends with its object type byte, 1 (file).
    let sizes = ostree(&repo, &["show", "--print-metadata-key=atoll.sizes", "t/one"]);
    assert_eq!(sizes.matches("0x01]").count(), 2, "{sizes}");
    // A second commit is parented on the first; its size index lists only what is new.
    std::fs::write(root.join("usr/bin/new-tool"), "new\n").unwrap();
    let second = json(&run(&["--ref", "t/one", "--json"]));
    assert_eq!(second["parent"], first["commit"]);
    let sizes = ostree(&repo, &["show", "--print-metadata-key=atoll.sizes", "t/one"]);
    assert_eq!(sizes.matches("0x01]").count(), 1, "{sizes}");
    // A directory that is neither empty nor a repository is refused and left alone.
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("keep"), "x").unwrap();
    let out =
        Command::new(BIN).arg("commit").arg(&root).arg("--repo").arg(&junk).args(["--ref", "t"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not an OSTree repository"));
    assert_eq!(std::fs::read_dir(&junk).unwrap().count(), 1);
}

/// The parallel writer must produce exactly the tree `ostree commit` produces: same content
/// checksum over files, modes, owners, xattrs, symlinks and hard links.
#[test]
fn commit_matches_ostree_commit_content_checksum() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    for d in ["usr/bin", "usr/lib/empty", "etc/secret"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("usr/bin/tool"), vec![7u8; 300_000]).unwrap();
    std::fs::write(root.join("usr/bin/empty-file"), "").unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("usr/lib/dangling")).unwrap();
    std::fs::write(root.join("etc/secret/key"), "k").unwrap();
    let chmod = |p: &str, m: u32| {
        std::fs::set_permissions(root.join(p), std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    chmod("etc/secret", 0o700);
    chmod("etc/secret/key", 0o600);
    chmod("usr/bin/tool", 0o4755);
    std::os::unix::fs::lchown(root.join("etc/secret/key"), Some(42), Some(43)).unwrap();
    xattr::set(root.join("usr/bin/tool"), "user.atoll.test", b"value").unwrap();
    xattr::set(
        root.join("usr/bin/tool"),
        "security.capability",
        &[1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )
    .unwrap();
    xattr::set(root.join("usr/lib/empty"), "user.dir", b"d").unwrap();

    let theirs = dir.path().join("theirs");
    let ours = dir.path().join("ours");
    let out = Command::new("ostree")
        .arg(format!("--repo={}", theirs.display()))
        .args(["init", "--mode=archive"])
        .output()
        .unwrap();
    assert!(out.status.success());
    ostree(&theirs, &["commit", "--branch=t", root.to_str().unwrap()]);
    let out =
        Command::new(BIN).arg("commit").arg(&root).arg("--repo").arg(&ours).args(["--ref", "t"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let content = |repo: &Path| {
        ostree(repo, &["show", "t"]).lines().find(|l| l.starts_with("ContentChecksum:")).unwrap().to_string()
    };
    assert_eq!(content(&ours), content(&theirs));
    assert!(ostree(&ours, &["fsck"]).contains("no errors found"));
}
