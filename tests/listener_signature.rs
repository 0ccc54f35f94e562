//! Inbound signature verification end to end (docs/security.md): `[endpoint.signature]` with
//! each scheme, signatures made here with the `hmac` crate (never with the code under test),
//! refused when stale, tampered, missing or signed with a rotated-out key; bounded work on
//! huge headers; CORS headers on failures; JWT and a signature on one endpoint; configuration
//! errors at load.
mod listener_support;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use listener_support::*;
use std::time::{Duration, Instant};

const WHSEC: &str = "whsec_c2lnbmluZy1rZXktb25l"; // base64("signing-key-one")
const WHSEC_OLD: &str = "whsec_b2xkLWtleQ=="; // base64("old-key")
const GH: &str = "gh-secret";
const STRIPE: &str = "whsec_stripe_is_used_raw";
const SHOP: &str = "shop-secret-from-env";
const JWT_SECRET: &str = "jwt-secret-0123456789";

fn ep(n: usize, extra: &str, signature: &str) -> String {
    format!(
        r#"[[endpoint]]
name = "sig{n}"
first_hash = "{h}"
second_hash = "{h}"
return_type = "data"
return_data = '''{{"n": {{{{ __data.n ?? 0 }}}}}}'''
allow_cors = true
cors_domains = "https://app.example"
{extra}

[endpoint.signature]
{signature}
"#,
        h = h(n)
    )
}

