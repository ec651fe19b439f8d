//! The watcher: logs in as a machine (`POST /v1/watchers/login`, a JWT)
//! and pushes iplock's own bans as alerts with one decision each
//! (`POST /v1/alerts`), so every bouncer of the Local API enforces them on
//! its next pull. Never an allow-listed block, never a ban that came from
//! CrowdSec.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::Method;
use hyper::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::cidr::Cidr;
use crate::config::crowdsec::{CrowdsecSettings, MachineCredentials};
use crate::crowdsec::LapiError;
use crate::crowdsec::http::Http;
use crate::error::{Result, input};

/// The origin of every decision iplock pushes.
pub const ORIGIN: &str = "iplock";
/// Alerts per `POST /v1/alerts`.
pub const MAX_ALERTS_PER_POST: usize = 100;
/// Bans waiting for a push at most; older ones are dropped first when the
/// Local API stays down through a flood.
pub const MAX_PENDING: usize = 10_000;
/// The Local API's tokens last an hour; log in again well before.
const TOKEN_LIFETIME: Duration = Duration::from_secs(45 * 60);

/// Why iplock banned an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BanReason {
    WrongKnock,
    ClosedDoor,
    TrapPort,
    RefusedSpa,
    /// `iplock ban add`.
    Manual,
    /// A decision pulled from CrowdSec: never pushed back.
    Crowdsec,
}

impl BanReason {
    /// The scenario an alert of this reason carries; `None` for bans that
    /// came from CrowdSec.
    pub fn scenario(self) -> Option<&'static str> {
        Some(match self {
            BanReason::WrongKnock => "iplock/wrong-knock",
            BanReason::ClosedDoor => "iplock/closed-door",
            BanReason::TrapPort => "iplock/trap-port",
            BanReason::RefusedSpa => "iplock/refused-spa",
            BanReason::Manual => "iplock/manual",
            BanReason::Crowdsec => return None,
        })
    }

    /// Every scenario iplock pushes, for the login.
    pub fn scenarios() -> Vec<&'static str> {
        [
            BanReason::WrongKnock,
            BanReason::ClosedDoor,
            BanReason::TrapPort,
            BanReason::RefusedSpa,
            BanReason::Manual,
        ]
        .iter()
        .filter_map(|r| r.scenario())
        .collect()
    }

    /// The reason of a kernel ban entry (`BAN_*` of iplock-common).
    pub fn from_kernel(reason: u32) -> Option<BanReason> {
        use iplock_common::state::{BAN_CLOSED_DOOR, BAN_MANUAL, BAN_TRAP, BAN_WRONG_KNOCK};
        match reason {
            BAN_WRONG_KNOCK => Some(BanReason::WrongKnock),
            BAN_CLOSED_DOOR => Some(BanReason::ClosedDoor),
            BAN_TRAP => Some(BanReason::TrapPort),
            BAN_MANUAL => Some(BanReason::Manual),
            _ => None,
        }
    }
}

/// A ban iplock made: the block it covers (an address, or the IPv6 prefix
/// the filter bans), why, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalBan {
    pub target: Cidr,
    pub reason: BanReason,
    pub duration: Duration,
}

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    pub pushed: usize,
    /// Left out: the block is allow-listed (in part or whole).
    pub allowed: usize,
    /// Left out: the ban came from CrowdSec.
    pub from_crowdsec: usize,
}

#[derive(Deserialize)]
struct LoginAnswer {
    token: String,
}

/// Pushes alerts to one Local API as one machine.
pub struct Watcher {
    http: Http,
    creds: MachineCredentials,
    token: Option<(String, Instant)>,
    pending: Vec<LocalBan>,
}

impl Watcher {
    /// A watcher of the settings; refuses settings without machine credentials.
    pub fn new(settings: &CrowdsecSettings) -> Result<Watcher> {
        let Some(creds) = settings.machine.clone() else {
            return input(
                "pushing bans to CrowdSec needs machine credentials; set crowdsec.credentials_file (cscli machines add NAME -f FILE)",
            );
        };
        Ok(Watcher {
            http: Http::new(&settings.lapi_url),
            creds,
            token: None,
            pending: Vec::new(),
        })
    }

