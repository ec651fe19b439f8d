//! The `[crowdsec]` section: where CrowdSec's Local API is, the bouncer
//! key that pulls its decisions, and the machine credentials that push
//! iplock's own bans to it.
//!
//! ```toml
//! [crowdsec]
//! lapi_url = "http://127.0.0.1:8080/"
//! api_key_file = "/etc/iplock/crowdsec-bouncer.key"   # or api_key = "..."
//! update_frequency = "10s"
//! origins = ["crowdsec", "cscli"]                     # all when absent
//! scenarios_containing = ["ssh"]
//! scenarios_not_containing = ["http"]
//! credentials_file = "/etc/iplock/crowdsec-machine.yaml"  # or machine_id + password
//! ```
//!
//! Keys live in files only their owner may read, as the rotation secret
//! does; a key or password written in the config file itself makes that
//! file a secret too, with the same check. Secrets never show in `Debug`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::config::duration;
use crate::config::input_file;
use crate::config::secret::refuse_shared;
use crate::error::{Result, input, quote, quote_within};

/// A secret string (a bouncer key, a machine password) whose `Debug`
/// never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> SecretString {
        SecretString(s.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// The Local API's base URL: `http://HOST[:PORT][/PREFIX]`, kept without a
/// trailing slash so that `{base}/v1/...` is the endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LapiUrl(String);

impl LapiUrl {
    /// Parses a URL; `what` names where it came from in errors. Only plain
    /// HTTP is supported (the Local API on loopback or a private network):
    /// an `https` URL is refused rather than sent in the clear.
    pub fn parse(s: &str, what: &str) -> Result<LapiUrl> {
        let t = s.trim();
        let bad = |why: &str| input(format!("{what} {} {why}", quote(t)));
        let Ok(uri) = t.parse::<http::Uri>() else {
            return bad("is not a URL like http://127.0.0.1:8080/");
        };
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return bad(
                    "uses https, which iplock does not support yet; use the Local API over http on loopback or a private network",
                );
            }
            _ => return bad("is not an http:// URL like http://127.0.0.1:8080/"),
        }
        let Some(authority) = uri.authority() else {
            return bad("has no host");
        };
        if authority.as_str().contains('@') {
            // Not quoted: the part before `@` may be a password.
            return input(format!(
                "{what} carries a user name or password; give the key with api_key_file"
            ));
        }
        if authority.host().is_empty() {
            return bad("has no host");
        }
        if uri.query().is_some() || t.contains('#') {
            return bad("has a query or fragment; give only the base URL");
        }
        let path = uri.path().trim_end_matches('/');
        Ok(LapiUrl(format!("http://{authority}{path}")))
    }

    /// `http://host:port/prefix` without a trailing slash.
    pub fn base(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LapiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A machine's login to the Local API, to push alerts as a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineCredentials {
    pub machine_id: String,
    pub password: SecretString,
}

/// Validated `[crowdsec]` settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrowdsecSettings {
    pub lapi_url: LapiUrl,
    /// The bouncer key: decisions are pulled only with one.
    pub api_key: Option<SecretString>,
    /// How often decisions are pulled.
    pub update_frequency: Duration,
    /// Decisions of these origins only (`crowdsec`, `cscli`, `CAPI`,
    /// `lists`, ...); every origin when empty.
    pub origins: Vec<String>,
    /// Decisions whose scenario contains one of these (any case); all when empty.
    pub scenarios_containing: Vec<String>,
    /// Decisions whose scenario contains none of these (any case).
    pub scenarios_not_containing: Vec<String>,
    /// The watcher login: iplock's own bans are pushed only with one.
    pub machine: Option<MachineCredentials>,
}

/// The default pull period, cs-firewall-bouncer's.
pub const DEFAULT_UPDATE_FREQUENCY: &str = "10s";

/// The `[crowdsec]` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CrowdsecFile {
    lapi_url: Option<String>,
    api_key: Option<String>,
    api_key_file: Option<PathBuf>,
    update_frequency: Option<String>,
    origins: Option<Vec<String>>,
    scenarios_containing: Option<Vec<String>>,
    scenarios_not_containing: Option<Vec<String>>,
    machine_id: Option<String>,
    password: Option<String>,
    credentials_file: Option<PathBuf>,
}

