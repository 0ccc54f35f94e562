//! JWT authentication end to end (docs/listener.md "Authentication and CORS"): every row of the auth matrix against a real
//! server on 127.0.0.1:0, with tokens signed by hand (HMAC + base64url), independent of the
//! `jsonwebtoken` crate used by the server.
#![cfg(feature = "listener")]

mod listener_support;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use listener_support::{ep_path, hash, serve, Resp, Server};
use serde_json::{json, Value as Json};

const KEY: &str = "issuer-7f3a";
const SECRET: &str = "e2e-secret-0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn config() -> String {
    format!(
        r#"[[endpoint]]
name = "secure"
first_hash = "{a}"
second_hash = "{b}"
return_type = "data"
return_data = '''{{"ok": true, "jwt": {{{{ (__data.__headers.__jwt_data ?? null)|json_encode|raw }}}}}}'''
add_authentication = true
endpoint_key = "{{{{ 'issuer-' ~ '7f3a' }}}}"
endpoint_secret = "{SECRET}"

[[endpoint]]
name = "lax"
first_hash = "{c}"
second_hash = "{b}"
return_type = "data"
return_data = "ok"
add_authentication = true
endpoint_key = "{KEY}"
endpoint_secret = "{SECRET}"
require_exp = false
"#,
        a = hash('a'),
        b = hash('b'),
        c = hash('c'),
    )
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hmac_sig(alg: &str, secret: &str, input: &str) -> Vec<u8> {
    macro_rules! mac {
        ($h:ty) => {{
            let mut m = Hmac::<$h>::new_from_slice(secret.as_bytes()).expect("any key length");
            m.update(input.as_bytes());
            m.finalize().into_bytes().to_vec()
        }};
    }
    match alg {
        "HS256" => mac!(sha2::Sha256),
        "HS384" => mac!(sha2::Sha384),
        "HS512" => mac!(sha2::Sha512),
        _ => b"forged".to_vec(),
    }
}

