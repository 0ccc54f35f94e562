//! Configuration validation (errors with file, line and field; warnings) and the listener CLI
//! commands run through the built binary.
#![cfg(feature = "listener")]
mod listener_support;
use flexscript::listener::{check_config, load_config, Options};
use listener_support::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");

fn check_lines(toml: &str) -> (Vec<String>, Vec<String>) {
    let (errors, warnings) = check_config(&write_config(toml));
    (
        errors.iter().map(ToString::to_string).collect(),
        warnings.iter().map(ToString::to_string).collect(),
    )
}

const BROKEN: &str = r#"[server]
addr = "not an address"
body_limit = "big"
colour = "blue"

[snippets]
footer = "{{ company "

[[endpoint]]
name = "one"
first_hash = "9F2C"
second_hash = "41d041d041d041d041d041d041d041d0"
run_mode = "sometimes"
return_type = "sse"
extra = 1

[[endpoint.step]]
id = "s1"
type = "emit"
data = "{{ __data.x | nosuchfilter }}"

[[endpoint.step]]
id = "s1"
type = "condition"
left = "{{ __data.x }}"
operator = "roughly"

[[endpoint.step]]
id = "s3"
type = "teleport"
parent = "ghost"

[[endpoint]]
name = "two"
first_hash = "41d041d041d041d041d041d041d041d0"
second_hash = "41d041d041d041d041d041d041d041d0"
return_type = "data"

[[endpoint]]
name = "three"
first_hash = "41d041d041d041d041d041d041d041d0"
second_hash = "41d041d041d041d041d041d041d041d0"
return_type = "data"
return_data = "ok"
add_authentication = true
"#;

