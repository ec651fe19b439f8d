//! The Debian package that `cargo xtask deb` builds: its contents and
//! control data, lintian's verdict, an install on this machine (every file,
//! its mode, the conffile, the man pages, the installed binary loading and
//! unloading a filter in a namespace), removal and purge leaving nothing.
//!
//! The package is a release build, so it is not built here: `cargo xtask
//! test` builds it first and names it in `$IPLOCK_DEB`; without it the test
//! takes target/debian/iplock_VERSION_ARCH.deb, as `cargo xtask deb` writes it.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use iplock_e2e::{
    Iplock, KNOCK, Mode, NetnsPair, describe, require_root, require_tools, run_bounded,
};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// A dpkg or lintian run on a busy machine.
const LIMIT: Duration = Duration::from_secs(120);

fn run(cmd: &mut Command) -> Output {
    run_bounded(cmd, LIMIT)
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn package() -> PathBuf {
    if let Some(deb) = std::env::var_os("IPLOCK_DEB") {
        return PathBuf::from(deb);
    }
    let arch = ok(Command::new("dpkg").arg("--print-architecture"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| workspace().join(d))
        .unwrap_or_else(|| workspace().join("target"));
    let deb = target
        .join("debian")
        .join(format!("iplock_{VERSION}_{}.deb", arch.trim()));
    assert!(
        deb.is_file(),
        "{} does not exist: build it with `cargo xtask deb` or set IPLOCK_DEB",
        deb.display()
    );
    deb
}

fn installed() -> bool {
    let out = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "iplock"]));
    String::from_utf8_lossy(&out.stdout).contains("ok installed")
}

/// Purges the package however the test ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run_bounded(Command::new("dpkg").args(["--purge", "iplock"]), LIMIT);
    }
}

/// Every subcommand at any depth, as the man pages name them.
const PAGES: &[&str] = &[
    "iplock",
    "iplock-load",
    "iplock-status",
    "iplock-unload",
    "iplock-run",
    "iplock-reload",
    "iplock-check",
    "iplock-allow",
    "iplock-allow-add",
    "iplock-allow-del",
    "iplock-allow-list",
    "iplock-ban",
    "iplock-ban-add",
    "iplock-ban-del",
    "iplock-ban-list",
    "iplock-ban-flush",
    "iplock-knock",
    "iplock-calc",
    "iplock-secret",
    "iplock-secret-new",
];

/// (path, mode) of every file the package must hold.
fn files() -> Vec<(String, u32)> {
    let mut files: Vec<(String, u32)> = [
        ("/usr/sbin/iplock", 0o755),
        ("/lib/systemd/system/iplock.service", 0o644),
        ("/etc/iplock/iplock.toml", 0o600),
        ("/usr/share/bash-completion/completions/iplock", 0o644),
        ("/usr/share/zsh/vendor-completions/_iplock", 0o644),
        ("/usr/share/fish/vendor_completions.d/iplock.fish", 0o644),
        ("/usr/share/doc/iplock/copyright", 0o644),
        ("/usr/share/doc/iplock/changelog.gz", 0o644),
        ("/usr/share/doc/iplock/README.md.gz", 0o644),
        ("/usr/share/lintian/overrides/iplock", 0o644),
    ]
    .iter()
    .map(|(p, m)| (p.to_string(), *m))
    .collect();
    files.extend(
        PAGES
            .iter()
            .map(|p| (format!("/usr/share/man/man8/{p}.8.gz"), 0o644)),
    );
    files
}

