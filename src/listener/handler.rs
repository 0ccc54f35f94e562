//! One request to `/listener/{first}/{second}` (docs/listener.md, docs/security.md), in the
//! fixed order: method check → CORS preflight → JWT authentication → signature header present →
//! body read → signature verified over the raw body → request data → response and workflow.
// An early answer travels as `Err(Response)`: one per request, size is irrelevant.
#![allow(clippy::result_large_err)]

use super::admin::{self, Role};
use super::auth::{AuthSettings, Verifier};
use super::config::Answer;
use super::config::{Config, Endpoint, ReturnType, RunMode};
use super::cors::{is_preflight, CorsPolicy};
use super::request::{to_data_for, DataNeeds, RequestParts};
use super::respond::{self, json, json_error, Body};
use super::server::State;
use super::signature::{self, SigError};
use super::sse;
use super::workflow::{Outcome, Run, SseMsg};
use crate::{RenderOptions, Template, Value};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body as HttpBody;
use hyper::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, ORIGIN, RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::cors::{ALLOW_METHODS as ALLOWED, METHODS};

/// How long an `async` `continue` request waits for a `respond` step before its 202.
pub const ASYNC_WAIT: Duration = Duration::from_secs(20);
/// Limit for receiving a request body once the headers are in (slow clients → 408).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A handled request, with what the request log line and the metrics need.
pub struct Handled {
    /// `None`: not found (404), built by [`Handled::into_response`].
    pub response: Option<Response<Body>>,
    pub endpoint: Option<Arc<Endpoint>>,
    pub run_id: Option<String>,
}

impl Handled {
    /// The status for the log line.
    pub fn status(&self) -> u16 {
        self.response
            .as_ref()
            .map_or(StatusCode::NOT_FOUND, |r| r.status())
            .as_u16()
    }

    /// The response to send.
    pub fn into_response(self) -> Response<Body> {
        self.response
            .unwrap_or_else(|| json_error(StatusCode::NOT_FOUND, "not found"))
    }
}

/// Routes one request received on the listener of `role`. The body type is generic: the
/// server passes hyper's `Incoming`, `flexscript test` an in-memory body (the same code
/// answers both).
pub async fn handle<B>(state: Arc<State>, req: Request<B>, role: Role) -> Handled
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let config = state.config();
    let mut h = Handled {
        response: None,
        endpoint: None,
        run_id: None,
    };
    route(&state, &config, req, role, &mut h).await;
    h
}

/// Fills `h` for one request; no response set means 404.
async fn route<B>(
    state: &Arc<State>,
    config: &Arc<Config>,
    req: Request<B>,
    role: Role,
    h: &mut Handled,
) where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let path = req.uri().path();
    if admin::is_admin_path(path) {
        if role == Role::Admin || !state.separate_admin {
            h.response = Some(admin::answer(state, config, role, &req).await);
        }
        return;
    }
    if role == Role::Admin {
        return;
    }
    if path == "/dynamic-endpoints" {
        h.response = Some(super::listing::answer(config, &req));
        return;
    }
    let Some(rest) = path.strip_prefix("/listener/") else {
        return;
    };
    // Two hashes, one slash between them (a byte scan: the path is ASCII up to here).
    let Some(slash) = rest.bytes().position(|b| b == b'/') else {
        return;
    };
    let (first, second) = (&rest[..slash], &rest[slash + 1..]);
    if second.bytes().any(|b| b == b'/') {
        return;
    }
    let Some(ep) = config.find(first, second).cloned() else {
        return;
    };
    h.endpoint = Some(ep.clone());
    let origin = req.headers().get(ORIGIN).cloned();
    let cors = match &ep.cors {
        None => None,
        Some(t) => match ep
            .settings
            .cors(|| render_setting(&ep, t).map(|d| CorsPolicy::parse(&d)))
        {
            Ok(c) => Some(c),
            Err(r) => {
                h.response = Some(r);
                return;
            }
        },
    };
    let (mut response, add_cors) =
        endpoint(state, config, &ep, cors.as_deref(), req, &mut h.run_id).await;
    if let (true, Some(c)) = (add_cors, &cors) {
        for (k, v) in c.response_headers(origin.as_ref()) {
            response.headers_mut().insert(k, v);
        }
    }
    h.response = Some(response);
}

/// Renders a settings field: no request data, `env()` allowed. Failure → 500 (logged).
fn render_setting(ep: &Endpoint, t: &Template) -> Result<String, Response<Body>> {
    t.render_value(
        &Value::empty_map(),
        RenderOptions {
            allow_env: true,
            ..RenderOptions::default()
        },
    )
    .map_err(|e| {
        // Only the error kind: a message could quote the rendered secret.
        tracing::error!(endpoint = %ep.name, field = t.name(), error = e.kind().as_str(), "settings render failed");
        json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the endpoint settings could not be rendered",
        )
    })
}