fn config() -> String {
    [
        ep(1, "", &format!("scheme = \"standard-webhooks\"\nsecret = \"{WHSEC}\"")),
        ep(2, "", &format!("scheme = \"github\"\nsecret = \"{GH}\"")),
        ep(
            3,
            "",
            &format!("scheme = \"stripe\"\nsecret = \"{STRIPE}\"\ntolerance_s = 60"),
        ),
        ep(
            4,
            "",
            "scheme = \"hmac-sha256\"\nheader = \"X-Shopify-Hmac-Sha256\"\nencoding = \"base64\"\nsecret = \"{{ env('FLEXSCRIPT_TEST_SIG_SECRET') }}\"",
        ),
        ep(
            5,
            &format!("add_authentication = true\nendpoint_key = \"issuer\"\nendpoint_secret = \"{JWT_SECRET}\""),
            &format!("scheme = \"hmac-sha256\"\nsecret = \"{GH}\""),
        ),
    ]
    .concat()
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard Webhooks headers for `body`, signed with the base64 key of `whsec` at `ts`.
fn standard(whsec: &str, id: &str, ts: i64, body: &str) -> Vec<(String, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(whsec.trim_start_matches("whsec_"))
        .unwrap();
    let sig = b64(&mac(&key, format!("{id}.{ts}.{body}").as_bytes()));
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

async fn post(s: &Server, n: usize, headers: &[(String, String)], body: &str) -> Resp {
    let mut hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hs.push(("content-type", "application/json"));
    hs.push(("origin", "https://app.example"));
    s.request("POST", &path(n), &hs, body.as_bytes()).await
}

fn assert_refused(r: &Resp, status: u16, error: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.json()["error"], error);
    // Same CORS behaviour as JWT failures: the browser can read the error.
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    for secret in [WHSEC, "c2lnbmluZy1rZXktb25l", GH, STRIPE, SHOP] {
        assert!(!r.body.contains(secret));
        assert!(r.headers.iter().all(|(_, v)| !v.contains(secret)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_scheme_accepts_a_real_signature_and_refuses_bad_ones() {
    std::env::set_var("FLEXSCRIPT_TEST_SIG_SECRET", SHOP);
    let s = serve(&config()).await;
    let body = r#"{"n": 7}"#;
    let t = now();

    // standard-webhooks
    let ok = standard(WHSEC, "msg_1", t, body);
    let r = post(&s, 1, &ok, body).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n": 7}"#));
    let r = post(&s, 1, &ok, r#"{"n": 8}"#).await;
    assert_refused(&r, 401, "invalid signature: signature mismatch");
    let stale = standard(WHSEC, "msg_1", t - 301, body);
    assert_refused(
        &post(&s, 1, &stale, body).await,
        401,
        "invalid signature: timestamp outside the tolerance",
    );
    let future = standard(WHSEC, "msg_1", t + 301, body);
    assert_refused(
        &post(&s, 1, &future, body).await,
        401,
        "invalid signature: timestamp outside the tolerance",
    );
    let old = standard(WHSEC_OLD, "msg_1", t, body);
    assert_refused(
        &post(&s, 1, &old, body).await,
        401,
        "invalid signature: signature mismatch",
    );
    // Sender-side rotation: the old and the new signature in one header.
    let mut both = old.clone();
    both[2].1 = format!("{} {}", old[2].1, ok[2].1);
    assert_eq!(post(&s, 1, &both, body).await.status, 200);
    assert_refused(&post(&s, 1, &ok[..2], body).await, 403, "missing signature");
    assert_refused(&post(&s, 1, &[], body).await, 403, "missing signature");

    // github
    let gh = |key: &str, b: &str| {
        vec![(
            "x-hub-signature-256".to_string(),
            format!("sha256={}", hex::encode(mac(key.as_bytes(), b.as_bytes()))),
        )]
    };
    assert_eq!(post(&s, 2, &gh(GH, body), body).await.status, 200);
    assert_refused(
        &post(&s, 2, &gh(GH, body), r#"{"n": 9}"#).await,
        401,
        "invalid signature: signature mismatch",
    );
    assert_refused(
        &post(&s, 2, &gh("rotated-out", body), body).await,
        401,
        "invalid signature: signature mismatch",
    );
    assert_refused(&post(&s, 2, &[], body).await, 403, "missing signature");

    // stripe: `t.body`, the whole secret string as the key, tolerance 60 s
    let stripe = |key: &str, ts: i64, b: &str| {
        let v1 = hex::encode(mac(key.as_bytes(), format!("{ts}.{b}").as_bytes()));
        vec![(
            "stripe-signature".to_string(),
            format!("t={ts},v1={},v1={v1},v0=deadbeef", "ab".repeat(32)),
        )]
    };
    assert_eq!(
        post(&s, 3, &stripe(STRIPE, t, body), body).await.status,
        200
    );
    assert_refused(
        &post(&s, 3, &stripe(STRIPE, t - 61, body), body).await,
        401,
        "invalid signature: timestamp outside the tolerance",
    );
    assert_refused(
        &post(&s, 3, &stripe(STRIPE, t, body), "{}").await,
        401,
        "invalid signature: signature mismatch",
    );
    assert_refused(
        &post(&s, 3, &stripe("whsec_old", t, body), body).await,
        401,
        "invalid signature: signature mismatch",
    );
    let malformed = vec![("stripe-signature".to_string(), "v1=zz".to_string())];
    assert_refused(
        &post(&s, 3, &malformed, body).await,
        401,
        "invalid signature: no timestamp",
    );

    // hmac-sha256, base64 in a custom header, secret from env()
    let shop = |key: &str, b: &str| {
        vec![(
            "X-Shopify-Hmac-Sha256".to_string(),
            b64(&mac(key.as_bytes(), b.as_bytes())),
        )]
    };
    assert_eq!(post(&s, 4, &shop(SHOP, body), body).await.status, 200);
    assert_refused(
        &post(&s, 4, &shop(SHOP, body), "{\"n\": 70}").await,
        401,
        "invalid signature: signature mismatch",
    );
    assert_refused(
        &post(&s, 4, &shop("old", body), body).await,
        401,
        "invalid signature: signature mismatch",
    );
    let not_b64 = vec![("X-Shopify-Hmac-Sha256".to_string(), "%%%".to_string())];
    assert_refused(
        &post(&s, 4, &not_b64, body).await,
        401,
        "invalid signature: malformed signature",
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_signature_headers_are_refused_quickly() {
    let s = serve(&config()).await;
    let body = "{}";
    let t = now();
    let mut cases = Vec::new();
    let long = "a".repeat(10 * 1024);
    cases.push((
        2,
        vec![("x-hub-signature-256".to_string(), long.clone())],
        "invalid signature: signature header too long",
    ));
    let mut std_long = standard(WHSEC, "m", t, body);
    std_long[2].1 = format!("v1,{long}");
    cases.push((1, std_long, "invalid signature: signature header too long"));
    let thousand = vec!["v1=00"; 1000].join(",");
    cases.push((
        3,
        vec![("stripe-signature".to_string(), format!("t={t},{thousand}"))],
        "invalid signature: signature header too long",
    ));
    let many = vec!["sha256=00"; 300].join(",");
    cases.push((
        2,
        vec![("x-hub-signature-256".to_string(), many.clone())],
        "invalid signature: too many signatures",
    ));
    let short_entries = vec!["x"; 1000].join(",");
    cases.push((
        2,
        vec![("x-hub-signature-256".to_string(), short_entries)],
        "invalid signature: too many signatures",
    ));
    for (n, headers, error) in cases {
        let started = Instant::now();
        let r = post(&s, n, &headers, body).await;
        assert_refused(&r, 401, error);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_and_signature_together() {
    let s = serve(&config()).await;
    let body = r#"{"n": 5}"#;
    let sig = (
        "x-signature".to_string(),
        hex::encode(mac(GH.as_bytes(), body.as_bytes())),
    );
    let token =
        flexscript::listener::auth::sign("issuer", JWT_SECRET, "HS256", 300, None).expect("token");
    let bearer = ("authorization".to_string(), format!("Bearer {token}"));
    // JWT comes first: without a token the signature is not looked at.
    let r = post(&s, 5, std::slice::from_ref(&sig), body).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (403, Some("missing token"))
    );
    let r = post(&s, 5, std::slice::from_ref(&bearer), body).await;
    assert_refused(&r, 403, "missing signature");
    let r = post(&s, 5, &[bearer.clone(), sig.clone()], "{\"n\": 6}").await;
    assert_refused(&r, 401, "invalid signature: signature mismatch");
    let r = post(&s, 5, &[bearer, sig], body).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"{"n": 5}"#));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_renders_empty_is_a_500_not_a_401() {
    let cfg = ep(
        1,
        "",
        "scheme = \"github\"\nsecret = \"{{ env('FLEXSCRIPT_TEST_SIG_UNSET') }}\"",
    );
    let s = serve(&cfg).await;
    let sig = vec![("x-hub-signature-256".to_string(), "sha256=00".to_string())];
    let r = post(&s, 1, &sig, "{}").await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(
        r.json()["error"],
        "the endpoint settings could not be rendered"
    );
    // Without the header the answer is still 403 (checked first, no secret needed).
    assert_refused(&post(&s, 1, &[], "{}").await, 403, "missing signature");
    s.running.shutdown().await;
}

#[test]
fn bad_signature_tables_are_configuration_errors() {
    let cfg = [
        ep(1, "", "scheme = \"hmac-sha1\"\nsecret = \"x\""),
        ep(2, "", "scheme = \"github\"\nsecret = \"\""),
        ep(3, "", "scheme = \"github\"\nsecret = \"x\"\ntolerance_s = 10\nencoding = \"hex\""),
        ep(4, "", "scheme = \"standard-webhooks\"\nsecret = \"whsec_***\""),
        ep(5, "", "scheme = \"hmac-sha256\"\nsecret = \"x\"\nencoding = \"base32\"\nheader = \"bad header\""),
        ep(6, "", "secret = \"x\"\ncolour = \"red\""),
        ep(7, "", "scheme = \"stripe\"\nsecret = \"x\"\ntolerance_s = 0"),
    ]
    .concat();
    let file = write_config(&cfg);
    let (errors, _) = flexscript::listener::check_config(file.path());
    let text = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    for want in [
        "endpoint[0].signature.scheme: unknown scheme `hmac-sha1` (one of standard-webhooks, github, stripe, hmac-sha256)",
        "endpoint[1].signature.secret: must not be empty",
        "endpoint[2].signature.tolerance_s: only for the timestamped schemes",
        "endpoint[2].signature.encoding: only for scheme = \"hmac-sha256\"",
        "endpoint[3].signature.secret: the secret after whsec_ is not valid base64",
        "endpoint[4].signature.encoding: must be \"hex\" or \"base64\"",
        "endpoint[4].signature.header: must be a valid header name",
        "endpoint[5].signature.scheme: is required",
        "endpoint[5].signature.colour: unknown field",
        "endpoint[6].signature.tolerance_s: must be an integer from 1 to 86400",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // The CLI reports them too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_flexscript"))
        .args(["check", file.path().to_str().unwrap()])
        .output()
        .expect("run flexscript check");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stderr.contains("unknown scheme `hmac-sha1`")
            || stdout.contains("unknown scheme `hmac-sha1`"),
        "{stdout}\n{stderr}"
    );
}
