//! Operations over real sockets (docs/operations.md): `/healthz`, `/readyz` with pluggable
//! checks, `/metrics` (contents, the admin key, counters that move), the `admin_addr`
//! listener, the new `[server]` fields in `flexscript check`, and JSON log lines from a real
//! `flexscript serve` child process.
mod listener_support;

use flexscript::listener::{check_config, Options, ReadyCheck};
use listener_support::*;
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
    let r = admin(s, "GET", "/metrics").await;
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
    let options = Options::default().with_readiness(backend);
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
    let hang = ReadyCheck::new("state backend", std::future::pending);
    let options = Options::default().with_readiness(hang);
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
        // The receiver and the closed port are on loopback, which the webhook destination
        // guard refuses unless allowed (docs/security.md).
        "[server]\nadmin_key = \"{KEY}\"\nwebhook_allow = [\"127.0.0.1\"]\n{}{}",
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
    // Once under load (the whole file at once, other builds running) a scrape taken after the
    // three runs were counted still showed one activation running — not explained yet (the
    // activation gives its worker back before its run is counted); the gauge must settle to 0
    // (one left counted as running fails here after 30 s).
    let text = if series(&text, "flexscript_runs_active{state=\"running\"}") == Some(0.0) {
        text
    } else {
        wait_series(&s, "flexscript_runs_active{state=\"running\"}", 0.0).await
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
    let admin_at = s.running.admin_addr().expect("admin listener");
    assert_ne!(admin_at, s.addr);
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
        let r = admin(&s, "GET", path).await;
        assert_eq!(r.status, 404, "public {path}");
    }
    // Admin: health, readiness and metrics without a key; nothing else.
    for path in ["/healthz", "/readyz"] {
        let r = request(admin_at, "GET", path, &[], b"").await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok\n"), "admin {path}");
    }
    let r = request(admin_at, "GET", "/metrics", &[], b"").await;
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
        let r = request(admin_at, "GET", &path, &[("apikey", "listing-key")], b"").await;
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
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    (child, addr)
}

/// Stops the guarded server with SIGTERM (it flushes its logs on the way out), checks it exits
/// with 0 and returns what it wrote on stderr.
async fn stop_for_logs(guard: &mut Guard) -> String {
    let child = guard.0.take().expect("child");
    sigterm(&child);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stderr).expect("utf-8 logs")
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
    let mut guard = Guard(Some(child));
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
    let logs = stop_for_logs(&mut guard).await;
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

/// Text logs: the per-request line (written straight into the log buffer by the server,
/// src/listener/log.rs `request_line`) reads as tracing's format and obeys `RUST_LOG`, by level
/// and by target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_request_lines_follow_the_format_and_the_filter() {
    let file = write_config(&endpoint("plain", 'a', ""));
    for (filter, want) in [
        (None, 2),
        (Some("warn"), 0),
        (Some("info,flexscript::listener::server=warn"), 0),
        (Some("warn,flexscript::listener::server=info"), 2),
    ] {
        let mut env = Vec::new();
        if let Some(f) = filter {
            env.push(("RUST_LOG", f));
        }
        let (child, addr) = spawn_serve(&file, &env).await;
        let mut guard = Guard(Some(child));
        let r = request(addr, "GET", &format!("{}?q=1", ep_path('a', 'a')), &[], b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let r = request(addr, "DELETE", "/listener/nope\"/x", &[], b"").await;
        assert_eq!(r.status, 404);
        let logs = stop_for_logs(&mut guard).await;
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(" request ")).collect();
        assert_eq!(lines.len(), want, "{filter:?}:\n{logs}");
        if want == 0 {
            continue;
        }
        // `2026-12-05T17:10:51.772220Z  INFO request endpoint="plain" method=GET status=200
        // duration_ms=0.146904 run_id="<32 hex>"`
        let (time, rest) = lines[0]
            .split_once("  INFO request ")
            .expect("level and message");
        assert_eq!(time.len(), 27, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{time}");
        let fields: Vec<&str> = rest.split(' ').collect();
        assert_eq!(
            fields[..3],
            ["endpoint=\"plain\"", "method=GET", "status=200"]
        );
        let ms = fields[3].strip_prefix("duration_ms=").expect("duration");
        assert!(ms.parse::<f64>().is_ok_and(|v| v >= 0.0), "{ms}");
        let id = fields[4].strip_prefix("run_id=\"").expect("run id");
        assert_eq!(id.len(), 33, "{id}");
        assert_eq!(fields.len(), 5);
        let (_, rest) = lines[1]
            .split_once("  INFO request ")
            .expect("level and message");
        assert!(
            rest.starts_with("endpoint=\"-\" method=DELETE status=404 duration_ms=")
                && rest.ends_with(" run_id=\"-\""),
            "{rest}"
        );
    }
}

