//! Outbound HTTP for `webhook` steps (listener.md §5). Plain `http://` only (no TLS stack is
//! linked; an `https://` URL fails with `ok = false`). Each attempt is bounded by `timeout_ms`;
//! a transport error, a timeout or a 5xx status is retried up to `retries` more times (after
//! 100 ms, 200 ms, … capped at 2 s). The response body is read up to [`MAX_BODY`] bytes. The
//! result is never an error: `{ok, status, body, headers}` (+ `error` when no usable response),
//! `ok` = 2xx, `status` = 0 without a response, `body` parsed when it is JSON, `headers` named
//! like request headers (lower case, `-` → `_`, repeated values joined with `, `).

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Map, Value as Json};
use std::time::Duration;

/// Largest webhook response body kept (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// The shared outbound client.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(10)));
    Client::builder(TokioExecutor::new()).build(connector)
}

/// One rendered webhook call.
pub struct Call {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub timeout: Duration,
    pub retries: u32,
}

fn failure(message: &str) -> Json {
    json!({"ok": false, "status": 0, "body": null, "headers": {}, "error": message})
}

/// Performs `call`; never fails (see the module docs).
pub async fn perform(client: &HttpClient, call: &Call) -> Json {
    let uri: Uri = match call.url.trim().parse() {
        Ok(u) => u,
        Err(_) => return failure("invalid URL"),
    };
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return failure("https is not supported by this runtime"),
        _ => return failure("the URL must start with http://"),
    }
    let Ok(method) = Method::from_bytes(call.method.as_bytes()) else {
        return failure("invalid method");
    };
    let mut last = failure("no attempt");
    for attempt in 0..=call.retries {
        if attempt > 0 {
            let ms = (100u64 << (attempt - 1).min(5)).min(2000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let result = tokio::time::timeout(call.timeout, once(client, call, &uri, &method)).await;
        last = match result {
            Err(_) => failure("timed out"),
            Ok(Err(e)) => failure(&e),
            Ok(Ok(r)) => r,
        };
        let status = last["status"].as_u64().unwrap_or(0);
        if status != 0 && status < 500 {
            break;
        }
    }
    last
}

async fn once(
    client: &HttpClient,
    call: &Call,
    uri: &Uri,
    method: &Method,
) -> Result<Json, String> {
    let mut builder = Request::builder().method(method.clone()).uri(uri.clone());
    let mut has_ct = false;
    for (k, v) in &call.headers {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k}"))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k}"))?;
        has_ct |= name == CONTENT_TYPE;
        builder = builder.header(name, value);
    }
    let body = call.body.clone().unwrap_or_default();
    if !has_ct && !body.is_empty() {
        builder = builder.header(CONTENT_TYPE, crate::detect::content_type(&body));
    }
    let req = builder
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| format!("invalid request: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let mut headers = Map::new();
    for (k, v) in resp.headers() {
        let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
        let k = k.as_str().replace('-', "_");
        match headers.get_mut(&k) {
            Some(Json::String(s)) => {
                s.push_str(", ");
                s.push_str(&v);
            }
            _ => {
                headers.insert(k, Json::String(v));
            }
        }
    }
    let bytes = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_str::<Json>(&text).unwrap_or(Json::String(text));
    Ok(json!({
        "ok": (200..300).contains(&status),
        "status": status,
        "body": body,
        "headers": headers,
    }))
}