/// Returns the response and whether ordinary CORS headers apply to it.
async fn endpoint<B>(
    state: &Arc<State>,
    config: &Config,
    ep: &Arc<Endpoint>,
    cors: Option<&CorsPolicy>,
    req: Request<B>,
    run_id: &mut Option<String>,
) -> (Response<Body>, bool)
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let method = req.method().clone();
    if !METHODS.contains(&method.as_str()) {
        let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOWED));
        return (r, true);
    }
    if method == Method::OPTIONS {
        if let Some(c) = cors.filter(|_| is_preflight(&method, req.headers())) {
            return match c.preflight(req.headers()) {
                Ok(headers) => {
                    let mut r = Response::new(respond::full(Bytes::new()));
                    *r.status_mut() = StatusCode::NO_CONTENT;
                    for (k, v) in headers {
                        r.headers_mut().insert(k, v);
                    }
                    (r, false)
                }
                Err(()) => (
                    json_error(StatusCode::FORBIDDEN, "origin not allowed"),
                    false,
                ),
            };
        }
        let mut r = Response::new(respond::full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(ALLOWED));
        return (r, true);
    }
    let mut jwt_data = None;
    if let Some((key, secret)) = &ep.auth {
        let verifier =
            ep.settings.verifier(
                || match (render_setting(ep, key), render_setting(ep, secret)) {
                    (Ok(k), Ok(s)) => Ok(Verifier::new(&AuthSettings {
                        key: &k,
                        secret: &s,
                        require_exp: ep.require_exp,
                    })),
                    (Err(r), _) | (_, Err(r)) => Err(r),
                },
            );
        let verifier = match verifier {
            Ok(v) => v,
            Err(r) => return (r, true),
        };
        match verifier.verify(req.headers()) {
            Ok(d) => jwt_data = d,
            Err(e) => {
                let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
                let mut r = json_error(status, &e.message());
                if status == StatusCode::UNAUTHORIZED {
                    r.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        HeaderValue::from_static("Bearer error=\"invalid_token\""),
                    );
                }
                return (r, true);
            }
        }
    }
    // A signed endpoint: no signature header → 403 before the body is read; the signature is
    // checked over the raw body once it is in (after JWT, which needs only the headers).
    let sig_key = match &ep.signature {
        None => None,
        Some(spec) => {
            if !signature::present(&spec.scheme, req.headers()) {
                return (sig_refused(&SigError::Missing), true);
            }
            let key = ep.settings.signature_key(|| {
                let secret = render_setting(ep, &spec.secret)?;
                spec.scheme.key(&secret).map_err(|why| {
                    tracing::error!(endpoint = %ep.name, field = spec.secret.name(), error = why,
                        "signature secret unusable");
                    json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the endpoint settings could not be rendered",
                    )
                })
            });
            match key {
                Ok(k) => Some((spec, k)),
                Err(r) => return (r, true),
            }
        }
    };
    let (parts, body) = req.into_parts();
    let limit = config.server.body_limit;
    // A body known to be empty (no `Content-Length`/`Transfer-Encoding`, or a zero length)
    // has nothing to wait for: no timer, no buffer.
    let body = if body.is_end_stream() && declared_length(&parts.headers).is_none_or(|n| n <= limit)
    {
        Bytes::new()
    } else {
        let read = read_body(body, &parts.headers, limit);
        match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(r)) => return (r, true),
            Err(_) => {
                let mut r = json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                );
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
                return (r, true);
            }
        }
    };
    if let Some((spec, key)) = &sig_key {
        let now = signature::now();
        if let Err(e) = signature::verify(
            &spec.scheme,
            key,
            spec.tolerance_s,
            &parts.headers,
            &body,
            now,
        ) {
            return (sig_refused(&e), true);
        }
    }
    let data = match to_data_for(
        &RequestParts {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            body: &body,
            jwt_data: jwt_data.as_ref(),
        },
        data_needs(ep),
    ) {
        Ok(d) => d,
        Err(e) => return (json_error(StatusCode::BAD_REQUEST, e.message()), true),
    };
    let id = run_id.insert(new_run_id());
    (respond_and_run(state, config, ep, data, id).await, true)
}

/// The parts of `__data` an endpoint's request can be reduced to: only for an answer with no
/// workflow (a run keeps the whole `__data`), from what its template reads.
fn data_needs(ep: &Endpoint) -> Option<&DataNeeds> {
    let ReturnType::Answer(answer) = &ep.return_type else {
        return None;
    };
    if !ep.steps.is_empty() {
        return None;
    }
    ep.settings.data_needs(|| {
        let (Answer::Data(t) | Answer::Html(t) | Answer::Redirect(t)) = answer;
        t.attr_paths("__data").map(|p| DataNeeds::from_paths(&p))
    })
}

/// The 403/401 JSON answer of a refused signature (CORS headers are added by the caller).
fn sig_refused(e: &SigError) -> Response<Body> {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    json_error(status, &e.message())
}

