//! `examples/endpoints.toml` loads with the config loader and every demo endpoint answers, once
//! each, over a real socket. The file is copied with its port replaced by a free one, so the
//! order-intake webhook reaches the demo's own invoice endpoint as it does when served on 8080.
#![cfg(feature = "listener")]

mod listener_support;

use listener_support::{request, temp_dir, Stream};
use serde_json::json;
use std::time::Duration;

const INVOICE: &str = "/listener/9f2c4e1a7b3d5f60a1c2e3f405162738/41d0b2c3d4e5f60718293a4b5c6d7e8f";
const LOOKUP: &str = "/listener/0a1b2c3d4e5f60718293a4b5c6d7e8f9/f9e8d7c6b5a403928170f6e5d4c3b2a1";
const STREAM: &str = "/listener/1234567890abcdef1234567890abcdef/fedcba0987654321fedcba0987654321";
const THANKS: &str = "/listener/aaaabbbbccccddddeeeeffff00001111/22223333444455556666777788889999";
const CAMPAIGN: &str =
    "/listener/3d4e5f60718293a4b5c6d7e8f90a1b2c/c6b5a49382716051f4e3d2c1b0f9e8d7";
const ORDER: &str = "/listener/4e5f60718293a4b5c6d7e8f90a1b2c3d/b5a49382716051f4e3d2c1b0f9e8d7c6";
const DEMO_SECRET: &str = "demo-secret-for-the-example-test-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_endpoint_answers() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let dir = temp_dir();
    let text = std::fs::read_to_string(examples.join("endpoints.toml")).expect("read demo");
    let text = text.replace("127.0.0.1:8080", &addr.to_string());
    std::fs::write(dir.join("endpoints.toml"), text).expect("write");
    std::fs::copy(examples.join("records.json"), dir.join("records.json")).expect("copy");
    let path = dir.join("endpoints.toml");

    let config = flexscript::listener::load_config(&path).expect("the demo loads");
    assert_eq!(config.endpoints.len(), 6);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    // The only process-wide state this test binary touches; set before the server starts.
    // SAFETY: no other thread of this test binary reads or writes the environment yet.
    unsafe { std::env::set_var("DEMO_ENDPOINT_SECRET", DEMO_SECRET) };
    let running = flexscript::listener::start(&path, Some(addr))
        .await
        .expect("the demo serves");
    let json_ct = [("content-type", "application/json")];

    // data
    let r = request(
        addr,
        "POST",
        INVOICE,
        &json_ct,
        br#"{"case_ref": "INV-1", "customer_email": "ann@example.com"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.json(), json!({"status": "received", "ref": "INV-1"}));

    // continue with records
    let r = request(
        addr,
        "GET",
        &format!("{LOOKUP}?email=bob@example.com"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.json()["tier"], "silver");

    // sse
    let mut s = Stream::open(addr, "GET", STREAM, &[]).await;
    assert_eq!(s.status, 200);
    let limit = Duration::from_secs(10);
    assert_eq!(
        s.next_frame(limit).await.as_deref(),
        Some("id: 1\nevent: progress\ndata: 0%")
    );
    let mut frames = Vec::new();
    while let Some(f) = s.next_frame(limit).await {
        frames.push(f);
    }
    assert!(
        frames.last().is_some_and(|f| f.starts_with("event: end")),
        "{frames:?}"
    );

    // html with JWT authentication and CORS
    let token = flexscript::listener::auth::sign("demo-issuer", DEMO_SECRET, "HS256", 60, None)
        .expect("sign");
    let auth = format!("Bearer {token}");
    let origin = "https://app.example.com";
    let r = request(
        addr,
        "GET",
        &format!("{THANKS}?name=%3Cb%3EAnn"),
        &[("authorization", &auth), ("origin", origin)],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, "<h1>Thanks, &lt;b&gt;Ann!</h1>");
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    let r = request(addr, "GET", THANKS, &[], b"").await;
    assert_eq!(r.status, 403);

    // redirect
    let r = request(
        addr,
        "POST",
        CAMPAIGN,
        &[("content-type", "application/x-www-form-urlencoded")],
        b"campaign=spring+sale",
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("https://www.example.com/landing?utm_campaign=spring%20sale")
    );

    // continue: condition → store → webhook → respond, and the `no` branch
    let r = request(
        addr,
        "POST",
        ORDER,
        &json_ct,
        br#"{"order_id": 9, "email": "ann@example.com", "items": [{"qty": 2, "price": 3.5}, {"qty": 1, "price": 10}]}"#,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"status": "accepted", "total": 17, "forwarded": true, "ref": "ORD-9"})
    );
    let r = request(addr, "POST", ORDER, &json_ct, b"{}").await;
    assert_eq!(
        r.json(),
        json!({"status": "rejected", "reason": "email is required"})
    );
    running.shutdown().await;
}
