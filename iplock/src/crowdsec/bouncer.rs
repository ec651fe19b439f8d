//! The bouncer: pulls `GET /v1/decisions/stream` with the bouncer key, and
//! [`Feed`], the loop step the daemon runs: wait until due, pull, turn the
//! answer into changes for the filter, keep what it has while the Local
//! API is down.

use std::time::{Duration, Instant};

use hyper::Method;
use hyper::header::HeaderName;

use crate::config::crowdsec::{CrowdsecSettings, SecretString};
use crate::crowdsec::LapiError;
use crate::crowdsec::decision::{self, Change, DecisionSet, Delta, Filter};
use crate::crowdsec::http::Http;
use crate::crowdsec::schedule::{DEFAULT_MAX_BACKOFF, PullSchedule};
use crate::error::{Result, input};

/// Pulls decisions from one Local API.
#[derive(Clone)]
pub struct Bouncer {
    http: Http,
    key: SecretString,
    filter: Filter,
    every: Duration,
}

impl Bouncer {
    /// A bouncer of the settings; refuses settings without a bouncer key.
    pub fn new(settings: &CrowdsecSettings) -> Result<Bouncer> {
        let Some(key) = settings.api_key.clone() else {
            return input(
                "pulling CrowdSec decisions needs a bouncer key; set crowdsec.api_key_file (cscli bouncers add NAME)",
            );
        };
        Ok(Bouncer {
            http: Http::new(&settings.lapi_url),
            key,
            filter: Filter::from_settings(settings),
            every: settings.update_frequency,
        })
    }

    /// Bounds each request (30 s by default).
    pub fn set_timeout(&mut self, limit: Duration) {
        self.http.timeout = limit;
    }

    pub fn update_frequency(&self) -> Duration {
        self.every
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// One pull: every decision in force with `startup` (asked after each
    /// start and after every failure), else what changed since the last
    /// pull. `now_ns` (the filter's clock, taken when the answer arrived) dates
    /// the decisions' ends.
    pub async fn pull(
        &self,
        startup: bool,
        now_ns: impl FnOnce() -> u64,
    ) -> Result<Delta, LapiError> {
        let path = format!(
            "/v1/decisions/stream?startup={startup}{}",
            self.filter.query()
        );
        let answer = self
            .http
            .send(
                Method::GET,
                &path,
                Some((HeaderName::from_static("x-api-key"), self.key.expose())),
                None,
            )
            .await?;
        match answer.status.as_u16() {
            200 => decision::parse_stream(&answer.body, startup, &self.filter, now_ns()),
            s @ (401 | 403) => Err(LapiError::Refused {
                what: "bouncer key",
                status: s,
            }),
            status => Err(LapiError::Status {
                path: "/v1/decisions/stream".into(),
                status,
                message: answer.message(),
            }),
        }
    }
}

/// What one [`Feed::step`] did.
#[derive(Debug)]
pub enum FeedStep {
    /// A pull worked: write `changes` into the filter (lifts come first).
    /// `recovered` is the length of the outage it ends, to log that the
    /// Local API is back.
    Pulled {
        changes: Vec<Change>,
        delta: Delta,
        recovered: Option<Duration>,
    },
    /// A pull failed; the filter keeps what it has (each ban ends at its
    /// own time). `log` is true for the first failure of an outage only.
    Failed {
        error: LapiError,
        log: bool,
        retry_in: Duration,
    },
}

/// The bouncer's loop state: schedule, backoff and the decisions in force.
pub struct Feed {
    pub bouncer: Bouncer,
    pub schedule: PullSchedule,
    pub set: DecisionSet,
}

impl Feed {
    pub fn new(bouncer: Bouncer, now: Instant) -> Feed {
        Feed::with_max_backoff(bouncer, DEFAULT_MAX_BACKOFF, now)
    }

    pub fn with_max_backoff(bouncer: Bouncer, max_backoff: Duration, now: Instant) -> Feed {
        let every = bouncer.every;
        Feed {
            bouncer,
            schedule: PullSchedule::new(every, max_backoff, now),
            set: DecisionSet::new(),
        }
    }

    /// Sleeps until the next pull is due, pulls, and says what to do;
    /// logs an outage once when it starts and once when it ends.
    pub async fn step(&mut self, now_ns: impl Fn() -> u64) -> FeedStep {
        tokio::time::sleep_until(self.schedule.next_at().into()).await;
        let startup = self.schedule.startup();
        match self.bouncer.pull(startup, &now_ns).await {
            Ok(delta) => {
                let recovered = self.schedule.succeeded(Instant::now());
                if let Some(after) = recovered {
                    log::info!(
                        "the CrowdSec Local API answers again after {}s; resynchronised {} decisions",
                        after.as_secs(),
                        delta.new.len()
                    );
                }
                self.set.prune(now_ns());
                let changes = self.set.apply(&delta);
                FeedStep::Pulled {
                    changes,
                    delta,
                    recovered,
                }
            }
            Err(error) => {
                let f = self.schedule.failed(Instant::now());
                if f.log {
                    log::warn!(
                        "{error}; keeping the {} CrowdSec decisions in force and retrying with backoff",
                        self.set.len()
                    );
                }
                FeedStep::Failed {
                    error,
                    log: f.log,
                    retry_in: f.retry_in,
                }
            }
        }
    }
}