/// A time-ordered (version 7) UUID in simple form, random bits from the thread-local CSPRNG (no
/// `getrandom` system call per request): the journal's run id indexes grow at their end
/// (docs/state.md, "Performance").
fn new_run_id() -> String {
    let mut text = [0u8; uuid::fmt::Simple::LENGTH];
    // `String::from` copies the text; `to_string` on the `&mut str` would go through `Display`.
    String::from(&*crate::clock::uuid_v7().simple().encode_lower(&mut text))
}

/// The request's `Content-Length`, when it is a number.
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

async fn read_body<B>(
    mut body: B,
    headers: &hyper::HeaderMap,
    limit: u64,
) -> Result<Bytes, Response<Body>>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let too_large = || {
        let mut r = json_error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        r
    };
    if declared_length(headers).is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|_| json_error(StatusCode::BAD_REQUEST, "could not read the request body"))?;
        if let Some(d) = frame.data_ref() {
            if (buf.len() + d.len()) as u64 > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(d);
        }
    }
    Ok(buf.freeze())
}

/// Aborts a task when dropped (the request went away before the run could be handed on).
struct AbortOnDrop(Option<JoinHandle<()>>);

impl AbortOnDrop {
    fn take(mut self) -> Option<JoinHandle<()>> {
        self.0.take()
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

async fn respond_and_run(
    state: &Arc<State>,
    config: &Config,
    ep: &Arc<Endpoint>,
    data: Value,
    run_id: &str,
) -> Response<Body> {
    let new_run = |reply, sse| {
        Arc::new(Run::new(
            ep.clone(),
            run_id.to_string(),
            config.store.clone(),
            config.server.timezone,
            config.client.clone(),
            state.runner.clone(),
            reply,
            sse,
        ))
    };
    let runner = &state.runner;
    let fp = config.fingerprint.as_str();
    match &ep.return_type {
        ReturnType::Answer(a) => {
            let r = respond::answer(&ep.name, a, &data);
            if !ep.steps.is_empty() {
                // Journaled before the answer leaves (docs/state.md).
                if let Err(e) = runner.start(new_run(None, None), data, fp).await {
                    return unavailable(&ep.name, &e);
                }
            }
            r
        }
        ReturnType::Continue => {
            let (tx, rx) = oneshot::channel();
            if let Err(e) = runner.start(new_run(Some(tx), None), data, fp).await {
                return unavailable(&ep.name, &e);
            }
            let sync = ep.run_mode == RunMode::Sync;
            let limit = if sync {
                Duration::from_millis(ep.response_timeout_ms)
            } else {
                ASYNC_WAIT
            };
            let accepted = || {
                json(
                    StatusCode::ACCEPTED,
                    &serde_json::json!({"status": "accepted"}),
                )
            };
            match tokio::time::timeout(limit, rx).await {
                Ok(Ok(Outcome::Reply(r))) => r,
                Ok(Ok(Outcome::Failed(step))) => step_failed(&step),
                Ok(Ok(Outcome::Unavailable(step))) => store_unavailable(&ep.name, &step),
                Ok(Err(_)) if sync => json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "workflow finished without a response",
                ),
                Err(_) if sync => json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the workflow did not respond in time",
                ),
                _ => accepted(),
            }
        }
        ReturnType::Sse => {
            let (tx, mut rx) = mpsc::channel(16);
            let handle = match runner.start(new_run(None, Some(tx)), data, fp).await {
                Ok(h) => h,
                Err(e) => return unavailable(&ep.name, &e),
            };
            let guard = AbortOnDrop(handle);
            let limit = Duration::from_millis(ep.response_timeout_ms);
            match tokio::time::timeout(limit, rx.recv()).await {
                Ok(Some(SseMsg::Failed(step))) => step_failed(&step),
                Ok(Some(SseMsg::Unavailable(step))) => store_unavailable(&ep.name, &step),
                Ok(first) => match guard.take() {
                    Some(run) => sse::stream(first, rx, run, state.shutdown.clone()),
                    None => step_failed(""),
                },
                Err(_) => json_error(
                    StatusCode::GATEWAY_TIMEOUT,
                    "the workflow did not respond in time",
                ),
            }
        }
    }
}

/// 503 + `Retry-After` when the run cannot be journaled: never accept work that cannot be kept.
fn unavailable(endpoint: &str, e: &crate::state::StateError) -> Response<Body> {
    tracing::error!(endpoint = %endpoint, error = %e, "run not accepted: the journal cannot be written");
    let mut r = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the run cannot be recorded right now; retry later",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

/// 503 + `Retry-After`: a step failed because the shared store could not be reached (as for a
/// render of the answer that reads it, src/listener/respond.rs).
fn store_unavailable(endpoint: &str, step: &str) -> Response<Body> {
    tracing::error!(endpoint = %endpoint, step = %step, "workflow step failed: shared store unavailable");
    let mut r = json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the shared store cannot be reached right now; retry later",
    );
    r.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn step_failed(step: &str) -> Response<Body> {
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("workflow step \"{step}\" failed"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_are_v7_uuids_and_differ() {
        let a = super::new_run_id();
        let b = super::new_run_id();
        assert_ne!(a, b);
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 7);
        assert_eq!(a.len(), 32);
    }
}
