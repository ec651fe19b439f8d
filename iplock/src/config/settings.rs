//! The filter's settings: read from a TOML file, overridden by flags,
//! validated as a whole before anything touches the kernel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytemuck::Zeroable as _;
use clap::{Args, ValueEnum};
use iplock_common::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_CROWDSEC, FLAG_KNOCK_CLEARS_BAN,
    FLAG_KNOCK_DROP, Step as KernelStep,
};
use iplock_common::names::{
    DEFAULT_MAX_BANS, DEFAULT_MAX_DECISIONS, DEFAULT_MAX_KNOCK_BANS, DEFAULT_MAX_SOURCES,
    MAX_ALLOW, MAX_IFACES, MAX_PROTECT, MAX_STEPS, MAX_TRAPS,
};
use serde::Deserialize;

use crate::config::cidr::Cidr;
use crate::config::crowdsec::{CrowdsecFile, CrowdsecSettings};
use crate::config::duration;
use crate::config::input_file;
use crate::config::knock::{self, Step};
use crate::config::rotate::{self, Params, Rotation};
use crate::config::secret;
use crate::config::spa::{SpaFile, SpaSettings, TakenPorts};
use crate::error::{Result, input, quote};

/// How the program attaches to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Native (driver) mode, falling back to skb mode where the driver lacks XDP.
    #[default]
    Auto,
    /// Native (driver) mode only.
    Native,
    /// Generic (skb) mode, slower, works on every interface.
    Skb,
}

/// What a packet to a knock port gets once it is counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KnockAnswer {
    /// The host's own answer, as for every unused port (a reset, an ICMP
    /// port unreachable, or what the host's firewall does): knock ports
    /// look like every other closed port.
    #[default]
    Stack,
    /// Silence: for hosts whose firewall drops every unused port.
    Drop,
}

/// Flags shared by every command that loads a filter; each overrides the
/// same setting of the config file.
#[derive(Args, Debug, Default, Clone)]
pub struct SettingsArgs {
    /// TOML configuration file (see the README for every key).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Interface to attach to (repeat for several).
    #[arg(long = "iface", value_name = "NAME")]
    pub interfaces: Vec<String>,
    /// XDP attach mode.
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Protected TCP port (repeat for several) [default: 22].
    #[arg(long, value_name = "PORT", value_parser = parse_port_arg)]
    pub protect: Vec<u16>,
    /// Knock sequence, e.g. tcp:100,udp:300/20s,tcp:200.
    #[arg(long, value_name = "SEQUENCE")]
    pub knock: Option<String>,
    /// Source address or CIDR that passes without knocking (repeat for several).
    #[arg(long, value_name = "CIDR")]
    pub allow: Vec<String>,
    /// Default time allowed between two knocks [default: 10s].
    #[arg(long, value_name = "D")]
    pub step_timeout: Option<String>,
    /// How long the door stays open after the last knock [default: 10s].
    #[arg(long, value_name = "D")]
    pub open_window: Option<String>,
    /// How long a ban lasts [default: 1h].
    #[arg(long, value_name = "D")]
    pub ban_time: Option<String>,
    /// What packets to knock ports get: the host stack's own answer, or
    /// silence where the host's firewall drops unused ports [default: stack].
    #[arg(long, value_enum)]
    pub knock_answer: Option<KnockAnswer>,
}

fn parse_port_arg(s: &str) -> std::result::Result<u16, String> {
    knock::parse_port(s, "protected port").map_err(|e| e.to_string())
}

/// The config file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    interfaces: Option<Vec<String>>,
    mode: Option<Mode>,
    knock_answer: Option<KnockAnswer>,
    protect: Option<Vec<u16>>,
    knock: Option<KnockList>,
    rotate: Option<RotateFile>,
    allow: Option<Vec<String>>,
    step_timeout: Option<String>,
    open_window: Option<String>,
    #[serde(default)]
    ban: BanFile,
    #[serde(default)]
    maps: MapsFile,
    crowdsec: Option<CrowdsecFile>,
    spa: Option<SpaFile>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum KnockList {
    One(String),
    Many(Vec<String>),
}

