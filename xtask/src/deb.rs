//! `cargo xtask deb`: the Debian package, target/debian/iplock_VERSION_ARCH.deb,
//! laid out by hand and built with dpkg-deb, so nothing but dpkg-dev is needed:
//! the release binary (the XDP object is inside it), the systemd unit, the
//! sample configuration as a conffile, man pages (section 8) and shell
//! completions generated from the binary, and the copyright, changelog and
//! README. The maintainer scripts, copyright, changelog and lintian
//! overrides are in contrib/debian.
use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::cmd;

const NAME: &str = "iplock";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const MAINTAINER: &str = "iplock developers <iplock@example.org>";
/// Where the package puts the binary; the unit in contrib names the path
/// of an install from source, which the packaged unit replaces.
const SBIN: &str = "/usr/sbin/iplock";
const SOURCE_SBIN: &str = "/usr/local/sbin/iplock";
/// The configuration holds the allow list and the knock sequence.
const CONFFILE: &str = "etc/iplock/iplock.toml";

const DESCRIPTION: &str = "port knocking in the kernel's XDP fast path
 A source that sends the secret sequence of packets (fixed, or derived
 from a shared secret every period) may open new connections to the
 protected ports, SSH by default, for a short window; everyone else sees
 a filtered port, and the knock ports look like every other closed port.
 Every decision is made in XDP before the kernel allocates anything, and
 the state lives in pinned BPF maps, so it survives restarts.
 .
 The service is not enabled on install: edit /etc/iplock/iplock.toml,
 then `systemctl enable --now iplock`.";