/// A workflow that fails until the shared memory holds a usable `divisor`: `count` counts its
/// executions, then `divide` divides by the divisor. `setdiv` sets the divisor from `d`.
fn retry_config(server: &str) -> String {
    let orders = r#"
[[endpoint.step]]
id = "count"
type = "store"
name = "c"
expression = "incrementAndGet('count_runs')"

[[endpoint.step]]
id = "divide"
parent = "count"
type = "store"
name = "q"
expression = "10 // memoryGet('divisor')"
"#;
    let setdiv = r#"
[[endpoint.step]]
id = "set"
type = "set_memory"
name = "divisor"
expression = "__data.d"
ttl_s = 3600
"#;
    let other = r#"
[[endpoint.step]]
id = "note"
type = "log"
message = "other"
"#;
    format!(
        "[server]\n{server}\n{}{}{}",
        endpoint("orders", 'a', orders),
        endpoint("setdiv", 'b', setdiv),
        endpoint("other", 'c', other)
    )
}

/// An admin-route request with the admin key [`KEY`] as a bearer token.
async fn admin(s: &Server, method: &str, path: &str) -> Resp {
    let bearer = format!("Bearer {KEY}");
    s.request(method, path, &[("authorization", &bearer)], b"")
        .await
}

/// The status of `GET /metrics` with `key` in the `apikey` header.
async fn metrics_status_with(s: &Server, key: &str) -> u16 {
    s.request("GET", "/metrics", &[("apikey", key)], b"")
        .await
        .status
}

