//! CORS for endpoints with `allow_cors = true` (docs/listener.md "Authentication and CORS").
//!
//! Contract:
//! - [`CorsPolicy::parse`] takes the *rendered* `cors_domains`: split on commas, trimmed, empty
//!   entries ignored; an entry `*` allows any origin. Origins compare exactly after normalisation
//!   (lower-case scheme and host, default port `:80`/`:443` dropped, trailing `/` dropped).
//! - [`CorsPolicy::response_headers`] — for every response, errors included — gives
//!   `Access-Control-Allow-Origin` (the request's `Origin` verbatim, or `*` for a `*` policy),
//!   `Vary: Origin` and `Access-Control-Expose-Headers` (the non-simple headers this runtime
//!   sends). A `*` policy answers even without an `Origin`; a list policy only to a listed one.
//! - [`CorsPolicy::preflight`] answers an allowed preflight with the headers of a 204
//!   (`Allow-Methods: GET, POST, PUT, OPTIONS`, `Allow-Headers`: `authorization, token,
//!   content-type` plus every requested header that is a valid header name, `Max-Age: 600`);
//!   a disallowed origin is `Err(())` (→ 403 without CORS headers).

use hyper::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use hyper::http::{HeaderMap, HeaderName, HeaderValue, Method};

/// The methods an endpoint answers: one list for the handler's 405 and `Allow`, the CORS
/// preflight and the `/dynamic-endpoints` listing.
pub const METHODS: [&str; 4] = ["GET", "POST", "PUT", "OPTIONS"];
/// [`METHODS`] as a header value (`Allow`, `Access-Control-Allow-Methods`); a unit test keeps
/// the two equal.
pub const ALLOW_METHODS: &str = "GET, POST, PUT, OPTIONS";
/// Request headers always allowed by a preflight answer.
pub const BASE_ALLOW_HEADERS: [&str; 3] = ["authorization", "token", "content-type"];
/// Non-simple response headers the runtime may send, exposed to browser code.
pub const EXPOSE_HEADERS: &str = "WWW-Authenticate, Allow, Location, Retry-After";
/// `Access-Control-Max-Age` of preflight answers, in seconds.
pub const MAX_AGE: &str = "600";
/// At most this many requested headers are echoed by a preflight answer.
const MAX_REQUESTED_HEADERS: usize = 64;

/// The allowed origins of one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<String>,
}

impl CorsPolicy {
    /// From the *rendered* `cors_domains` (comma list, or "*").
    pub fn parse(rendered_domains: &str) -> CorsPolicy {
        let mut any = false;
        let mut origins = Vec::new();
        for entry in rendered_domains.split(',').map(str::trim) {
            if entry == "*" {
                any = true;
            } else if !entry.is_empty() {
                let n = normalize_origin(entry);
                if !origins.contains(&n) {
                    origins.push(n);
                }
            }
        }
        CorsPolicy { any, origins }
    }

    /// True when the policy allows every origin.
    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// The `Access-Control-Allow-Origin` value for this `Origin`, or `None` when not allowed.
    fn allow_origin(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let origin = origin?;
        let text = origin.to_str().ok()?;
        let n = normalize_origin(text.trim());
        self.origins.contains(&n).then(|| origin.clone())
    }

    /// Headers for an ordinary response (incl. errors) to a request with this Origin; empty if
    /// not allowed.
    pub fn response_headers(&self, origin: Option<&HeaderValue>) -> Vec<(HeaderName, HeaderValue)> {
        match self.allow_origin(origin) {
            None => Vec::new(),
            Some(allow) => vec![
                (ACCESS_CONTROL_ALLOW_ORIGIN, allow),
                (VARY, HeaderValue::from_static("Origin")),
                (
                    ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                ),
            ],
        }
    }

