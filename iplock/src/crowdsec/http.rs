//! One request to the Local API at a time, bounded in time and size.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::config::crowdsec::LapiUrl;
use crate::crowdsec::LapiError;

/// Longest a whole request may take, answer included: the startup answer
/// of a large blocklist is megabytes, on loopback well under a second.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read: 100,000 decisions are about 15 MB.
pub const MAX_BODY: usize = 64 << 20;

#[derive(Clone)]
pub(crate) struct Http {
    base: LapiUrl,
    client: Client<HttpConnector, Full<Bytes>>,
    pub timeout: Duration,
}

pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Answer {
    /// The `message` of a JSON error answer, or the start of the body.
    pub fn message(&self) -> String {
        let text = serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned());
        crate::error::quote(text.trim().replace('\n', " "))
    }
}

impl Http {
    pub fn new(base: &LapiUrl) -> Http {
        let mut conn = HttpConnector::new();
        conn.set_connect_timeout(Some(CONNECT_TIMEOUT));
        conn.set_nodelay(true);
        Http {
            base: base.clone(),
            client: Client::builder(TokioExecutor::new()).build(conn),
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// Sends `method path_and_query` with the header (e.g. the bouncer key)
    /// and JSON body, and reads the whole answer.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        header: Option<(HeaderName, &str)>,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, LapiError> {
        let url = format!("{}{path_and_query}", self.base.base());
        let mut req = Request::builder()
            .method(method)
            .uri(&url)
            .header(USER_AGENT, concat!("iplock/", env!("CARGO_PKG_VERSION")));
        if let Some((name, value)) = header {
            let mut v = HeaderValue::from_str(value)
                .map_err(|_| LapiError::Malformed("a key is not a valid header value".into()))?;
            v.set_sensitive(true);
            req = req.header(name, v);
        }
        let body = match json {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| LapiError::Malformed(format!("cannot build a request to {url}: {e}")))?;
        let path = path_and_query
            .split('?')
            .next()
            .unwrap_or(path_and_query)
            .to_string();
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let mut reason = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    reason = s.to_string();
                    src = s.source();
                }
                LapiError::Unreachable {
                    url: self.base.to_string(),
                    reason,
                }
            })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        LapiError::TooLarge { limit: MAX_BODY }
                    } else {
                        LapiError::Unreachable {
                            url: self.base.to_string(),
                            reason: format!("the answer to {path} broke off: {e}"),
                        }
                    }
                })?
                .to_bytes();
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(LapiError::Timeout {
                url: self.base.to_string(),
                limit: self.timeout,
            }),
        }
    }
}