/// Polls `GET /runs/{id}` until `done` holds for the record (30 s at most).
async fn wait_run(
    s: &Server,
    id: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let r = admin(s, "GET", &format!("/runs/{id}")).await;
        if r.status == 200 && done(&r.json()) {
            return r.json();
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "run {id}: {}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `GET /runs?QUERY` until it lists `n` runs.
async fn wait_listed(s: &Server, query: &str, n: usize) -> Vec<serde_json::Value> {
    let t = Instant::now();
    loop {
        let r = admin(s, "GET", &format!("/runs?{query}")).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let runs = r.json()["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == n {
            return runs;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{query}: {}", r.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn step<'a>(record: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    record["steps"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["id"] == id))
        .unwrap_or_else(|| panic!("no step {id} in {record}"))
}

/// The value a step's checkpoint wrote at `name`.
fn written(record: &serde_json::Value, step_id: &str, name: &str) -> serde_json::Value {
    step(record, step_id)["checkpoint"]["set"]
        .as_array()
        .and_then(|w| w.iter().find(|p| p[0] == name))
        .map(|p| p[1].clone())
        .unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_needs_the_admin_key() {
    // No admin_key: the run routes do not exist.
    let s = serve(&retry_config("")).await;
    for (method, path) in [
        ("GET", "/runs"),
        ("GET", "/runs/x"),
        ("POST", "/runs/x/retry"),
    ] {
        assert_eq!(admin(&s, method, path).await.status, 404, "{method} {path}");
    }
    s.running.shutdown().await;

    let s = serve(&retry_config(&format!("admin_key = \"{KEY}\""))).await;
    let wrong = format!("Bearer {KEY}-not");
    for (method, path) in [
        ("GET", "/runs"),
        ("GET", "/runs/x"),
        ("POST", "/runs/x/retry"),
    ] {
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("apikey", "nope")],
        ] {
            let r = s.request(method, path, &headers, b"").await;
            assert_eq!(r.status, 401, "{method} {path} {headers:?}");
        }
    }
    assert_eq!(admin(&s, "GET", "/runs").await.status, 200);
    let r = s.request("GET", "/runs", &[("apikey", KEY)], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!({"runs": [], "next": null}));
    assert_eq!(admin(&s, "GET", "/runs/0123").await.status, 404);
    s.running.shutdown().await;

    // On admin_addr the run routes still need the key (metrics do not).
    let s = serve(&retry_config(&format!(
        "admin_key = \"{KEY}\"\nadmin_addr = \"127.0.0.1:0\""
    )))
    .await;
    let a = s.running.admin_addr().expect("admin listener");
    assert_eq!(request(a, "GET", "/runs", &[], b"").await.status, 401);
    assert_eq!(
        request(a, "GET", "/runs", &[("apikey", KEY)], b"")
            .await
            .status,
        200
    );
    assert_eq!(request(a, "GET", "/metrics", &[], b"").await.status, 200);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_lists_filters_shows_and_retries_a_failed_run() {
    let s = serve(&retry_config(&format!("admin_key = \"{KEY}\""))).await;
    // A run that fails at `divide` (no divisor yet), with a credential header that must not be
    // kept, then two runs of another endpoint.
    let r = s
        .request(
            "POST",
            &ep_path('a', 'a'),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer caller-credential-xyz"),
            ],
            b"{\"order\": 7}",
        )
        .await;
    assert_eq!(r.status, 200);
    let failed = wait_listed(&s, "endpoint=orders&status=failed", 1).await;
    let id = failed[0]["id"].as_str().expect("id").to_string();
    for _ in 0..2 {
        assert_eq!(s.get(&ep_path('c', 'c')).await.status, 200);
    }
    let all = wait_listed(&s, "status=succeeded", 2).await;
    assert!(all.iter().all(|r| r["endpoint"] == "other"));

    // The listing: newest first, the summary fields, filters, pages.
    let r = admin(&s, "GET", "/runs").await;
    let runs = r.json()["runs"].as_array().cloned().expect("runs");
    assert_eq!(runs.len(), 3);
    assert_eq!(runs[2]["id"], id.as_str(), "newest first");
    let mut keys: Vec<_> = runs[2]
        .as_object()
        .expect("object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "created",
            "duration_ms",
            "endpoint",
            "error",
            "id",
            "status"
        ]
    );
    assert_eq!(runs[2]["status"], "failed");
    let error = runs[2]["error"].as_str().expect("error");
    assert!(
        error.contains("divide") && error.contains("division by zero"),
        "{error}"
    );
    assert!(runs[0]["created"].as_i64() >= runs[2]["created"].as_i64());
    assert_eq!(wait_listed(&s, "endpoint=other", 2).await.len(), 2);
    assert_eq!(wait_listed(&s, "endpoint=nobody", 0).await.len(), 0);
    let page = admin(&s, "GET", "/runs?limit=2").await.json();
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().expect("a next cursor");
    let page2 = admin(&s, "GET", &format!("/runs?limit=2&before={next}"))
        .await
        .json();
    assert_eq!(page2["runs"][0]["id"], id.as_str());
    assert_eq!(page2["next"], serde_json::Value::Null);
    for bad in [
        "status=done",
        "limit=0",
        "limit=5000",
        "colour=red",
        "before=zz",
    ] {
        let r = admin(&s, "GET", &format!("/runs?{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["error"].is_string());
    }

    // The whole record: request data without credentials, steps with timing and errors.
    let record = admin(&s, "GET", &format!("/runs/{id}")).await;
    assert_eq!(record.status, 200);
    assert!(
        !record.body.contains("caller-credential-xyz"),
        "{}",
        record.body
    );
    let record = record.json();
    assert_eq!(record["data"]["order"], 7);
    assert_eq!(record["attempt"], 1);
    assert_eq!(step(&record, "count")["status"], "succeeded");
    assert_eq!(written(&record, "count", "c"), 1);
    let divide = step(&record, "divide");
    assert_eq!(divide["status"], "failed");
    assert!(divide["error"]
        .as_str()
        .unwrap_or("")
        .contains("division by zero"));
    assert!(divide["started"].is_i64() && divide["finished"].is_i64());
    let count_started = step(&record, "count")["started"].clone();

    // Only failed or interrupted runs are retried.
    let succeeded = all[0]["id"].as_str().expect("id");
    let r = admin(&s, "POST", &format!("/runs/{succeeded}/retry")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.json()["error"]
        .as_str()
        .unwrap_or("")
        .contains("succeeded"));
    assert_eq!(admin(&s, "POST", "/runs/0000/retry").await.status, 404);
    assert_eq!(
        admin(&s, "GET", &format!("/runs/{id}/retry")).await.status,
        405
    );
    assert_eq!(admin(&s, "POST", &format!("/runs/{id}")).await.status, 405);
    assert_eq!(
        admin(&s, "POST", &format!("/runs/{id}/retry?from=middle"))
            .await
            .status,
        400
    );

    // Fix the cause, retry from the failed step: `count` keeps its result and does not run again.
    let r = s.post_json(&ep_path('b', 'b'), "{\"d\": 2}").await;
    assert_eq!(r.status, 200);
    wait_listed(&s, "endpoint=setdiv&status=succeeded", 1).await;
    let r = admin(&s, "POST", &format!("/runs/{id}/retry")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({"id": id, "endpoint": "orders", "status": "queued", "attempt": 2, "from": "failed"})
    );
    // Queued again: a second retry is a conflict until it ends.
    let again = admin(&s, "POST", &format!("/runs/{id}/retry")).await;
    assert!(again.status == 409, "{}", again.body);
    let record = wait_run(&s, &id, |r| r["status"] == "succeeded").await;
    assert_eq!(record["attempt"], 2);
    assert_eq!(written(&record, "divide", "q"), 5);
    assert_eq!(written(&record, "count", "c"), 1);
    assert_eq!(step(&record, "count")["started"], count_started);
    assert_eq!(record["error"], serde_json::Value::Null);

    // A second run fails (divisor 0); retried from the start, `count` runs again.
    assert_eq!(
        s.post_json(&ep_path('b', 'b'), "{\"d\": 0}").await.status,
        200
    );
    wait_listed(&s, "endpoint=setdiv&status=succeeded", 2).await;
    assert_eq!(s.post_json(&ep_path('a', 'a'), "{}").await.status, 200);
    let failed = wait_listed(&s, "endpoint=orders&status=failed", 1).await;
    let id2 = failed[0]["id"].as_str().expect("id").to_string();
    assert_ne!(id2, id);
    assert_eq!(
        s.post_json(&ep_path('b', 'b'), "{\"d\": 5}").await.status,
        200
    );
    wait_listed(&s, "endpoint=setdiv&status=succeeded", 3).await;
    let r = admin(&s, "POST", &format!("/runs/{id2}/retry?from=start")).await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["from"], "start");
    let record = wait_run(&s, &id2, |r| r["status"] == "succeeded").await;
    assert_eq!(
        written(&record, "count", "c"),
        3,
        "count ran again: {record}"
    );
    assert_eq!(written(&record, "divide", "q"), 2);
    s.running.shutdown().await;
}

/// Runs `flexscript ARGS…`; (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run flexscript");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `flexscript runs ARGS… --config PATH`.
fn runs_cli(path: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["runs"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", path.to_str().expect("utf-8")]);
    cli(&all)
}

/// Polls `flexscript runs list --json ARGS` until it lists `n` runs.
fn wait_cli_listed(path: &std::path::Path, args: &[&str], n: usize) -> Vec<serde_json::Value> {
    let t = Instant::now();
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    loop {
        let (code, out, err) = runs_cli(path, &all);
        assert_eq!(code, 0, "{err}");
        let page: serde_json::Value = serde_json::from_str(&out).expect("JSON page");
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == n {
            return runs;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{args:?}: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A child server, killed (SIGKILL) when a test fails before stopping it.
struct Guard(Option<std::process::Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Sends SIGTERM to a served child.
fn sigterm(child: &std::process::Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
}

fn stop(child: std::process::Child) {
    sigterm(&child);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_cli_reads_and_retries_a_stopped_servers_file() {
    let file = write_config(&retry_config(""));
    let path = file.path().to_path_buf();
    let (child, addr) = spawn_serve(&path, &[]).await;
    let mut guard = Guard(Some(child));
    let r = post_json_to(addr, &ep_path('a', 'a'), "{\"order\": 1}").await;
    assert_eq!(r.status, 200);
    // The command reads the file while the server runs.
    let p = path.clone();
    let failed =
        tokio::task::spawn_blocking(move || wait_cli_listed(&p, &["--status", "failed"], 1))
            .await
            .expect("join");
    let id = failed[0]["id"].as_str().expect("id").to_string();
    let r = post_json_to(addr, &ep_path('b', 'b'), "{\"d\": 2}").await;
    assert_eq!(r.status, 200);
    let p = path.clone();
    tokio::task::spawn_blocking(move || {
        wait_cli_listed(&p, &["--endpoint", "setdiv", "--status", "succeeded"], 1)
    })
    .await
    .expect("join");
    let child = guard.0.take().expect("child");
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .expect("join");

    // The server is stopped: list, show, retry on its file.
    let (code, out, err) = runs_cli(&path, &["list"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("ENDPOINT") && lines[0].contains("ERROR")
    );
    assert!(
        lines[1].contains("setdiv") && lines[1].contains("succeeded"),
        "{out}"
    );
    assert!(
        lines[2].starts_with(&id)
            && lines[2].contains("failed")
            && lines[2].contains("division by zero"),
        "{out}"
    );
    let (code, out, _) = runs_cli(&path, &["list", "--limit", "1"]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .last()
            .unwrap_or("")
            .starts_with("next page: --before "),
        "{out}"
    );
    let (code, out, err) = runs_cli(&path, &["show", &id]);
    assert_eq!(code, 0, "{err}");
    let record: serde_json::Value = serde_json::from_str(&out).expect("JSON record");
    assert_eq!(record["status"], "failed");
    assert_eq!(record["data"]["order"], 1);
    assert_eq!(step(&record, "divide")["status"], "failed");
    let (code, out, err) = runs_cli(&path, &["retry", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "run {id} of \"orders\" queued again (attempt 2, from its failed step)"
        )),
        "{out}"
    );
    let (code, _, err) = runs_cli(&path, &["retry", &id]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is queued; only failed or interrupted runs can be retried"),
        "{err}"
    );
    for (args, message) in [
        (vec!["show", "nope"], "error: no run nope"),
        (vec!["retry", "nope"], "error: no run nope"),
        (
            vec!["list", "--status", "done"],
            "error: unknown status `done`",
        ),
        (
            vec!["list", "--limit", "0"],
            "error: limit must be a number from 1 to 1000",
        ),
        (
            vec!["retry", &id, "--from", "middle"],
            "error: from must be `start` or `failed`",
        ),
    ] {
        let (code, _, err) = runs_cli(&path, &args);
        assert_eq!(code, 1, "{args:?}");
        assert!(err.starts_with(message), "{args:?}: {err}");
    }

    // The next server on the file runs the retried run.
    let (child, _) = spawn_serve(&path, &[]).await;
    let mut guard = Guard(Some(child));
    let p = path.clone();
    let record = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        loop {
            let (code, out, err) = runs_cli(&p, &["show", &id]);
            assert_eq!(code, 0, "{err}");
            let record: serde_json::Value = serde_json::from_str(&out).expect("JSON record");
            if record["status"] == "succeeded" {
                return record;
            }
            assert!(t.elapsed() < Duration::from_secs(30), "{out}");
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .expect("join");
    assert_eq!(written(&record, "divide", "q"), 5);
    // 1: the first execution, 2: the retry. The next server claims the retried run (queued,
    // owner-less) like any backlog run: a claim is not a new attempt (docs/state.md).
    assert_eq!(record["attempt"], 2);
    let child = guard.0.take().expect("child");
    tokio::task::spawn_blocking(move || stop(child))
        .await
        .expect("join");
}

#[test]
fn runs_cli_refuses_what_it_cannot_read() {
    let file = write_config(&retry_config("state = \"memory\""));
    let (code, out, err) = runs_cli(&file, &["list"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with("error: state = \"memory\" keeps runs inside the serving process"),
        "{err}"
    );
    let file = write_config(&retry_config(""));
    let missing = file.path().with_file_name("none.db");
    let state = format!("sqlite:{}", missing.display());
    let (code, _, err) = runs_cli(&file, &["list", "--state", &state]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.exists(), "a reader does not create a state file");
    let broken = write_config("[server]\nadmin_key = 1\n");
    let (code, _, err) = runs_cli(&broken, &["list"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: endpoints.toml:2: server.admin_key: must be a string"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_counts_backend_errors_and_readiness_stays() {
    // A real "disk full" (as in tests/listener_durable.rs): the child's file size limit makes
    // the journal's writes fail with EFBIG (SIGXFSZ ignored).
    let steps = "[[endpoint.step]]\nid = \"s\"\ntype = \"store\"\nname = \"x\"\nvalue = \"{{ __data.pad }}\"\n";
    let file = write_config(&format!(
        "[server]\nadmin_key = \"{KEY}\"\n{}",
        endpoint("big", 'a', steps)
    ));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -S -f 400; trap '' XFSZ; exec \"$0\" \"$@\"")
        .arg(BIN)
        .args([
            "serve",
            file.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "off")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    let body = format!("{{\"pad\": \"{}\"}}", "p".repeat(8000));
    let mut refused = false;
    for _ in 0..400 {
        let r = post_json_to(addr, &ep_path('a', 'a'), &body).await;
        if r.status == 503 {
            refused = true;
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let metrics = request(addr, "GET", "/metrics", &[("apikey", KEY)], b"").await;
    let ready = request(addr, "GET", "/readyz", &[], b"").await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(refused, "the journal filled up");
    assert_eq!(metrics.status, 200);
    let errors = series(&metrics.body, "flexscript_backend_errors_total").unwrap_or(0.0);
    assert!(errors >= 1.0, "{}", metrics.body);
    assert!(
        series(
            &metrics.body,
            "flexscript_requests_total{endpoint=\"big\",status=\"503\"}"
        ) >= Some(1.0),
        "{}",
        metrics.body
    );
    // Reads still work: readiness does not take the instance out (docs/operations.md).
    assert_eq!((ready.status, ready.body.as_str()), (200, "ok\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_admin_key() {
    let s = serve(&format!(
        "[server]\nadmin_key = \"old-key\"\n{}",
        endpoint("a", 'a', "")
    ))
    .await;
    assert_eq!(metrics_status_with(&s, "old-key").await, 200);
    std::fs::write(
        &s.config_path,
        format!(
            "[server]\nadmin_key = \"new-key\"\n{}",
            endpoint("a", 'a', "")
        ),
    )
    .expect("write");
    s.running.reload().expect("reload");
    assert_eq!(metrics_status_with(&s, "old-key").await, 401);
    assert_eq!(metrics_status_with(&s, "new-key").await, 200);
    // Without the key the routes are gone again.
    std::fs::write(&s.config_path, endpoint("a", 'a', "")).expect("write");
    s.running.reload().expect("reload");
    assert_eq!(metrics_status_with(&s, "new-key").await, 404);
    s.running.shutdown().await;
}
