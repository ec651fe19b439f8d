//! `cargo xtask setup`: installs what building and testing iplock needs,
//! checking first and skipping whatever is already there.
use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd;

/// Components per toolchain: nightly builds and lints the eBPF crate with
/// `-Z build-std=core` (rust-src) and clippy; stable lints and formats the rest.
const COMPONENTS: [(Option<&str>, &[&str]); 2] = [
    (Some("nightly"), &["rust-src", "clippy"]),
    (None, &["rustfmt", "clippy"]),
];

/// What the end-to-end tests and the demo run besides iplock itself, and
/// what builds (dpkg-dev), checks (lintian) and reads (man-db) the package.
const DEBIAN_PACKAGES: &[&str] = &[
    "iproute2",
    "knockd",
    "openssh-server",
    "openssh-client",
    "iptables",
    "nftables",
    "bpftool",
    "tcpdump",
    "util-linux",
    "dpkg-dev",
    "lintian",
    "man-db",
    // fwknop's client makes the SPA fixtures (iplock/tests/fixtures/spa).
    "fwknop-client",
];

/// Python modules the end-to-end tests use: (import name, PyPI package).
/// prometheus_client's parser checks the metrics text.
const PYTHON_MODULES: &[(&str, &str)] = &[("prometheus_client", "prometheus-client")];

const BPFFS: &str = "/sys/fs/bpf";

pub fn run(root: &Path) -> Result<()> {
    println!(
        "setup: checking toolchain components, bpf-linker, Debian packages, Python modules and bpffs"
    );
    ensure!(
        cmd::succeeds(Command::new("rustc").arg("+nightly").arg("--version")),
        "the nightly Rust toolchain is missing (`rustc +nightly --version` failed); \
         install it with `rustup toolchain install nightly`"
    );
    for (toolchain, components) in COMPONENTS {
        rust_components(root, toolchain, components)?;
    }
    bpf_linker(root)?;
    debian_packages()?;
    python_modules()?;
    crowdsec()?;
    bpffs()
}

/// Installs with pip, for the `python3` on PATH, the modules it cannot import.
fn python_modules() -> Result<()> {
    for (module, package) in PYTHON_MODULES {
        if cmd::succeeds(Command::new("python3").args(["-c", &format!("import {module}")])) {
            println!("skip: python3 imports {module}");
            continue;
        }
        println!("install: {package} with pip (`python3 -c 'import {module}'` failed)");
        cmd::run(Command::new("python3").args(["-m", "pip", "install", "--quiet", package]))?;
    }
    Ok(())
}

/// CrowdSec's Local API, which the CrowdSec tests start themselves (their
/// own config, `crowdsec -c CONFIG -no-cs -no-capi`): the system service is
/// never needed. The package registers with the Central API on install,
/// which fails offline, unless this file exists and is not empty.
const CROWDSEC_CAPI_CREDENTIALS: &str = "/etc/crowdsec/online_api_credentials.yaml";

fn crowdsec() -> Result<()> {
    let status = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", "crowdsec"]));
    if status.is_ok_and(|s| s.trim() == "install ok installed") {
        println!("skip: crowdsec is installed");
        return Ok(());
    }
    ensure!(
        crate::is_root(),
        "the Debian package crowdsec is missing and installing it needs root; rerun as root"
    );
    let capi = Path::new(CROWDSEC_CAPI_CREDENTIALS);
    if fs::metadata(capi).map_or(true, |m| m.len() == 0) {
        println!("write: {CROWDSEC_CAPI_CREDENTIALS}, so the package skips online registration");
        fs::create_dir_all(capi.parent().unwrap())
            .with_context(|| format!("could not create {}", capi.parent().unwrap().display()))?;
        fs::write(
            capi,
            "# No Central API on this host: the crowdsec package registers only when this file is empty.\n",
        )
        .with_context(|| format!("could not write {CROWDSEC_CAPI_CREDENTIALS}"))?;
    }
    println!("install: Debian package crowdsec (offline; the tests run their own Local API)");
    cmd::run(Command::new("apt-get").arg("update"))?;
    let install = || {
        cmd::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "--no-install-recommends", "crowdsec"]),
        )
    };
    // A half-configured package from an earlier, online-registering try
    // finishes configuring now that the file exists.
    if install().is_err() {
        cmd::run(
            Command::new("dpkg")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .arg("--configure")
                .arg("crowdsec"),
        )?;
    }
    Ok(())
}

fn rust_components(root: &Path, toolchain: Option<&str>, wanted: &[&str]) -> Result<()> {
    let name = toolchain.unwrap_or("default");
    let mut list = Command::new("rustup");
    list.current_dir(root);
    if let Some(t) = toolchain {
        list.arg(format!("+{t}"));
    }
    let installed = cmd::output(list.args(["component", "list", "--installed"]))?;
    // Installed names carry the host triple ("clippy-x86_64-unknown-linux-gnu"),
    // except target-independent ones such as "rust-src".
    let missing: Vec<&str> = wanted
        .iter()
        .copied()
        .filter(|c| {
            !installed
                .lines()
                .any(|l| l == *c || l.starts_with(&format!("{c}-")))
        })
        .collect();
    if missing.is_empty() {
        println!("skip: {name} toolchain already has {}", wanted.join(", "));
        return Ok(());
    }
    println!("install: {} for the {name} toolchain", missing.join(", "));
    let mut add = Command::new("rustup");
    add.current_dir(root)
        .args(["component", "add"])
        .args(&missing);
    if let Some(t) = toolchain {
        add.args(["--toolchain", t]);
    }
    cmd::run(&mut add)
}

