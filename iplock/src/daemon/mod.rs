//! `iplock run`: the long-running filter owner, its metrics endpoint and
//! its rate-limited log.

pub mod event_log;
pub mod log_limit;
pub mod metrics;
