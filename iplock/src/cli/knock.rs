//! `iplock knock`: the client side, sending a knock sequence to a server.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::Duration;

use clap::Args;

use crate::client::knock_client::{self, Family};
use crate::config::duration;
use crate::config::knock::{self, Step};
use crate::config::rotate::{self, Rotation};
use crate::config::secret;
use crate::config::settings;
use crate::error::io_reason;
use crate::error::{Error, Result, input};
use iplock_common::names::MAX_STEPS;

/// How long `--then-connect` waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock knock server.example.org --sequence tcp:100,udp:300,tcp:200 --then-connect 22 && ssh server.example.org\n  iplock knock -6 server.example.org --config /etc/iplock/iplock.toml\n\nDebian's knock client sends the same sequence as `knock HOST 100:tcp 300:udp 200:tcp`."
)]
pub struct KnockArgs {
    /// Server name or address.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Knock sequence, e.g. tcp:100,udp:300,tcp:200 (step timeouts are ignored).
    #[arg(long, value_name = "SEQUENCE")]
    pub sequence: Option<String>,
    /// Take the sequence from an iplock config file (its `knock`, or this
    /// period's sequence of its `rotate`).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Compute this period's rotating sequence from the shared secret.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// With --secret-file: the server's rotation period.
    #[arg(long, value_name = "D", default_value = "30s")]
    pub period: String,
    /// With --secret-file: the server's number of steps.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub steps: usize,
    /// With --secret-file: the server allows udp steps.
    #[arg(long)]
    pub udp: bool,
    /// With --secret-file: the server's protected and trap ports [default: 22].
    #[arg(long = "exclude", value_name = "PORT", value_parser = parse_port_arg)]
    pub exclude: Vec<u16>,
    /// Use this time (seconds since 1970) instead of the clock: shows what a
    /// client with a wrong clock sends.
    #[arg(long, value_name = "SECS", hide = true)]
    pub unix_time: Option<u64>,
    /// Time between two knocks [default: 100ms].
    #[arg(long, value_name = "D")]
    pub delay: Option<String>,
    /// Use IPv4 only.
    #[arg(short = '4', long)]
    pub ipv4: bool,
    /// Use IPv6 only.
    #[arg(short = '6', long)]
    pub ipv6: bool,
    /// After knocking, connect to this TCP port and say whether it opened
    /// (exit status 0 if it did, 1 if not).
    #[arg(long, value_name = "PORT", value_parser = parse_port_arg)]
    pub then_connect: Option<u16>,
}

fn parse_port_arg(s: &str) -> std::result::Result<u16, String> {
    knock::parse_port(s, "port").map_err(|e| e.to_string())
}

fn sequence(args: &KnockArgs) -> Result<Vec<Step>> {
    let now = args.unix_time.unwrap_or_else(rotate::unix_now);
    let steps = match (&args.sequence, &args.config, &args.secret_file) {
        (Some(s), None, None) => knock::parse_sequence(s)?,
        (None, Some(path), None) => settings::knock_from_file(path, now)?,
        (None, None, Some(path)) => {
            let period = duration::parse(&args.period, "the rotation period")?;
            if !(1..=MAX_STEPS).contains(&args.steps) {
                return input(format!(
                    "--steps {} is out of range; use 1 to {MAX_STEPS}",
                    args.steps
                ));
            }
            let r = Rotation {
                secret: secret::read(path)?,
                period,
                steps: args.steps,
                udp: args.udp,
            };
            let exclude = if args.exclude.is_empty() {
                settings::DEFAULT_PROTECT.to_vec()
            } else {
                args.exclude.clone()
            };
            r.sequence(rotate::period_index(now, period), &exclude)
        }
        (None, None, None) => {
            return input("no knock sequence is set; give --sequence, --config or --secret-file");
        }
        _ => return input("give only one of --sequence, --config and --secret-file"),
    };
    if steps.is_empty() {
        return input("the knock sequence is empty");
    }
    Ok(steps)
}