/// A token with header `{"alg": header_alg}` signed with `sign_alg` (or a junk signature).
fn token_full(header_alg: &str, sign_alg: &str, secret: &str, claims: &Json) -> String {
    let input = format!(
        "{}.{}",
        b64(json!({"alg": header_alg, "typ": "JWT"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    format!("{input}.{}", b64(&hmac_sig(sign_alg, secret, &input)))
}

fn token(claims: &Json) -> String {
    token_full("HS256", "HS256", SECRET, claims)
}

async fn call(s: &Server, path: &str, headers: &[(&str, &str)]) -> Resp {
    s.request("POST", path, headers, b"{}").await
}

async fn bearer(s: &Server, t: &str) -> Resp {
    let auth = format!("Bearer {t}");
    call(s, &ep_path('a', 'b'), &[("authorization", &auth)]).await
}

/// A 401 with the right header and a body that never echoes the token or the secret.
fn assert_401(r: &Resp, t: &str, reason: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert_eq!(
        r.json(),
        json!({"error": format!("invalid token: {reason}")}),
        "{}",
        r.body
    );
    assert_no_secrets(r, t);
}

fn assert_no_secrets(r: &Resp, t: &str) {
    assert!(!r.body.contains(SECRET), "{}", r.body);
    for part in t.split('.').filter(|p| p.len() > 3) {
        assert!(!r.body.contains(part), "{}", r.body);
    }
    for (_, v) in &r.headers {
        assert!(!v.contains(SECRET) && (t.len() < 4 || !v.contains(t)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_matrix() {
    let s = serve(&config()).await;
    let n = now();
    let good = json!({"iss": KEY, "exp": n + 300, "iat": n});

    // valid, both header forms, any scheme case
    let t = token(&good);
    let r = bearer(&s, &t).await;
    assert_eq!(
        (r.status, r.json()),
        (200, json!({"ok": true, "jwt": null}))
    );
    for (name, value) in [
        ("authorization", format!("bearer {t}")),
        ("authorization", format!("BEARER {t}")),
        ("token", t.clone()),
    ] {
        let r = call(&s, &ep_path('a', 'b'), &[(name, &value)]).await;
        assert_eq!(r.status, 200, "{name}: {value} → {}", r.body);
    }

    // HS384 and HS512
    for alg in ["HS384", "HS512"] {
        let t = token_full(alg, alg, SECRET, &good);
        assert_eq!(bearer(&s, &t).await.status, 200, "{alg}");
    }

    // the data claim lands in __headers.__jwt_data as a one-item list
    let t = token(&json!({"iss": KEY, "exp": n + 300, "data": {"user": "ann", "roles": ["a"]}}));
    assert_eq!(
        bearer(&s, &t).await.json(),
        json!({"ok": true, "jwt": [{"user": "ann", "roles": ["a"]}]})
    );

    // missing token → 403, with or without a non-Bearer Authorization header
    for headers in [vec![], vec![("authorization", "Basic dXNlcjpwdw==")]] {
        let r = call(&s, &ep_path('a', 'b'), &headers).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert_eq!(r.json(), json!({"error": "missing token"}));
        assert_eq!(r.header("www-authenticate"), None);
    }

    // bad signature
    let t = token_full("HS256", "HS256", "not-the-secret", &good);
    assert_401(&bearer(&s, &t).await, &t, "bad signature");
    // header says HS512, signed HS256
    let t = token_full("HS512", "HS256", SECRET, &good);
    assert_401(&bearer(&s, &t).await, &t, "bad signature");

    // issuer: wrong, missing, list
    let t = token(&json!({"iss": "someone-else", "exp": n + 300}));
    assert_401(&bearer(&s, &t).await, &t, "wrong issuer");
    let t = token(&json!({"exp": n + 300}));
    assert_401(&bearer(&s, &t).await, &t, "missing or malformed claim iss");
    let t = token(&json!({"iss": [KEY], "exp": n + 300}));
    assert_401(&bearer(&s, &t).await, &t, "wrong issuer");

    // expiry: beyond leeway, within leeway, missing
    let t = token(&json!({"iss": KEY, "exp": n - 120}));
    assert_401(&bearer(&s, &t).await, &t, "token expired");
    let t = token(&json!({"iss": KEY, "exp": n - 20}));
    assert_eq!(bearer(&s, &t).await.status, 200, "within the 60 s leeway");
    let t = token(&json!({"iss": KEY}));
    assert_401(&bearer(&s, &t).await, &t, "missing or malformed claim exp");

    // nbf and iat in the future
    let t = token(&json!({"iss": KEY, "exp": n + 600, "nbf": n + 300}));
    assert_401(&bearer(&s, &t).await, &t, "token not yet valid");
    let t = token(&json!({"iss": KEY, "exp": n + 600, "nbf": n + 20}));
    assert_eq!(bearer(&s, &t).await.status, 200, "nbf within leeway");
    let t = token(&json!({"iss": KEY, "exp": n + 600, "iat": n + 300}));
    assert_401(&bearer(&s, &t).await, &t, "token issued in the future");

    // alg none (unsigned) and asymmetric algorithms, even HMAC-signed with the secret
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(good.to_string().as_bytes())
    );
    assert_401(&bearer(&s, &none).await, &none, "malformed token");
    for alg in ["RS256", "ES256", "PS256", "EdDSA"] {
        let t = token_full(alg, "HS256", SECRET, &good);
        assert_401(&bearer(&s, &t).await, &t, "algorithm not allowed");
    }

    // garbage
    for g in ["garbage", "a.b.c", "x.y"] {
        assert_401(&bearer(&s, g).await, g, "malformed token");
    }
    // a valid header with nothing else: the (empty) signature is checked first
    let g = "eyJhbGciOiJIUzI1NiJ9..";
    assert_401(&bearer(&s, g).await, g, "bad signature");

    // require_exp = false: a token without exp passes, an expired one does not
    let lax = ep_path('c', 'b');
    let t = token(&json!({"iss": KEY}));
    let auth = format!("Bearer {t}");
    assert_eq!(
        call(&s, &lax, &[("authorization", &auth)]).await.status,
        200
    );
    let t = token(&json!({"iss": KEY, "exp": n - 120}));
    let auth = format!("Bearer {t}");
    let r = call(&s, &lax, &[("authorization", &auth)]).await;
    assert_401(&r, &t, "token expired");

    // tokens from `flexscript token` (auth::sign) are accepted
    let t =
        flexscript::listener::auth::sign(KEY, SECRET, "HS512", 60, Some(json!(7))).expect("sign");
    assert_eq!(bearer(&s, &t).await.json(), json!({"ok": true, "jwt": [7]}));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_comes_before_the_body_is_read() {
    let s = serve(&config()).await;
    // invalid JSON would be a 400, but the missing token is answered first
    let r = s
        .request(
            "POST",
            &ep_path('a', 'b'),
            &[("content-type", "application/json")],
            b"{broken",
        )
        .await;
    assert_eq!(r.status, 403);
    s.running.shutdown().await;
}
