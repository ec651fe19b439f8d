//! Reading what `iplock status --json` and `iplock ban list --json` print,
//! in the shapes the tests compare.

use std::fmt::Display;

use serde_json::Value;

/// The entry for `addr` in the status list `list` (`sources` or `bans`).
pub fn entry<'a>(status: &'a Value, list: &str, addr: impl Display) -> Option<&'a Value> {
    let addr = addr.to_string();
    status[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not an array in {status}"))
        .iter()
        .find(|e| e["addr"] == addr.as_str())
}

/// The state (`knocking` or `open`) of `addr`, if it is a known source.
pub fn source_state(status: &Value, addr: impl Display) -> Option<String> {
    entry(status, "sources", addr)
        .map(|s| s["state"].as_str().expect("state is a string").to_string())
}

/// The knock step of `addr`, if it is a known source.
pub fn source_step(status: &Value, addr: impl Display) -> Option<u64> {
    entry(status, "sources", addr).map(|s| s["step"].as_u64().expect("step is a number"))
}

/// (addr, state, step) of every source.
pub fn sources(status: &Value) -> Vec<(String, String, u64)> {
    status["sources"]
        .as_array()
        .unwrap_or_else(|| panic!("no sources in {status}"))
        .iter()
        .map(|s| {
            (
                s["addr"].as_str().unwrap().to_string(),
                s["state"].as_str().unwrap().to_string(),
                s["step"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// (addr, reason) of every ban.
pub fn bans(status: &Value) -> Vec<(String, String)> {
    status["bans"]
        .as_array()
        .unwrap_or_else(|| panic!("no bans in {status}"))
        .iter()
        .map(|b| {
            (
                b["addr"].as_str().unwrap().to_string(),
                b["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

pub fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {name} in {status}"))
}

/// A knock sequence of the config (`knock`, or `previous_knock` under
/// rotation) as `--knock` writes it, without the per-step timeouts that
/// status adds, so it compares with what a test loaded.
pub fn knock_sequence(status: &Value, key: &str) -> Option<String> {
    status["config"][key].as_array().map(|steps| {
        steps
            .iter()
            .map(|step| {
                let step = step.as_str().expect("a step is a string");
                step.split('/').next().unwrap().to_string()
            })
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The string values of `key` in a JSON array of objects.
pub fn field(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not an array: {list}"))
        .iter()
        .map(|e| {
            e[key]
                .as_str()
                .unwrap_or_else(|| panic!("no {key} in {e}"))
                .to_string()
        })
        .collect()
}