pub fn run(args: &KnockArgs) -> Result<()> {
    let family = match (args.ipv4, args.ipv6) {
        (true, true) => return input("give either -4 or -6, not both"),
        (true, false) => Some(Family::V4),
        (false, true) => Some(Family::V6),
        (false, false) => None,
    };
    let steps = sequence(args)?;
    let delay = duration::parse(args.delay.as_deref().unwrap_or("100ms"), "the delay")?;
    let dst = knock_client::resolve(&args.host, family)?;
    knock_client::knock(dst, &steps, delay)?;
    println!(
        "iplock: knocked on {dst} with {}",
        steps
            .iter()
            .map(knock_client::step_name)
            .collect::<Vec<_>>()
            .join(",")
    );
    let Some(port) = args.then_connect else {
        return Ok(());
    };
    // The same spacing as between knocks, so the server has seen the last
    // knock before this SYN even when the two take different queues.
    sleep(delay);
    match knock_client::try_connect(dst, port, CONNECT_TIMEOUT) {
        Ok(()) => {
            println!("iplock: port {port} on {dst} is open");
            Ok(())
        }
        Err(e) => Err(Error::Io {
            what: format!("port {port} on {dst} did not open"),
            source: std::io::Error::new(e.kind(), io_reason(&e)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(sequence: Option<&str>, config: Option<PathBuf>) -> KnockArgs {
        KnockArgs {
            host: "192.0.2.1".into(),
            sequence: sequence.map(Into::into),
            config,
            secret_file: None,
            period: "30s".into(),
            steps: 3,
            udp: false,
            exclude: Vec::new(),
            unix_time: None,
            delay: None,
            ipv4: false,
            ipv6: false,
            then_connect: None,
        }
    }

    fn ports(steps: &[Step]) -> Vec<String> {
        steps.iter().map(knock_client::step_name).collect()
    }

    #[test]
    fn sequence_from_flag_or_either_config_form() {
        let seq = sequence(&args(Some("100,udp:300/20s,tcp:200"), None)).unwrap();
        assert_eq!(ports(&seq), ["tcp:100", "udp:300", "tcp:200"]);
        let dir = std::env::temp_dir();
        for (i, text) in [
            "interfaces = [\"eth9\"]\nknock = \"tcp:100,udp:300/20s,tcp:200\"\n",
            "knock = [\"tcp:100\", \"udp:300\", \"tcp:200\"]\n[ban]\ntime = \"1d\"\n",
        ]
        .iter()
        .enumerate()
        {
            let path = dir.join(format!("iplock-knock-{}-{i}.toml", std::process::id()));
            std::fs::write(&path, text).unwrap();
            let seq = sequence(&args(None, Some(path.clone())));
            std::fs::remove_file(&path).unwrap();
            assert_eq!(ports(&seq.unwrap()), ["tcp:100", "udp:300", "tcp:200"]);
        }
    }

    #[test]
    fn bad_sequences_are_one_sentence_input_errors() {
        let path =
            std::env::temp_dir().join(format!("iplock-knock-{}-nokey.toml", std::process::id()));
        std::fs::write(&path, "protect = [22]\n").unwrap();
        for (a, needle) in [
            (args(None, None), "no knock sequence"),
            (args(Some("1"), Some(path.clone())), "only one of"),
            (args(Some(" , "), None), "empty"),
            (args(Some("tcp:100,sctp:5"), None), "sctp"),
            (
                args(None, Some(path.clone())),
                "neither a `knock` nor a `rotate` key",
            ),
            (
                args(None, Some("/nonexistent/iplock.toml".into())),
                "cannot read",
            ),
        ] {
            let err = sequence(&a).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{err}");
            let msg = err.to_string();
            assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
            assert!(!msg.contains('\n'), "{msg:?}");
        }
        std::fs::remove_file(&path).unwrap();
    }
}