/// CrowdSec's `local_api_credentials.yaml`, as `cscli machines add -f` writes it.
#[derive(Deserialize)]
struct CredentialsYaml {
    url: Option<String>,
    login: String,
    password: String,
}

impl CrowdsecFile {
    /// Validates the section; `config` is the file it was read from, checked
    /// like a key file when it holds a key or password itself.
    pub(crate) fn settings(&self, config: Option<&Path>) -> Result<CrowdsecSettings> {
        if let Some(path) = config
            && (self.api_key.is_some() || self.password.is_some())
        {
            let f = input_file::read(path, "the config file")?;
            refuse_shared(
                path,
                &f.meta,
                "the config file, which holds a CrowdSec key,",
            )?;
        }
        let api_key = match (&self.api_key, &self.api_key_file) {
            (Some(_), Some(_)) => {
                return input("crowdsec sets both `api_key` and `api_key_file`; keep one");
            }
            (Some(k), None) => Some(key_text(k, "crowdsec.api_key")?),
            (None, Some(path)) => Some(read_key_file(path)?),
            (None, None) => None,
        };
        let mut cred_url = None;
        let machine = match (&self.machine_id, &self.password, &self.credentials_file) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return input(
                    "crowdsec sets `credentials_file` and `machine_id` or `password`; keep one",
                );
            }
            (None, None, Some(path)) => {
                let (creds, url) = read_credentials(path)?;
                cred_url = url;
                Some(creds)
            }
            (Some(id), Some(pw), None) => Some(MachineCredentials {
                machine_id: machine_id(id)?,
                password: key_text(pw, "crowdsec.password")?,
            }),
            (Some(_), None, None) => {
                return input("crowdsec.machine_id is set without a `password`");
            }
            (None, Some(_), None) => {
                return input("crowdsec.password is set without a `machine_id`");
            }
            (None, None, None) => None,
        };
        if api_key.is_none() && machine.is_none() {
            return input(
                "the [crowdsec] section has neither a bouncer key (`api_key_file`) nor machine credentials (`credentials_file`)",
            );
        }
        let lapi_url = match (&self.lapi_url, cred_url) {
            (Some(u), _) => LapiUrl::parse(u, "crowdsec.lapi_url")?,
            (None, Some(u)) => u,
            (None, None) => {
                return input("crowdsec.lapi_url is not set; give the Local API's URL");
            }
        };
        let update_frequency = duration::parse(
            self.update_frequency
                .as_deref()
                .unwrap_or(DEFAULT_UPDATE_FREQUENCY),
            "crowdsec.update_frequency",
        )?;
        let list = |v: &Option<Vec<String>>, what: &str| -> Result<Vec<String>> {
            let v = v.clone().unwrap_or_default();
            for s in &v {
                if s.trim().is_empty() || s.contains(',') {
                    return input(format!(
                        "crowdsec.{what} entry {} is empty or holds a comma",
                        quote(s)
                    ));
                }
            }
            Ok(v.into_iter().map(|s| s.trim().to_string()).collect())
        };
        Ok(CrowdsecSettings {
            lapi_url,
            api_key,
            update_frequency,
            origins: list(&self.origins, "origins")?,
            scenarios_containing: list(&self.scenarios_containing, "scenarios_containing")?,
            scenarios_not_containing: list(
                &self.scenarios_not_containing,
                "scenarios_not_containing",
            )?,
            machine,
        })
    }
}

/// A key or password as text: one line of printable ASCII, never echoed.
fn key_text(s: &str, what: &str) -> Result<SecretString> {
    let k = s.trim();
    if k.is_empty() {
        return input(format!("{what} is empty"));
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return input(format!(
            "{what} holds spaces or characters other than printable ASCII"
        ));
    }
    Ok(SecretString::new(k))
}

fn machine_id(s: &str) -> Result<String> {
    let id = s.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return input(format!(
            "crowdsec.machine_id {} is empty or holds spaces",
            quote(id)
        ));
    }
    Ok(id.to_string())
}