#[test]
fn every_error_has_file_line_and_field() {
    let (errors, warnings) = check_lines(BROKEN);
    assert!(warnings.is_empty(), "{warnings:?}");
    insta::assert_snapshot!(errors.join("\n"), @r#"
    endpoints.toml:2: server.addr: must be HOST:PORT with an IP address
    endpoints.toml:3: server.body_limit: must be an integer from 0 to 1099511627776
    endpoints.toml:4: server.colour: unknown field
    endpoints.toml:7: snippets.footer: expected "}}" to close "{{" (script line 1, column 1)
    endpoints.toml:11: endpoint[0].first_hash: must be 32+ hex chars (0-9, a-f)
    endpoints.toml:13: endpoint[0].run_mode: must be "sync" or "async"
    endpoints.toml:14: endpoint[0].return_type: sse requires run_mode = "sync"
    endpoints.toml:15: endpoint[0].extra: unknown field
    endpoints.toml:20: endpoint[0].step[0].data: unknown filter `nosuchfilter` (script line 1, column 15)
    endpoints.toml:23: endpoint[0].step[1].id: duplicate step id `s1`
    endpoints.toml:26: endpoint[0].step[1].operator: unknown operator `roughly`
    endpoints.toml:30: endpoint[0].step[2].type: must be one of condition, store, respond, emit, webhook, set_memory, log
    endpoints.toml:31: endpoint[0].step[2].parent: no earlier step with id `ghost`
    endpoints.toml:37: endpoint[1].return_data: is required with return_type = "data"
    endpoints.toml:42: endpoint[2].second_hash: same hashes as endpoint[1]
    endpoints.toml:45: endpoint[2].add_authentication: endpoint_key is required with add_authentication = true
    endpoints.toml:45: endpoint[2].add_authentication: endpoint_secret is required with add_authentication = true
    "#);
}

#[test]
fn toml_syntax_errors_have_a_line() {
    let (errors, _) = check_lines("[server]\naddr = \n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("endpoints.toml:2: TOML syntax:"),
        "{errors:?}"
    );
}

#[test]
fn step_tree_rules() {
    let base = format!(
        "[[endpoint]]\nname = \"t\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\nreturn_type = \"continue\"\n",
        hash('a'),
        hash('b')
    );
    // A child of a condition without a branch, and a branch on a non-condition child.
    let (errors, _) = check_lines(&format!(
        "{base}[[endpoint.step]]\nid = \"c\"\ntype = \"condition\"\nleft = \"x\"\noperator = \"equal\"\nright = \"x\"\n[[endpoint.step]]\nid = \"l\"\ntype = \"log\"\nmessage = \"m\"\n[[endpoint.step]]\nid = \"l2\"\ntype = \"log\"\nbranch = \"yes\"\nmessage = \"m\"\n"
    ));
    assert_eq!(
        errors,
        [
            "endpoints.toml:12: endpoint[0].step[1].branch: a child of a condition needs branch = \"yes\" or \"no\"",
            "endpoints.toml:19: endpoint[0].step[2].branch: only children of a condition take a branch",
        ]
    );
    // Operators that need operands; store needs value xor expression.
    let (errors, _) = check_lines(&format!(
        "{base}[[endpoint.step]]\nid = \"c\"\ntype = \"condition\"\nleft = \"x\"\noperator = \"between\"\nright = \"1\"\n[[endpoint.step]]\nid = \"s\"\nparent = \"\"\ntype = \"store\"\nname = \"n\"\nvalue = \"1\"\nexpression = \"1\"\n[[endpoint.step]]\nid = \"r\"\ntype = \"respond\"\nreturn_type = \"data\"\nreturn_data = \"{{{{ 1 + }}}}\"\n"
    ));
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(errors[0].contains("step[0].operator: `between` needs `right2`"));
    assert!(errors[1].contains("step[1].expression: give either value or expression, not both"));
    assert!(errors[2].contains("step[2].return_data:") && errors[2].contains("script line 1"));
}

#[test]
fn warnings_for_continue_branches_that_never_respond() {
    let ep = |extra: &str| {
        format!(
            "[[endpoint]]\nname = \"w\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n{extra}\n",
            hash('a'),
            hash('b')
        )
    };
    let (errors, warnings) = check_lines(&ep(
        "return_type = \"continue\"\n[[endpoint.step]]\nid = \"c\"\ntype = \"condition\"\nleft = \"{{ __data.x }}\"\noperator = \"is_empty\"\n[[endpoint.step]]\nid = \"r\"\nbranch = \"yes\"\ntype = \"respond\"\nreturn_type = \"data\"\nreturn_data = \"empty\"\n[[endpoint.step]]\nid = \"s\"\nparent = \"\"\ntype = \"log\"\nmessage = \"side branch\"",
    ));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(
        warnings,
        [
            "endpoints.toml:1: endpoint[0].step: the `no` branch of step `c` never responds",
            "endpoints.toml:1: endpoint[0].step: the branch ending at step `s` never responds",
        ]
    );
    let (_, warnings) = check_lines(&ep("return_type = \"continue\""));
    assert_eq!(warnings, ["endpoints.toml:1: endpoint[0].step: continue endpoint without a respond step never responds"]);
    // respond/emit on endpoints that ignore them.
    let (_, warnings) = check_lines(&ep(
        "return_type = \"data\"\nreturn_data = \"x\"\nreturn_html = \"y\"\n[[endpoint.step]]\nid = \"e\"\ntype = \"emit\"\ndata = \"x\"",
    ));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // A full, valid configuration loads.
    let cfg = write_config(&ep("return_type = \"data\"\nreturn_data = \"x\""));
    let config = load_config(&cfg).expect("valid");
    assert_eq!(config.endpoints.len(), 1);
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_check_reports_errors_and_warnings() {
    let bad = write_config(BROKEN);
    let (code, stdout, stderr) = cli(&["check", bad.to_str().expect("utf-8 path")]);
    assert_eq!(code, 1);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("error: endpoints.toml:11: endpoint[0].first_hash: must be 32+ hex chars"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 17, "{stderr}");
    let warn = write_config(&format!(
        "[[endpoint]]\nname = \"w\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\nreturn_type = \"continue\"\n",
        hash('a'),
        hash('b')
    ));
    let (code, _, stderr) = cli(&["check", warn.to_str().expect("utf-8 path")]);
    assert_eq!(code, 0);
    assert!(stderr.starts_with("warning: endpoints.toml:1:"), "{stderr}");
}

#[test]
fn cli_new_endpoint_prints_a_valid_fresh_stanza() {
    let (code, a, _) = cli(&["new-endpoint", "Invoice \"webhook\""]);
    assert_eq!(code, 0);
    let (_, b, _) = cli(&["new-endpoint", "Other"]);
    let path = write_config(&a);
    let config = load_config(&path).expect("the stanza is a valid configuration");
    let ep = &config.endpoints[0];
    assert_eq!(ep.name, "Invoice \"webhook\"");
    assert_eq!(ep.first_hash.len(), 32);
    assert_ne!(ep.first_hash, ep.second_hash);
    assert!(!b.contains(&ep.first_hash), "fresh hashes each time");
    let secret_line = a
        .lines()
        .find(|l| l.starts_with("endpoint_secret"))
        .expect("secret");
    assert_eq!(
        secret_line.len(),
        "endpoint_secret = \"\"".len() + 64,
        "32 random bytes in hex"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_token_is_accepted_by_an_authenticated_endpoint() {
    let s = serve(&format!(
        "[[endpoint]]\nname = \"a\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\nreturn_type = \"data\"\nreturn_data = \"hi {{{{ __data.__headers.__jwt_data[0].user }}}}\"\nadd_authentication = true\nendpoint_key = \"issuer-1\"\nendpoint_secret = \"top-secret\"\n",
        hash('a'),
        hash('b')
    ))
    .await;
    let (code, token, stderr) = cli(&[
        "token",
        "--key",
        "issuer-1",
        "--secret",
        "top-secret",
        "--alg",
        "HS384",
        "--ttl",
        "60",
        "--data",
        "{\"user\": \"ann\"}",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let auth = format!("Bearer {}", token.trim());
    let r = s
        .request("GET", &ep_path('a', 'b'), &[("authorization", &auth)], b"")
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "hi ann"));
    let (code, _, stderr) = cli(&["token", "--key", "k", "--secret", "s", "--alg", "none"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("error:"), "{stderr}");
    let (code, _, _) = cli(&["token", "--key", "k", "--secret", "s", "--data", "{nope"]);
    assert_eq!(code, 1);
    s.running.shutdown().await;
}

#[test]
fn cli_render_with_records() {
    let dir = temp_dir();
    let records = dir.join("records.json");
    std::fs::write(&records, r#"{"contact": [{"id": 1, "email": "a@x.io", "name": "Ann"}, {"id": 2, "email": "b@x.io", "name": "Bob"}]}"#).expect("write");
    let (code, out, err) = cli(&["render", "-e", "{{ findOne('contact', 'email', 'b@x.io').name }} {{ findCount('contact', 'name', 'Ann') }}", "--records", records.to_str().expect("utf-8")]);
    assert_eq!((code, out.as_str()), (0, "Bob 1"), "{err}");
}

/// A configuration with one `data` endpoint at `ep_path('a', 'b')` answering `body`.
fn one_endpoint(body: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"a\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\nreturn_type = \"data\"\nreturn_data = \"{body}\"\n",
        hash('a'),
        hash('b')
    )
}

/// Starts `flexscript serve PATH --addr 127.0.0.1:0 EXTRA…` and waits for its ready line.
async fn spawn_serve(
    path: &std::path::Path,
    extra: &[&str],
    stderr: Stdio,
) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            path.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_ready_line_sighup_reload_and_sigterm() {
    let path = write_config(&one_endpoint("v1"));
    let (child, addr) = spawn_serve(&path, &[], Stdio::piped()).await;
    assert_eq!(
        request(addr, "GET", &ep_path('a', 'b'), &[], b"")
            .await
            .body,
        "v1"
    );
    let pid = child.id().to_string();
    std::fs::write(&path, one_endpoint("v2")).expect("write");
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    let t = Instant::now();
    loop {
        if request(addr, "GET", &ep_path('a', 'b'), &[], b"")
            .await
            .body
            == "v2"
        {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "reload on SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A broken file keeps the old configuration.
    std::fs::write(&path, "[[endpoint]]\nname = 1\n").expect("write");
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill")
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        request(addr, "GET", &ep_path('a', 'b'), &[], b"")
            .await
            .body,
        "v2"
    );
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.status.code(), Some(0));
    let logs = String::from_utf8_lossy(&status.stderr);
    assert!(logs.contains("reload refused"), "{logs}");
    assert!(
        logs.contains("status=200") && logs.contains("endpoint=\"a\""),
        "{logs}"
    );
    assert!(!logs.contains(&hash('a')), "the URL hashes are not logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_serve_watch_reloads_on_change() {
    let path = write_config(&one_endpoint("w1"));
    let (mut child, addr) = spawn_serve(&path, &["--watch"], Stdio::null()).await;
    // mtime granularity: make sure the new file gets a different modification time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&path, one_endpoint("w2")).expect("write");
    let t = Instant::now();
    let mut seen = String::new();
    while t.elapsed() < Duration::from_secs(5) {
        seen = request(addr, "GET", &ep_path('a', 'b'), &[], b"")
            .await
            .body;
        if seen == "w2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, "w2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_configuration_is_clean_and_works() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/endpoints.toml");
    let (errors, warnings) = check_config(&path);
    assert!(
        errors.is_empty() && warnings.is_empty(),
        "{errors:?} {warnings:?}"
    );
    // In memory: the file's default state (SQLite beside it) would write into the repository.
    let s = serve_file_with(&path, Options::default().with_state("memory")).await;
    let invoice = "/listener/9f2c4e1a7b3d5f60a1c2e3f405162738/41d0b2c3d4e5f60718293a4b5c6d7e8f";
    let r = s
        .post_json(
            invoice,
            r#"{"case_ref": "INV-7", "customer_email": "ann@example.com"}"#,
        )
        .await;
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "received", "ref": "INV-7"})
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let lookup = "/listener/0a1b2c3d4e5f60718293a4b5c6d7e8f9/f9e8d7c6b5a403928170f6e5d4c3b2a1";
    let r = s.get(&format!("{lookup}?email=ann@example.com")).await;
    assert_eq!(
        r.json(),
        serde_json::json!({"name": "Ann Lee", "tier": "gold", "last_invoice": "INV-7"})
    );
    let r = s.get(&format!("{lookup}?email=zed@example.com")).await;
    assert_eq!(r.json(), serde_json::json!({"error": "unknown contact"}));
    let r = s
        .request(
            "GET",
            "/dynamic-endpoints",
            &[("apikey", "demo-listing-key")],
            b"",
        )
        .await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(6));
    s.running.shutdown().await;
}

#[test]
fn cli_serve_refuses_a_broken_file_and_prints_no_ready_line() {
    let bad = write_config(BROKEN);
    let (code, stdout, stderr) = cli(&[
        "serve",
        bad.to_str().expect("utf-8"),
        "--addr",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 17, "{stderr}");
    assert!(
        stderr
            .lines()
            .all(|l| l.starts_with("error: endpoints.toml:")),
        "{stderr}"
    );
    let (code, _, _) = cli(&["serve", bad.to_str().expect("utf-8"), "--addr", "nope"]);
    assert_eq!(code, 2);
}

#[test]
fn max_connections_is_checked() {
    for (value, ok) in [
        ("1", true),
        ("1000000", true),
        ("0", false),
        ("1000001", false),
        ("\"many\"", false),
    ] {
        let toml = format!(
            "[server]\nmax_connections = {value}\n\n[[endpoint]]\nname = \"a\"\nfirst_hash = \"{}\"\n\
             second_hash = \"{}\"\nreturn_type = \"data\"\nreturn_data = \"ok\"\n",
            hash('a'),
            hash('b')
        );
        let (errors, _) = check_lines(&toml);
        if ok {
            assert!(errors.is_empty(), "{value}: {errors:?}");
        } else {
            assert_eq!(
                errors,
                ["endpoints.toml:2: server.max_connections: must be an integer from 1 to 1000000"],
                "{value}"
            );
        }
    }
}
