//! The operations and admin routes (docs/operations.md): `GET /healthz`, `GET /readyz`,
//! `GET /metrics`, the run routes of `runs_api` (`/runs…`), and the admin key that guards
//! them.
//!
//! Where they are served:
//! - without `[server] admin_addr`, on the public listener: `/healthz` and `/readyz` for anyone,
//!   `/metrics` with the admin key (`Authorization: Bearer KEY` or `apikey: KEY`; no
//!   `admin_key` configured → 404, wrong or missing key → 401);
//! - with `admin_addr`, on that separate listener only (the public one answers 404 for them):
//!   `/metrics` needs no key there — the address is the operator's private network, as a
//!   Prometheus scraper expects — and the public listener serves only endpoints and the listing.
//!
//! The `/runs…` routes always need the admin key, on either listener: they show request data
//! and can start work again.
//!
//! The admin key is rendered like a settings field (no request data, `env()` allowed) when first
//! needed, and only its SHA-256 digest is kept; a presented key is hashed and compared in
//! constant time, so neither its content nor its length leaks through timing. A key that
//! renders empty (`{{ env('ADMIN_KEY') }}` with the variable unset) turns the admin routes off
//! (404), with a warning at start and at reload.

use super::config::Config;
use super::metrics::RunState;
use super::respond::{self, json_error, Body};
use super::server::State;
use crate::{RenderOptions, Value};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Longest wait for one readiness check.
pub const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest reason in a `/readyz` answer.
const MAX_REASON: usize = 200;

/// Which listener a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The public address: endpoints, the listing, and (without `admin_addr`) the operations
    /// routes.
    Public,
    /// `admin_addr`: the operations and admin routes only.
    Admin,
}

/// Whether `path` is one of the operations or admin routes.
pub fn is_admin_path(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics" | "/runs") || path.starts_with("/runs/")
}

type CheckFn = dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync;

/// One condition of `/readyz` (e.g. "the state backend answers"): `Ok` when ready, else a
/// short reason. The reason is shown to anyone asking `/readyz`: it must hold no secret (no
/// URL with a password, no key).
#[derive(Clone)]
pub struct ReadyCheck {
    name: String,
    check: Arc<CheckFn>,
}

impl std::fmt::Debug for ReadyCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ReadyCheck {
    /// A check called `name` (it prefixes the reason) running `check` on every `/readyz`.
    pub fn new<F, Fut>(name: &str, check: F) -> ReadyCheck
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        ReadyCheck {
            name: name.to_string(),
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// Runs the check, bounded by [`READY_CHECK_TIMEOUT`].
    pub async fn run(&self) -> Result<(), String> {
        match tokio::time::timeout(READY_CHECK_TIMEOUT, (self.check)()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(format!("{}: {reason}", self.name)),
            Err(_) => Err(format!(
                "{}: no answer within {} s",
                self.name,
                READY_CHECK_TIMEOUT.as_secs()
            )),
        }
    }
}

/// The rendered admin key of one loaded configuration (its SHA-256 digest; `None`: rendered
/// empty, routes off). A render failure is not kept: the next request tries again. Cloning
/// gives an empty cache (a reload renders afresh).
#[derive(Default)]
pub struct AdminKeyCache(OnceLock<Option<[u8; 32]>>);

impl Clone for AdminKeyCache {
    fn clone(&self) -> Self {
        AdminKeyCache::default()
    }
}

impl std::fmt::Debug for AdminKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKeyCache").finish_non_exhaustive()
    }
}

/// The admin key of `config`: `Ok(None)` when the admin routes are off (no `admin_key`, or it
/// renders empty), `Err(kind)` when it cannot be rendered.
pub fn admin_key(config: &Config) -> Result<Option<[u8; 32]>, &'static str> {
    let Some(t) = &config.server.admin_key else {
        return Ok(None);
    };
    if let Some(k) = config.server.admin_cache.0.get() {
        return Ok(*k);
    }
    let rendered = t
        .render_value(
            &Value::empty_map(),
            RenderOptions {
                allow_env: true,
                ..RenderOptions::default()
            },
        )
        // Only the error kind: a message could quote the rendered secret.
        .map_err(|e| e.kind().as_str())?;
    let key = rendered.trim();
    let digest = (!key.is_empty()).then(|| Sha256::digest(key.as_bytes()).into());
    Ok(*config.server.admin_cache.0.get_or_init(|| digest))
}

/// Renders the admin key of a freshly loaded configuration and logs what an operator should
/// know: a key that cannot be rendered, or one that renders empty.
pub fn announce(config: &Config) {
    match admin_key(config) {
        Ok(Some(_)) => {}
        Ok(None) if config.server.admin_key.is_some() => tracing::warn!(
            "server.admin_key renders empty (an unset environment variable?): the admin routes are off"
        ),
        Ok(None) => {}
        Err(kind) => tracing::error!(
            error = kind,
            "server.admin_key cannot be rendered: the admin routes answer 500"
        ),
    }
}

/// The keys presented by a request: a `Bearer` token of `Authorization`, and `apikey`.
fn presented<B>(req: &Request<B>) -> impl Iterator<Item = &[u8]> {
    let bearer = req.headers().get(AUTHORIZATION).and_then(|v| {
        let v = v.as_bytes();
        let scheme = v.get(..7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| v[7..].trim_ascii())
    });
    let apikey = req
        .headers()
        .get("apikey")
        .map(|v| v.as_bytes().trim_ascii());
    bearer.into_iter().chain(apikey)
}