fn read_key_file(path: &Path) -> Result<SecretString> {
    let what = "the CrowdSec key file";
    let f = input_file::read(path, what)?;
    refuse_shared(path, &f.meta, what)?;
    key_text(&f.text, &format!("{what} {}", quote(path.display())))
}

fn read_credentials(path: &Path) -> Result<(MachineCredentials, Option<LapiUrl>)> {
    let what = "the CrowdSec credentials file";
    let name = format!("{what} {}", quote(path.display()));
    let f = input_file::read(path, what)?;
    refuse_shared(path, &f.meta, what)?;
    let y: CredentialsYaml = serde_norway::from_str(&f.text).or_else(|e| {
        // serde_norway's messages quote keys, never values, but cut them anyway.
        let msg = e.to_string();
        let msg = msg.split(" at line").next().unwrap_or(&msg);
        input(format!(
            "{name} is not CrowdSec credentials (url, login, password): {}",
            quote_within(msg)
        ))
    })?;
    let url = match y.url.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(u) => Some(LapiUrl::parse(u, &format!("the url in {name}"))?),
    };
    let creds = MachineCredentials {
        machine_id: machine_id(&y.login)
            .or_else(|_| input(format!("the login in {name} is empty or holds spaces")))?,
        password: key_text(&y.password, &format!("the password in {name}"))?,
    };
    Ok((creds, url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    struct Dir(PathBuf);
    impl Dir {
        fn new(name: &str) -> Dir {
            let p = std::env::temp_dir().join(format!("iplock-cs-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir(&p).unwrap();
            Dir(p)
        }
        fn file(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn parse(toml_text: &str, config: Option<&Path>) -> Result<CrowdsecSettings> {
        let f: CrowdsecFile = toml::from_str(toml_text).unwrap();
        f.settings(config)
    }

    fn refused(toml_text: &str, needle: &str) {
        let err = parse(toml_text, None).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'), "{msg:?}");
        assert!(!msg.contains("s3cr3t"), "a secret leaked: {msg}");
    }

    #[test]
    fn urls() {
        let ok = |s: &str| LapiUrl::parse(s, "u").unwrap().base().to_string();
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(ok("http://[::1]:8080"), "http://[::1]:8080");
        assert_eq!(
            ok("http://lapi.example/crowdsec/"),
            "http://lapi.example/crowdsec"
        );
        for (bad, why) in [
            ("https://127.0.0.1:8080/", "does not support"),
            ("ftp://x/", "not an http://"),
            ("127.0.0.1:8080", "not an http://"),
            ("http://user:s3cr3t@h/", "user name or password"),
            ("http://h/?a=b", "query"),
            ("not a url", "not a URL"),
        ] {
            let e = LapiUrl::parse(bad, "crowdsec.lapi_url").unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let m = e.to_string();
            assert!(m.contains(why) && m.starts_with("crowdsec.lapi_url"), "{m}");
            assert!(!m.contains("s3cr3t"), "{m}");
        }
    }

    #[test]
    fn key_files_must_be_private_and_never_shown() {
        let d = Dir::new("keys");
        let key = d.file("key", "s3cr3tkey\n", 0o600);
        let cfg = format!(
            "lapi_url = \"http://127.0.0.1:8080\"\napi_key_file = \"{}\"\norigins = [\"cscli\"]",
            key.display()
        );
        let s = parse(&cfg, None).unwrap();
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "s3cr3tkey");
        assert_eq!(s.update_frequency, Duration::from_secs(10));
        assert_eq!(s.origins, ["cscli"]);
        assert!(!format!("{s:?}").contains("s3cr3t"), "{s:?}");
        for mode in [0o640, 0o604, 0o660] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            refused(&cfg, "readable by others");
        }
    }

    #[test]
    fn credentials_yaml() {
        let d = Dir::new("creds");
        let yaml = "url: http://127.0.0.1:8081/\nlogin: host-a\npassword: s3cr3tpw\n";
        let creds = d.file("creds.yaml", yaml, 0o600);
        let cfg = format!("credentials_file = \"{}\"", creds.display());
        let s = parse(&cfg, None).unwrap();
        assert_eq!(s.lapi_url.base(), "http://127.0.0.1:8081");
        let m = s.machine.as_ref().unwrap();
        assert_eq!(m.machine_id, "host-a");
        assert_eq!(m.password.expose(), "s3cr3tpw");
        assert!(s.api_key.is_none());
        assert!(!format!("{s:?}").contains("s3cr3t"));
        // lapi_url wins over the file's url.
        let s = parse(&format!("lapi_url = \"http://[::1]:9\"\n{cfg}"), None).unwrap();
        assert_eq!(s.lapi_url.base(), "http://[::1]:9");
        d.file("creds.yaml", "login: host-a\n", 0o600);
        refused(&cfg, "is not CrowdSec credentials");
        d.file("creds.yaml", "- a\n- b\n", 0o600);
        refused(&cfg, "is not CrowdSec credentials");
        d.file("creds.yaml", "login: host-a\npassword: s3cr3tpw\n", 0o600);
        refused(&cfg, "lapi_url is not set");
        d.file("creds.yaml", yaml, 0o644);
        refused(&cfg, "readable by others");
    }

    #[test]
    fn inline_secrets_make_the_config_file_a_secret() {
        let d = Dir::new("inline");
        let text = "lapi_url = \"http://127.0.0.1:8080\"\napi_key = \"s3cr3t\"\n";
        let path = d.file("iplock.toml", text, 0o644);
        let err = parse(text, Some(&path)).unwrap_err();
        assert!(err.to_string().contains("readable by others"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            parse(text, Some(&path)).unwrap().api_key.unwrap().expose(),
            "s3cr3t"
        );
        let text = "lapi_url = \"http://h\"\nmachine_id = \"m\"\npassword = \"s3cr3t\"";
        let s = parse(text, Some(&path)).unwrap();
        assert_eq!(s.machine.unwrap().machine_id, "m");
    }

    #[test]
    fn a_section_of_a_whole_config_file() {
        use crate::config::settings::{Settings, SettingsArgs};
        let d = Dir::new("whole");
        let text = "interfaces = [\"lo\"]\nknock = \"tcp:100,udp:300,tcp:200\"\n\
                    [crowdsec]\nlapi_url = \"http://127.0.0.1:8080/\"\napi_key = \"s3cr3t\"\n";
        let path = d.file("iplock.toml", text, 0o600);
        let args = SettingsArgs {
            config: Some(path.clone()),
            ..SettingsArgs::default()
        };
        let s = Settings::from_args(&args).unwrap();
        assert_eq!(s.crowdsec.unwrap().lapi_url.base(), "http://127.0.0.1:8080");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Settings::from_args(&args).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("holds a CrowdSec key"), "{e}");
        d.file(
            "iplock.toml",
            "interfaces = [\"lo\"]\nknock = \"tcp:100,udp:300,tcp:200\"\n",
            0o644,
        );
        assert_eq!(Settings::from_args(&args).unwrap().crowdsec, None);
    }

    #[test]
    fn bad_sections_in_one_sentence() {
        refused("lapi_url = \"http://h\"", "neither a bouncer key");
        refused("api_key = \"s3cr3t\"", "lapi_url is not set");
        refused(
            "lapi_url = \"http://h\"\napi_key = \"s3cr3t\"\napi_key_file = \"/x\"",
            "both `api_key` and `api_key_file`",
        );
        refused(
            "lapi_url = \"http://h\"\nmachine_id = \"m\"",
            "without a `password`",
        );
        refused(
            "lapi_url = \"http://h\"\npassword = \"s3cr3t\"",
            "without a `machine_id`",
        );
        refused(
            "lapi_url = \"http://h\"\nmachine_id = \"m\"\ncredentials_file = \"/x\"",
            "keep one",
        );
        refused(
            "lapi_url = \"http://h\"\napi_key = \"s3cr3t\"\nupdate_frequency = \"0s\"",
            "update_frequency",
        );
        refused(
            "lapi_url = \"http://h\"\napi_key = \"s3 cr3t\"",
            "printable ASCII",
        );
        refused(
            "lapi_url = \"http://h\"\napi_key = \"s3cr3t\"\norigins = [\"a,b\"]",
            "holds a comma",
        );
        refused(
            "lapi_url = \"http://h\"\napi_key_file = \"/nonexistent/key\"",
            "cannot read the CrowdSec key file",
        );
    }
}
