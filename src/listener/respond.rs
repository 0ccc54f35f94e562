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
        .insert(CONTENT_TYPE, content_type_value(content_type));
    r
}

/// `HeaderValue::from_static(content_type)`, made at compile time for the four types that
/// detection answers (src/detect.rs) instead of checking every byte again per response.
fn content_type_value(content_type: &'static str) -> HeaderValue {
    use crate::detect::{HTML, JSON, TEXT, XML};
    match content_type {
        JSON => const { HeaderValue::from_static(JSON) },
        HTML => const { HeaderValue::from_static(HTML) },
        TEXT => const { HeaderValue::from_static(TEXT) },
        XML => const { HeaderValue::from_static(XML) },
        other => HeaderValue::from_static(other),
    }
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

thread_local! {
    /// A `{__data: …}` map of an earlier [`with_context`] on this thread, its value cleared,
    /// kept to be filled again: an answer and each step render in a context of their own,
    /// and building one is two allocations (the map and its entries).
    static SPARE_CONTEXT: std::cell::RefCell<Option<std::sync::Arc<crate::value::Map>>> =
        const { std::cell::RefCell::new(None) };
}

/// Calls `f` with [`context`]`(data)`, reusing this thread's spare map when nothing else holds
/// it (a result that kept the context, such as `_context`, keeps it from being reused).
pub fn with_context<T>(data: &Value, f: impl FnOnce(&Value) -> T) -> T {
    let spare = SPARE_CONTEXT.with(|s| s.borrow_mut().take());
    let ctx = match spare {
        Some(mut m) => match std::sync::Arc::get_mut(&mut m).and_then(|m| m.get_index_mut(0)) {
            Some((_, v)) => {
                *v = data.clone();
                Value::Map(m)
            }
            None => context(data),
        },
        None => context(data),
    };
    let out = f(&ctx);
    if let Value::Map(mut m) = ctx {
        if let Some((_, v)) = std::sync::Arc::get_mut(&mut m).and_then(|m| m.get_index_mut(0)) {
            // The request's data is not kept past the call.
            *v = Value::Undefined;
            SPARE_CONTEXT.with(|s| *s.borrow_mut() = Some(m));
        }
    }
    out
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
    let (tpl, escape) = match answer {
        Answer::Data(t) | Answer::Redirect(t) => (t, Escape::None),
        Answer::Html(t) => (t, Escape::Html),
    };
    let rendered = with_context(data, |ctx| {
        tpl.render_value(ctx, RenderOptions::default().with_escape(escape))
    });
    let out = match rendered {
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
    use super::{content_type_value, context, safe_location, with_context};
    use crate::Value;
    use hyper::header::HeaderValue;
    use std::sync::Arc;

    #[test]
    fn content_type_values_are_the_static_ones() {
        use crate::detect::{HTML, JSON, TEXT, XML};
        for ct in [
            JSON,
            HTML,
            TEXT,
            XML,
            "application/json; charset=utf-8",
            "text/csv",
        ] {
            let v = content_type_value(ct);
            assert_eq!(v, HeaderValue::from_static(ct));
            assert_eq!(v.to_str().unwrap(), ct);
            assert!(!v.is_sensitive());
        }
    }

    #[test]
    fn contexts_are_reused_without_keeping_the_data() {
        let data = Value::from(serde_json::json!({"ref": "A-1"}));
        let Value::Map(inner) = &data else {
            panic!("a map")
        };
        let first = with_context(&data, |ctx| {
            assert_eq!(ctx, &context(&data));
            let Value::Map(m) = ctx else { panic!("a map") };
            Arc::as_ptr(m)
        });
        assert_eq!(
            Arc::strong_count(inner),
            1,
            "the data is let go after the call"
        );
        let other = Value::from(serde_json::json!({"ref": "B-2"}));
        let second = with_context(&other, |ctx| {
            assert_eq!(ctx, &context(&other));
            let Value::Map(m) = ctx else { panic!("a map") };
            Arc::as_ptr(m)
        });
        assert_eq!(first, second, "the spare map is filled again");
        // A result that keeps the context keeps it as it was; the next call builds another.
        let kept = with_context(&data, Value::clone);
        assert_eq!(kept, context(&data));
        let third = with_context(&other, |ctx| {
            assert_eq!(ctx, &context(&other));
            let Value::Map(m) = ctx else { panic!("a map") };
            Arc::as_ptr(m)
        });
        assert_eq!(kept, context(&data), "a kept context is not refilled");
        let Value::Map(k) = &kept else {
            panic!("a map")
        };
        assert_ne!(Arc::as_ptr(k), third);
    }

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
