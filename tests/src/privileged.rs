//! The guard every privileged test starts with.
//!
//! Without root (or a needed tool) a test prints `SKIP: <reason>` and
//! returns, so `cargo test` stays usable on a workstation; with
//! `IPLOCK_REQUIRE_PRIVILEGED=1` (set by `cargo xtask test`) a skip is a
//! failure, so CI cannot pass by skipping.

use std::ffi::CString;
use std::path::Path;
use std::sync::Mutex;

const REQUIRE_VAR: &str = "IPLOCK_REQUIRE_PRIVILEGED";
const BPFFS: &str = "/sys/fs/bpf";
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Whether a test that needs root, `ip`, `nsenter` and bpffs can run; when it
/// cannot, skips (returns false) or panics as the module explains.
pub fn require_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("not running as root");
    }
    if !require_tools(&["ip", "nsenter"]) {
        return false;
    }
    if let Err(reason) = ensure_bpffs() {
        return skip(&reason);
    }
    true
}

/// Whether every tool (a name looked up in PATH, or an absolute path) exists;
/// skips or panics like [`require_root`] otherwise.
pub fn require_tools(tools: &[&str]) -> bool {
    for tool in tools {
        if !on_path(tool) {
            return skip(&format!("{tool} not found"));
        }
    }
    true
}

/// Whether `python3` imports `module` (`cargo xtask setup` installs the
/// ones the tests use); skips like [`require_tools`] otherwise.
pub fn require_python_module(module: &str) -> bool {
    let imported = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    imported || skip(&format!("the Python module {module} is not installed"))
}

fn skip(reason: &str) -> bool {
    if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
        panic!("{reason}, and {REQUIRE_VAR}=1 makes privileged tests mandatory");
    }
    eprintln!("SKIP: {reason}");
    false
}

fn on_path(tool: &str) -> bool {
    if tool.contains('/') {
        return Path::new(tool).is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false)
}

fn is_bpffs(path: &str) -> bool {
    let c_path = CString::new(path).unwrap();
    // SAFETY: statfs only writes into the zeroed struct we own.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    rc == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts bpffs on /sys/fs/bpf when a bare container lacks it, as systemd
/// does on a normal host: pins need it, and the tests must not depend on
/// who booted the machine.
fn ensure_bpffs() -> Result<(), String> {
    // Serialise so parallel tests never stack two mounts (a second mount would
    // hide the pins made under the first).
    static LOCK: Mutex<()> = Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if is_bpffs(BPFFS) {
        return Ok(());
    }
    let target = CString::new(BPFFS).unwrap();
    let fstype = CString::new("bpf").unwrap();
    let data = CString::new("mode=0700").unwrap();
    // SAFETY: every pointer is a valid NUL-terminated string we own.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(format!(
            "no bpffs on {BPFFS} and mounting one failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}
