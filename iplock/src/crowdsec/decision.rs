//! Decisions of the Local API's stream, typed: the address block, the
//! remediation, where it came from and when it ends; and the set of
//! decisions in force, which turns each pulled delta into what the filter
//! must change.

use std::collections::HashMap;
use std::net::IpAddr;

use iplock_common::addr;
use iplock_common::state::origin_code;
use serde::Deserialize;

use crate::config::cidr::Cidr;
use crate::config::crowdsec::CrowdsecSettings;
use crate::crowdsec::LapiError;
use crate::crowdsec::go_duration;

/// A decision as the Local API sends it; every field optional, so that one
/// odd decision is skipped instead of failing the whole answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireDecision {
    id: Option<i64>,
    duration: Option<String>,
    origin: Option<String>,
    scenario: Option<String>,
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

/// `GET /v1/decisions/stream`: each list is `null` when empty.
#[derive(Debug, Deserialize)]
struct WireStream {
    new: Option<Vec<WireDecision>>,
    deleted: Option<Vec<WireDecision>>,
}

/// One decision to enforce (or, in [`Delta::deleted`], to stop enforcing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The Local API's id; decisions without one get a key of their fields.
    pub id: Option<i64>,
    /// The address (a /32 or /128) or range; IPv4-mapped IPv6 values are IPv4.
    pub target: Cidr,
    pub origin: String,
    pub scenario: String,
    /// The filter's clock (ns) when the decision ends; for a
    /// deletion, when it ended (at or before the pull).
    pub until_ns: u64,
}

impl Decision {
    fn key(&self) -> DecisionKey {
        match self.id {
            Some(id) => DecisionKey::Id(id),
            None => {
                DecisionKey::Fields(format!("{}|{}|{}", self.target, self.origin, self.scenario))
            }
        }
    }
}

/// Decisions of one answer that iplock does not enforce, by why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ignored {
    /// A remediation other than `ban` (captcha, throttle, ...).
    pub not_ban: u64,
    /// A scope other than `Ip` and `Range` (country, AS, username, ...).
    pub scope: u64,
    /// Left out by the origin or scenario filters.
    pub filtered: u64,
    /// No value or duration, or one that does not parse.
    pub malformed: u64,
    /// New decisions whose time has already run out.
    pub expired: u64,
}

impl Ignored {
    pub fn total(&self) -> u64 {
        self.not_ban + self.scope + self.filtered + self.malformed + self.expired
    }
}

/// One pulled answer: deletions to apply first, then additions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delta {
    /// Whether this is a `startup=true` answer: all decisions in force,
    /// so anything enforced before and absent now has ended.
    pub startup: bool,
    pub deleted: Vec<Decision>,
    pub new: Vec<Decision>,
    pub ignored_new: Ignored,
    pub ignored_deleted: Ignored,
}

/// Which decisions iplock takes: bans of scope Ip or Range, of the origins
/// and scenarios the settings name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub origins: Vec<String>,
    pub scenarios_containing: Vec<String>,
    pub scenarios_not_containing: Vec<String>,
}

impl Filter {
    pub fn from_settings(s: &CrowdsecSettings) -> Filter {
        Filter {
            origins: s.origins.clone(),
            scenarios_containing: s.scenarios_containing.clone(),
            scenarios_not_containing: s.scenarios_not_containing.clone(),
        }
    }

    /// The same filters as query parameters, so the Local API sends less;
    /// [`Filter::takes`] applies them again on what comes back.
    pub fn query(&self) -> String {
        let mut q = String::new();
        for (name, list) in [
            ("origins", &self.origins),
            ("scenarios_containing", &self.scenarios_containing),
            ("scenarios_not_containing", &self.scenarios_not_containing),
        ] {
            if !list.is_empty() {
                q.push_str(&format!("&{name}={}", percent_encode(&list.join(","))));
            }
        }
        q
    }

