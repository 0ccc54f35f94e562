//! `GET /dynamic-endpoints` (docs/listener.md "Responses"): the published endpoints for a caller holding the
//! server's `api_key` (header `apikey` or `?apikey=`, compared in constant time). No `api_key`
//! configured → 404 (as if the route did not exist); wrong or missing key → 401; another
//! method → 405. Never lists keys, secrets or steps.

use super::config::Config;
use super::respond::{json, json_error, Body};
use crate::builtins::crypto::ct_eq;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response, StatusCode};

fn query_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == "apikey").then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// Answers the listing request.
pub fn answer<B>(config: &Config, req: &Request<B>) -> Response<Body> {
    let Some(api_key) = &config.server.api_key else {
        return json_error(StatusCode::NOT_FOUND, "not found");
    };
    if req.method() != Method::GET {
        let mut r = json_error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    let given = req
        .headers()
        .get("apikey")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or_else(|| req.uri().query().and_then(query_key));
    let ok = given.is_some_and(|g| ct_eq(g.as_bytes(), api_key.as_bytes()));
    if !ok {
        return json_error(StatusCode::UNAUTHORIZED, "invalid or missing api key");
    }
    let list: Vec<serde_json::Value> = config
        .endpoints
        .iter()
        .filter(|e| e.published)
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "url": e.path(),
                "methods": super::cors::METHODS,
                "return_type": e.return_type.name(),
                "add_authentication": e.auth.is_some(),
                "allow_cors": e.cors.is_some(),
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::Value::Array(list))
}