    /// Answer to a preflight: Ok(headers for the 204) or Err(()) → 403 without CORS headers.
    #[allow(clippy::result_unit_err)]
    pub fn preflight(&self, headers: &HeaderMap) -> Result<Vec<(HeaderName, HeaderValue)>, ()> {
        let origin = headers.get(ORIGIN).ok_or(())?;
        let allow = self.allow_origin(Some(origin)).ok_or(())?;
        let mut names: Vec<String> = BASE_ALLOW_HEADERS.iter().map(|s| s.to_string()).collect();
        for value in headers.get_all(ACCESS_CONTROL_REQUEST_HEADERS) {
            let Ok(text) = value.to_str() else { continue };
            for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if names.len() >= BASE_ALLOW_HEADERS.len() + MAX_REQUESTED_HEADERS {
                    break;
                }
                if let Ok(valid) = HeaderName::from_bytes(name.as_bytes()) {
                    let lower = valid.as_str().to_string();
                    if !names.contains(&lower) {
                        names.push(lower);
                    }
                }
            }
        }
        let allow_headers = HeaderValue::from_str(&names.join(", ")).map_err(|_| ())?;
        Ok(vec![
            (ACCESS_CONTROL_ALLOW_ORIGIN, allow),
            (VARY, HeaderValue::from_static("Origin")),
            (
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            ),
            (ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
            (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static(MAX_AGE)),
        ])
    }
}

/// True when the request is a CORS preflight (OPTIONS + Origin + Access-Control-Request-Method).
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(ORIGIN)
        && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// Normalises an origin for comparison: `HTTPS://App.Example.com:443/` → `https://app.example.com`.