    /// Whether a decision of this origin and scenario passes the filters
    /// (origins match exactly, scenarios by substring in any case, as the
    /// Local API matches them).
    pub fn takes(&self, origin: &str, scenario: &str) -> bool {
        let scenario = scenario.to_lowercase();
        let has = |s: &String| scenario.contains(&s.to_lowercase());
        (self.origins.is_empty() || self.origins.iter().any(|o| o == origin))
            && (self.scenarios_containing.is_empty() || self.scenarios_containing.iter().any(has))
            && !self.scenarios_not_containing.iter().any(has)
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~,".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a stream answer pulled at `now_ns` (the filter's clock, ns).
pub fn parse_stream(
    body: &[u8],
    startup: bool,
    filter: &Filter,
    now_ns: u64,
) -> Result<Delta, LapiError> {
    let wire: WireStream = serde_json::from_slice(body).map_err(|e| {
        LapiError::Malformed(format!("the decision stream is not the JSON expected: {e}"))
    })?;
    let mut delta = Delta {
        startup,
        ..Delta::default()
    };
    for w in wire.deleted.unwrap_or_default() {
        match typed(w, filter, now_ns, true) {
            Ok(d) => delta.deleted.push(d),
            Err(why) => why.count(&mut delta.ignored_deleted),
        }
    }
    for w in wire.new.unwrap_or_default() {
        match typed(w, filter, now_ns, false) {
            Ok(d) => delta.new.push(d),
            Err(why) => why.count(&mut delta.ignored_new),
        }
    }
    Ok(delta)
}

enum Skip {
    NotBan,
    Scope,
    Filtered,
    Malformed,
    Expired,
}

impl Skip {
    fn count(self, i: &mut Ignored) {
        *match self {
            Skip::NotBan => &mut i.not_ban,
            Skip::Scope => &mut i.scope,
            Skip::Filtered => &mut i.filtered,
            Skip::Malformed => &mut i.malformed,
            Skip::Expired => &mut i.expired,
        } += 1;
    }
}

fn typed(w: WireDecision, filter: &Filter, now_ns: u64, deleted: bool) -> Result<Decision, Skip> {
    let scope = w.scope.as_deref().unwrap_or("");
    let range = if scope.eq_ignore_ascii_case("ip") {
        false
    } else if scope.eq_ignore_ascii_case("range") {
        true
    } else {
        return Err(Skip::Scope);
    };
    if !w
        .kind
        .as_deref()
        .is_some_and(|k| k.eq_ignore_ascii_case("ban"))
    {
        return Err(Skip::NotBan);
    }
    let origin = w.origin.unwrap_or_default();
    let scenario = w.scenario.unwrap_or_default();
    if !filter.takes(&origin, &scenario) {
        return Err(Skip::Filtered);
    }
    let target = w
        .value
        .as_deref()
        .and_then(|v| parse_target(v, range))
        .ok_or(Skip::Malformed)?;
    let left = w
        .duration
        .as_deref()
        .and_then(go_duration::parse)
        .ok_or(Skip::Malformed)?;
    if !deleted && left <= 0 {
        return Err(Skip::Expired);
    }
    let until_ns = if left >= 0 {
        now_ns.saturating_add(left as u64)
    } else {
        now_ns.saturating_sub(left.unsigned_abs())
    };
    Ok(Decision {
        id: w.id,
        target,
        origin,
        scenario,
        until_ns,
    })
}

/// An `Ip` value (an address) or `Range` value (`ADDR/LEN`; host bits are
/// cleared, as CrowdSec does not require them clear). IPv4-mapped IPv6
/// values are IPv4.
pub fn parse_target(value: &str, range: bool) -> Option<Cidr> {
    let (ip, len) = match (range, value.split_once('/')) {
        (true, Some((ip, len))) => (ip, Some(len.parse::<u32>().ok()?)),
        (true, None) | (false, None) => (value, None),
        (false, Some(_)) => return None,
    };
    let ip: IpAddr = ip.trim().parse().ok()?;
    let (ip, len) = match (ip, len) {
        (IpAddr::V6(v6), len) if v6.to_ipv4_mapped().is_some() => {
            let v4 = v6.to_ipv4_mapped()?;
            let len = match len {
                None => 32,
                Some(l) if (96..=128).contains(&l) => l - 96,
                Some(_) => return None, // wider than the mapped block
            };
            (IpAddr::V4(v4), len)
        }
        (IpAddr::V4(_), l) => (ip, l.unwrap_or(32)),
        (IpAddr::V6(_), l) => (ip, l.unwrap_or(128)),
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return None;
    }
    let probe = Cidr { ip, len };
    let masked = addr::to_ip(&addr::mask(&addr::from_ip(ip), probe.key_bits()));
    let masked = match (ip, masked) {
        // addr::to_ip gives back IPv4 for mapped keys; keep the family.
        (IpAddr::V6(_), IpAddr::V4(v4)) => IpAddr::V6(v4.to_ipv6_mapped()),
        (_, m) => m,
    };
    Some(Cidr { ip: masked, len })
}

/// What the filter must do after a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Drop everything from `target` until `until_ns` (the filter's clock, ns);
    /// replaces an earlier entry of the same target, which may have been
    /// longer or shorter. `origin` (`ORIGIN_*` of iplock-common) is that
    /// of the decision that lasts longest.
    Ban {
        target: Cidr,
        until_ns: u64,
        origin: u32,
    },
    /// `target` has no decision left: remove its entry.
    Lift { target: Cidr },
}

/// Ends closer than this count as the same: the Local API dates each
/// answer's durations anew, so a decision listed again (a startup pull
/// after an outage) ends a few milliseconds off, not worth a map write.
pub const END_SLACK_NS: u64 = 2_000_000_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum DecisionKey {
    Id(i64),
    Fields(String),
}

/// The CrowdSec decisions in force, by target: an address stays banned
/// while any decision on it lasts (a range and an address are separate
/// targets; the filter's own lookup covers the overlap). Deletions are
/// idempotent: one that arrives twice, or for a decision never seen,
/// changes nothing.
#[derive(Debug, Default)]
pub struct DecisionSet {
    /// Each decision's end and origin code.
    by_target: HashMap<Cidr, HashMap<DecisionKey, (u64, u32)>>,
}

impl DecisionSet {
    pub fn new() -> DecisionSet {
        DecisionSet::default()
    }

