//! results.json, the tables the bench prints, and BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::Command;

use serde::Serialize;

use crate::control::Control;
use crate::cost::Costs;
use crate::eviction::Eviction;
use crate::machine::Machine;
use crate::pressure::Pressure;
use crate::throughput::{Flow, FlowResult};

/// Ratio of iplock's drop rate and CPU time to the iptables rules' on one flow.
#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub flow: Flow,
    pub receiver: String,
    pub versus: String,
    /// Frames dropped per second, iplock over iptables (medians); `None`
    /// where iplock drops none of the flood (`iplock_native_stack` passes
    /// the knocks to TCP).
    pub dropped_pps_ratio: Option<f64>,
    /// CPU time per frame, iptables over iplock (medians): what the whole
    /// life of a frame costs the CPU, whatever its end (a drop, or TCP's
    /// reset); the ratio of frames handled per second.
    pub cpu_time_ratio: f64,
    /// CPU time per frame above the flow's empty XDP_DROP row (the
    /// generator's and veth's share), iptables over iplock (medians): an
    /// estimate of the ratio of the receivers' own costs.
    pub above_floor_ratio: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub generated_by: &'static str,
    pub date_utc: String,
    pub commit: String,
    pub machine: Machine,
    pub loadavg_at_start: String,
    pub loadavg_at_end: String,
    pub duration_s: f64,
    pub cost: Option<Costs>,
    pub throughput: Option<Vec<FlowResult>>,
    pub ratios: Vec<Ratio>,
    pub pressure: Option<Pressure>,
    pub control: Option<Control>,
    pub eviction: Option<Eviction>,
    pub targets: Vec<Target>,
}

impl Results {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        machine: Machine,
        loadavg_at_start: String,
        loadavg_at_end: String,
        duration_s: f64,
        cost: Option<Costs>,
        throughput: Option<Vec<FlowResult>>,
        pressure: Option<Pressure>,
        control: Option<Control>,
        eviction: Option<Eviction>,
    ) -> Results {
        let ratios = throughput.as_deref().map_or_else(Vec::new, ratios);
        let targets = targets(cost.as_ref(), &ratios);
        Results {
            generated_by: "cargo xtask bench",
            date_utc: shell(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
            commit: commit(),
            machine,
            loadavg_at_start,
            loadavg_at_end,
            duration_s,
            cost,
            throughput,
            ratios,
            pressure,
            control,
            eviction,
            targets,
        }
    }

    /// The results when every part ran.
    pub fn complete(&self) -> Option<&Results> {
        (self.cost.is_some()
            && self.throughput.is_some()
            && self.pressure.is_some()
            && self.control.is_some()
            && self.eviction.is_some())
        .then_some(self)
    }
}