/// Text that is not `scheme://authority` is only lower-cased and stripped of trailing `/`.
pub fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/');
    let Some((scheme, rest)) = origin.split_once("://") else {
        return origin.to_ascii_lowercase();
    };
    let scheme = scheme.to_ascii_lowercase();
    // an origin has no path; if one is configured, keep it verbatim after the authority
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.to_ascii_lowercase();
    let host_port = match authority.rsplit_once(':') {
        // `]` check: an IPv6 literal without a port, e.g. `[::1]`
        Some((host, port)) if !port.contains(']') => {
            let default = matches!((scheme.as_str(), port), ("http", "80") | ("https", "443"));
            if default {
                host.to_string()
            } else {
                authority.clone()
            }
        }
        _ => authority.clone(),
    };
    format!("{scheme}://{host_port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_methods_is_the_method_list() {
        assert_eq!(ALLOW_METHODS, METHODS.join(", "));
    }

    fn hv(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    fn get<'a>(h: &'a [(HeaderName, HeaderValue)], name: &HeaderName) -> Option<&'a str> {
        h.iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn normalisation() {
        for (a, b) in [
            ("https://App.Example.com", "https://app.example.com"),
            ("HTTPS://app.example.com:443/", "https://app.example.com"),
            ("http://app.example.com:80", "http://app.example.com"),
            ("http://app.example.com:443", "http://app.example.com:443"),
            (
                "https://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://[::1]", "http://[::1]"),
            ("http://[::1]:80", "http://[::1]"),
            ("null", "null"),
        ] {
            assert_eq!(normalize_origin(a), b, "{a}");
        }
    }

    #[test]
    fn parse_lists_and_star() {
        let p = CorsPolicy::parse(" https://a.example.com , https://B.example.com/,, ");
        assert!(!p.allows_any());
        assert_eq!(
            p.origins,
            ["https://a.example.com", "https://b.example.com"]
        );
        assert!(CorsPolicy::parse("*").allows_any());
        assert!(CorsPolicy::parse("https://a.example.com, *").allows_any());
        assert_eq!(CorsPolicy::parse("").origins.len(), 0);
    }

    #[test]
    fn allowed_origin_is_echoed_with_vary_and_expose() {
        let p = CorsPolicy::parse("https://app.example.com, https://staging.example.com");
        for origin in [
            "https://app.example.com",
            "https://APP.example.com:443",
            "https://staging.example.com/",
        ] {
            let h = p.response_headers(Some(&hv(origin)));
            assert_eq!(get(&h, &ACCESS_CONTROL_ALLOW_ORIGIN), Some(origin));
            assert_eq!(get(&h, &VARY), Some("Origin"));
            assert_eq!(
                get(&h, &ACCESS_CONTROL_EXPOSE_HEADERS),
                Some(EXPOSE_HEADERS)
            );
        }
    }

    #[test]
    fn disallowed_or_missing_origin_gets_nothing() {
        let p = CorsPolicy::parse("https://app.example.com");
        for origin in [
            "https://evil.example.com",
            "http://app.example.com",
            "https://app.example.com:8443",
            "https://app.example.com.evil.com",
            "null",
        ] {
            assert!(p.response_headers(Some(&hv(origin))).is_empty(), "{origin}");
        }
        assert!(p.response_headers(None).is_empty());
        assert!(CorsPolicy::parse("")
            .response_headers(Some(&hv("x")))
            .is_empty());
    }

    #[test]
    fn star_allows_everyone() {
        let p = CorsPolicy::parse("*");
        for origin in [Some(hv("https://x.example")), Some(hv("null")), None] {
            let h = p.response_headers(origin.as_ref());
            assert_eq!(get(&h, &ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
            assert_eq!(get(&h, &VARY), Some("Origin"));
        }
    }

    fn preflight_headers(origin: &str, requested: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, hv(origin));
        h.insert(ACCESS_CONTROL_REQUEST_METHOD, hv("POST"));
        if let Some(r) = requested {
            h.insert(ACCESS_CONTROL_REQUEST_HEADERS, hv(r));
        }
        h
    }

    #[test]
    fn preflight_answer() {
        let p = CorsPolicy::parse("https://app.example.com");
        let h = p
            .preflight(&preflight_headers(
                "https://app.example.com",
                Some("Authorization, X-Custom-Thing, Content-Type"),
            ))
            .unwrap();
        assert_eq!(
            get(&h, &ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://app.example.com")
        );
        assert_eq!(get(&h, &ACCESS_CONTROL_ALLOW_METHODS), Some(ALLOW_METHODS));
        assert_eq!(
            get(&h, &ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization, token, content-type, x-custom-thing")
        );
        assert_eq!(get(&h, &ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert_eq!(get(&h, &VARY), Some("Origin"));
        // nothing requested: the base set
        let h = p
            .preflight(&preflight_headers("https://app.example.com", None))
            .unwrap();
        assert_eq!(
            get(&h, &ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization, token, content-type")
        );
        // invalid names are dropped
        let h = p
            .preflight(&preflight_headers(
                "https://app.example.com",
                Some("x-ok, bad header, (x), "),
            ))
            .unwrap();
        assert_eq!(
            get(&h, &ACCESS_CONTROL_ALLOW_HEADERS),
            Some("authorization, token, content-type, x-ok")
        );
    }

    #[test]
    fn preflight_refusals() {
        let p = CorsPolicy::parse("https://app.example.com");
        assert_eq!(
            p.preflight(&preflight_headers("https://evil.example.com", None)),
            Err(())
        );
        assert_eq!(p.preflight(&HeaderMap::new()), Err(()));
        let star = CorsPolicy::parse("*");
        let h = star
            .preflight(&preflight_headers("https://any.example", None))
            .unwrap();
        assert_eq!(get(&h, &ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
    }

    #[test]
    fn many_requested_headers_are_capped() {
        let many: Vec<String> = (0..500).map(|i| format!("x-h{i}")).collect();
        let p = CorsPolicy::parse("*");
        let h = p
            .preflight(&preflight_headers(
                "https://a.example",
                Some(&many.join(",")),
            ))
            .unwrap();
        let allowed = get(&h, &ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
        assert_eq!(allowed.split(", ").count(), 3 + MAX_REQUESTED_HEADERS);
    }

    #[test]
    fn preflight_detection() {
        let h = preflight_headers("https://a.example", None);
        assert!(is_preflight(&Method::OPTIONS, &h));
        assert!(!is_preflight(&Method::POST, &h));
        let mut bare = HeaderMap::new();
        assert!(!is_preflight(&Method::OPTIONS, &bare));
        bare.insert(ORIGIN, hv("https://a.example"));
        assert!(!is_preflight(&Method::OPTIONS, &bare));
    }
}