/// Whether `req` presents the key whose digest is `digest` (every candidate is compared, in
/// constant time).
fn authorized<B>(req: &Request<B>, digest: &[u8; 32]) -> bool {
    let mut ok = subtle::Choice::from(0);
    for k in presented(req) {
        let d: [u8; 32] = Sha256::digest(k).into();
        ok |= d.ct_eq(digest);
    }
    bool::from(ok)
}

/// What the admin key says about a request to a guarded route.
enum Access {
    Granted,
    /// The answer to send instead (404, 401 or 500).
    Refused(Response<Body>),
}

fn check_key<B>(config: &Config, req: &Request<B>) -> Access {
    match admin_key(config) {
        Ok(None) => Access::Refused(json_error(StatusCode::NOT_FOUND, "not found")),
        Ok(Some(digest)) if authorized(req, &digest) => Access::Granted,
        Ok(Some(_)) => {
            let mut r = json_error(StatusCode::UNAUTHORIZED, "invalid or missing admin key");
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"flexscript admin\""),
            );
            Access::Refused(r)
        }
        Err(kind) => {
            tracing::error!(error = kind, "server.admin_key cannot be rendered");
            Access::Refused(json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the admin key could not be rendered",
            ))
        }
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(respond::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

/// One line, printable, bounded: a reason shown to anyone.
fn one_line(reason: &str) -> String {
    let mut out: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect();
    if reason.chars().count() > MAX_REASON {
        out.push('…');
    }
    out
}

/// Whether the server is ready: `Err(reason)` names the first condition that is not met.
pub async fn readiness(state: &State) -> Result<(), String> {
    for check in &state.readiness {
        check.run().await?;
    }
    Ok(())
}

/// Answers an operations or admin route (`is_admin_path(path)` holds) received on `role`.
pub async fn answer<B>(
    state: &Arc<State>,
    config: &Config,
    role: Role,
    req: &Request<B>,
) -> Response<Body> {
    let get = matches!(*req.method(), Method::GET | Method::HEAD);
    match req.uri().path() {
        "/healthz" => {
            if !get {
                return method_not_allowed("GET, HEAD");
            }
            text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8")
        }
        "/readyz" => {
            if !get {
                return method_not_allowed("GET, HEAD");
            }
            match readiness(state).await {
                Ok(()) => text(StatusCode::OK, "ok\n", "text/plain; charset=utf-8"),
                Err(reason) => {
                    let mut r = text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", one_line(&reason)),
                        "text/plain; charset=utf-8",
                    );
                    r.headers_mut()
                        .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("1"));
                    r
                }
            }
        }
        "/metrics" => {
            if role == Role::Public {
                if let Access::Refused(r) = check_key(config, req) {
                    return r;
                }
            }
            if !get {
                return method_not_allowed("GET, HEAD");
            }
            let metrics = &state.runner.metrics;
            let gauges = state.runner.gauges();
            let global = metrics.global();
            global.set_active(RunState::Queued, gauges.queued);
            global.set_active(RunState::Running, gauges.running);
            global.set_active(RunState::Waiting, gauges.waiting);
            global.set_active(RunState::Backlog, gauges.backlog);
            text(
                StatusCode::OK,
                metrics.encode(),
                super::metrics::CONTENT_TYPE,
            )
        }
        // `/runs` and `/runs/…`: the admin key on either listener.
        path => {
            if let Access::Refused(r) = check_key(config, req) {
                return r;
            }
            super::runs_api::answer(
                &state.runner,
                req.method(),
                path,
                req.uri().query().unwrap_or(""),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presented_keys() {
        let req = |h: &[(&str, &str)]| {
            let mut b = Request::builder();
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let digest: [u8; 32] = Sha256::digest(b"s3cret").into();
        assert!(authorized(
            &req(&[("authorization", "Bearer s3cret")]),
            &digest
        ));
        assert!(authorized(
            &req(&[("authorization", "bearer  s3cret ")]),
            &digest
        ));
        assert!(authorized(&req(&[("apikey", "s3cret")]), &digest));
        assert!(authorized(
            &req(&[("authorization", "Basic eDp5"), ("apikey", "s3cret")]),
            &digest
        ));
        assert!(!authorized(&req(&[("authorization", "s3cret")]), &digest));
        assert!(!authorized(
            &req(&[("authorization", "Bearer s3cre")]),
            &digest
        ));
        assert!(!authorized(&req(&[("authorization", "Bearer ")]), &digest));
        assert!(!authorized(&req(&[]), &digest));
        assert!(!authorized(&req(&[("apikey", "S3CRET")]), &digest));
    }

    #[test]
    fn reasons_stay_on_one_bounded_line() {
        assert_eq!(one_line("db\ndown\r"), "db down ");
        let long = "x".repeat(500);
        assert_eq!(one_line(&long).chars().count(), MAX_REASON + 1);
    }

    #[test]
    fn admin_paths() {
        for p in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/runs",
            "/runs/abc",
            "/runs/abc/retry",
        ] {
            assert!(is_admin_path(p), "{p}");
        }
        for p in [
            "/",
            "/health",
            "/runsx",
            "/listener/a/b",
            "/dynamic-endpoints",
        ] {
            assert!(!is_admin_path(p), "{p}");
        }
    }
}