/// Builds the package and returns its path.
pub fn run(root: &Path) -> Result<PathBuf> {
    let started = Instant::now();
    let target = crate::target_dir(root);
    println!("==> cargo build --release -p iplock");
    cmd::run(
        Command::new("cargo")
            .current_dir(root)
            .args(["build", "--release", "-p", "iplock"]),
    )
    .context("building iplock failed; `cargo xtask setup` installs what it needs")?;
    let arch = cmd::output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();

    let out_dir = target.join("debian");
    let stage = out_dir.join(format!("{NAME}_{VERSION}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }
    let doc = stage.join("usr/share/doc").join(NAME);

    let bin = stage.join(SBIN.trim_start_matches('/'));
    copy(&target.join("release").join(NAME), &bin, 0o755)?;
    // What dh_strip removes: symbols and notes no user of the package needs.
    cmd::run(
        Command::new("strip")
            .args([
                "--strip-unneeded",
                "--remove-section=.comment",
                "--remove-section=.note",
            ])
            .arg(&bin),
    )?;

    let unit = fs::read_to_string(root.join("contrib/iplock.service"))
        .context("reading contrib/iplock.service")?;
    ensure!(
        unit.contains(&format!("ExecStart={SOURCE_SBIN} ")),
        "contrib/iplock.service no longer starts {SOURCE_SBIN}; update xtask/src/deb.rs"
    );
    write(
        &stage.join("lib/systemd/system/iplock.service"),
        unit.replace(SOURCE_SBIN, SBIN).as_bytes(),
        0o644,
    )?;
    copy(
        &root.join("contrib/iplock.toml"),
        &stage.join(CONFFILE),
        0o600,
    )?;

    let docs = out_dir.join("docs");
    if docs.exists() {
        fs::remove_dir_all(&docs).with_context(|| format!("removing {}", docs.display()))?;
    }
    cmd::run(
        Command::new(&bin)
            .arg("generate-docs")
            .arg("--out")
            .arg(&docs),
    )?;
    let man8 = stage.join("usr/share/man/man8");
    for entry in fs::read_dir(&docs).with_context(|| format!("listing {}", docs.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let dest = match name {
            "iplock.bash" => stage.join("usr/share/bash-completion/completions/iplock"),
            "_iplock" => stage.join("usr/share/zsh/vendor-completions/_iplock"),
            "iplock.fish" => stage.join("usr/share/fish/vendor_completions.d/iplock.fish"),
            n if n.ends_with(".8") => {
                gzip(&path, &man8.join(format!("{n}.gz")))?;
                continue;
            }
            n => bail!("iplock generate-docs wrote {n}, which the package has no place for"),
        };
        copy(&path, &dest, 0o644)?;
    }

    copy(
        &root.join("contrib/debian/copyright"),
        &doc.join("copyright"),
        0o644,
    )?;
    copy(
        &root.join("contrib/debian/lintian-overrides"),
        &stage.join("usr/share/lintian/overrides").join(NAME),
        0o644,
    )?;
    let changelog = root.join("contrib/debian/changelog");
    let first = fs::read_to_string(&changelog).context("reading contrib/debian/changelog")?;
    ensure!(
        first.starts_with(&format!("{NAME} ({VERSION}) ")),
        "contrib/debian/changelog does not start with an entry for {NAME} {VERSION}; add one"
    );
    gzip(&changelog, &doc.join("changelog.gz"))?;
    gzip(&root.join("README.md"), &doc.join("README.md.gz"))?;

    let debian = stage.join("DEBIAN");
    for script in ["prerm", "postinst", "postrm"] {
        copy(
            &root.join("contrib/debian").join(script),
            &debian.join(script),
            0o755,
        )?;
    }
    write(
        &debian.join("conffiles"),
        format!("/{CONFFILE}\n").as_bytes(),
        0o644,
    )?;
    let md5sums = cmd::output(Command::new("sh").current_dir(&stage).args([
        "-c",
        "find . -path ./DEBIAN -prune -o -type f -printf '%P\\0' | sort -z | xargs -0 md5sum",
    ]))?;
    write(&debian.join("md5sums"), md5sums.as_bytes(), 0o644)?;
    let control = format!(
        "Package: {NAME}\nVersion: {VERSION}\nArchitecture: {arch}\nMaintainer: {MAINTAINER}\n\
         Installed-Size: {}\nDepends: {}\nSection: net\nPriority: optional\n\
         Description: {DESCRIPTION}\n",
        installed_kib(&stage)?,
        depends(&out_dir, &bin)?
    );
    write(&debian.join("control"), control.as_bytes(), 0o644)?;

    let deb = out_dir.join(format!("{NAME}_{VERSION}_{arch}.deb"));
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    println!(
        "wrote {} in {:.0?}; install it with `dpkg -i {}`",
        deb.display(),
        started.elapsed(),
        deb.display()
    );
    Ok(deb)
}

/// The shared libraries the binary needs, as package dependencies, from
/// dpkg-shlibdeps (which wants a debian/control to read).
fn depends(out_dir: &Path, bin: &Path) -> Result<String> {
    let work = out_dir.join("shlibdeps");
    write(
        &work.join("debian/control"),
        format!("Source: {NAME}\n\nPackage: {NAME}\nArchitecture: any\n").as_bytes(),
        0o644,
    )?;
    let out = cmd::output(
        Command::new("dpkg-shlibdeps")
            .current_dir(&work)
            .arg("-O")
            .arg(bin),
    )?;
    let deps = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("dpkg-shlibdeps printed no dependencies: {out}"))?;
    Ok(deps.trim().to_owned())
}

/// Installed-Size as dpkg-gencontrol counts it: KiB per file, rounded up.
fn installed_kib(dir: &Path) -> Result<u64> {
    let mut kib = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if entry.file_name() == "DEBIAN" {
            continue;
        }
        let meta = entry.metadata()?;
        kib += if meta.is_dir() {
            installed_kib(&entry.path())?
        } else {
            meta.len().div_ceil(1024)
        };
    }
    Ok(kib)
}

/// `gzip -9n`, as Debian compresses man pages and documentation.
fn gzip(from: &Path, to: &Path) -> Result<()> {
    let data = cmd::output_bytes(Command::new("gzip").args(["-9n", "--stdout"]).arg(from))?;
    write(to, &data, 0o644)
}

fn copy(from: &Path, to: &Path, mode: u32) -> Result<()> {
    let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write(to, &data, mode)
}

/// Writes `to` with `mode`, and its missing parent directories with 0755,
/// whatever the umask.
fn write(to: &Path, data: &[u8], mode: u32) -> Result<()> {
    let parent = to.parent().expect("a staged path has a parent");
    for dir in parent.ancestors().collect::<Vec<_>>().into_iter().rev() {
        if !dir.exists() {
            fs::create_dir(dir).with_context(|| format!("creating {}", dir.display()))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        }
    }
    fs::write(to, data).with_context(|| format!("writing {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", to.display()))
}