    pub fn set_timeout(&mut self, limit: Duration) {
        self.http.timeout = limit;
    }

    /// Logs in, replacing the token held.
    pub async fn login(&mut self) -> Result<(), LapiError> {
        let body = json!({
            "machine_id": self.creds.machine_id,
            "password": self.creds.password.expose(),
            "scenarios": BanReason::scenarios(),
        });
        let answer = self
            .http
            .send(
                Method::POST,
                "/v1/watchers/login",
                None,
                Some(body.to_string().into_bytes()),
            )
            .await?;
        match answer.status.as_u16() {
            200 => {
                let a: LoginAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
                    LapiError::Malformed(format!("the login answer is not the JSON expected: {e}"))
                })?;
                self.token = Some((a.token, Instant::now()));
                Ok(())
            }
            s @ (401 | 403) => Err(LapiError::Refused {
                what: "machine login",
                status: s,
            }),
            status => Err(LapiError::Status {
                path: "/v1/watchers/login".into(),
                status,
                message: answer.message(),
            }),
        }
    }

    /// Queues a ban for the next [`Watcher::flush`]; a ban from CrowdSec is
    /// never queued, and a ban of a target already queued for the same
    /// reason replaces it.
    pub fn enqueue(&mut self, ban: LocalBan) {
        if ban.reason.scenario().is_none() {
            return;
        }
        self.pending
            .retain(|b| !(b.target == ban.target && b.reason == ban.reason));
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(ban);
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Pushes the queued bans as one batch; they stay queued when the push
    /// fails, for the next try.
    pub async fn flush(
        &mut self,
        is_allowed: impl Fn(&Cidr) -> bool,
    ) -> Result<PushReport, LapiError> {
        if self.pending.is_empty() {
            return Ok(PushReport::default());
        }
        let bans = std::mem::take(&mut self.pending);
        match self.push(&bans, is_allowed).await {
            Ok(r) => Ok(r),
            Err(e) => {
                // Bans queued meanwhile go after the ones that failed.
                let newer = std::mem::replace(&mut self.pending, bans);
                for b in newer {
                    self.enqueue(b);
                }
                Err(e)
            }
        }
    }

    /// Pushes `bans` now, in posts of at most [`MAX_ALERTS_PER_POST`]
    /// alerts, leaving out those `is_allowed` says overlap the allow list
    /// and those that came from CrowdSec. Logs in first when it has no
    /// fresh token, and again once when the Local API refuses the token.
    pub async fn push(
        &mut self,
        bans: &[LocalBan],
        is_allowed: impl Fn(&Cidr) -> bool,
    ) -> Result<PushReport, LapiError> {
        let mut report = PushReport::default();
        let now = SystemTime::now();
        let mut alerts = Vec::new();
        for b in bans {
            let Some(scenario) = b.reason.scenario() else {
                report.from_crowdsec += 1;
                continue;
            };
            if is_allowed(&b.target) {
                report.allowed += 1;
                continue;
            }
            alerts.push(alert(b, scenario, now));
        }
        for chunk in alerts.chunks(MAX_ALERTS_PER_POST) {
            self.post_alerts(chunk).await?;
            report.pushed += chunk.len();
        }
        Ok(report)
    }

    async fn post_alerts(&mut self, alerts: &[Value]) -> Result<(), LapiError> {
        let body = serde_json::to_vec(alerts).expect("alerts serialise");
        for attempt in 0..2 {
            let fresh = self
                .token
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() < TOKEN_LIFETIME);
            if !fresh {
                self.login().await?;
            }
            let token = self
                .token
                .as_ref()
                .map(|(t, _)| t.clone())
                .unwrap_or_default();
            let auth = format!("Bearer {token}");
            let answer = self
                .http
                .send(
                    Method::POST,
                    "/v1/alerts",
                    Some((AUTHORIZATION, &auth)),
                    Some(body.clone()),
                )
                .await?;
            match answer.status.as_u16() {
                200 | 201 => return Ok(()),
                401 if attempt == 0 => self.token = None,
                s @ (401 | 403) => {
                    return Err(LapiError::Refused {
                        what: "alerts of this machine",
                        status: s,
                    });
                }
                status => {
                    return Err(LapiError::Status {
                        path: "/v1/alerts".into(),
                        status,
                        message: answer.message(),
                    });
                }
            }
        }
        unreachable!("the second attempt returns")
    }
}

