//! Rotating knocks end to end: `iplock run` derives a new sequence from a
//! shared secret every period and `iplock knock --secret-file` derives the
//! same one on the client. A sequence seen on the wire is worthless: once
//! it has opened the door it is spent, for the rest of its period and for
//! the next one, where the filter still accepts it for late clocks. A
//! client clock one period behind still gets in, two periods behind does
//! not; a secret changed through `iplock reload` counts at once; a secret
//! file others may read is refused.
//!
//! Periods are 6 s. A step whose meaning depends on staying inside one
//! period starts only once the filter is seen to hold that period's
//! sequence and enough of the period is left for the step; the machine may
//! be busy, so the margins are wide.

use std::fs::OpenOptions;
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use iplock_e2e::iplock::binary;
use iplock_e2e::knockers::iplock_knock;
use iplock_e2e::status::{counter, knock_sequence};
use iplock_e2e::{
    CLIENT_V4, Daemon, EchoServer, Iplock, NO_BANS, NetnsPair, OTHER_V4, SERVER_V4, SERVER_V6,
    TempDir, describe, one_stderr_line, require_root, run_bounded,
};

/// The rotation period of every test, in seconds.
const PERIOD: u64 = 6;
const PERIOD_ARG: &str = "6s";
/// How long after a boundary a step may start: `iplock run` looks at the
/// clock twice a second and may wait for a busy CPU before it writes the
/// new sequence.
const SETTLE: Duration = Duration::from_secs(1);
/// Time between knocks of the client: small, so a sequence fits well
/// inside a period, yet enough to keep the knocks in order.
const DELAY: &str = "50ms";

/// The period the wall clock is in, and how far into it.
fn clock() -> (u64, Duration) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let index = now.as_secs() / PERIOD;
    (index, now - Duration::from_secs(index * PERIOD))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `iplock secret new FLAGS > F` exactly as an operator types it, into a
/// file that already exists with mode 644, so the test does not depend on
/// the umask to see the mode change.
fn new_secret(dir: &TempDir, name: &str, flags: &[&str]) -> PathBuf {
    let path = dir.path().join(name);
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o644)
        .open(&path)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run_bounded(
        Command::new("sh")
            .arg("-c")
            .arg("f=$1; shift; exec \"$0\" secret new \"$@\" > \"$f\"")
            .arg(binary())
            .arg(&path)
            .args(flags),
        Duration::from_secs(10),
    );
    assert!(
        out.status.success(),
        "iplock secret new: {}",
        describe(&out)
    );
    path
}

fn mode_of(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The sequence `iplock knock` says it sent: `tcp:1,udp:2,...`.
fn knocked(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("iplock: knocked on "))
        .and_then(|l| l.split_once(" with "))
        .map(|(_, seq)| seq.trim().to_string())
        .unwrap_or_else(|| panic!("iplock knock printed no sequence: {}", describe(out)))
}

/// Asserts a refusal: exit status 2 and one sentence on one line of stderr
/// that contains `needle`.
fn assert_refused(what: &str, out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{what}: {}", describe(out));
    let line = one_stderr_line(out);
    assert!(line.contains(needle), "{what}: {line:?} lacks {needle:?}");
}

/// A server running `iplock run` with a rotating sequence, a client with
/// the secret, and an echo server on port 22. Fields drop in order: the
/// daemon stops before its pin dir, namespaces and files go.
struct Rig {
    daemon: Daemon,
    iplock: Iplock,
    _server: EchoServer,
    pair: NetnsPair,
    /// The secret file the config names.
    secret: PathBuf,
    config: String,
    /// How the client must be told the rotation besides the secret file:
    /// nothing for a file `iplock secret new` made, flags for a bare-hex one.
    rotation_args: Vec<String>,
    /// The `iplock secret new` flags of this rotation.
    secret_flags: Vec<String>,
    dir: TempDir,
}