/// When and at which commit a part ran, on `machine` (its description),
/// and how busy the machine was.
pub fn run_stamp(machine: &str) -> String {
    format!(
        "{} at commit {} on {machine}, load average {}",
        shell(&["date", "-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        commit(),
        crate::machine::loadavg()
    )
}

fn shell(args: &[&str]) -> String {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "unknown".into(),
            |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
        )
}

/// The commit the bench was built from, marked when the tree had changes.
fn commit() -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let head = shell(&["git", "-C", dir, "rev-parse", "--short", "HEAD"]);
    let dirty = !shell(&[
        "git",
        "-C",
        dir,
        "status",
        "--porcelain",
        "--untracked-files=no",
    ])
    .is_empty();
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

fn ratios(flows: &[FlowResult]) -> Vec<Ratio> {
    let mut out = Vec::new();
    for f in flows
        .iter()
        .filter(|f| f.receiver.starts_with("iplock_") || f.receiver == "reference")
    {
        let floor = flows
            .iter()
            .find(|b| b.flow == f.flow && b.receiver == "empty_xdp_drop")
            .map_or(0.0, |b| b.ns_per_frame.median);
        for base in flows.iter().filter(|b| {
            b.flow == f.flow
                && b.receiver.starts_with("iptables_")
                && !b.receiver.ends_with("article_order")
        }) {
            out.push(Ratio {
                flow: f.flow,
                receiver: f.receiver.clone(),
                versus: base.receiver.clone(),
                dropped_pps_ratio: (f.dropped_pps.median > 0.0)
                    .then(|| f.dropped_pps.median / base.dropped_pps.median.max(1.0)),
                cpu_time_ratio: base.ns_per_frame.median / f.ns_per_frame.median.max(1.0),
                above_floor_ratio: (base.ns_per_frame.median - floor)
                    / (f.ns_per_frame.median - floor).max(1.0),
            });
        }
    }
    out
}

fn targets(cost: Option<&Costs>, ratios: &[Ratio]) -> Vec<Target> {
    let mut out = Vec::new();
    if let Some(c) = cost {
        for p in &c.paths {
            out.push(Target {
                what: format!("{}: (iplock − empty) / (reference − empty)", p.name),
                target: format!("<= {:.1}", p.target_ratio),
                measured: p.ratio.show(2),
                met: p.target_met,
            });
        }
    }
    for (flow, want) in [(Flow::SynFlood, 10.0), (Flow::KnockFlood, 5.0)] {
        for r in ratios
            .iter()
            .filter(|r| r.flow == flow && r.receiver == "iplock_native")
        {
            // A run where iplock dropped nothing misses the target.
            let ratio = r.dropped_pps_ratio.unwrap_or(0.0);
            out.push(Target {
                what: format!("{} dropped by iplock native vs {}", flow.name(), r.versus),
                target: format!(">= {want:.0}x"),
                measured: format!("{ratio:.1}x"),
                met: ratio >= want,
            });
        }
    }
    out
}

fn mpps(x: f64) -> String {
    format!("{:.2}", x / 1e6)
}

pub fn cost_table(c: &Costs) -> String {
    let mut s = String::from(
        "| path | verdict | timed | iplock ns | empty XDP_PASS ns | empty XDP_DROP ns | reference ns | iplock − empty ns | reference − empty ns | ratio | met (≤ 1.2) |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for p in &c.paths {
        let _ = writeln!(
            s,
            "| `{}`: {} | {} | {} | {} | {} | {} | {} | **{}** | {} | **{}** | {} |",
            p.name,
            p.what,
            p.verdict,
            p.timed,
            p.iplock_ns.show(0),
            p.empty_pass_ns.show(0),
            p.empty_drop_ns.show(0),
            p.reference_ns.show(0),
            p.over_empty_ns.show(0),
            p.reference_over_empty_ns.show(0),
            p.ratio.show(2),
            if p.target_met { "yes" } else { "no" }
        );
    }
    s
}

/// What each path's reference does, for the table under the costs.
pub fn reference_work_table(c: &Costs) -> String {
    let mut s = String::from("| path | reference program | its map work |\n|---|---|---|\n");
    for p in &c.paths {
        let _ = writeln!(
            s,
            "| `{}` | `{}` | {} |",
            p.name, p.reference, p.reference_does
        );
    }
    s
}

pub fn reference_table(c: &Costs) -> String {
    let mut s = String::from("| primitive | ns | over the empty program, ns |\n|---|---|---|\n");
    for r in &c.references {
        let _ = writeln!(
            s,
            "| `{}`: {} | {} | {} |",
            r.name,
            r.what,
            r.ns.show(0),
            r.over_empty_ns.show(0)
        );
    }
    s
}

/// Where the frames of a run went, in the mechanism's own words.
fn fate(f: &FlowResult) -> String {
    let a = &f.last_run;
    let mut parts: Vec<String> = Vec::new();
    if a.ring_full > 0 {
        parts.push(format!("ring full {}", a.ring_full));
    }
    if !a.iplock.is_empty() {
        parts.extend(a.iplock.iter().map(|(k, v)| format!("{k} {v}")));
    } else if !a.iptables.is_empty() || a.iptables_policy_drops > 0 {
        for (rule, n) in &a.iptables {
            let label = if rule.ends_with("-j DROP") && rule.contains("hacker") {
                "hacker DROP"
            } else if rule.ends_with("-j DROP") {
                "port 22 DROP"
            } else if rule.ends_with("-j ACCEPT") {
                "ACCEPT"
            } else {
                continue;
            };
            parts.push(format!("{label} {n}"));
        }
        if a.iptables_policy_drops > 0 {
            parts.push(format!("policy DROP {}", a.iptables_policy_drops));
        }
    } else if a.xdp_dropped > 0 {
        parts.push(format!("XDP drop {}", a.xdp_dropped));
    }
    if a.tcp_in > 0 {
        parts.push(format!("to TCP {} (resets {})", a.tcp_in, a.tcp_out_rsts));
    }
    format!("{} generated: {}", a.generated, parts.join(", "))
}

pub fn throughput_table(flows: &[FlowResult]) -> String {
    let mut s = String::from(
        "| flow | receiver | CPU ns per frame | Mpps handled | Mpps dropped | Mpps (wall) | frames of the last run |\n|---|---|---|---|---|---|---|\n",
    );
    for f in flows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.flow.name(),
            f.receiver,
            f.ns_per_frame.show(0),
            mpps(f.pps.median),
            mpps(f.dropped_pps.median),
            mpps(f.wall_pps.median),
            fate(f)
        );
    }
    s
}

