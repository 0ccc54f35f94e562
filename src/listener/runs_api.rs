//! The admin API over the run journal (docs/operations.md), behind the admin key, and the
//! pieces the `flexscript runs` command shares with it:
//!
//! - `GET /runs?endpoint=NAME&status=S&limit=50&before=CURSOR`: newest first,
//!   `{"runs": [{id, endpoint, status, created, duration_ms, error}], "next": CURSOR|null}`
//!   (`created` in milliseconds since the Unix epoch, `limit` 1..=1000);
//! - `GET /runs/{id}`: the whole record (request data without credential headers, the steps
//!   with their timing, checkpoints and errors);
//! - `POST /runs/{id}/retry` (`?from=start` to start over): a `failed` or `interrupted` run is
//!   queued again from its failed step and started at once by the serving process.
//!   409 for a run in any other state.
//!
//! Bad query values are 400 with the reason; an unknown run 404; an unavailable backend 503
//! with `Retry-After`; a record that cannot be read back 500 (that run only).

use super::respond::{json, json_error, Body};
use super::runs::Runner;
use crate::state::{RetryFrom, RunFilter, RunPage, RunRecord, RunStatus, StateError};
use hyper::header::{HeaderValue, ALLOW, RETRY_AFTER};
use hyper::{Method, Response, StatusCode};
use serde_json::json;
use std::fmt;
use std::sync::Arc;

/// Largest `limit` of a listing.
pub const MAX_LIMIT: usize = 1000;

fn decode(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// A bad query value of the runs API or of `flexscript runs` (answered 400 with this text).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryError {
    /// A `status` that is not a run status.
    UnknownStatus(String),
    /// A `limit` outside 1..=[`MAX_LIMIT`] or not a number.
    Limit,
    /// A retry's `from` that is neither `start` nor `failed`.
    From(String),
    /// A parameter the route does not know.
    UnknownParameter {
        /// The parameter's (decoded) name.
        name: String,
        /// The parameters the route knows, for the message.
        known: &'static str,
    },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::UnknownStatus(s) => write!(
                f,
                "unknown status `{s}` (queued, running, waiting, succeeded, failed, interrupted)"
            ),
            QueryError::Limit => write!(f, "limit must be a number from 1 to {MAX_LIMIT}"),
            QueryError::From(s) => write!(f, "from must be `start` or `failed`, not `{s}`"),
            QueryError::UnknownParameter { name, known } => {
                write!(f, "unknown parameter `{name}` ({known})")
            }
        }
    }
}

impl std::error::Error for QueryError {}

/// Parses a `status` value.
pub fn parse_status(s: &str) -> Result<RunStatus, QueryError> {
    RunStatus::parse(s).ok_or_else(|| QueryError::UnknownStatus(s.to_string()))
}

/// Parses a `limit` value (1..=[`MAX_LIMIT`]).
pub fn parse_limit(s: &str) -> Result<usize, QueryError> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(QueryError::Limit),
    }
}

/// Parses a `from` value of a retry.
pub fn parse_from(s: &str) -> Result<RetryFrom, QueryError> {
    match s {
        "failed" => Ok(RetryFrom::Failed),
        "start" => Ok(RetryFrom::Start),
        _ => Err(QueryError::From(s.to_string())),
    }
}

/// The listing filter of a `GET /runs` query string.
pub fn filter_from_query(query: &str) -> Result<RunFilter, QueryError> {
    let mut filter = RunFilter::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = decode(v);
        match k {
            "endpoint" => filter.endpoint = Some(v),
            "status" => filter.status = Some(parse_status(&v)?),
            "limit" => filter.limit = parse_limit(&v)?,
            "before" if !v.is_empty() => filter.before = Some(v),
            "before" => {}
            other => {
                return Err(QueryError::UnknownParameter {
                    name: decode(other),
                    known: "endpoint, status, limit, before",
                })
            }
        }
    }
    Ok(filter)
}

/// The JSON form of a listing page.
pub fn page_json(page: &RunPage) -> serde_json::Value {
    json!({ "runs": page.runs, "next": page.next })
}

/// The JSON form of a whole run record.
pub fn record_json(record: &RunRecord) -> serde_json::Value {
    serde_json::to_value(record).unwrap_or_else(|_| json!({}))
}