/// bpf-linker must link against the same LLVM that nightly rustc emits
/// bitcode for, so it is built against the toolchain's own libLLVM.
fn bpf_linker(root: &Path) -> Result<()> {
    // `cargo install` honours CARGO_INSTALL_ROOT; look where it will install.
    let bin = match env::var_os("CARGO_INSTALL_ROOT") {
        Some(dir) => PathBuf::from(dir).join("bin").join("bpf-linker"),
        None => PathBuf::from("bpf-linker"),
    };
    if let Ok(version) = cmd::output(Command::new(&bin).arg("--version")) {
        println!("skip: {} works", version.trim());
        return Ok(());
    }
    let sysroot = cmd::output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
    let lib = Path::new(sysroot.trim()).join("lib");
    let (libllvm, major) = find_libllvm(&lib)?;
    let prefix = crate::target_dir(root).join("llvm-prefix");
    let link = prefix.join("lib").join("libLLVM.so");
    fs::create_dir_all(prefix.join("lib"))
        .with_context(|| format!("could not create {}", prefix.display()))?;
    if fs::symlink_metadata(&link).is_ok() {
        fs::remove_file(&link).with_context(|| format!("could not remove {}", link.display()))?;
    }
    symlink(&libllvm, &link)
        .with_context(|| format!("could not link {} to {}", link.display(), libllvm.display()))?;
    println!(
        "install: bpf-linker (`{} --version` failed), built against {} (LLVM {major}); takes a few minutes",
        bin.display(),
        libllvm.display()
    );
    cmd::run(
        Command::new("cargo")
            .current_dir(root)
            .env("LLVM_PREFIX", &prefix)
            .env(
                "RUSTFLAGS",
                format!("-C link-arg=-Wl,-rpath,{}", lib.display()),
            )
            .args(["+nightly", "install", "bpf-linker", "--locked", "--force"])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{major}")),
    )?;
    let version = cmd::output(Command::new(&bin).arg("--version"))
        .context("bpf-linker was installed but does not run")?;
    println!("installed: {}", version.trim());
    Ok(())
}

/// Finds `libLLVM.so.<major>.<minor>-rust-<version>` in the toolchain's lib
/// directory; its name changes with every LLVM upgrade of nightly.
fn find_libllvm(lib: &Path) -> Result<(PathBuf, u32)> {
    let entries = fs::read_dir(lib).with_context(|| format!("could not list {}", lib.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let name = entry
            .with_context(|| format!("could not list {}", lib.display()))?
            .file_name();
        let Some(version) = name.to_str().and_then(|n| n.strip_prefix("libLLVM.so.")) else {
            continue;
        };
        if !version.contains("-rust-") {
            continue;
        }
        let major = version
            .split(['.', '-'])
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .with_context(|| format!("no LLVM major version in {}", lib.join(&name).display()))?;
        found.push((lib.join(&name), major));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => bail!("no libLLVM.so.*-rust-* in {}", lib.display()),
        _ => bail!(
            "several libLLVM.so.*-rust-* in {}, cannot tell which nightly rustc uses",
            lib.display()
        ),
    }
}

fn debian_packages() -> Result<()> {
    let mut missing = Vec::new();
    for pkg in DEBIAN_PACKAGES {
        // dpkg-query exits 1 for a package it has never seen; both that and a
        // status other than "installed" (removed, half-configured) mean install it.
        let status = cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", pkg]));
        if !status.is_ok_and(|s| s.trim() == "install ok installed") {
            missing.push(*pkg);
        }
    }
    if missing.is_empty() {
        println!(
            "skip: Debian packages already installed: {}",
            DEBIAN_PACKAGES.join(" ")
        );
        return Ok(());
    }
    ensure!(
        crate::is_root(),
        "Debian packages {} are missing and installing them needs root; rerun as root",
        missing.join(" ")
    );
    println!("install: Debian packages {}", missing.join(" "));
    cmd::run(Command::new("apt-get").arg("update"))?;
    cmd::run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing),
    )
}

/// iplock pins its maps and links under /sys/fs/bpf, which not every machine mounts.
fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("could not read /proc/mounts")?;
    let mounted = mounts.lines().any(|l| {
        let mut fields = l.split_whitespace().skip(1);
        fields.next() == Some(BPFFS) && fields.next() == Some("bpf")
    });
    if mounted {
        println!("skip: bpffs is mounted at {BPFFS}");
        return Ok(());
    }
    ensure!(
        crate::is_root(),
        "bpffs is not mounted at {BPFFS} and mounting it needs root; rerun as root"
    );
    println!("mount: bpffs at {BPFFS}");
    cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}
