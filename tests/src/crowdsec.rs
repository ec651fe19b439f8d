//! A real CrowdSec Local API per test (Debian's crowdsec, 1.4.6 here):
//! its own config in a temporary directory (sqlite database there, API on
//! one free port, no hub, no Central API, no log files), started as
//! `crowdsec -c CONFIG -no-cs -no-capi` and killed on drop; and `cscli`
//! helpers that drive it. With [`Lapi::start_in`] the API and every cscli
//! call run inside a network namespace (`nsenter --net=`), listening on an
//! address of that namespace, as the e2e tests' servers do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::in_netns;
use crate::util::{ChildGuard, TempDir, run_bounded, unique_id};
use crate::wait::wait_for;

/// The tools these tests need, for [`crate::require_tools`].
pub const TOOLS: [&str; 2] = ["crowdsec", "cscli"];

/// `profiles.yaml` as Debian ships it: alerts without decisions of their
/// own get a 4h ban; alerts carrying decisions (cscli's, iplock's) keep theirs.
const PROFILES: &str = "name: default_ip_remediation
filters:
 - Alert.Remediation == true && Alert.GetScope() == \"Ip\"
decisions:
 - type: ban
   duration: 4h
on_success: break
";

pub struct Lapi {
    dir: TempDir,
    pub config: PathBuf,
    pub addr: SocketAddr,
    netns: Option<String>,
    child: Option<ChildGuard>,
}

