//! Operations over real sockets (docs/operations.md): `/healthz`, `/readyz` with pluggable
//! checks, `/metrics` (contents, the admin key, counters that move), the `admin_addr`
//! listener, the new `[server]` fields in `flexscript check`, and JSON log lines from a real
//! `flexscript serve` child process.
mod listener_support;

use flexscript::listener::{check_config, Options, ReadyCheck};
use listener_support::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");
const KEY: &str = "ops-admin-key-0123456789";

/// Endpoint `name` at `ep_path(c, c)` answering `return_data`, with extra fields and steps.
fn endpoint(name: &str, c: char, extra: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"{name}\"\nfirst_hash = \"{h}\"\nsecond_hash = \"{h}\"\nreturn_type = \"data\"\nreturn_data = '''{{\"ok\": true}}'''\n{extra}\n",
        h = hash(c)
    )
}

/// The value of one series (`name{labels}`) in a Prometheus text exposition.
fn series(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn metrics(s: &Server) -> String {
    let r = s
        .request(
            "GET",
            "/metrics",
            &[("authorization", &format!("Bearer {KEY}"))],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// Polls `/metrics` until `name` has `want` (30 s at most).
async fn wait_series(s: &Server, name: &str, want: f64) -> String {
    let t = Instant::now();
    loop {
        let text = metrics(s).await;
        if series(&text, name) == Some(want) {
            return text;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{name} never reached {want}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_need_no_key_and_reveal_nothing() {
    let s = serve(&endpoint("a", 'a', "")).await;
    for path in ["/healthz", "/readyz"] {
        let r = s.get(path).await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "{path}");
        assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let r = s.request("HEAD", path, &[], b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, ""), "HEAD {path}");
        let r = s.request("POST", path, &[], b"").await;
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    // Without admin_key there are no admin routes at all, with or without a key.
    for headers in [vec![], vec![("authorization", "Bearer x")]] {
        assert_eq!(
            s.request("GET", "/metrics", &headers, b"").await.status,
            404
        );
        assert_eq!(s.request("GET", "/runs", &headers, b"").await.status, 404);
    }
    // The endpoints still answer next to them.
    assert_eq!(
        s.get(&ep_path('a', 'a')).await.json(),
        serde_json::json!({"ok": true})
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_checks_plug_in_and_give_a_one_line_reason() {
    let up = Arc::new(AtomicBool::new(false));
    let up2 = up.clone();
    let backend = ReadyCheck::new("state backend", move || {
        let up = up2.load(Ordering::SeqCst);
        async move {
            if up {
                Ok(())
            } else {
                Err("cannot open\nthe file".to_string())
            }
        }
    });
    let options = Options {
        readiness: vec![backend],
        ..Options::default()
    };
    let s = serve_with(&endpoint("a", 'a', ""), options).await;
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "not ready: state backend: cannot open the file\n");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Liveness is not readiness: the process still runs.
    assert_eq!(s.get("/healthz").await.status, 200);
    up.store(true, Ordering::SeqCst);
    let r = s.get("/readyz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    s.running.shutdown().await;

    // A check that never answers is a failure after its time limit, not a hung probe.
    let hang = ReadyCheck::new("state backend", || std::future::pending());
    let options = Options {
        readiness: vec![hang],
        ..Options::default()
    };
    let s = serve_with(&endpoint("a", 'a', ""), options).await;
    let t = Instant::now();
    let r = s.get("/readyz").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.body, "not ready: state backend: no answer within 2 s\n");
    assert!(t.elapsed() < Duration::from_secs(20));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_admin_key_in_bearer_or_apikey() {
    let toml = format!(
        "[server]\nadmin_key = \"{KEY}\"\napi_key = \"listing-key\"\n{}",
        endpoint("a", 'a', "")
    );
    let s = serve(&toml).await;
    let bearer = format!("Bearer {KEY}");
    let wrong_bearer = format!("Bearer {KEY}x");
    let lower = format!("bearer {KEY}");
    for (headers, status) in [
        (vec![], 401),
        (vec![("authorization", wrong_bearer.as_str())], 401),
        (vec![("authorization", KEY)], 401),
        (vec![("authorization", "Bearer ")], 401),
        (vec![("apikey", "listing-key")], 401),
        (vec![("apikey", &KEY[1..])], 401),
        (vec![("authorization", bearer.as_str())], 200),
        (vec![("authorization", lower.as_str())], 200),
        (vec![("apikey", KEY)], 200),
    ] {
        let r = s.request("GET", "/metrics", &headers, b"").await;
        assert_eq!(r.status, status, "{headers:?}: {}", r.body);
        if status == 401 {
            assert!(!r.body.contains(KEY));
            assert!(r.header("www-authenticate").is_some());
        } else {
            assert_eq!(
                r.header("content-type"),
                Some("text/plain; version=0.0.4; charset=utf-8")
            );
            assert!(r.body.contains("# TYPE flexscript_requests_total counter"));
        }
    }
    // The query string does not carry the admin key (it would end up in access logs).
    let r = s.get(&format!("/metrics?apikey={KEY}")).await;
    assert_eq!(r.status, 401);
    // Health and readiness stay open.
    assert_eq!(s.get("/healthz").await.status, 200);
    assert_eq!(s.get("/readyz").await.status, 200);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_key_that_renders_empty_turns_the_admin_routes_off() {
    let toml = format!(
        "[server]\nadmin_key = \"{{{{ env('FLEXSCRIPT_OPS_TEST_SURELY_UNSET_7F3A') }}}}\"\n{}",
        endpoint("a", 'a', "")
    );
    let s = serve(&toml).await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("apikey", "")],
    ] {
        assert_eq!(
            s.request("GET", "/metrics", &headers, b"").await.status,
            404
        );
    }
    assert_eq!(s.get("/healthz").await.status, 200);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_runs_steps_and_webhooks() {
    // A real local receiver for the webhooks: another server's /healthz (200).
    let receiver = serve("").await;
    let ok_url = format!("http://{}/healthz", receiver.addr);
    let steps = format!(
        r#"
[[endpoint.step]]
id = "divide"
type = "store"
name = "q"
expression = "10 // __data.n"

[[endpoint.step]]
id = "notify"
parent = "divide"
type = "webhook"
method = "get"
url = "{ok_url}"

[[endpoint.step]]
id = "gone"
parent = "divide"
type = "webhook"
url = "http://127.0.0.1:1/closed"
timeout_ms = 2000
"#
    );
    let slow = r#"
[[endpoint.step]]
id = "later"
type = "log"
delay_ms = 1500
message = "done"
"#;
    let toml = format!(
        "[server]\nadmin_key = \"{KEY}\"\n{}{}",
        endpoint("orders", 'a', &steps),
        endpoint("slow", 'b', slow)
    );
    let s = serve(&toml).await;
    let before = metrics(&s).await;
    assert_eq!(
        series(
            &before,
            "flexscript_requests_total{endpoint=\"orders\",status=\"200\"}"
        ),
        None,
        "no series before the first request"
    );
    for v in [
        "flexscript_runs_active{state=\"queued\"}",
        "flexscript_runs_active{state=\"running\"}",
        "flexscript_runs_active{state=\"waiting\"}",
        "flexscript_step_failures_total{type=\"store\"}",
        "flexscript_webhook_calls_total{class=\"2xx\"}",
        "flexscript_webhook_calls_total{class=\"error\"}",
        "flexscript_backend_errors_total",
        "flexscript_journal_commit_seconds_count",
    ] {
        assert_eq!(series(&before, v), Some(0.0), "{v} starts at 0");
    }

    // Two runs succeed (two webhooks each: one 2xx, one without a response), one fails at
    // its first step (division by zero), and one request goes nowhere.
    for n in ["1", "2", "0"] {
        let r = s.get(&format!("{}?n={n}", ep_path('a', 'a'))).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(s.get("/listener/nope/nope").await.status, 404);
    let text = wait_series(
        &s,
        "flexscript_runs_total{endpoint=\"orders\",status=\"succeeded\"}",
        2.0,
    )
    .await;
    let text = if series(
        &text,
        "flexscript_runs_total{endpoint=\"orders\",status=\"failed\"}",
    ) == Some(1.0)
    {
        text
    } else {
        wait_series(
            &s,
            "flexscript_runs_total{endpoint=\"orders\",status=\"failed\"}",
            1.0,
        )
        .await
    };
    let v = |name: &str| series(&text, name);
    assert_eq!(
        v("flexscript_requests_total{endpoint=\"orders\",status=\"200\"}"),
        Some(3.0)
    );
    assert_eq!(
        v("flexscript_requests_total{endpoint=\"-\",status=\"404\"}"),
        Some(1.0)
    );
    assert_eq!(
        v("flexscript_request_duration_seconds_count{endpoint=\"orders\"}"),
        Some(3.0)
    );
    assert_eq!(
        v("flexscript_run_duration_seconds_count{endpoint=\"orders\"}"),
        Some(3.0)
    );
    assert_eq!(
        v("flexscript_step_failures_total{type=\"store\"}"),
        Some(1.0)
    );
    assert_eq!(
        v("flexscript_webhook_calls_total{class=\"2xx\"}"),
        Some(2.0)
    );
    assert_eq!(
        v("flexscript_webhook_calls_total{class=\"error\"}"),
        Some(2.0)
    );
    assert_eq!(v("flexscript_runs_active{state=\"running\"}"), Some(0.0));
    // The scrapes themselves are requests without an endpoint.
    assert!(v("flexscript_requests_total{endpoint=\"-\",status=\"200\"}").unwrap_or(0.0) >= 1.0);

    // Every run was journaled (on the default SQLite file) before its answer.
    let commits = v("flexscript_journal_commit_seconds_count").unwrap_or(0.0);
    assert!(commits >= 3.0, "{text}");
    assert_eq!(v("flexscript_backend_errors_total"), Some(0.0));

    // A run parked on its delay counts as waiting (it holds no worker), then no longer.
    assert_eq!(s.get(&ep_path('b', 'b')).await.status, 200);
    let text = wait_series(&s, "flexscript_runs_active{state=\"waiting\"}", 1.0).await;
    assert_eq!(
        series(&text, "flexscript_runs_active{state=\"running\"}"),
        Some(0.0)
    );
    wait_series(
        &s,
        "flexscript_runs_total{endpoint=\"slow\",status=\"succeeded\"}",
        1.0,
    )
    .await;
    let text = metrics(&s).await;
    assert_eq!(
        series(&text, "flexscript_runs_active{state=\"waiting\"}"),
        Some(0.0)
    );
    assert_eq!(
        series(&text, "flexscript_runs_active{state=\"running\"}"),
        Some(0.0)
    );
    s.running.shutdown().await;
    receiver.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_addr_serves_operations_on_a_separate_listener() {
    let toml = format!(
        "[server]\nadmin_key = \"{KEY}\"\nadmin_addr = \"127.0.0.1:0\"\napi_key = \"listing-key\"\n{}",
        endpoint("a", 'a', "")
    );
    let s = serve(&toml).await;
    let admin = s.running.admin_addr().expect("admin listener");
    assert_ne!(admin, s.addr);
    // Public: endpoints and the listing only.
    assert_eq!(s.get(&ep_path('a', 'a')).await.status, 200);
    let listing = s
        .request(
            "GET",
            "/dynamic-endpoints",
            &[("apikey", "listing-key")],
            b"",
        )
        .await;
    assert_eq!(listing.status, 200);
    for path in ["/healthz", "/readyz", "/metrics", "/runs"] {
        let r = s
            .request(
                "GET",
                path,
                &[("authorization", &format!("Bearer {KEY}"))],
                b"",
            )
            .await;
        assert_eq!(r.status, 404, "public {path}");
    }
    // Admin: health, readiness and metrics without a key; nothing else.
    for path in ["/healthz", "/readyz"] {
        let r = request(admin, "GET", path, &[], b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "admin {path}");
    }
    let r = request(admin, "GET", "/metrics", &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        series(
            &r.body,
            "flexscript_requests_total{endpoint=\"a\",status=\"200\"}"
        ),
        Some(1.0),
        "one registry for both listeners:\n{}",
        r.body
    );
    for path in [ep_path('a', 'a'), "/dynamic-endpoints".to_string()] {
        let r = request(admin, "GET", &path, &[("apikey", "listing-key")], b"").await;
        assert_eq!(r.status, 404, "admin {path}");
    }
    s.running.shutdown().await;
}

#[test]
fn check_validates_the_operations_fields() {
    let check = |server: &str| {
        let file = write_config(&format!("[server]\n{server}\n{}", endpoint("a", 'a', "")));
        let (errors, _) = check_config(&file);
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>()
    };
    for ok in [
        "admin_key = \"k\"",
        "admin_key = \"{{ env('ADMIN_KEY') }}\"",
        "admin_addr = \"127.0.0.1:9090\"",
        "admin_addr = \"[::1]:9090\"",
        "addr = \"127.0.0.1:8080\"\nadmin_addr = \"127.0.0.1:9090\"",
        "log_format = \"json\"",
        "log_format = \"text\"",
    ] {
        assert_eq!(check(ok), Vec::<String>::new(), "{ok}");
    }
    for (bad, message) in [
        (
            "admin_key = \"\"",
            "endpoints.toml:2: server.admin_key: must not be empty",
        ),
        (
            "admin_key = \"{{ env('A' }}\"",
            "endpoints.toml:2: server.admin_key: ",
        ),
        (
            "admin_key = 7",
            "endpoints.toml:2: server.admin_key: must be a string",
        ),
        (
            "admin_addr = \"localhost:9090\"",
            "endpoints.toml:2: server.admin_addr: must be HOST:PORT with an IP address",
        ),
        (
            "addr = \"127.0.0.1:8080\"\nadmin_addr = \"127.0.0.1:8080\"",
            "endpoints.toml:3: server.admin_addr: must differ from addr",
        ),
        (
            "log_format = \"xml\"",
            "endpoints.toml:2: server.log_format: must be \"text\" or \"json\"",
        ),
    ] {
        let errors = check(bad);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert!(errors[0].starts_with(message), "{bad}: {errors:?}");
    }
}

/// Starts `flexscript serve PATH --addr 127.0.0.1:0` with `env`; returns the child and the
/// address of its ready line (stderr piped).
async fn spawn_serve(
    path: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            path.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .expect("join")
    .expect("ready line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("ready line: {line:?}"))
        .parse()
        .expect("addr");
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_without_secrets() {
    const SECRET: &str = "ops-endpoint-secret-0123456789abcdef";
    const ISSUER: &str = "ops-issuer";
    let steps = r#"
[[endpoint.step]]
id = "note"
type = "log"
message = "note: {{ __data.note }}"
"#;
    let auth = "add_authentication = true\nendpoint_key = \"ops-issuer\"\nendpoint_secret = \"{{ env('OPS_ENDPOINT_SECRET') }}\"\n";
    let file = write_config(&format!(
        "[server]\nlog_format = \"json\"\nadmin_key = \"{{{{ env('OPS_ADMIN_KEY') }}}}\"\n{}",
        endpoint("secure", 'a', &format!("{auth}{steps}"))
    ));
    let (child, addr) = spawn_serve(
        &file,
        &[("OPS_ENDPOINT_SECRET", SECRET), ("OPS_ADMIN_KEY", KEY)],
    )
    .await;
    let token = flexscript::listener::auth::sign(ISSUER, SECRET, "HS256", 300, None).expect("sign");
    let bearer = format!("Bearer {token}");
    let forged = "x\n{\"level\":\"ERROR\",\"message\":\"forged\"}\r\n\u{1b}[31m";
    let body = serde_json::json!({ "note": forged }).to_string();
    let r = request(
        addr,
        "POST",
        &ep_path('a', 'a'),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(
        addr,
        "GET",
        &ep_path('a', 'a'),
        &[("authorization", "Bearer not.a.token")],
        b"",
    )
    .await;
    assert_eq!(r.status, 401);
    // The admin key came from the environment.
    let r = request(addr, "GET", "/metrics", &[("apikey", KEY)], b"").await;
    assert_eq!(r.status, 200);
    let r = request(addr, "GET", "/metrics", &[("apikey", "wrong")], b"").await;
    assert_eq!(r.status, 401);
    // Wait for the workflow's log line, then stop the server (its logs are flushed on exit).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(0));
    let logs = String::from_utf8(out.stderr).expect("utf-8 logs");
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for secret in [SECRET, KEY, token.as_str(), "not.a.token", &hash('a')] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
    assert!(lines
        .iter()
        .all(|l| l["timestamp"].is_string() && l["level"].is_string()));
    let requests: Vec<_> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 4, "{logs}");
    let ok = &requests[0];
    assert_eq!(ok["endpoint"], "secure");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["method"], "POST");
    assert!(ok["duration_ms"].is_number());
    assert_eq!(ok["run_id"].as_str().map(str::len), Some(32));
    assert_eq!(requests[1]["status"], 401);
    assert_eq!(requests[2]["endpoint"], "-");
    // Request-derived text with newlines and a forged JSON object stays inside one field.
    let note = lines
        .iter()
        .find(|l| l["message"] == "workflow log")
        .unwrap_or_else(|| panic!("no workflow log line:\n{logs}"));
    assert_eq!(note["text"], format!("note: {forged}"));
    assert!(!lines.iter().any(|l| l["message"] == "forged"));
}
