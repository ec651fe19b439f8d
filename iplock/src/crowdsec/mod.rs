//! CrowdSec's Local API (LAPI): pulling its decisions as a bouncer, pushing
//! iplock's own bans to it as a watcher, and the schedule of both through
//! outages. Async, on hyper and tokio; the daemon runs it in a task and
//! writes the [`decision::Change`]s it yields into the filter's maps.
//!
//! ```text
//! let bouncer = Bouncer::new(&settings)?;          // needs an api_key
//! let mut feed = Feed::new(bouncer, Instant::now());
//! loop {
//!     let step = feed.step(clock::now_ns()).await;   // sleeps until due
//!     apply(step.changes);                             // kernel maps
//! }
//! ```
//!
//! Only plain HTTP is spoken (the config refuses `https` URLs).

use std::time::Duration;

use thiserror::Error;

pub mod bouncer;
pub mod decision;
pub mod go_duration;
mod http;
pub mod schedule;
pub mod watcher;

pub use bouncer::{Bouncer, Feed, FeedStep};
pub use decision::{Change, Decision, DecisionSet, Delta, Filter, Ignored};
pub use schedule::{Backoff, PullSchedule};
pub use watcher::{BanReason, LocalBan, PushReport, Watcher};

/// A failure to talk to the Local API; never carries a key or password.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum LapiError {
    #[error("cannot reach the CrowdSec Local API at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the CrowdSec Local API at {url} did not answer within {limit:?}")]
    Timeout { url: String, limit: Duration },
    #[error("the CrowdSec Local API refused the {what} (HTTP {status}); check it with cscli")]
    Refused { what: &'static str, status: u16 },
    #[error("the CrowdSec Local API answered HTTP {status} to {path}: {message}")]
    Status {
        path: String,
        status: u16,
        message: String,
    },
    #[error("the CrowdSec Local API answered malformed data: {0}")]
    Malformed(String),
    #[error("the CrowdSec Local API's answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
}