pub fn ratio_table(ratios: &[Ratio]) -> String {
    let mut s = String::from(
        "| flow | iplock | versus | frames dropped per second, ratio | CPU time per frame, ratio | CPU time above the XDP_DROP floor, ratio |\n|---|---|---|---|---|---|\n",
    );
    for r in ratios {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1}x | {:.1}x |",
            r.flow.name(),
            r.receiver,
            r.versus,
            r.dropped_pps_ratio
                .map_or("– (drops none)".into(), |x| format!("{x:.1}x")),
            r.cpu_time_ratio,
            r.above_floor_ratio
        );
    }
    s
}

pub fn pressure_table(p: &Pressure) -> String {
    let mut s = String::from(
        "| flood (new sources/s asked) | reached | door opened | legitimate progress after each knock, per trial |\n|---|---|---|---|\n",
    );
    for r in &p.rates {
        let trials: Vec<String> = r
            .trials
            .iter()
            .map(|t| {
                let steps: Vec<String> = t
                    .steps_seen
                    .iter()
                    .map(|s| s.map_or("–".into(), |n| n.to_string()))
                    .collect();
                let lost = if t.ring_full + t.stack_drops > 0 {
                    format!(
                        " (ring refused {} flood frames, {} client packets)",
                        t.ring_full, t.stack_drops
                    )
                } else {
                    String::new()
                };
                format!(
                    "{}{}{lost}",
                    steps.join("/"),
                    if t.opened { " open" } else { " refused" }
                )
            })
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {}/{} | {} |",
            r.target_pps.map_or("unpaced".into(), |n| n.to_string()),
            r.achieved_pps.show(0),
            r.opened,
            r.trials.len(),
            trials.join("; ")
        );
    }
    let _ = writeln!(
        s,
        "\nSource map: {} entries, memlock {} KiB; ban map (default size) memlock {} KiB. Door opened in every trial up to {}; in none from {}.",
        p.sources_map_entries,
        p.sources_map_memlock_bytes / 1024,
        p.bans_map_memlock_bytes / 1024,
        p.all_opened_up_to_pps
            .map_or("no rate".into(), |r| format!("{r:.0} new sources/s")),
        p.none_opened_from_pps
            .map_or("no rate tried".into(), |r| format!("{r:.0} new sources/s")),
    );
    s
}

