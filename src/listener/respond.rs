//! Building HTTP responses (docs/listener.md "Responses"): rendered `data`/`html`/`redirect` answers and JSON
//! errors `{"error": "..."}`. A render error is a 500 whose message names the endpoint field
//! but never the script's values (they may hold request data or secrets); the detail is logged.

use super::config::Answer;
use crate::{Escape, RenderOptions, Value};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use std::convert::Infallible;

/// The body type of every response.
pub type Body = BoxBody<Bytes, Infallible>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A response with a fixed body and content type.
pub fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::json!({ "error": message }).to_string();
    with_body(status, "application/json; charset=utf-8", body)
}

/// A JSON value with `status`.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    with_body(status, "application/json; charset=utf-8", value.to_string())
}

/// The render context of bodies and steps: `{__data: data}`, no `env()`.
pub fn context(data: &Value) -> Value {
    let mut m = crate::value::Map::with_capacity(1);
    m.insert(super::request::key("__data"), data.clone());
    Value::map(m)
}

/// Whether a rendered redirect target is acceptable: an absolute http(s) URL or a `/path`
/// (not `//host`), with no control characters.
pub fn safe_location(target: &str) -> bool {
    if target.chars().any(char::is_control) {
        return false;
    }
    let lower = target.to_ascii_lowercase();
    (target.starts_with('/') && !target.starts_with("//"))
        || ((lower.starts_with("http://") || lower.starts_with("https://"))
            && hyper::Uri::try_from(target).is_ok_and(|u| u.host().is_some()))
}

/// Renders `answer` with `__data = data` into the response of `endpoint`.
pub fn answer(endpoint: &str, answer: &Answer, data: &Value) -> Response<Body> {
    let ctx = context(data);
    let (tpl, escape) = match answer {
        Answer::Data(t) | Answer::Redirect(t) => (t, Escape::None),
        Answer::Html(t) => (t, Escape::Html),
    };
    let out = match tpl.render_value(
        &ctx,
        RenderOptions {
            escape,
            allow_env: false,
        },
    ) {
        Ok(out) => out,
        Err(e) if e.message().contains(crate::host::STORE_UNAVAILABLE) => {
            // The shared store (Redis) is unreachable: retry later, as for the journal.
            tracing::error!(endpoint, field = tpl.name(), error = %e.message(), "render failed: shared store unavailable");
            let mut r = json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the shared store cannot be reached right now; retry later",
            );
            r.headers_mut()
                .insert(hyper::header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
        Err(e) => {
            let error = super::config::script_error(&e);
            tracing::error!(endpoint, field = tpl.name(), error = %error, "render failed");
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("the response could not be rendered ({})", tpl.name()),
            );
        }
    };
    match answer {
        Answer::Data(_) => {
            let ct = crate::detect::content_type(&out);
            with_body(StatusCode::OK, ct, out)
        }
        Answer::Html(_) => with_body(StatusCode::OK, "text/html; charset=utf-8", out),
        Answer::Redirect(_) => {
            let target = out.trim();
            match HeaderValue::from_str(target) {
                Ok(v) if safe_location(target) => {
                    let mut r = Response::new(full(Bytes::new()));
                    *r.status_mut() = StatusCode::FOUND;
                    r.headers_mut().insert(LOCATION, v);
                    r.headers_mut()
                        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    r
                }
                _ => {
                    tracing::error!(
                        endpoint,
                        "refused redirect target (not http/https or /path)"
                    );
                    json_error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the redirect target is not an http(s) URL or a /path",
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::safe_location;

    #[test]
    fn redirect_targets() {
        assert!(safe_location("https://example.com/x?y=1"));
        assert!(safe_location("HTTP://example.com"));
        assert!(safe_location("/thanks"));
        assert!(!safe_location("//evil.com"));
        assert!(!safe_location("javascript:alert(1)"));
        assert!(!safe_location("https://a.com/\r\nSet-Cookie: x"));
        assert!(!safe_location("ftp://a.com"));
        assert!(!safe_location("relative"));
    }
}