impl Lapi {
    /// A Local API on 127.0.0.1 in this namespace, ready to answer.
    pub fn start() -> Lapi {
        Lapi::start_at(None, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A Local API inside network namespace `netns`, on `ip` (an address of
    /// that namespace, so iplock in another namespace reaches it over the veth).
    pub fn start_in(netns: &str, ip: IpAddr) -> Lapi {
        Lapi::start_at(Some(netns.to_string()), ip)
    }

    fn start_at(netns: Option<String>, ip: IpAddr) -> Lapi {
        let dir = TempDir::new();
        let port = match &netns {
            Some(ns) => in_netns(ns, || free_port(ip)),
            None => free_port(ip),
        };
        let addr = SocketAddr::new(ip, port);
        let d = dir.path().display().to_string();
        for sub in ["data", "cfg", "hub"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        dir.write("cfg/profiles.yaml", PROFILES);
        dir.write("cfg/simulation.yaml", "simulation: false\n");
        let config = dir.write(
            "config.yaml",
            &format!(
                "common:
  daemonize: false
  log_media: stdout
  log_level: warning
  working_dir: {d}
config_paths:
  config_dir: {d}/cfg/
  data_dir: {d}/data/
  simulation_path: {d}/cfg/simulation.yaml
  hub_dir: {d}/hub/
  index_path: {d}/hub/.index.json
  notification_dir: {d}/cfg/notifications/
  plugin_dir: {d}/plugins/
cscli:
  output: human
db_config:
  log_level: warning
  type: sqlite
  use_wal: true
  db_path: {d}/data/crowdsec.db
  flush:
    max_items: 1000000
    max_age: 7d
api:
  client:
    credentials_path: {d}/cfg/local_api_credentials.yaml
  server:
    log_level: warning
    listen_uri: {addr}
    profiles_path: {d}/cfg/profiles.yaml
    trusted_ips:
      - 127.0.0.1
      - \"::1\"
prometheus:
  enabled: false
"
            ),
        );
        let mut lapi = Lapi {
            dir,
            config,
            addr,
            netns,
            child: None,
        };
        // cscli's own machine, for decisions add/delete/list through the API.
        let creds = lapi.dir.path().join("cfg/local_api_credentials.yaml");
        lapi.cscli_ok(&[
            "machines",
            "add",
            "cscli-admin",
            "--auto",
            "-f",
            creds.to_str().unwrap(),
        ]);
        lapi.restart();
        lapi
    }

    /// `http://ADDR:PORT`, the `lapi_url` to give iplock.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn command(&self, program: &str) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(program);
                c
            }
            None => Command::new(program),
        }
    }

    /// Starts the API (again, on the same port and database) and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let mut cmd = self.command("crowdsec");
        cmd.arg("-c")
            .arg(&self.config)
            .args(["-no-cs", "-no-capi"])
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = ChildGuard::spawn(&mut cmd);
        let addr = self.addr;
        let netns = self.netns.clone();
        let probe = move || match &netns {
            Some(ns) => in_netns(ns, || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            }),
            None => TcpStream::connect_timeout(&addr, Duration::from_millis(200)),
        };
        wait_for("the Local API to listen", Duration::from_secs(15), || {
            if !child.is_running() {
                panic!(
                    "crowdsec exited at start; run it by hand: crowdsec -c {} -no-cs -no-capi",
                    self.config.display()
                );
            }
            probe().map(|_| ()).map_err(|e| e.to_string())
        });
        self.child = Some(child);
    }

    /// Kills the API; the database stays for [`Lapi::restart`].
    pub fn stop(&mut self) {
        self.child = None;
    }

    /// Runs cscli on this instance's config (bounded to 60 s).
    pub fn cscli(&self, args: &[&str]) -> Output {
        let mut cmd = self.command("cscli");
        cmd.arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path());
        run_bounded(&mut cmd, Duration::from_secs(60))
    }

    /// [`Lapi::cscli`], panicking with its output unless it exits 0; returns stdout.
    pub fn cscli_ok(&self, args: &[&str]) -> String {
        let out = self.cscli(args);
        assert!(
            out.status.success(),
            "cscli {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `cscli bouncers add NAME -o raw`: a new bouncer key.
    pub fn add_bouncer(&self, name: &str) -> String {
        let key = self.cscli_ok(&["bouncers", "add", name, "-o", "raw"]);
        key.trim().to_string()
    }

    /// `cscli machines add NAME --password PW -f FILE`: writes CrowdSec's
    /// credentials file (url, login, password), mode 0600, and returns it.
    pub fn add_machine(&self, name: &str, password: &str) -> PathBuf {
        let file = self
            .dir
            .path()
            .join(format!("machine-{name}-{}.yaml", unique_id()));
        self.cscli_ok(&[
            "machines",
            "add",
            name,
            "--password",
            password,
            "-f",
            file.to_str().unwrap(),
            "--url",
            &self.url(),
        ]);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        file
    }

    /// `cscli decisions add --ip|--range VALUE --duration D --type T`.
    pub fn add_decision(&self, value: &str, duration: &str, kind: &str) {
        let flag = if value.contains('/') {
            "--range"
        } else {
            "--ip"
        };
        self.cscli_ok(&[
            "decisions",
            "add",
            flag,
            value,
            "--duration",
            duration,
            "--type",
            kind,
        ]);
    }

    /// `cscli decisions delete --ip|--range VALUE`.
    pub fn delete_decision(&self, value: &str) {
        let flag = if value.contains('/') {
            "--range"
        } else {
            "--ip"
        };
        self.cscli_ok(&["decisions", "delete", flag, value]);
    }

    /// `cscli decisions list -a -o json`: the alerts with their decisions
    /// (`null` when there are none). `-a`: without it cscli 1.4 lists only
    /// the origins `crowdsec` and `cscli`, not `iplock`.
    pub fn list_decisions(&self) -> Value {
        serde_json::from_str(&self.cscli_ok(&["decisions", "list", "-a", "-o", "json"])).unwrap()
    }

    /// `cscli decisions import` of ban decisions on `values` for `duration`
    /// (a CSV file; tens of thousands in seconds). Returns how long it took.
    pub fn import_bans(&self, values: &[String], duration: &str) -> Duration {
        let mut csv = String::from("duration,scope,value,type,reason\n");
        for v in values {
            let scope = if v.contains('/') { "range" } else { "ip" };
            csv.push_str(&format!("{duration},{scope},{v},ban,iplock-test/import\n"));
        }
        let file = self.dir.write("import.csv", &csv);
        let t = Instant::now();
        self.cscli_ok(&["decisions", "import", "-i", file.to_str().unwrap()]);
        t.elapsed()
    }
}

impl Drop for Lapi {
    fn drop(&mut self) {
        // Kill the API before its directory goes.
        self.stop();
    }
}

fn free_port(ip: IpAddr) -> u16 {
    let l = TcpListener::bind(SocketAddr::new(ip, 0)).expect("bind a free port");
    l.local_addr().unwrap().port()
}