pub fn control_table(c: &Control) -> String {
    format!(
        "| figure | median (min–max) |\n|---|---|\n\
         | `iplock load` (default map sizes), ms | {} |\n\
         | `iplock unload`, ms | {} |\n\
         | `iplock status --json` with {} sources and {} bans, ms | {} |\n\
         | its output, bytes | {} |\n\
         | memlock of the default maps: sources / bans, KiB | {} / {} |\n\
         | memlock of the status run's maps ({}): sources / bans, KiB | {} / {} |\n",
        c.load_ms.show(1),
        c.unload_ms.show(1),
        c.status_entries,
        c.status_entries,
        c.status_json_ms.show(1),
        c.status_json_bytes,
        c.default_sources_memlock_bytes / 1024,
        c.default_bans_memlock_bytes / 1024,
        c.status_config
            .lines()
            .filter(|l| l.starts_with("sources") || l.starts_with("bans"))
            .collect::<Vec<_>>()
            .join(", "),
        c.big_sources_memlock_bytes / 1024,
        c.big_bans_memlock_bytes / 1024,
    )
}

pub fn eviction_table(e: &Eviction) -> String {
    let mut s = String::from(
        "| shows | flood, a new /64 per packet | its bans land in | ban to evict (made by the program) | packets to evict it | attacker's next packet after the flood, per trial | entries after the last trial's flood: IPLOCK_BANS / IPLOCK_KNOCK_BANS |\n|---|---|---|---|---|---|---|\n",
    );
    for sc in &e.scenarios {
        let packets = match &sc.evicted_after_packets {
            Some(p) if sc.evicted_trials == sc.trials.len() => format!("**{}**", p.show(0)),
            Some(p) => format!(
                "{} in {} of {} trials; not evicted within {} packets in the others",
                p.show(0),
                sc.evicted_trials,
                sc.trials.len(),
                sc.bound_packets
            ),
            None => format!(
                "**not evicted within {} packets** ({} trials)",
                sc.bound_packets,
                sc.trials.len()
            ),
        };
        let next: Vec<&str> = sc.trials.iter().map(|t| t.attacker_next_packet).collect();
        let last = sc.trials.last();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} in {} ({} entries) | {} | {}: {} | {} / {} |",
            sc.shows,
            sc.flood,
            sc.flood_bans_land_in,
            sc.ban,
            sc.ban_map,
            sc.ban_map_entries,
            packets,
            sc.probe,
            next.join(", "),
            last.map_or(0, |t| t.bans_entries),
            last.map_or(0, |t| t.knock_bans_entries),
        );
    }
    let _ = writeln!(
        s,
        "\nBan maps: bans = {}, knock_bans = {} entries. The attacker's ban was looked up after every {} flood packets: a count is the first look that found it gone, so the eviction came within the last {} packets counted. Run {}{}.",
        e.bans_map_entries,
        e.knock_bans_map_entries,
        e.batch,
        e.batch,
        e.run,
        e.cpu.map_or(String::new(), |c| format!(", on CPU {c}"))
    );
    s
}

/// Fills section 5's placeholders.
fn fill_eviction(text: &str, e: &Eviction) -> String {
    text.replace("{{eviction_config}}", e.config.trim_end())
        .replace("{{eviction_table}}", &eviction_table(e))
}