/// An alert carrying one ban decision, as `cscli decisions add` sends it.
fn alert(b: &LocalBan, scenario: &str, now: SystemTime) -> Value {
    let full = if b.target.ip.is_ipv4() { 32 } else { 128 };
    let (scope, value) = if b.target.len == full {
        ("Ip", b.target.ip.to_string())
    } else {
        ("Range", b.target.to_string())
    };
    let at = rfc3339(now);
    let mut source = json!({ "scope": scope, "value": value });
    source[if scope == "Ip" { "ip" } else { "range" }] = json!(value);
    json!({
        "scenario": scenario,
        "scenario_hash": "",
        "scenario_version": "",
        "message": format!("iplock banned {value} ({scenario})"),
        "events_count": 1,
        "start_at": at,
        "stop_at": at,
        "capacity": 0,
        "leakspeed": "0",
        "simulated": false,
        "remediation": true,
        "events": [],
        "source": source,
        "decisions": [{
            "origin": ORIGIN,
            "type": "ban",
            "scope": scope,
            "value": value,
            // Go's time.ParseDuration reads whole milliseconds exactly.
            "duration": format!("{}ms", b.duration.as_millis().max(1)),
            "scenario": scenario,
        }],
    })
}

/// `2026-01-02T03:04:05Z`.
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(t: &str, reason: BanReason) -> LocalBan {
        LocalBan {
            target: Cidr::parse(t).unwrap(),
            reason,
            duration: Duration::from_secs(3600),
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199); // leap year
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn alerts_carry_one_decision() {
        let a = alert(
            &ban("192.0.2.5", BanReason::WrongKnock),
            "iplock/wrong-knock",
            UNIX_EPOCH,
        );
        let d = &a["decisions"][0];
        assert_eq!(d["origin"], "iplock");
        assert_eq!(d["scope"], "Ip");
        assert_eq!(d["value"], "192.0.2.5");
        assert_eq!(d["duration"], "3600000ms");
        assert_eq!(a["source"]["ip"], "192.0.2.5");
        let a = alert(
            &ban("2001:db8::/64", BanReason::TrapPort),
            "iplock/trap-port",
            UNIX_EPOCH,
        );
        assert_eq!(a["decisions"][0]["scope"], "Range");
        assert_eq!(a["source"]["range"], "2001:db8::/64");
        assert_eq!(
            crate::crowdsec::go_duration::parse("3600000ms"),
            Some(3_600_000_000_000)
        );
    }

    #[test]
    fn crowdsec_bans_are_never_queued_and_repeats_replace() {
        let s = CrowdsecSettings {
            lapi_url: crate::config::crowdsec::LapiUrl::parse("http://127.0.0.1:1", "u").unwrap(),
            api_key: None,
            update_frequency: Duration::from_secs(10),
            origins: vec![],
            scenarios_containing: vec![],
            scenarios_not_containing: vec![],
            machine: Some(MachineCredentials {
                machine_id: "m".into(),
                password: crate::config::crowdsec::SecretString::new("p"),
            }),
        };
        let mut w = Watcher::new(&s).unwrap();
        w.enqueue(ban("192.0.2.5", BanReason::Crowdsec));
        assert_eq!(w.pending(), 0);
        w.enqueue(ban("192.0.2.5", BanReason::ClosedDoor));
        w.enqueue(ban("192.0.2.5", BanReason::ClosedDoor));
        w.enqueue(ban("192.0.2.5", BanReason::TrapPort));
        assert_eq!(w.pending(), 2);
        assert_eq!(
            BanReason::from_kernel(iplock_common::state::BAN_TRAP),
            Some(BanReason::TrapPort)
        );
        assert_eq!(BanReason::scenarios().len(), 5);
    }
}
