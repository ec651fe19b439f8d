//! What `iplock reload` would change in a loaded filter, read from its
//! maps without writing anything: for `iplock check --running`, which
//! configuration management runs before it reloads.

use std::collections::BTreeSet;
use std::time::Duration;

use iplock_common::config::{
    Config, FLAG_BAN_CLOSED_DOOR, FLAG_BAN_WRONG_KNOCK, FLAG_KNOCK_CLEARS_BAN, FLAG_KNOCK_DROP,
};

use crate::config::cidr::Cidr;
use crate::config::duration;
use crate::config::settings::Settings;
use crate::error::{Context as _, Result};
use crate::kernel::maps::Maps;
use crate::kernel::pin_dir::PinDir;
use crate::kernel::status;
use crate::system::iface;

/// A setting that a reload would change, named by its config file key.
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    pub key: &'static str,
    pub before: String,
    pub after: String,
}

/// Everything a reload would change; all empty when nothing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub settings: Vec<Change>,
    /// Allow-list entries of the configuration; those added with `iplock
    /// allow add` stay through a reload and are not listed.
    pub allow_added: Vec<String>,
    pub allow_removed: Vec<String>,
    pub interfaces_added: Vec<String>,
    pub interfaces_removed: Vec<String>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// What applying `settings` to the filter loaded in `dir` would change.
pub fn of_reload(settings: &Settings, dir: &PinDir) -> Result<Changes> {
    let maps = Maps::open(dir)?;
    let mut allow_now = BTreeSet::new();
    for kv in maps.active_allow()?.iter() {
        let (key, entry) = kv.context(|| "reading the allow list".into())?;
        if entry.is_from_config() {
            allow_now.insert(Cidr::from_key(&key).to_string());
        }
    }
    let allow_new: BTreeSet<String> = settings
        .allow
        .iter()
        .map(|c| Cidr::from_key(&c.key()).to_string())
        .collect();
    let ifaces_now: Vec<String> = maps
        .interfaces()?
        .iter()
        .map(|e| iface::from_fixed(&e.name))
        .collect();
    Ok(Changes {
        settings: differences(&maps.config()?, &settings.to_kernel()),
        allow_added: allow_new.difference(&allow_now).cloned().collect(),
        allow_removed: allow_now.difference(&allow_new).cloned().collect(),
        interfaces_added: settings
            .interfaces
            .iter()
            .filter(|i| !ifaces_now.contains(i))
            .cloned()
            .collect(),
        interfaces_removed: ifaces_now
            .iter()
            .filter(|i| !settings.interfaces.contains(i))
            .cloned()
            .collect(),
    })
}

/// The settings in which `after` differs from `before`, in the order of
/// the config file.
fn differences(before: &Config, after: &Config) -> Vec<Change> {
    type Show = fn(&Config) -> String;
    let fields: [(&'static str, Show); 10] = [
        ("knock", |c| {
            let steps = status::steps(&c.steps[..c.step_count as usize]).join(",");
            if c.seq_id == 0 {
                steps
            } else {
                format!("{steps} (rotating)")
            }
        }),
        ("protect", |c| ports(&c.protect[..c.protect_count as usize])),
        ("knock_answer", |c| {
            if c.has_flag(FLAG_KNOCK_DROP) {
                "drop"
            } else {
                "stack"
            }
            .into()
        }),
        ("open_window", |c| nanos(c.open_window_ns)),
        ("ban.time", |c| nanos(c.ban_time_ns)),
        ("ban.wrong_knock", |c| {
            c.has_flag(FLAG_BAN_WRONG_KNOCK).to_string()
        }),
        ("ban.closed_door", |c| {
            c.has_flag(FLAG_BAN_CLOSED_DOOR).to_string()
        }),
        ("ban.trap_ports", |c| {
            ports(&c.traps[..c.trap_count as usize])
        }),
        ("ban.knock_clears_ban", |c| {
            c.has_flag(FLAG_KNOCK_CLEARS_BAN).to_string()
        }),
        ("ban.ipv6_prefix", |c| c.ban_prefix_v6.to_string()),
    ];
    fields
        .into_iter()
        .filter_map(|(key, show)| {
            let (before, after) = (show(before), show(after));
            (before != after).then_some(Change { key, before, after })
        })
        .collect()
}

fn nanos(ns: u64) -> String {
    duration::format(Duration::from_nanos(ns))
}

fn ports(ports: &[u16]) -> String {
    let list: Vec<String> = ports.iter().map(u16::to_string).collect();
    format!("[{}]", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::settings::SettingsArgs;

    fn kernel(knock: &str, args: SettingsArgs) -> Config {
        Settings::from_args(&SettingsArgs {
            interfaces: vec!["lo".into()],
            knock: Some(knock.into()),
            knock_answer: Some(crate::config::settings::KnockAnswer::Drop),
            ..args
        })
        .unwrap()
        .to_kernel()
    }

    #[test]
    fn differences_name_each_changed_setting_by_its_key() {
        let a = kernel("tcp:100,udp:300,tcp:200", SettingsArgs::default());
        assert_eq!(differences(&a, &a), []);
        let b = kernel(
            "tcp:1000,udp:3000/20s,tcp:2000",
            SettingsArgs {
                protect: vec![22, 2222],
                open_window: Some("5s".into()),
                ..Default::default()
            },
        );
        let keys: Vec<_> = differences(&a, &b)
            .into_iter()
            .map(|c| format!("{} {} -> {}", c.key, c.before, c.after))
            .collect();
        assert_eq!(
            keys,
            [
                "knock tcp:100/10s,udp:300/10s,tcp:200/10s -> tcp:1000/10s,udp:3000/20s,tcp:2000/10s",
                "protect [22] -> [22, 2222]",
                "open_window 10s -> 5s",
            ]
        );
    }
}