/// `json` (results.json as `serde_json::to_string_pretty` wrote it) with
/// its top-level `key` set to `value`: replaced where it is, else put before
/// the key `before` (else last). The text is edited, not re-serialised, so
/// the other keys keep their order and their diff stays empty; the result
/// is checked to parse to the old object with only `key` changed.
pub fn with_json_key(
    json: &str,
    key: &str,
    value: &impl Serialize,
    before: &str,
) -> anyhow::Result<String> {
    use anyhow::{Context as _, ensure};
    // Serialised from the value itself, so that its fields keep their order.
    let pretty = serde_json::to_string_pretty(value)?;
    let value = serde_json::to_value(value)?;
    let old: serde_json::Value = serde_json::from_str(json).context("parsing results.json")?;
    let lines: Vec<&str> = json.trim_end().lines().collect();
    ensure!(
        old.is_object() && lines.len() >= 2 && lines[0] == "{" && lines[lines.len() - 1] == "}",
        "results.json is not a pretty-printed JSON object"
    );
    // Top-level entries start with a key indented by exactly two spaces.
    let mut entries: Vec<(String, String)> = Vec::new();
    for line in &lines[1..lines.len() - 1] {
        if let Some(rest) = line
            .strip_prefix("  \"")
            .filter(|_| !line.starts_with("   "))
        {
            let name = rest.split('"').next().unwrap_or_default().to_string();
            entries.push((name, line.to_string()));
        } else {
            let last = entries
                .last_mut()
                .context("results.json has text before its first key")?;
            last.1.push('\n');
            last.1.push_str(line);
        }
    }
    for e in &mut entries {
        if e.1.ends_with(',') {
            e.1.pop();
        }
    }
    let text = format!(
        "  {}: {}",
        serde_json::to_string(key)?,
        pretty.replace('\n', "\n  ")
    );
    match entries.iter().position(|e| e.0 == key) {
        Some(i) => entries[i].1 = text,
        None => {
            let at = entries
                .iter()
                .position(|e| e.0 == before)
                .unwrap_or(entries.len());
            entries.insert(at, (key.to_string(), text));
        }
    }
    let body: Vec<String> = entries.into_iter().map(|e| e.1).collect();
    let out = format!("{{\n{}\n}}\n", body.join(",\n"));
    let mut want = old;
    want.as_object_mut()
        .expect("checked above")
        .insert(key.to_string(), value);
    let got: serde_json::Value = serde_json::from_str(&out).context("re-parsing results.json")?;
    ensure!(
        got == want,
        "editing results.json changed more than `{key}`"
    );
    Ok(out)
}

/// The heading that starts section 5 in the template and BENCHMARKS.md.
const EVICTION_HEADING: &str = "## 5. Ban eviction";

/// The lines of `text` from the one starting with `heading` up to the next
/// `## ` heading: (start, end) byte offsets.
fn section(text: &str, heading: &str) -> Option<(usize, usize)> {
    let start = text.find(&format!("\n{heading}"))? + 1;
    let end = text[start + 1..]
        .find("\n## ")
        .map_or(text.len(), |i| start + 1 + i + 1);
    Some((start, end))
}