/// The 64 hex digits of a secret file, as earlier versions wrote it alone.
fn bare_hex(secret: &Path) -> String {
    let text = std::fs::read_to_string(secret).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("secret = \""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no secret in {text:?}"))
        .to_string()
}

impl Rig {
    /// Wrong knocks and SYNs through the closed door ban nobody, so a test
    /// can try again from the same source and a failure means only that
    /// the door stayed shut.
    fn start(steps: usize, udp: bool) -> Rig {
        Rig::start_with(steps, udp, false)
    }

    /// [`Rig::start`]; with `bare`, the secret file holds the hex alone,
    /// as earlier versions wrote it, and the client gives the rotation's flags.
    fn start_with(steps: usize, udp: bool, bare: bool) -> Rig {
        let dir = TempDir::new();
        let mut secret_flags = vec![
            "--period".to_string(),
            PERIOD_ARG.to_string(),
            "--steps".to_string(),
            steps.to_string(),
        ];
        if udp {
            secret_flags.push("--udp".to_string());
        }
        let flags: Vec<&str> = secret_flags.iter().map(String::as_str).collect();
        let secret = new_secret(&dir, "secret", &flags);
        let rotation_args = if bare {
            std::fs::write(&secret, format!("{}\n", bare_hex(&secret))).unwrap();
            secret_flags.clone()
        } else {
            Vec::new()
        };
        let pair = NetnsPair::new();
        let server = EchoServer::start(&pair, &[22]);
        let config = dir.config_file(&format!(
            "interfaces = [\"{}\"]\nprotect = [22]\n\
             rotate = {{ secret_file = \"{}\", period = \"{PERIOD_ARG}\", steps = {steps}, udp = {udp} }}\n\
             {NO_BANS}",
            pair.server_if,
            secret.display()
        ));
        let iplock = Iplock::new(&pair);
        // Rotations are logged at debug: the log then tells when each new
        // sequence reached the filter.
        let daemon = Daemon::start(&iplock, &["--config", &config], "info,iplock=debug");
        Rig {
            daemon,
            iplock,
            _server: server,
            pair,
            secret,
            config,
            rotation_args,
            secret_flags,
            dir,
        }
    }

    /// Another secret for this rig's rotation.
    fn new_secret(&self, name: &str) -> PathBuf {
        let flags: Vec<&str> = self.secret_flags.iter().map(String::as_str).collect();
        new_secret(&self.dir, name, &flags)
    }

    fn config(&self) -> &str {
        &self.config
    }

    /// `iplock knock <host> --secret-file <secret> <rotation> <args>` from
    /// the client's primary address.
    fn knock_with(&self, host: IpAddr, secret: &Path, args: &[&str]) -> Output {
        let host = host.to_string();
        let mut all = vec![
            host.as_str(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--delay",
            DELAY,
        ];
        all.extend(self.rotation_args.iter().map(String::as_str));
        all.extend_from_slice(args);
        iplock_knock(&self.pair, &all)
    }

    /// Knocks with the rig's secret and `--then-connect 22`; panics unless
    /// the door opened, and returns the sequence that opened it.
    fn knock_opens(&self, args: &[&str], why: &str) -> String {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--then-connect", "22"]);
        let out = self.knock_with(SERVER_V4, &self.secret, &all);
        if !out.status.success() {
            self.fail(&format!("iplock knock: {why}: {}", describe(&out)));
        }
        knocked(&out)
    }

    /// The sequence `secret` gives for period `index`, as the client
    /// computes it. It knocks on the client namespace's own loopback: the
    /// client is the only way to derive a sequence, and these knocks must
    /// never reach the filter.
    fn derive(&self, secret: &Path, index: u64) -> String {
        let time = (index * PERIOD).to_string();
        let out = self.knock_with(
            "127.0.0.1".parse().unwrap(),
            secret,
            &["--unix-time", &time],
        );
        assert!(
            out.status.success(),
            "deriving a sequence: {}",
            describe(&out)
        );
        knocked(&out)
    }

    /// The filter's current and previous sequence, without step timeouts.
    fn kernel(&self) -> (String, String) {
        let status = self.iplock.status_json();
        let seq = |key: &str| knock_sequence(&status, key).unwrap_or_default();
        assert_eq!(status["config"]["rotating"], true, "{status}");
        (seq("knock"), seq("previous_knock"))
    }

    fn counter(&self, name: &str) -> u64 {
        counter(&self.iplock.status_json(), name)
    }

    /// Waits for the first period from `first` on in which the filter holds
    /// the sequence `secret` gives, and `need` of the period is still left;
    /// returns its index.
    fn wait_period(&self, secret: &Path, first: u64, need: Duration) -> u64 {
        let period = Duration::from_secs(PERIOD);
        assert!(SETTLE + need < period, "{need:?} does not fit in a period");
        let give_up = Instant::now() + 5 * period;
        let mut last = None;
        loop {
            assert!(
                Instant::now() < give_up,
                "within {:?} no period from {first} on had its sequence from {} in the filter \
                 with {need:?} to spare; last seen (period, wanted, filter): {last:?}\n\
                 iplock run log:\n{}",
                5 * period,
                secret.display(),
                self.daemon.log()
            );
            let (index, into) = clock();
            if index < first || into + need > period {
                sleep(period - into + SETTLE);
                continue;
            }
            if into < SETTLE {
                sleep(SETTLE - into);
                continue;
            }
            let want = self.derive(secret, index);
            loop {
                let (now_index, into) = clock();
                if now_index != index || into + need > period {
                    break;
                }
                let (current, _) = self.kernel();
                let (now_index, into) = clock();
                if current == want && now_index == index && into + need <= period {
                    return index;
                }
                last = Some((index, want.clone(), current));
                sleep(Duration::from_millis(100));
            }
        }
    }

    /// Panics unless a connect from `src` to port 22 succeeds.
    fn assert_opens(&self, src: IpAddr, why: &str) {
        if self
            .pair
            .try_connect(src, SERVER_V4, 22, Duration::from_secs(2))
            .is_none()
        {
            self.fail(&format!("{src} -> {SERVER_V4}:22 timed out: {why}"));
        }
    }

    /// Panics with `what`, the clock, the filter's state and the daemon's log.
    fn fail(&self, what: &str) -> ! {
        panic!(
            "{what}\nclock now: {:?} (period, into it)\nstatus: {}\niplock run log:\n{}",
            clock(),
            self.iplock.status_json(),
            self.daemon.log()
        );
    }
}

#[test]
fn a_client_with_the_secret_opens_the_door() {
    if !require_root() {
        return;
    }
    // Four steps with udp allowed: the client must draw the protocols from
    // the HMAC exactly as the server does.
    let rig = Rig::start(4, true);
    let index = rig.wait_period(&rig.secret, 0, Duration::from_secs(3));
    rig.pair
        .assert_dropped(CLIENT_V4, SERVER_V4, 22, "nobody knocked yet");
    let sent = rig.knock_opens(&[], "a client with the secret");
    assert_eq!(
        sent,
        rig.derive(&rig.secret, index),
        "the client sent another sequence than this period's"
    );
    drop(
        rig.pair
            .connect(CLIENT_V4, SERVER_V4, 22, "the client knocked right"),
    );

    // The client can take the rotation from the server's config file too;
    // over IPv6, in a later period, since this one's sequence is spent.
    rig.wait_period(&rig.secret, index + 1, Duration::from_secs(2));
    let out = iplock_knock(
        &rig.pair,
        &[
            &SERVER_V6.to_string(),
            "-6",
            "--config",
            rig.config(),
            "--delay",
            DELAY,
            "--then-connect",
            "22",
        ],
    );
    if !out.status.success() {
        rig.fail(&format!("iplock knock -6 --config: {}", describe(&out)));
    }
}

#[test]
fn a_recorded_sequence_does_not_open_the_door_again() {
    if !require_root() {
        return;
    }
    let rig = Rig::start(3, false);
    let index = rig.wait_period(&rig.secret, 0, Duration::from_secs(3));
    let recorded = rig.knock_opens(&[], "a client with the secret");

    // Replayed by a sniffer in the same period, from its own address.
    let wrong = rig.counter("wrong_knock");
    rig.pair.knock(OTHER_V4, SERVER_V4, &recorded);
    rig.pair.assert_dropped(
        OTHER_V4,
        SERVER_V4,
        22,
        "a replay in the period the sequence was used in must not open",
    );
    assert_eq!(
        rig.counter("wrong_knock"),
        wrong + 1,
        "the replay's last knock is refused as a wrong knock (the sequence is spent)"
    );

    // Replayed in the next period, while the filter still accepts it for
    // clients one period behind.
    let next = rig.wait_period(&rig.secret, index + 1, Duration::from_secs(3));
    assert_eq!(
        next,
        index + 1,
        "the machine was too slow to reach the next period in time"
    );
    let (_, previous) = rig.kernel();
    assert_eq!(
        previous, recorded,
        "the filter should still accept last period's sequence"
    );
    let wrong = rig.counter("wrong_knock");
    rig.pair.knock(OTHER_V4, SERVER_V4, &recorded);
    rig.pair.assert_dropped(
        OTHER_V4,
        SERVER_V4,
        22,
        "a replay in the next period must not open",
    );
    assert_eq!(rig.counter("wrong_knock"), wrong + 1);

    // The refusals were about the spent sequence, not the source: this
    // period's sequence opens for it.
    let fresh = rig.derive(&rig.secret, next);
    rig.pair.knock(OTHER_V4, SERVER_V4, &fresh);
    rig.assert_opens(OTHER_V4, "this period's unused sequence");
}

#[test]
fn a_clock_one_period_behind_works_two_do_not() {
    if !require_root() {
        return;
    }
    let rig = Rig::start(3, false);
    let index = rig.wait_period(&rig.secret, 0, Duration::from_secs(3));

    let now = unix_now();
    assert_eq!(now / PERIOD, index);
    let two_behind = (now - 2 * PERIOD).to_string();
    let out = rig.knock_with(SERVER_V4, &rig.secret, &["--unix-time", &two_behind]);
    assert!(out.status.success(), "iplock knock: {}", describe(&out));
    rig.pair.assert_dropped(
        CLIENT_V4,
        SERVER_V4,
        22,
        "a client clock two periods behind must not open",
    );

    let now = unix_now();
    let one_behind = (now - PERIOD).to_string();
    let sent = rig.knock_opens(
        &["--unix-time", &one_behind],
        "a client clock one period behind",
    );
    assert_eq!(
        now / PERIOD,
        index,
        "the machine was too slow: the step left its period"
    );
    assert_eq!(sent, rig.derive(&rig.secret, index - 1));
}

#[test]
fn a_new_secret_counts_from_the_reload_on() {
    if !require_root() {
        return;
    }
    let rig = Rig::start(3, false);
    let new = rig.new_secret("secret.new");
    let index = rig.wait_period(&rig.secret, 0, Duration::from_secs(2));
    rig.knock_opens(&[], "the old secret before the change");
    let old_next = rig.derive(&rig.secret, index + 1);
    let new_next = rig.derive(&new, index + 1);
    let new_this = rig.derive(&new, index);

    // In the next period the old secret is still in force, unused; then the
    // file is replaced and the running filter reloaded.
    let next = rig.wait_period(&rig.secret, index + 1, Duration::from_secs(3));
    assert_eq!(
        next,
        index + 1,
        "the machine was too slow to reach the next period in time"
    );
    std::fs::rename(&new, &rig.secret).unwrap();
    let out = rig.iplock.run("reload", &["--config", rig.config()]);
    assert!(out.status.success(), "iplock reload: {}", describe(&out));
    assert_eq!(
        rig.kernel(),
        (new_next.clone(), new_this),
        "after the reload the filter should hold the new secret's sequences"
    );
    rig.pair.knock(OTHER_V4, SERVER_V4, &old_next);
    rig.pair.assert_dropped(
        OTHER_V4,
        SERVER_V4,
        22,
        "the old secret must not open after the reload",
    );
    rig.pair.knock(OTHER_V4, SERVER_V4, &new_next);
    rig.assert_opens(OTHER_V4, "the new secret must open at once");

    // At the next boundary `iplock run` goes on with the new secret.
    rig.wait_period(&rig.secret, index + 2, Duration::from_secs(1));
}

#[test]
fn a_new_secret_opens_even_in_the_period_the_old_one_was_used() {
    if !require_root() {
        return;
    }
    // A leaked secret is replaced at once, maybe right after an intruder
    // used it: the new secret must open the door in that same period.
    let rig = Rig::start(3, false);
    let new = rig.new_secret("secret.new");
    let index = rig.wait_period(&rig.secret, 0, Duration::from_secs(3));
    rig.knock_opens(&[], "the old secret before the change");
    std::fs::rename(&new, &rig.secret).unwrap();
    let out = rig.iplock.run("reload", &["--config", rig.config()]);
    assert!(out.status.success(), "iplock reload: {}", describe(&out));
    let new_this = rig.derive(&rig.secret, index);
    assert_eq!(rig.kernel().0, new_this);
    rig.pair.knock(OTHER_V4, SERVER_V4, &new_this);
    if clock().0 != index {
        rig.fail("the machine was too slow: the step left its period");
    }
    rig.assert_opens(
        OTHER_V4,
        "the new secret's sequence was never used, yet it did not open",
    );
}

#[test]
fn secret_files_are_private_and_readable_ones_are_refused() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let secret = new_secret(&dir, "secret", &["--period", PERIOD_ARG]);
    assert_eq!(
        mode_of(&secret),
        0o600,
        "iplock secret new > F must chmod F"
    );
    let text = std::fs::read_to_string(&secret).unwrap();
    for line in [
        "version = 1",
        "period = \"6s\"",
        "steps = 3",
        "udp = false",
        "exclude = [22]",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in {text:?}");
    }
    let hex = bare_hex(&secret);
    assert_eq!(hex.len(), 64, "{text:?}");
    assert!(
        hex.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{text:?}"
    );
    let other = new_secret(&dir, "other", &["--period", PERIOD_ARG]);
    assert_ne!(bare_hex(&other), hex);

    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nrotate = {{ secret_file = \"{}\", period = \"{PERIOD_ARG}\" }}\n",
        pair.server_if,
        secret.display()
    ));
    let config = config.as_str();
    let path = secret.to_str().unwrap();
    for mode in [0o644, 0o640] {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = iplock_knock(
            &pair,
            &[
                &SERVER_V4.to_string(),
                "--secret-file",
                path,
                "--period",
                PERIOD_ARG,
            ],
        );
        assert_refused(
            &format!("iplock knock with a {mode:o} secret"),
            &out,
            "readable by others",
        );
        assert!(out.stdout.is_empty(), "nothing is sent: {}", describe(&out));
        let out = iplock_knock(&pair, &[&SERVER_V4.to_string(), "--config", config]);
        assert_refused(
            &format!("iplock knock --config with a {mode:o} secret"),
            &out,
            "readable by others",
        );
        let out = iplock.run("run", &["--config", config]);
        assert_refused(
            &format!("iplock run with a {mode:o} secret"),
            &out,
            "readable by others",
        );
        assert!(!iplock.pin_dir().exists(), "iplock run pinned nothing");
        assert!(!pair.server_has_xdp(), "iplock run attached nothing");
    }

    // With the file private again, `load` refuses the rotating config: no
    // process would be there to rotate it.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = iplock.run("load", &["--config", config]);
    assert_refused("iplock load with rotate", &out, "iplock run");
    assert!(!iplock.pin_dir().exists(), "iplock load pinned nothing");
    assert!(!pair.server_has_xdp(), "iplock load attached nothing");
}

/// A client with nothing but the file `iplock secret new` made gets in, on
/// a filter whose periods are 20 s, with trap ports besides the protected
/// one: the file carries every parameter.
#[test]
fn a_client_with_only_the_secret_file_opens_a_filter_of_20s_periods() {
    if !require_root() {
        return;
    }
    const LONG: u64 = 20;
    let dir = TempDir::new();
    let secret = new_secret(
        &dir,
        "secret",
        &[
            "--period",
            "20s",
            "--steps",
            "4",
            "--udp",
            "--exclude",
            "22,23,3389",
        ],
    );
    let pair = NetnsPair::new();
    let _server = EchoServer::start(&pair, &[22]);
    let config = dir.config_file(&format!(
        "interfaces = [\"{}\"]\nrotate = {{ secret_file = \"{}\", period = \"20s\", steps = 4, udp = true }}\n\
         {NO_BANS}trap_ports = [23, 3389]\n",
        pair.server_if,
        secret.display()
    ));
    let iplock = Iplock::new(&pair);
    // Start and knock early in one period, far from the boundary where the
    // filter switches sequences two seconds early: `iplock run` rotates
    // only at the next boundary if one falls between its load and its loop.
    let into = unix_now() % LONG;
    if !(1..=6).contains(&into) {
        sleep(Duration::from_secs((LONG + 1 - into) % LONG));
    }
    let daemon = Daemon::start(&iplock, &["--config", &config], "info");
    let out = iplock_knock(
        &pair,
        &[
            &SERVER_V4.to_string(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--delay",
            DELAY,
            "--then-connect",
            "22",
        ],
    );
    assert!(
        out.status.success(),
        "the file alone: {}\nlog:\n{}",
        describe(&out),
        daemon.log()
    );
    let status = iplock.status_json();
    assert_eq!(
        knock_sequence(&status, "knock").unwrap_or_default(),
        knocked(&out),
        "the client drew the server's sequence"
    );
}

/// A secret file whose parameters differ from the server's `rotate`
/// settings is refused by `run` and `load` (exit 2, one sentence naming the
/// difference, nothing attached), and by a client whose flags differ.
#[test]
fn a_secret_file_that_disagrees_with_the_server_is_refused() {
    if !require_root() {
        return;
    }
    let dir = TempDir::new();
    let pair = NetnsPair::new();
    let iplock = Iplock::new(&pair);
    let rotate = |secret: &Path, extra: &str| {
        dir.config_file(&format!(
            "interfaces = [\"{}\"]\nrotate = {{ secret_file = \"{}\", period = \"{PERIOD_ARG}\", steps = 3 }}\n{extra}",
            pair.server_if,
            secret.display()
        ))
    };
    for (flags, extra, needle) in [
        (
            &["--period", "20s"][..],
            "",
            "records period 20s, but the rotate settings give 6s",
        ),
        (
            &["--period", "6s", "--steps", "4"][..],
            "",
            "records steps 4",
        ),
        (&["--period", "6s", "--udp"][..], "", "records udp true"),
        (
            &["--period", "6s"][..],
            "[ban]\ntrap_ports = [23]\n",
            "records exclude 22, but the rotate settings give 22,23",
        ),
    ] {
        let secret = new_secret(&dir, "secret", flags);
        let config = rotate(&secret, extra);
        for sub in ["run", "load"] {
            let out = iplock.run(sub, &["--config", &config]);
            assert_refused(&format!("{sub} {flags:?}"), &out, needle);
            assert_refused(
                &format!("{sub} {flags:?}"),
                &out,
                "iplock secret new --period 6s",
            );
            assert!(!iplock.pin_dir().exists(), "{sub} pinned nothing");
            assert!(!pair.server_has_xdp(), "{sub} attached nothing");
        }
    }
    let secret = new_secret(&dir, "secret", &["--period", "20s"]);
    let out = iplock_knock(
        &pair,
        &[
            &SERVER_V4.to_string(),
            "--secret-file",
            secret.to_str().unwrap(),
            "--period",
            "30s",
        ],
    );
    assert_refused(
        "knock --period",
        &out,
        "records period 20s, but --period gives 30s",
    );
    assert!(out.stdout.is_empty(), "nothing is sent: {}", describe(&out));
}

/// A bare-hex secret file, as earlier versions wrote, still works: the
/// server takes the parameters from `rotate`, the client from its flags.
#[test]
fn a_bare_hex_secret_file_still_works_with_flags() {
    if !require_root() {
        return;
    }
    let rig = Rig::start_with(3, false, true);
    assert_eq!(
        std::fs::read_to_string(&rig.secret).unwrap().trim().len(),
        64,
        "the rig's file is bare hex"
    );
    // With a wrong period (other indices, so other ports) the door stays
    // shut, and the client says what it knocked with.
    let out = iplock_knock(
        &rig.pair,
        &[
            &SERVER_V4.to_string(),
            "--secret-file",
            rig.secret.to_str().unwrap(),
            "--period",
            "12s",
            "--delay",
            DELAY,
            "--then-connect",
            "22",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let line = one_stderr_line(&out);
    assert!(
        line.contains("did not open after the rotating knock of period")
            && line.contains("(--period 12s --steps 3 --exclude 22)"),
        "{line}"
    );

    rig.wait_period(&rig.secret, 0, Duration::from_secs(3));
    rig.knock_opens(&[], "a bare-hex file with --period and --steps");
}
