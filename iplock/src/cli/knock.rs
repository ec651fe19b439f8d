//! `iplock knock`: the client side, sending a knock sequence to a server.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use clap::Args;

use crate::client::knock_client::{self, Family};
use crate::config::duration;
use crate::config::knock::{self, Step};
use crate::config::rotate::{self, Params};
use crate::config::secret;
use crate::config::settings;
use crate::error::io_reason;
use crate::error::{Error, Result, input, quote};

/// How long `--then-connect` waits for the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  iplock knock server.example.org --sequence tcp:100,udp:300,tcp:200 --then-connect 22 && ssh server.example.org\n  iplock knock server.example.org --secret-file ~/.config/iplock/secret --then-connect 22\n  iplock knock -6 server.example.org --config /etc/iplock/iplock.toml\n\nDebian's knock client sends the same sequence as `knock HOST 100:tcp 300:udp 200:tcp`."
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
    /// Compute this period's rotating sequence from the shared secret file
    /// (made by `iplock secret new`, which records the rotation's parameters).
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// With a bare-hex --secret-file: the server's rotation period [default: 30s].
    #[arg(long, value_name = "D")]
    pub period: Option<String>,
    /// With a bare-hex --secret-file: the server's number of steps [default: 3].
    #[arg(long, value_name = "N")]
    pub steps: Option<usize>,
    /// With a bare-hex --secret-file: the server allows udp steps.
    #[arg(long)]
    pub udp: bool,
    /// With a bare-hex --secret-file: the server's protected and trap ports
    /// (repeat, or separate with commas) [default: 22].
    #[arg(long = "exclude", value_name = "PORT", value_delimiter = ',', value_parser = parse_port_arg)]
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

/// A rotating knock's parameters and period index, which a failure reports.
type Rotating = (Params, u64);

/// The steps to send, and what drew them if they rotate.
fn sequence(args: &KnockArgs) -> Result<(Vec<Step>, Option<Rotating>)> {
    let now = args.unix_time.unwrap_or_else(rotate::unix_now);
    let (steps, rotating) = match (&args.sequence, &args.config, &args.secret_file) {
        (Some(s), None, None) => (knock::parse_sequence(s)?, None),
        (None, Some(path), None) => settings::knock_from_file(path, now)?,
        (None, None, Some(path)) => {
            let file = secret::read(path)?;
            let params = params(args, file.params.as_ref(), path)?;
            let r = params.rotation(file.secret);
            (
                r.sequence(rotate::period_index(now, params.period), &params.exclude),
                Some(params),
            )
        }
        (None, None, None) => {
            return input("no knock sequence is set; give --sequence, --config or --secret-file");
        }
        _ => return input("give only one of --sequence, --config and --secret-file"),
    };
    if steps.is_empty() {
        return input("the knock sequence is empty");
    }
    let rotating = rotating.map(|p| {
        let index = rotate::period_index(now, p.period);
        (p, index)
    });
    Ok((steps, rotating))
}

/// The rotation's parameters: the flags given, else those the secret file
/// records, else the defaults. A flag that disagrees with the file is
/// refused: the file was made for the server, the flag is a guess.
fn params(args: &KnockArgs, recorded: Option<&Params>, path: &Path) -> Result<Params> {
    let period = match (&args.period, recorded) {
        (Some(p), _) => duration::parse(p, "--period")?,
        (None, Some(r)) => r.period,
        (None, None) => rotate::DEFAULT_PERIOD,
    };
    let steps = args
        .steps
        .or(recorded.map(|r| r.steps))
        .unwrap_or(rotate::DEFAULT_STEPS);
    let udp = args.udp || recorded.is_some_and(|r| r.udp);
    let exclude = match (args.exclude.is_empty(), recorded) {
        (false, _) => args.exclude.clone(),
        (true, Some(r)) => r.exclude.clone(),
        (true, None) => settings::DEFAULT_PROTECT.to_vec(),
    };
    let given = Params::new(period, steps, udp, &exclude, "--")?;
    if let Some((name, theirs, ours)) = recorded.and_then(|r| r.difference(&given)) {
        return input(format!(
            "the secret file {} records {name} {theirs}, but --{name} gives {ours}; drop --{name}, the file has what the server uses",
            quote(path.display())
        ));
    }
    Ok(given)
}

pub fn run(args: &KnockArgs) -> Result<()> {
    let family = match (args.ipv4, args.ipv6) {
        (true, true) => return input("give either -4 or -6, not both"),
        (true, false) => Some(Family::V4),
        (false, true) => Some(Family::V6),
        (false, false) => None,
    };
    let (steps, rotating) = sequence(args)?;
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
            what: match rotating {
                None => format!("port {port} on {dst} did not open"),
                // The likeliest cause is a parameter or a clock that
                // differs from the server's: say which were used.
                Some((p, index)) => format!(
                    "port {port} on {dst} did not open after the rotating knock of period {index} by this clock ({})",
                    p.flags()
                ),
            },
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
            period: None,
            steps: None,
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
        let seq = sequence(&args(Some("100,udp:300/20s,tcp:200"), None))
            .unwrap()
            .0;
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
            assert_eq!(ports(&seq.unwrap().0), ["tcp:100", "udp:300", "tcp:200"]);
        }
    }

    #[test]
    fn flags_fill_in_a_bare_file_and_must_agree_with_a_recorded_one() {
        let path = Path::new("secret");
        let recorded = Params::new(Duration::from_secs(20), 4, true, &[22, 23], "--").unwrap();
        let mut a = args(None, None);
        assert_eq!(params(&a, Some(&recorded), path).unwrap(), recorded);
        let defaults = params(&a, None, path).unwrap();
        assert_eq!(
            (
                defaults.period,
                defaults.steps,
                defaults.udp,
                defaults.exclude
            ),
            (Duration::from_secs(30), 3, false, vec![22])
        );
        a.exclude = vec![23, 22];
        a.period = Some("20s".into());
        assert_eq!(params(&a, Some(&recorded), path).unwrap(), recorded);
        a.steps = Some(3);
        let err = params(&a, Some(&recorded), path).unwrap_err().to_string();
        assert!(
            err.contains("records steps 4, but --steps gives 3"),
            "{err}"
        );
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