    /// Targets with at least one decision.
    pub fn len(&self) -> usize {
        self.by_target.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_target.is_empty()
    }

    /// When `target`'s ban ends, if it has one.
    pub fn until(&self, target: &Cidr) -> Option<u64> {
        self.longest(target).map(|(until, _)| until)
    }

    /// When `target`'s ban ends and the origin of the decision that lasts
    /// longest.
    pub fn longest(&self, target: &Cidr) -> Option<(u64, u32)> {
        self.by_target.get(target)?.values().copied().max()
    }

    /// Every target and when its ban ends.
    pub fn iter(&self) -> impl Iterator<Item = (Cidr, u64)> + '_ {
        self.entries().map(|(t, until, _)| (t, until))
    }

    /// Every target, when its ban ends and the origin of its longest decision.
    pub fn entries(&self) -> impl Iterator<Item = (Cidr, u64, u32)> + '_ {
        self.by_target.iter().filter_map(|(t, ds)| {
            let (until, origin) = ds.values().copied().max()?;
            Some((*t, until, origin))
        })
    }

    /// Applies a delta (deletions, then additions) and returns the
    /// changes for the filter, one per target touched. A startup answer
    /// replaces the whole set: targets absent from it are lifted.
    pub fn apply(&mut self, delta: &Delta) -> Vec<Change> {
        let before: HashMap<Cidr, u64> = self.iter().collect();
        if delta.startup {
            self.by_target.clear();
        }
        for d in &delta.deleted {
            if let Some(ds) = self.by_target.get_mut(&d.target) {
                ds.remove(&d.key());
                if ds.is_empty() {
                    self.by_target.remove(&d.target);
                }
            }
        }
        for d in &delta.new {
            self.by_target
                .entry(d.target)
                .or_default()
                .insert(d.key(), (d.until_ns, origin_code(&d.origin)));
        }
        let mut changes = Vec::new();
        for (target, was) in &before {
            match self.longest(target) {
                None => changes.push(Change::Lift { target: *target }),
                Some((until_ns, origin)) if until_ns.abs_diff(*was) >= END_SLACK_NS => changes
                    .push(Change::Ban {
                        target: *target,
                        until_ns,
                        origin,
                    }),
                Some(_) => {}
            }
        }
        for (target, until_ns, origin) in self.entries() {
            if !before.contains_key(&target) {
                changes.push(Change::Ban {
                    target,
                    until_ns,
                    origin,
                });
            }
        }
        // Lifts first, as deletions come before additions.
        changes.sort_by_key(|c| matches!(c, Change::Ban { .. }));
        changes
    }

    /// Forgets decisions that ended by `now_ns`; the filter expires their
    /// entries itself, so no change is needed.
    pub fn prune(&mut self, now_ns: u64) {
        self.by_target.retain(|_, ds| {
            ds.retain(|_, (until, _)| *until > now_ns);
            !ds.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 1_000 * S;

    fn cidr(s: &str) -> Cidr {
        Cidr::parse(s).unwrap()
    }

    #[test]
    fn targets() {
        assert_eq!(parse_target("192.0.2.7", false), Some(cidr("192.0.2.7/32")));
        assert_eq!(
            parse_target("::ffff:192.0.2.8", false),
            Some(cidr("192.0.2.8/32"))
        );
        assert_eq!(
            parse_target("2001:db8::1", false),
            Some(cidr("2001:db8::1/128"))
        );
        assert_eq!(
            parse_target("198.51.100.0/24", true),
            Some(cidr("198.51.100.0/24"))
        );
        assert_eq!(
            parse_target("198.51.100.9/24", true),
            Some(cidr("198.51.100.0/24"))
        );
        assert_eq!(
            parse_target("2001:db8:1::/48", true),
            Some(cidr("2001:db8:1::/48"))
        );
        assert_eq!(
            parse_target("2001:db8:1:2::5/48", true),
            Some(cidr("2001:db8:1::/48"))
        );
        assert_eq!(
            parse_target("::ffff:198.51.100.0/120", true),
            Some(cidr("198.51.100.0/24"))
        );
        assert_eq!(parse_target("192.0.2.7", true), Some(cidr("192.0.2.7/32")));
        for bad in [
            "192.0.2.0/33",
            "::ffff:1.2.3.0/64",
            "nope",
            "2001:db8::/129",
            "1.2.3.4/x",
        ] {
            assert_eq!(parse_target(bad, true), None, "{bad}");
        }
        assert_eq!(parse_target("192.0.2.0/24", false), None);
    }

    const ANSWER: &str = r#"{"deleted":[{"duration":"-21.759997ms","id":1,"origin":"cscli","scenario":"manual","scope":"Ip","type":"ban","value":"192.0.2.7"}],
      "new":[{"duration":"59m59.06s","id":2,"origin":"cscli","scenario":"manual 'ban'","scope":"Ip","type":"ban","value":"::ffff:192.0.2.8"},
             {"duration":"59m59s","id":4,"origin":"cscli","scenario":"manual","scope":"Ip","type":"captcha","value":"192.0.2.9"},
             {"duration":"1h29m59s","id":3,"origin":"CAPI","scenario":"crowdsecurity/ssh-bf","scope":"Range","type":"ban","value":"2001:db8:1::/48"},
             {"duration":"1h","id":5,"origin":"cscli","scenario":"x","scope":"Country","type":"ban","value":"FR"},
             {"duration":"-1s","id":6,"origin":"cscli","scenario":"x","scope":"Ip","type":"ban","value":"192.0.2.10"},
             {"duration":"soon","id":7,"origin":"cscli","scenario":"x","scope":"Ip","type":"ban","value":"192.0.2.11"},
             {"id":8,"scope":"ip","type":"BAN","value":"192.0.2.12","duration":"1s","origin":"lists","scenario":"x"}]}"#;

    #[test]
    fn parses_an_answer() {
        let d = parse_stream(ANSWER.as_bytes(), false, &Filter::default(), NOW).unwrap();
        assert_eq!(d.deleted.len(), 1);
        assert_eq!(d.deleted[0].target, cidr("192.0.2.7/32"));
        assert!(d.deleted[0].until_ns < NOW);
        let targets: Vec<_> = d.new.iter().map(|d| d.target.to_string()).collect();
        assert_eq!(
            targets,
            ["192.0.2.8/32", "2001:db8:1::/48", "192.0.2.12/32"]
        );
        assert_eq!(d.new[0].until_ns, NOW + 3599 * S + 60_000_000);
        assert_eq!(d.new[1].until_ns, NOW + 5399 * S);
        assert_eq!(
            d.ignored_new,
            Ignored {
                not_ban: 1,
                scope: 1,
                filtered: 0,
                malformed: 1,
                expired: 1
            }
        );
        assert_eq!(d.ignored_new.total(), 4);
    }

    #[test]
    fn null_lists_and_malformed_answers() {
        let d = parse_stream(
            br#"{"deleted":null,"new":null}"#,
            true,
            &Filter::default(),
            NOW,
        )
        .unwrap();
        assert!(d.new.is_empty() && d.deleted.is_empty() && d.startup);
        let d = parse_stream(br#"{}"#, false, &Filter::default(), NOW).unwrap();
        assert!(d.new.is_empty());
        for bad in [
            &b"{\"new\": [1]}"[..],
            b"[]",
            b"<html>",
            b"",
            b"{\"new\":[{\"id\":\"x\"}]}",
        ] {
            let e = parse_stream(bad, false, &Filter::default(), NOW).unwrap_err();
            assert!(matches!(e, LapiError::Malformed(_)), "{e}");
        }
    }

    #[test]
    fn filters() {
        let f = Filter {
            origins: vec!["cscli".into(), "CAPI".into()],
            scenarios_containing: vec!["SSH".into(), "manual".into()],
            scenarios_not_containing: vec!["ban'".into()],
        };
        let d = parse_stream(ANSWER.as_bytes(), false, &f, NOW).unwrap();
        let targets: Vec<_> = d.new.iter().map(|d| d.target.to_string()).collect();
        assert_eq!(targets, ["2001:db8:1::/48"]);
        assert_eq!(d.ignored_new.filtered, 4);
        assert_eq!(
            f.query(),
            "&origins=cscli,CAPI&scenarios_containing=SSH,manual&scenarios_not_containing=ban%27"
        );
        assert_eq!(Filter::default().query(), "");
    }

    fn dec(id: i64, target: &str, until: u64) -> Decision {
        Decision {
            id: Some(id),
            target: cidr(target),
            origin: "cscli".into(),
            scenario: "x".into(),
            until_ns: until * S,
        }
    }

    #[test]
    fn the_set_turns_deltas_into_changes() {
        let mut set = DecisionSet::new();
        let ban = |t: &str, u: u64| Change::Ban {
            target: cidr(t),
            until_ns: u * S,
            origin: iplock_common::state::ORIGIN_CSCLI,
        };
        let lift = |t: &str| Change::Lift { target: cidr(t) };
        let startup = Delta {
            startup: true,
            new: vec![
                dec(1, "192.0.2.1", 10),
                dec(2, "192.0.2.1", 20),
                dec(3, "2001:db8::/48", 30),
            ],
            ..Delta::default()
        };
        let mut c = set.apply(&startup);
        c.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(c, [ban("192.0.2.1", 20), ban("2001:db8::/48", 30)]);
        // Deleting the longer of two decisions on a target shortens its ban.
        let del = Delta {
            deleted: vec![dec(2, "192.0.2.1", 0)],
            ..Delta::default()
        };
        assert_eq!(set.apply(&del), [ban("192.0.2.1", 10)]);
        // The same deletion again, and one never seen, change nothing.
        assert_eq!(set.apply(&del), []);
        let unknown = Delta {
            deleted: vec![dec(9, "198.51.100.1", 0)],
            ..Delta::default()
        };
        assert_eq!(set.apply(&unknown), []);
        let del1 = Delta {
            deleted: vec![dec(1, "192.0.2.1", 0)],
            ..Delta::default()
        };
        assert_eq!(set.apply(&del1), [lift("192.0.2.1")]);
        // The same decision listed again, dated a little differently: nothing to write.
        let drift = Delta {
            startup: true,
            new: vec![dec(3, "2001:db8::/48", 31)],
            ..Delta::default()
        };
        assert_eq!(set.apply(&drift), []);
        // A new decision on a target already banned as long: nothing to write.
        let again = Delta {
            new: vec![dec(4, "2001:db8::/48", 30)],
            ..Delta::default()
        };
        assert_eq!(set.apply(&again), []);
        // A startup answer after an outage: what it lacks is lifted, lifts first.
        let resync = Delta {
            startup: true,
            new: vec![dec(5, "192.0.2.5", 50)],
            ..Delta::default()
        };
        assert_eq!(
            set.apply(&resync),
            [lift("2001:db8::/48"), ban("192.0.2.5", 50)]
        );
        set.prune(49 * S);
        assert_eq!(set.len(), 1);
        set.prune(50 * S);
        assert!(set.is_empty());
    }
}