/// `md` (BENCHMARKS.md) with section 5 re-generated from this run's figures
/// and the rest left as it was; the section goes before the caveats if
/// `md` has none yet.
pub fn with_eviction_section(md: &str, e: &Eviction) -> Option<String> {
    let template = include_str!("../BENCHMARKS.template.md");
    let (ts, te) = section(template, EVICTION_HEADING)?;
    let new = fill_eviction(&template[ts..te], e);
    let (ms, me) =
        section(md, EVICTION_HEADING).or_else(|| section(md, "## Caveats").map(|(s, _)| (s, s)))?;
    Some(format!("{}{new}{}", &md[..ms], &md[me..]))
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut s =
        String::from("| target | wanted | measured (median, min–max) | met |\n|---|---|---|---|\n");
    for t in targets {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            t.what,
            t.target,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    s
}

/// BENCHMARKS.md: the template with this run's tables filled in.
pub fn markdown(r: &Results) -> String {
    let cost = r.cost.as_ref().expect("complete results");
    let flows = r.throughput.as_deref().expect("complete results");
    let pressure = r.pressure.as_ref().expect("complete results");
    let control = r.control.as_ref().expect("complete results");
    let eviction = r.eviction.as_ref().expect("complete results");
    let machine = format!(
        "{} — run {} at commit {}, {:.0} s; load average {} at the start, {} at the end",
        r.machine.describe(),
        r.date_utc,
        r.commit,
        r.duration_s,
        r.loadavg_at_start,
        r.loadavg_at_end
    );
    let md = include_str!("../BENCHMARKS.template.md")
        .replace("{{machine}}", &machine)
        .replace("{{targets}}", &targets_table(&r.targets))
        .replace("{{cost_config}}", cost.config.trim_end())
        .replace("{{cost_table}}", &cost_table(cost))
        .replace("{{reference_table}}", &reference_table(cost))
        .replace("{{reference_work_table}}", &reference_work_table(cost))
        .replace("{{throughput_table}}", &throughput_table(flows))
        .replace("{{ratio_table}}", &ratio_table(&r.ratios))
        .replace("{{pressure_config}}", pressure.config.trim_end())
        .replace("{{pressure_table}}", &pressure_table(pressure))
        .replace("{{control_table}}", &control_table(control));
    fill_eviction(&md, eviction)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eviction() -> Eviction {
        Eviction {
            run: "R".into(),
            config: "C".into(),
            bans_map_entries: 1,
            knock_bans_map_entries: 2,
            batch: 3,
            cpu: None,
            scenarios: Vec::new(),
        }
    }

    /// A flow's row from its CPU time per frame; `dropped`: the receiver
    /// dropped every frame, else none.
    fn flow(flow: Flow, receiver: &str, ns: f64, dropped: bool) -> FlowResult {
        let one = |x: f64| crate::stats::Summary::of(&[x]);
        FlowResult {
            flow,
            receiver: receiver.into(),
            frames_per_run: 100_000,
            ns_per_frame: one(ns),
            pps: one(1e9 / ns),
            dropped_pps: one(if dropped { 1e9 / ns } else { 0.0 }),
            wall_pps: one(1e9 / ns),
            last_run: crate::throughput::Accounting::default(),
        }
    }

    #[test]
    fn the_stack_row_compares_cpu_time_and_the_target_is_the_drop_rows() {
        let k = Flow::KnockFlood;
        let flows = [
            flow(k, "empty_xdp_drop", 100.0, true),
            flow(k, "iplock_native", 500.0, true),
            flow(k, "iplock_native_stack", 2500.0, false),
            flow(k, "iptables_legacy", 2000.0, true),
        ];
        let ratios = ratios(&flows);
        let [native, stack] = [&ratios[0], &ratios[1]];
        assert_eq!(
            (ratios.len(), native.receiver.as_str()),
            (2, "iplock_native")
        );
        assert_eq!(native.dropped_pps_ratio, Some(4.0));
        assert_eq!(native.cpu_time_ratio, 4.0);
        assert_eq!(stack.dropped_pps_ratio, None);
        assert_eq!(stack.cpu_time_ratio, 0.8);
        assert_eq!(stack.above_floor_ratio, 1900.0 / 2400.0);
        assert!(ratio_table(&ratios).contains("| – (drops none) | 0.8x | 0.8x |"));
        let targets = targets(None, &ratios);
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].measured, "4.0x");
    }

    #[test]
    fn a_json_key_is_inserted_then_replaced_in_place() {
        let old = serde_json::json!({"a": {"x": [1, 2]}, "targets": [], "z": "s\n"});
        let text = serde_json::to_string_pretty(&old).unwrap() + "\n";
        let one = with_json_key(&text, "e", &serde_json::json!({"k": [3]}), "targets").unwrap();
        assert!(one.find("\"e\"").unwrap() < one.find("\"targets\"").unwrap());
        assert!(one.starts_with(&text[..text.find("\"targets\"").unwrap()]));
        let two = with_json_key(&one, "e", &serde_json::json!(7), "targets").unwrap();
        let v: serde_json::Value = serde_json::from_str(&two).unwrap();
        assert_eq!(v["e"], 7);
        assert_eq!(two.replace("  \"e\": 7,\n", ""), text);
    }

    #[test]
    fn the_eviction_section_goes_before_the_caveats_then_is_replaced() {
        let md = "# t\n## 4. Control plane\nkept\n## Caveats\n- c\n";
        let once = with_eviction_section(md, &eviction()).unwrap();
        let (five, caveats) = (
            once.find("\n## 5. Ban eviction").unwrap(),
            once.find("\n## Caveats").unwrap(),
        );
        assert!(once.contains("kept\n") && five < caveats);
        assert!(once.contains("Run R.") && !once.contains("{{"));
        let mut other = eviction();
        other.run = "S".into();
        let twice = with_eviction_section(&once, &other).unwrap();
        assert_eq!(twice.matches("## 5. Ban eviction").count(), 1);
        assert!(twice.contains("Run S.") && !twice.contains("Run R."));
        assert!(twice.ends_with("## Caveats\n- c\n"));
    }
}