#[test]
fn the_package_installs_works_and_purges_clean() {
    if !require_root() || !require_tools(&["dpkg", "dpkg-deb", "lintian", "man"]) {
        return;
    }
    let deb = package();
    assert!(
        !installed(),
        "iplock is installed on this machine already; the test would purge it, so it stops"
    );

    // What the archive holds, with owners and modes.
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for (path, mode) in files() {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
        let perms = line.split_whitespace().next().unwrap();
        assert_eq!(perms, format!("-{}", rwx(mode)), "{line}");
        assert!(line.contains(" root/root "), "{line}");
    }
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    assert!(info.contains(" Package: iplock\n"), "{info}");
    assert!(info.contains(&format!(" Version: {VERSION}\n")), "{info}");
    let depends = info
        .lines()
        .find_map(|l| l.strip_prefix(" Depends: "))
        .unwrap_or_else(|| panic!("no Depends: {info}"));
    for dep in depends.split(',') {
        let name = dep.split_whitespace().next().unwrap();
        assert!(
            ["libc6", "libgcc-s1"].contains(&name),
            "a dependency beyond libc (and its libgcc): {depends}"
        );
    }
    let field = |name: &str| ok(Command::new("dpkg-deb").arg("-I").arg(&deb).arg(name));
    assert_eq!(field("conffiles"), "/etc/iplock/iplock.toml\n");
    assert!(field("prerm").contains("deb-systemd-invoke stop iplock.service"));
    assert!(field("postrm").contains("rm -rf /etc/iplock"));

    let lintian = run(Command::new("lintian")
        .arg("--fail-on")
        .arg("error")
        .arg(&deb));
    eprintln!("lintian:\n{}", describe(&lintian));
    assert!(lintian.status.success(), "lintian: {}", describe(&lintian));
    assert!(
        !String::from_utf8_lossy(&lintian.stdout)
            .lines()
            .any(|l| l.starts_with("E: ")),
        "lintian errors: {}",
        describe(&lintian)
    );

    let _purge = Purge;
    ok(Command::new("dpkg").arg("-i").arg(&deb));
    for (path, mode) in files() {
        let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path}");
    }
    assert_eq!(
        std::fs::read_to_string("/etc/iplock/iplock.toml").unwrap(),
        std::fs::read_to_string(workspace().join("contrib/iplock.toml")).unwrap()
    );
    let conffiles = ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "iplock"]));
    assert!(
        conffiles.contains("/etc/iplock/iplock.toml "),
        "{conffiles}"
    );
    let unit = std::fs::read_to_string("/lib/systemd/system/iplock.service").unwrap();
    assert!(
        unit.contains("\nExecStart=/usr/sbin/iplock run --keep "),
        "{unit}"
    );
    let version = ok(Command::new("/usr/sbin/iplock").arg("--version"));
    assert_eq!(version, format!("iplock {VERSION}\n"));
    let page = ok(Command::new("man").args(["-w", "iplock-load"]));
    assert_eq!(page, "/usr/share/man/man8/iplock-load.8.gz\n");
    let page = ok(Command::new("man").args(["-w", "8", "iplock-secret-new"]));
    assert_eq!(page, "/usr/share/man/man8/iplock-secret-new.8.gz\n");

    {
        let pair = NetnsPair::new();
        let iplock = Iplock::with_binary(&pair, "/usr/sbin/iplock".into());
        iplock.load(Mode::Skb, &["--knock", KNOCK]);
        assert!(pair.server_has_xdp(), "the installed iplock attached");
        iplock.unload();
        assert!(!pair.server_has_xdp(), "the installed iplock detached");
        assert!(!iplock.pin_dir().exists(), "and removed its pins");
    }

    // A removal keeps the configuration, a purge takes it and any secret.
    std::fs::write("/etc/iplock/secret", "00").unwrap();
    ok(Command::new("dpkg").args(["--remove", "iplock"]));
    assert!(
        !Path::new("/usr/sbin/iplock").exists(),
        "remove took the binary"
    );
    assert!(
        Path::new("/etc/iplock/iplock.toml").exists(),
        "remove keeps the conffile"
    );
    ok(Command::new("dpkg").args(["--purge", "iplock"]));
    for (path, _) in files() {
        assert!(!Path::new(&path).exists(), "{path} is left after the purge");
    }
    for dir in ["/etc/iplock", "/usr/share/doc/iplock"] {
        assert!(!Path::new(dir).exists(), "{dir} is left after the purge");
    }
    assert!(!installed(), "dpkg still knows iplock");
}

/// `ls -l`'s letters for a file mode.
fn rwx(mode: u32) -> String {
    (0..9)
        .map(|i| {
            let bit = 1 << (8 - i);
            if mode & bit == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}