impl KnockList {
    fn steps(&self) -> Result<Vec<Step>> {
        match self {
            KnockList::One(s) => knock::parse_sequence(s),
            KnockList::Many(v) => v.iter().map(|s| Step::parse(s)).collect(),
        }
    }
}

/// The protected port when none is given: SSH.
pub const DEFAULT_PROTECT: [u16; 1] = [22];

/// `rotate = { secret_file = "...", period = "30s", steps = 3, udp = false }`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateFile {
    secret_file: PathBuf,
    period: Option<String>,
    steps: Option<usize>,
    udp: Option<bool>,
}

impl RotateFile {
    /// The rotation these settings describe, with `exclude` (the server's
    /// protected and trap ports); a secret file that records other
    /// parameters is refused, since its clients would knock elsewhere.
    fn rotation(&self, exclude: &[u16]) -> Result<(Rotation, Params)> {
        let period = match &self.period {
            Some(p) => duration::parse(p, "the rotation period")?,
            None => rotate::DEFAULT_PERIOD,
        };
        let params = Params::new(
            period,
            self.steps.unwrap_or(rotate::DEFAULT_STEPS),
            self.udp.unwrap_or(false),
            exclude,
            "rotate.",
        )?;
        let file = secret::read(&self.secret_file)?;
        let recorded = file.params.as_ref().and_then(|r| r.difference(&params));
        if let Some((name, theirs, ours)) = recorded {
            return input(format!(
                "the secret file {} records {name} {theirs}, but the rotate settings give {ours}; make it again with `iplock secret new {}` and give it to the clients",
                quote(self.secret_file.display()),
                params.flags()
            ));
        }
        Ok((params.rotation(file.secret), params))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BanFile {
    time: Option<String>,
    wrong_knock: Option<bool>,
    closed_door: Option<bool>,
    trap_ports: Option<Vec<u16>>,
    knock_clears_ban: Option<bool>,
    ipv6_prefix: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapsFile {
    sources: Option<u32>,
    bans: Option<u32>,
    knock_bans: Option<u32>,
    decisions: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanSettings {
    pub time: Duration,
    pub wrong_knock: bool,
    pub closed_door: bool,
    pub trap_ports: Vec<u16>,
    pub knock_clears_ban: bool,
    pub ipv6_prefix: u32,
}

/// Validated settings of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub interfaces: Vec<String>,
    pub mode: Mode,
    pub knock_answer: KnockAnswer,
    pub protect: Vec<u16>,
    /// The fixed sequence; empty when knocks rotate.
    pub knock: Vec<Step>,
    /// Rotating knocks, instead of a fixed sequence.
    pub rotate: Option<Rotation>,
    pub allow: Vec<Cidr>,
    pub step_timeout: Duration,
    pub open_window: Duration,
    pub ban: BanSettings,
    pub max_sources: u32,
    pub max_bans: u32,
    pub max_knock_bans: u32,
    /// CrowdSec decisions held at once (`maps.decisions`).
    pub max_decisions: u32,
    /// CrowdSec's Local API, when the config file has a `[crowdsec]` section.
    pub crowdsec: Option<CrowdsecSettings>,
    /// Single packet authorization with fwknop's client, when `[spa]` is set.
    pub spa: Option<SpaSettings>,
}

/// Largest map a flag may ask for; beyond it a typo costs gigabytes of kernel memory.
const MAX_MAP_ENTRIES: u32 = 1 << 24;

fn read_file(path: &Path) -> Result<File> {
    Ok(read_file_meta(path)?.0)
}

/// The config file and the metadata of the descriptor it was read from.
fn read_file_meta(path: &Path) -> Result<(File, std::fs::Metadata)> {
    let input_file::Text { text, meta } = input_file::read(path, "the config file")?;
    let file = input_file::parse_toml(&text, path, "the config file")?;
    Ok((file, meta))
}

impl Settings {
    /// Merges the config file (if any) with the flags and validates the result.
    pub fn from_args(args: &SettingsArgs) -> Result<Settings> {
        let (file, meta) = match &args.config {
            Some(path) => {
                let (file, meta) = read_file_meta(path)?;
                (file, Some((path, meta)))
            }
            None => (File::default(), None),
        };
        let pick = |flag: &Vec<String>, file: Option<Vec<String>>| {
            if flag.is_empty() {
                file.unwrap_or_default()
            } else {
                flag.clone()
            }
        };
        let interfaces = pick(&args.interfaces, file.interfaces);
        let protect = if args.protect.is_empty() {
            file.protect.unwrap_or_else(|| DEFAULT_PROTECT.to_vec())
        } else {
            args.protect.clone()
        };
        let knock = match (&args.knock, file.knock) {
            (Some(s), _) => knock::parse_sequence(s)?,
            (None, Some(list)) => list.steps()?,
            (None, None) => Vec::new(),
        };
        let b = file.ban;
        let trap_ports = b.trap_ports.unwrap_or_default();
        // A --knock flag overrides a rotating sequence of the file too.
        let rotate = match (&args.knock, &file.rotate) {
            (None, Some(r)) => Some(r.rotation(&[protect.as_slice(), &trap_ports].concat())?.0),
            _ => None,
        };
        let allow = pick(&args.allow, file.allow)
            .iter()
            .map(|s| Cidr::parse(s))
            .collect::<Result<Vec<_>>>()?;
        let dur = |flag: &Option<String>, file: Option<String>, default: &str, what: &str| {
            duration::parse(flag.clone().or(file).as_deref().unwrap_or(default), what)
        };
        let spa = file.spa;
        let mut settings = Settings {
            interfaces,
            mode: args.mode.or(file.mode).unwrap_or_default(),
            knock_answer: args.knock_answer.or(file.knock_answer).unwrap_or_default(),
            protect,
            knock,
            rotate,
            allow,
            step_timeout: dur(
                &args.step_timeout,
                file.step_timeout,
                "10s",
                "the step timeout",
            )?,
            open_window: dur(
                &args.open_window,
                file.open_window,
                "10s",
                "the open window",
            )?,
            ban: BanSettings {
                time: dur(&args.ban_time, b.time, "1h", "the ban time")?,
                // A ban for a wrong knock tells a scanner which ports are
                // knock ports, so it is for those who accept that.
                wrong_knock: b.wrong_knock.unwrap_or(false),
                closed_door: b.closed_door.unwrap_or(true),
                trap_ports,
                knock_clears_ban: b.knock_clears_ban.unwrap_or(false),
                ipv6_prefix: b.ipv6_prefix.unwrap_or(64),
            },
            max_sources: file.maps.sources.unwrap_or(DEFAULT_MAX_SOURCES),
            max_bans: file.maps.bans.unwrap_or(DEFAULT_MAX_BANS),
            max_knock_bans: file.maps.knock_bans.unwrap_or(DEFAULT_MAX_KNOCK_BANS),
            max_decisions: file.maps.decisions.unwrap_or(DEFAULT_MAX_DECISIONS),
            crowdsec: match &file.crowdsec {
                Some(c) => Some(c.settings(args.config.as_deref())?),
                None => None,
            },
            spa: None,
        };
        settings.validate()?;
        if let (Some(spa), Some((path, meta))) = (spa, &meta) {
            let knock: Vec<u16> = settings.knock.iter().map(|s| s.port).collect();
            settings.spa = Some(spa.settings(
                (path, meta),
                settings.open_window,
                &TakenPorts {
                    protect: &settings.protect,
                    knock: &knock,
                    traps: &settings.ban.trap_ports,
                },
            )?);
        }
        // A knock goes on to the stack, so it would reach a socket on its
        // port; so would an SPA datagram.
        if settings.knock_answer == KnockAnswer::Stack {
            if settings.rotate.is_none() {
                crate::config::listening::refuse_taken(&settings.knock)?;
            }
            if let Some(spa) = &settings.spa {
                crate::config::listening::refuse_spa_taken(spa.port)?;
            }
        }
        Ok(settings)
    }

    fn validate(&self) -> Result<()> {
        if self.interfaces.is_empty() {
            return input(
                "no interface is set; give one with --iface or `interfaces` in the config file",
            );
        }
        if self.interfaces.len() > MAX_IFACES {
            return input(format!("at most {MAX_IFACES} interfaces are supported"));
        }
        for (i, name) in self.interfaces.iter().enumerate() {
            if self.interfaces[..i].contains(name) {
                return input(format!("interface {} is listed twice", quote(name)));
            }
            if crate::system::iface::index(name).is_none() {
                return input(format!("there is no interface named {}", quote(name)));
            }
        }
        if self.protect.is_empty() || self.protect.len() > MAX_PROTECT {
            return input(format!("give 1 to {MAX_PROTECT} protected ports"));
        }
        for p in self.protect.iter().chain(&self.ban.trap_ports) {
            if *p == 0 {
                return input("port 0 is not a port number from 1 to 65535");
            }
        }
        match &self.rotate {
            Some(_) if !self.knock.is_empty() => {
                return input("the config file sets both `knock` and `rotate`; keep one");
            }
            Some(_) => {}
            None => knock::validate(&self.knock, &self.protect)?,
        }
        if self.ban.trap_ports.len() > MAX_TRAPS {
            return input(format!("at most {MAX_TRAPS} trap ports are supported"));
        }
        for t in &self.ban.trap_ports {
            if self.protect.contains(t) || self.knock.iter().any(|s| s.port == *t) {
                return input(format!("trap port {t} is also a protected or knock port"));
            }
        }
        if !(32..=128).contains(&self.ban.ipv6_prefix) {
            return input(format!(
                "the IPv6 ban prefix /{} is out of range; use 32 to 128 (64 covers one host's network)",
                self.ban.ipv6_prefix
            ));
        }
        if self.allow.len() > MAX_ALLOW as usize {
            return input(format!(
                "at most {MAX_ALLOW} allow-list entries are supported"
            ));
        }
        for (what, n) in [
            ("sources", self.max_sources),
            ("bans", self.max_bans),
            ("knock_bans", self.max_knock_bans),
            ("decisions", self.max_decisions),
        ] {
            if n == 0 || n > MAX_MAP_ENTRIES {
                return input(format!(
                    "maps.{what} = {n} is out of range; use 1 to {MAX_MAP_ENTRIES}"
                ));
            }
        }
        Ok(())
    }

    /// Ports a rotating sequence never uses.
    pub fn excluded_ports(&self) -> Vec<u16> {
        self.protect
            .iter()
            .chain(&self.ban.trap_ports)
            .copied()
            .collect()
    }

    /// The configuration as the XDP program reads it now.
    pub fn to_kernel(&self) -> Config {
        self.to_kernel_at(rotate::unix_now())
    }

    /// The configuration as the XDP program reads it at `unix_secs`: with
    /// rotating knocks, that period's sequence and the previous one.
    pub fn to_kernel_at(&self, unix_secs: u64) -> Config {
        let mut c = Config::zeroed();
        let kernel_steps = |out: &mut [KernelStep; MAX_STEPS], steps: &[Step]| {
            for (k, s) in out.iter_mut().zip(steps) {
                *k = KernelStep {
                    port: s.port,
                    proto: s.proto,
                    _pad: [0; 5],
                    timeout_ns: nanos(s.timeout.unwrap_or(self.step_timeout)),
                };
            }
            steps.len() as u32
        };
        match &self.rotate {
            None => c.step_count = kernel_steps(&mut c.steps, &self.knock),
            Some(r) => {
                let index = r.filter_period(unix_secs);
                let excluded = self.excluded_ports();
                c.step_count = kernel_steps(&mut c.steps, &r.sequence(index, &excluded));
                c.seq_id = r.sequence_id(index);
                let prev = index.saturating_sub(1);
                c.prev_step_count = kernel_steps(&mut c.prev_steps, &r.sequence(prev, &excluded));
                c.prev_seq_id = r.sequence_id(prev);
            }
        }
        c.protect[..self.protect.len()].copy_from_slice(&self.protect);
        c.protect_count = self.protect.len() as u32;
        c.traps[..self.ban.trap_ports.len()].copy_from_slice(&self.ban.trap_ports);
        c.trap_count = self.ban.trap_ports.len() as u32;
        c.flags = [
            (self.ban.wrong_knock, FLAG_BAN_WRONG_KNOCK),
            (self.ban.closed_door, FLAG_BAN_CLOSED_DOOR),
            (self.ban.knock_clears_ban, FLAG_KNOCK_CLEARS_BAN),
            (self.knock_answer == KnockAnswer::Drop, FLAG_KNOCK_DROP),
            // Decisions are pulled only with a bouncer key.
            (
                self.crowdsec.as_ref().is_some_and(|c| c.api_key.is_some()),
                FLAG_CROWDSEC,
            ),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .fold(0, |acc, (_, f)| acc | f);
        c.open_window_ns = nanos(self.open_window);
        c.ban_time_ns = nanos(self.ban.time);
        c.ban_prefix_v6 = self.ban.ipv6_prefix;
        if let Some(spa) = &self.spa {
            c.spa_port = spa.port;
            c.spa_per_cpu = iplock_common::spa::per_cpu_budget(crate::system::cpus::possible());
        }
        c.index_ports();
        c
    }
}

fn nanos(d: Duration) -> u64 {
    d.as_nanos() as u64
}

/// The knock sequence of a config file at `unix_secs`, for the knock
/// client (a rotating one is that period's, with the parameters that made
/// it): the other keys describe the server (its interfaces may not exist on
/// the client), so only the file's syntax and its `knock` key are checked.
pub fn knock_from_file(path: &Path, unix_secs: u64) -> Result<(Vec<Step>, Option<Params>)> {
    let file = read_file(path)?;
    match (&file.knock, &file.rotate) {
        (Some(list), _) => Ok((list.steps()?, None)),
        (None, Some(r)) => {
            let mut excluded = file.protect.unwrap_or_else(|| DEFAULT_PROTECT.to_vec());
            excluded.extend(file.ban.trap_ports.unwrap_or_default());
            let (r, params) = r.rotation(&excluded)?;
            let index = rotate::period_index(unix_secs, r.period);
            Ok((r.sequence(index, &excluded), Some(params)))
        }
        (None, None) => input(format!(
            "the config file {} has neither a `knock` nor a `rotate` key",
            quote(path.display())
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_toml(text: &str, args: SettingsArgs) -> Result<Settings> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("iplock-settings-{}-{n}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let result = Settings::from_args(&SettingsArgs {
            config: Some(path.clone()),
            ..args
        });
        std::fs::remove_file(path).unwrap();
        result
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let text = include_str!("../../../contrib/iplock.toml").replace("\"eth0\"", "\"lo\"");
        let s = from_toml(&text, SettingsArgs::default()).unwrap();
        assert_eq!(s.interfaces, ["lo"]);
        assert_eq!(s.knock.len(), 3);
        assert_eq!(s.knock[1].timeout, Some(Duration::from_secs(20)));
        assert_eq!(s.ban.trap_ports, [23, 3389]);
        let k = s.to_kernel();
        assert_eq!(k.step_count, 3);
        assert_eq!(k.steps[0].timeout_ns, 10_000_000_000);
        assert_eq!(k.steps[1].timeout_ns, 20_000_000_000);
        assert_eq!(k.flags, FLAG_BAN_CLOSED_DOOR);
        assert_eq!(k.ban_time_ns, 3_600_000_000_000);
    }

    #[test]
    fn flags_override_the_file() {
        let text = "interfaces = [\"lo\"]\nknock = [\"tcp:100\", \"udp:300\", \"tcp:200\"]\nopen_window = \"1m\"\n";
        let s = from_toml(
            text,
            SettingsArgs {
                knock: Some("tcp:5,tcp:9,tcp:7".into()),
                protect: vec![2222],
                open_window: Some("5s".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            s.knock.iter().map(|k| k.port).collect::<Vec<_>>(),
            [5, 9, 7]
        );
        assert_eq!(s.protect, [2222]);
        assert_eq!(s.open_window, Duration::from_secs(5));
        assert_eq!(s.step_timeout, Duration::from_secs(10));
    }

    #[test]
    fn defaults_follow_the_contract() {
        let s = Settings::from_args(&SettingsArgs {
            interfaces: vec!["lo".into()],
            knock: Some("tcp:100,udp:300,tcp:200".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(s.protect, [22]);
        assert_eq!(s.mode, Mode::Auto);
        assert_eq!(s.step_timeout, Duration::from_secs(10));
        assert_eq!(s.open_window, Duration::from_secs(10));
        assert_eq!(s.ban.time, Duration::from_secs(3600));
        assert!(!s.ban.wrong_knock && s.ban.closed_door && !s.ban.knock_clears_ban);
        assert_eq!(s.knock_answer, KnockAnswer::Stack);
        assert_eq!(s.to_kernel().flags, FLAG_BAN_CLOSED_DOOR);
        assert!(s.ban.trap_ports.is_empty());
        assert_eq!(s.ban.ipv6_prefix, 64);
        assert_eq!(
            (s.max_sources, s.max_bans, s.max_knock_bans),
            (65_536, 262_144, 65_536)
        );
    }

    #[test]
    fn errors_quote_a_short_prefix_of_what_was_written() {
        let huge = "x".repeat(100_000);
        for text in [
            format!("interfaces = [\"lo\"]\n{huge} = 1\n"),
            format!("interfaces = [\"lo\"]\nmode = \"{huge}\"\n"),
            format!("interfaces = [\"lo\"]\n[maps]\nsources = \"{huge}\"\n"),
            format!("interfaces = [\"{huge}\"]\nknock = \"100,300,200\"\n"),
            format!("interfaces = [\"lo\"]\nknock = \"tcp:{huge}\"\n"),
            format!("interfaces = [\"lo\"]\nknock = \"{huge}:1\"\n"),
            format!("interfaces = [\"lo\"]\nknock = \"1/{huge}\"\n"),
            format!(
                "interfaces = [\"lo\"]\nknock = \"{}\"\n",
                "tcp:1,".repeat(5000)
            ),
            format!("interfaces = [\"lo\"]\nknock = \"100,300,200\"\nallow = [\"{huge}\"]\n"),
            format!("interfaces = [\"lo\"]\nknock = \"100,300,200\"\nstep_timeout = \"{huge}\"\n"),
            format!("interfaces = [\"lo\"]\nrotate = {{ secret_file = \"/{huge}\" }}\n"),
        ] {
            let err = from_toml(&text, SettingsArgs::default()).unwrap_err();
            assert_eq!(err.exit_code(), 2);
            let msg = err.to_string();
            assert!(msg.contains("xxx…") || msg.contains("tcp:1,tcp:1"), "{msg}");
            assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
        }
    }

    #[test]
    fn bad_files_and_values_are_one_sentence_input_errors() {
        for (text, needle) in [
            (
                "interfaces = [\"lo\"]\nknock = \"100,300,200\"\nbogus = 1\n",
                "line 3",
            ),
            (
                "interfaces = [\"lo\"]\nknock = \"100,300,200\"\n[ban]\ntime = 5\n",
                "line 4",
            ),
            (
                "interfaces = [\"nope0\"]\nknock = \"100,300,200\"\n",
                "nope0",
            ),
            (
                "interfaces = [\"lo\", \"lo\"]\nknock = \"100,300,200\"\n",
                "twice",
            ),
            (
                "interfaces = [\"lo\"]\nknock = \"100,300,200\"\n[ban]\ntrap_ports = [300]\n",
                "trap port 300",
            ),
            (
                "interfaces = [\"lo\"]\nknock = \"100,300,200\"\n[ban]\nipv6_prefix = 0\n",
                "/0",
            ),
            (
                "interfaces = [\"lo\"]\nknock = \"100,300,200\"\n[maps]\nsources = 0\n",
                "maps.sources",
            ),
            ("knock = \"100,300,200\"\n", "no interface"),
        ] {
            let err = from_toml(text, SettingsArgs::default()).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{text}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
        let err = Settings::from_args(&SettingsArgs {
            config: Some("/dev/zero".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not a regular file"), "{err}");
        let err = Settings::from_args(&SettingsArgs {
            config: Some("/nonexistent/iplock.toml".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
    }
}
