//! CORS end to end (docs/listener.md "Authentication and CORS"): allowed, denied and `*` origins, the preflight answered
//! before authentication (Flexie's "gotcha" fixed), CORS headers on error responses,
//! `allow_cors = false`, and a bare OPTIONS.
#![cfg(feature = "listener")]

mod listener_support;

use listener_support::{ep_path, hash, serve, Resp};

const APP: &str = "https://app.example.com";

fn config() -> String {
    format!(
        r#"[[endpoint]]
name = "listed"
first_hash = "{a}"
second_hash = "{b}"
return_type = "data"
return_data = '{{"ok": true}}'
allow_cors = true
cors_domains = "{{{{ 'https://app.example.com' }}}}, http://localhost:3000/"

[[endpoint]]
name = "star"
first_hash = "{c}"
second_hash = "{b}"
return_type = "data"
return_data = "star"
allow_cors = true
cors_domains = "*"

[[endpoint]]
name = "secure"
first_hash = "{d}"
second_hash = "{b}"
return_type = "data"
return_data = '{{"secure": true}}'
add_authentication = true
endpoint_key = "k"
endpoint_secret = "cors-secret-1234567890"
allow_cors = true
cors_domains = "{APP}"

[[endpoint]]
name = "no cors"
first_hash = "{e}"
second_hash = "{b}"
return_type = "data"
return_data = "plain"
"#,
        a = hash('a'),
        b = hash('b'),
        c = hash('c'),
        d = hash('d'),
        e = hash('e'),
    )
}

fn assert_cors(r: &Resp, origin: &str) {
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some(origin),
        "{r:?}"
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("WWW-Authenticate, Allow, Location, Retry-After")
    );
}

fn assert_no_cors(r: &Resp) {
    for (k, _) in &r.headers {
        assert!(!k.starts_with("access-control-"), "{r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_denied_and_star() {
    let s = serve(&config()).await;
    let listed = ep_path('a', 'b');
    // allowed, echoed verbatim; normalisation matches case, default port and trailing slash
    for origin in [APP, "https://APP.example.com:443", "http://localhost:3000"] {
        let r = s.request("GET", &listed, &[("origin", origin)], b"").await;
        assert_eq!(r.status, 200);
        assert_cors(&r, origin);
    }
    // denied or absent: no CORS headers, the request itself is still answered
    for origin in [
        "https://evil.example.com",
        "http://app.example.com",
        "https://app.example.com.evil.io",
        "null",
    ] {
        let r = s.request("GET", &listed, &[("origin", origin)], b"").await;
        assert_eq!(r.status, 200);
        assert_no_cors(&r);
    }
    assert_no_cors(&s.get(&listed).await);
    // `*`
    let star = ep_path('c', 'b');
    let r = s
        .request("POST", &star, &[("origin", "https://anyone.example")], b"x")
        .await;
    assert_cors(&r, "*");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_is_answered_before_authentication() {
    let s = serve(&config()).await;
    let secure = ep_path('d', 'b');
    let r = s
        .request(
            "OPTIONS",
            &secure,
            &[
                ("origin", APP),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "Authorization, Content-Type, X-Trace-Id",
                ),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, POST, PUT, OPTIONS")
    );
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("authorization, token, content-type, x-trace-id")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.body, "");

    // disallowed origin: 403 without CORS headers
    let r = s
        .request(
            "OPTIONS",
            &secure,
            &[
                ("origin", "https://evil.example.com"),
                ("access-control-request-method", "POST"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 403);
    assert_no_cors(&r);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_carry_cors_headers() {
    let s = serve(&config()).await;
    let secure = ep_path('d', 'b');
    // 403 missing token
    let r = s.request("GET", &secure, &[("origin", APP)], b"").await;
    assert_eq!(r.status, 403);
    assert_cors(&r, APP);
    // 401 invalid token
    let r = s
        .request(
            "GET",
            &secure,
            &[("origin", APP), ("authorization", "Bearer not.a.token")],
            b"",
        )
        .await;
    assert_eq!(r.status, 401);
    assert_cors(&r, APP);
    assert!(r.header("www-authenticate").is_some());
    // 405 on a known endpoint
    let listed = ep_path('a', 'b');
    let r = s.request("DELETE", &listed, &[("origin", APP)], b"").await;
    assert_eq!(r.status, 405);
    assert_cors(&r, APP);
    // 400 invalid JSON
    let r = s
        .request(
            "POST",
            &listed,
            &[("origin", APP), ("content-type", "application/json")],
            b"{nope",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_cors(&r, APP);
    // an authenticated success also carries them
    let t = flexscript::listener::auth::sign("k", "cors-secret-1234567890", "HS256", 60, None)
        .expect("sign");
    let auth = format!("Bearer {t}");
    let r = s
        .request(
            "GET",
            &secure,
            &[("origin", APP), ("authorization", &auth)],
            b"",
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "{\"secure\": true}"));
    assert_cors(&r, APP);
    // unknown hashes are not an endpoint: 404, no CORS policy applies
    let r = s
        .request("GET", &ep_path('f', 'b'), &[("origin", APP)], b"")
        .await;
    assert_eq!(r.status, 404);
    assert_no_cors(&r);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_no_headers_and_bare_options() {
    let s = serve(&config()).await;
    let plain = ep_path('e', 'b');
    let r = s
        .request("GET", &plain, &[("origin", "https://app.example.com")], b"")
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "plain"));
    assert_no_cors(&r);
    // a preflight to an endpoint without CORS is a bare OPTIONS
    for headers in [
        vec![],
        vec![("origin", APP), ("access-control-request-method", "POST")],
    ] {
        let r = s.request("OPTIONS", &plain, &headers, b"").await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("allow"), Some("GET, POST, PUT, OPTIONS"));
        assert_no_cors(&r);
    }
    // a bare OPTIONS (no preflight headers) on an authenticated endpoint needs no token
    let r = s.request("OPTIONS", &ep_path('d', 'b'), &[], b"").await;
    assert_eq!(r.status, 204);
    assert_eq!(r.header("allow"), Some("GET, POST, PUT, OPTIONS"));
    s.running.shutdown().await;
}