/// The answer for a backend error.
fn error(e: &StateError) -> Response<Body> {
    match e {
        StateError::NotFound => json_error(StatusCode::NOT_FOUND, "no such run"),
        StateError::Conflict(m) => json_error(StatusCode::CONFLICT, m),
        StateError::Unavailable(_) => {
            tracing::error!(error = %e, "admin API: state backend unavailable");
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the state backend is unavailable",
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        StateError::Corrupt(_) => {
            tracing::error!(error = %e, "admin API: unreadable run record");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the run record cannot be read",
            )
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// Answers `/runs…` (the caller checked the admin key). A retried run is handed to `runner`
/// at once (it starts as soon as a worker is free).
pub async fn answer(
    runner: &Arc<Runner>,
    method: &Method,
    path: &str,
    query: &str,
) -> Response<Body> {
    let backend = &*runner.backend;
    let rest = path.strip_prefix("/runs").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    match parts.as_slice() {
        [] => {
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed("GET, HEAD");
            }
            let filter = match filter_from_query(query) {
                Ok(f) => f,
                Err(m) => return json_error(StatusCode::BAD_REQUEST, &m.to_string()),
            };
            match backend.list_runs(filter).await {
                Ok(page) => json(StatusCode::OK, &page_json(&page)),
                Err(StateError::Conflict(m)) => json_error(StatusCode::BAD_REQUEST, &m),
                Err(e) => error(&e),
            }
        }
        [id] if !id.is_empty() => {
            if method != Method::GET && method != Method::HEAD {
                return method_not_allowed("GET, HEAD");
            }
            match backend.get_run(&decode(id)).await {
                Ok(rec) => json(StatusCode::OK, &record_json(&rec)),
                Err(e) => error(&e),
            }
        }
        [id, "retry"] if !id.is_empty() => {
            if method != Method::POST {
                return method_not_allowed("POST");
            }
            let mut from = RetryFrom::Failed;
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let parsed = match k {
                    "from" => parse_from(&decode(v)),
                    other => Err(QueryError::UnknownParameter {
                        name: decode(other),
                        known: "from",
                    }),
                };
                match parsed {
                    Ok(f) => from = f,
                    Err(m) => return json_error(StatusCode::BAD_REQUEST, &m.to_string()),
                }
            }
            match backend.retry_run(&decode(id), from).await {
                Ok(rec) => {
                    tracing::info!(run_id = %rec.id, endpoint = %rec.endpoint, attempt = rec.attempt, "run queued again by the admin API");
                    // Claimed now rather than by the next periodic claim; a failure here only
                    // delays it to that claim.
                    if let Err(e) = runner.claim_now().await {
                        tracing::warn!(error = %e, "cannot claim the retried run yet");
                    }
                    json(StatusCode::ACCEPTED, &retried_json(&rec, from))
                }
                Err(e) => error(&e),
            }
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// What a retry answers: the run's id, endpoint, new status and attempt, and where it starts.
pub fn retried_json(rec: &RunRecord, from: RetryFrom) -> serde_json::Value {
    json!({
        "id": rec.id,
        "endpoint": rec.endpoint,
        "status": rec.status,
        "attempt": rec.attempt,
        "from": match from {
            RetryFrom::Failed => "failed",
            RetryFrom::Start => "start",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing() {
        let f =
            filter_from_query("endpoint=Invoice+webhook&status=failed&limit=5&before=12").unwrap();
        assert_eq!(f.endpoint.as_deref(), Some("Invoice webhook"));
        assert_eq!(f.status, Some(RunStatus::Failed));
        assert_eq!(f.limit, 5);
        assert_eq!(f.before.as_deref(), Some("12"));
        let f = filter_from_query("endpoint=a%26b&before=").unwrap();
        assert_eq!(f.endpoint.as_deref(), Some("a&b"));
        assert_eq!((f.limit, f.before), (50, None));
        for (bad, msg) in [
            ("status=done", "unknown status `done`"),
            ("limit=0", "limit must be"),
            ("limit=1001", "limit must be"),
            ("limit=x", "limit must be"),
            ("colour=red", "unknown parameter `colour`"),
        ] {
            let e = filter_from_query(bad).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{bad}: {e}");
        }
        assert_eq!(parse_from("start"), Ok(RetryFrom::Start));
        assert!(parse_from("middle").is_err());
    }
}
