//! `flexscript test` (docs/testing.md), through the real binary in temp dirs: verdicts, diffs,
//! snapshots and `--update`, JUnit XML, exit codes, bad input, the frozen clock and stubs, the
//! demo's own cases, and the equivalence with a real `serve` over HTTP.

mod listener_support;

use listener_support::{ep_path, hash, request, serve_file, temp_dir, TempDir};
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");

fn config() -> String {
    format!(
        r#"
[server]
body_limit = 200

[[endpoint]]
name = "Greeting"
first_hash = "{a}"
second_hash = "{b}"
return_type = "html"
return_html = "<p>{{{{ __data.name|default('you') }}}}</p>"

[[endpoint]]
name = "Order"
first_hash = "{c}"
second_hash = "{d}"
run_mode = "sync"
return_type = "continue"
response_timeout_ms = 2000

[[endpoint.step]]
id = "check"
type = "condition"
left = "{{{{ __data.qty ?? 0 }}}}"
operator = "greater"
right = "0"

[[endpoint.step]]
id = "yes"
branch = "yes"
type = "respond"
return_type = "data"
return_data = '{{"ok": true, "qty": {{{{ __data.qty }}}}, "at": "{{{{ "now"|date("Y-m-d H:i") }}}}", "id": "{{{{ uuid() }}}}"}}'

[[endpoint.step]]
id = "no"
parent = "check"
branch = "no"
type = "respond"
return_type = "data"
return_data = '{{"ok": false}}'

[[endpoint]]
name = "Hook"
first_hash = "{e}"
second_hash = "{f}"
run_mode = "async"
return_type = "data"
return_data = '{{"queued": true}}'

[[endpoint.step]]
id = "wait"
type = "set_memory"
delay_ms = 7200000
name = "woke"
expression = "'now'|date('H:i')"
ttl_s = 86400

# Loopback only (nothing listens on port 9): `serve` in the equivalence test never reaches it
# either (the two-hour delay outlasts the server).
[[endpoint.step]]
id = "send"
parent = "wait"
type = "webhook"
method = "POST"
url = "http://127.0.0.1:9/orders/1"
headers = {{ authorization = "Bearer top-secret-value" }}
body = '{{"n": 1}}'

[[endpoint]]
name = "Deadline"
first_hash = "{i}"
second_hash = "{j}"
run_mode = "sync"
return_type = "continue"

[[endpoint.step]]
id = "future"
type = "condition"
left = "{{{{ __data.due }}}}"
operator = "greater_than_now"

[[endpoint.step]]
id = "open"
branch = "yes"
type = "respond"
return_type = "data"
return_data = '{{"open": true}}'

[[endpoint.step]]
id = "closed"
parent = "future"
branch = "no"
type = "respond"
return_type = "data"
return_data = '{{"open": false}}'

[[endpoint]]
name = "Hang"
first_hash = "{g}"
second_hash = "{h}"
run_mode = "sync"
return_type = "continue"
response_timeout_ms = 3000

[[endpoint.step]]
id = "sleep"
type = "log"
delay_ms = 3600000
message = "late"
"#,
        a = hash('a'),
        b = hash('b'),
        c = hash('c'),
        d = hash('d'),
        e = hash('e'),
        f = hash('f'),
        g = hash('9'),
        h = hash('8'),
        i = hash('7'),
        j = hash('6'),
    )
}

const CASES: &str = r#"
[defaults]
now = "2026-03-01T09:00:00Z"
seed = 7

[[case]]
name = "greets by name"
endpoint = "Greeting"
query = "name=Ann"
[case.expect]
status = 200
content_type = "text/html"
body = "<p>Ann</p>"
snapshot = true

[[case]]
name = "order accepted"
endpoint = "Order"
method = "POST"
headers = { content-type = "application/json" }
body = '{"qty": 2}'
[case.expect]
status = 200
json = { ok = true, qty = 2, at = "2026-03-01 09:00", id = "IGNORED" }
snapshot = true
"#;

/// A temp project: `endpoints.toml` and `tests/orders.cases.toml`.
fn project(cases: &str) -> TempDir {
    let dir = temp_dir();
    std::fs::write(dir.join("endpoints.toml"), config()).expect("write config");
    std::fs::create_dir_all(dir.join("tests")).expect("mkdir");
    std::fs::write(dir.join("tests/orders.cases.toml"), cases).expect("write cases");
    dir
}

fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(BIN)
        .current_dir(dir)
        .arg("test")
        .arg("endpoints.toml")
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run flexscript test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or("")
}

#[test]
fn failing_expectation_shows_a_diff_then_update_writes_and_passes() {
    let dir = project(CASES);
    // `id` is a seeded UUID, not "IGNORED": the JSON expectation fails with a diff.
    let (code, out, _) = run(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("order accepted ... FAILED"), "{out}");
    assert!(out.contains("-  \"id\": \"IGNORED\""), "{out}");
    assert!(out.contains("+  \"id\": \""), "{out}");
    assert!(out.contains("is missing; --update would write:"), "{out}");
    assert!(!dir.join("tests/snapshots").exists());
    assert_eq!(last_line(&out), "0 passed, 2 failed");

    // Fix the case; --update writes both snapshots.
    let fixed = CASES.replace(
        "json = { ok = true, qty = 2, at = \"2026-03-01 09:00\", id = \"IGNORED\" }",
        "body_contains = \"2026-03-01 09:00\"",
    );
    std::fs::write(dir.join("tests/orders.cases.toml"), &fixed).expect("write");
    let (code, out, _) = run(&dir, &["--update"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "2 passed, 0 failed, 2 new");
    let snap = dir.join("tests/snapshots/orders.cases/order accepted.snap");
    let text = std::fs::read_to_string(&snap).expect("snapshot written");
    assert!(text.contains("status: 200"), "{text}");
    assert!(text.contains("\"at\": \"2026-03-01 09:00\""), "{text}");
    assert!(text.contains("check (condition): succeeded"), "{text}");

    // Second run: stable (seeded ids, frozen clock), passes without writing.
    let (code, out, _) = run(&dir, &["--jobs", "1"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "2 passed, 0 failed");
    assert_eq!(std::fs::read_to_string(&snap).expect("read"), text);

    // --filter runs only the matching case.
    let (code, out, _) = run(&dir, &["--filter", "greets"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(last_line(&out), "1 passed, 0 failed");

    // An edited template breaks the snapshot, shown as a diff.
    let edited = config().replace("<p>{{ __data", "<p class=x>{{ __data");
    std::fs::write(dir.join("endpoints.toml"), edited).expect("write");
    let fixed_body = fixed.replace("body = \"<p>Ann</p>\"\n", "");
    std::fs::write(dir.join("tests/orders.cases.toml"), &fixed_body).expect("write");
    let (code, out, _) = run(&dir, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("greets by name ... FAILED"), "{out}");
    assert!(
        out.contains("differs (run with --update to accept)"),
        "{out}"
    );
    assert!(out.contains("-<p>Ann</p>"), "{out}");
    assert!(out.contains("+<p class=x>Ann</p>"), "{out}");
    assert_eq!(last_line(&out), "1 passed, 1 failed");

    // A corrupt snapshot fails that case with the reason.
    std::fs::write(&snap, "garbage").expect("write");
    let (code, out, _) = run(&dir, &["--filter", "order"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is corrupt"), "{out}");
}

/// `uniqueId()` counts per case under the frozen clock: with several cases run side by side
/// (`--jobs 2`), each case's ids are its own frozen `now` and the next microseconds, whatever
/// the order the cases ran in.
#[test]
fn unique_ids_are_per_case_with_several_jobs() {
    let dir = temp_dir();
    let config = format!(
        r#"
[[endpoint]]
name = "Ids"
first_hash = "{a}"
second_hash = "{b}"
return_type = "html"
return_html = "{{{{ uniqueId('a_') }}}} {{{{ uniqueId() }}}} {{{{ uniqueId() }}}}"
"#,
        a = hash('a'),
        b = hash('b'),
    );
    std::fs::write(dir.join("endpoints.toml"), config).expect("write config");
    std::fs::create_dir_all(dir.join("tests")).expect("mkdir");
    // 2026-03-01T09:00:00Z is 0x69a40010 seconds; each case starts from it.
    let mut cases = String::from("[defaults]\nnow = \"2026-03-01T09:00:00Z\"\n");
    for i in 0..6 {
        cases.push_str(&format!(
            "\n[[case]]\nname = \"ids {i}\"\nendpoint = \"Ids\"\n[case.expect]\nstatus = 200\n\
             body = \"a_69a4001000000 69a4001000001 69a4001000002\"\n"
        ));
    }
    std::fs::write(dir.join("tests/ids.cases.toml"), cases).expect("write cases");
    for jobs in ["2", "1", "2"] {
        let (code, out, err) = run(&dir, &["--jobs", jobs]);
        assert_eq!(code, 0, "--jobs {jobs}: {out}{err}");
        assert_eq!(last_line(&out), "6 passed, 0 failed", "--jobs {jobs}");
    }
}

#[test]
fn junit_output_parses_with_the_right_counts() {
    let dir = project(CASES);
    let (code, _, _) = run(&dir, &["--junit", "report.xml"]);
    assert_eq!(code, 1);
    let xml = std::fs::read_to_string(dir.join("report.xml")).expect("junit written");
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut suites_attr) = (0, 0, None);
    loop {
        match reader.read_event().expect("well-formed XML") {
            quick_xml::events::Event::Eof => break,
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                match e.name().as_ref() {
                    b"testcase" => cases += 1,
                    b"failure" => failures += 1,
                    b"testsuites" => {
                        let attr = |n: &[u8]| {
                            e.attributes()
                                .flatten()
                                .find(|a| a.key.as_ref() == n)
                                .map(|a| String::from_utf8_lossy(&a.value).into_owned())
                        };
                        suites_attr = Some((attr(b"tests"), attr(b"failures")));
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    assert_eq!((cases, failures), (2, 2), "{xml}");
    assert_eq!(
        suites_attr,
        Some((Some("2".to_string()), Some("2".to_string())))
    );
}

#[test]
fn frozen_clock_skips_delays_stubs_answer_webhooks_and_hangs_end_cleanly() {
    let cases = r#"
[defaults]
now = "2026-03-01T09:00:00Z"

[[case]]
name = "delay then webhook"
endpoint = "Hook"
[[case.webhook]]
url = "http://127.0.0.1:9/orders*"
status = 201
body = '{"id": 77}'
[case.expect]
json = { queued = true }
steps = ["wait", "send"]
memory = { woke = "11:00" }
snapshot = true

[[case]]
name = "unstubbed webhook"
endpoint = "Hook"

[[case]]
name = "deadline after the frozen now"
endpoint = "Deadline"
query = "due=2026-03-01T09:30:00Z"
[case.expect]
json = { open = true }

[[case]]
name = "deadline before the frozen now"
endpoint = "Deadline"
query = "due=2026-03-01T08:30:00Z"
[case.expect]
json = { open = false }

[[case]]
name = "hangs"
endpoint = "Hang"
[case.expect]
status = 504
"#;
    let dir = project(cases);
    let started = std::time::Instant::now();
    let (code, out, _) = run(&dir, &["--update"]);
    // Two hours of delay and a one-hour hang, on the frozen clock: no real waiting.
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("delay then webhook ... new snapshot"), "{out}");
    assert!(out.contains("hangs ... ok"), "{out}");
    assert!(out.contains("unstubbed webhook ... FAILED"), "{out}");
    assert!(
        out.contains("matched no [[case.webhook]] stub:\nPOST http://127.0.0.1:9/orders/1"),
        "{out}"
    );
    let snap =
        std::fs::read_to_string(dir.join("tests/snapshots/orders.cases/delay then webhook.snap"))
            .expect("snapshot");
    assert!(snap.contains("POST http://127.0.0.1:9/orders/1"), "{snap}");
    assert!(snap.contains("authorization: (hidden)"), "{snap}");
    assert!(!snap.contains("top-secret-value"), "{snap}");
    assert!(snap.contains("set woke = \"11:00\""), "{snap}");
    assert_eq!(last_line(&out), "4 passed, 1 failed, 1 new");
}

#[test]
fn tokens_body_limit_and_bad_input() {
    // Signed tokens need an authenticated endpoint.
    let dir = project("");
    let auth = format!(
        "{}\n[[endpoint]]\nname = \"Private\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n\
         return_type = \"data\"\nreturn_data = '{{\"user\": \"{{{{ __data.__headers.__jwt_data[0].user ?? 0 }}}}\"}}'\n\
         add_authentication = true\nendpoint_key = \"issuer\"\nendpoint_secret = \"s3cret\"\n",
        config(),
        hash('1'),
        hash('2')
    );
    std::fs::write(dir.join("endpoints.toml"), auth).expect("write");
    let cases = r#"
[[case]]
name = "signed"
endpoint = "Private"
token = { data = { user = "ann" } }
[case.expect]
status = 200
body_contains = "ann"

[[case]]
name = "raw refused"
endpoint = "Private"
token = "not.a.token"
[case.expect]
status = 401

[[case]]
name = "too big"
endpoint = "Order"
method = "POST"
body = '{"qty": 1, "pad": "PAD"}'
[case.expect]
status = 413
"#;
    let cases = cases.replace("PAD", &"x".repeat(300));
    std::fs::write(dir.join("tests/orders.cases.toml"), cases).expect("write");
    let (code, out, err) = run(&dir, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(last_line(&out), "3 passed, 0 failed");

    // A template case with its own records (relative to the case file) and memory presets.
    std::fs::write(
        dir.join("tests/people.json"),
        r#"{"person": [{"id": 1, "name": "Zoe"}]}"#,
    )
    .expect("write records");
    let template_case = r#"
[[case]]
name = "records"
source = "{{ findOne('person', 'id', 1).name }} {{ memoryGet('k') }} {{ random(1000) }}"
records = "people.json"
memory = { k = "v" }
seed = 3
[case.expect]
snapshot = true
"#;
    std::fs::write(dir.join("tests/t.cases.toml"), template_case).expect("write");
    let (code, out, err) = run(&dir, &["tests/t.cases.toml", "--update"]);
    assert_eq!(code, 0, "{out}{err}");
    let snap = std::fs::read_to_string(dir.join("tests/snapshots/t.cases/records.snap"))
        .expect("snapshot");
    assert!(snap.contains("\nZoe v "), "{snap}");
    // Seeded: the same `random()` on the next run.
    let (code, out, _) = run(&dir, &["tests/t.cases.toml"]);
    assert_eq!((code, last_line(&out)), (0, "1 passed, 0 failed"), "{out}");

    let bad = |text: &str| {
        std::fs::write(dir.join("bad.cases.toml"), text).expect("write");
        let (code, out, err) = run(&dir, &["bad.cases.toml"]);
        assert_eq!(code, 2, "{out}{err}");
        err
    };
    let err = bad("[[case]]\nname = \"x\"\nendpoint = \"Ordr\"\n");
    assert!(
        err.contains("bad.cases.toml:3: case \"x\": no endpoint named \"Ordr\"")
            && err.contains("did you mean \"Order\"?"),
        "{err}"
    );
    let err = bad("[[case]]\nname = \"x\"\nendpoint = \"Order\"\n[case.expect]\nstauts = 1\n");
    assert!(
        err.contains("bad.cases.toml:5:1: unknown field `stauts`"),
        "{err}"
    );
    assert!(err.contains("did you mean `status`?"), "{err}");
    let err = bad("[[case]]\nname = \"x\nendpoint = \"Order\"\n");
    assert!(err.contains("bad.cases.toml:2:"), "{err}");
    let err = bad("[[case]]\nname = \"x\"\ntemplate = \"endpoints.tml\"\n");
    assert!(err.contains("did you mean \"endpoints.toml\"?"), "{err}");
    let (code, _, err) = run(&dir, &["missing.cases.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("missing.cases.toml: no such file"), "{err}");
}

#[test]
fn the_demo_cases_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(BIN)
        .current_dir(root)
        .args(["test", "examples/endpoints.toml"])
        .env("DEMO_ENDPOINT_SECRET", "demo-secret")
        .env("NO_COLOR", "1")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        last_line(&stdout).ends_with(" passed, 0 failed"),
        "{stdout}"
    );
    assert!(!stdout.contains(" new"), "{stdout}");
}

/// (case name, method, endpoint, headers, query).
type LiveCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// The response section of a snapshot, as the same request answered over a real socket.
fn as_snapshot(status: u16, headers: &[(String, String)], body: &str) -> String {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| {
            !["content-length", "date", "transfer-encoding", "connection"].contains(&k.as_str())
        })
        .collect();
    hs.sort();
    let mut s = format!("## response\nstatus: {status}\n");
    for (k, v) in hs {
        s.push_str(&format!("{k}: {v}\n"));
    }
    if !body.is_empty() {
        let pretty = serde_json::from_str::<serde_json::Value>(body)
            .map(|v| serde_json::to_string_pretty(&v).expect("json"))
            .unwrap_or_else(|_| body.trim_end().to_string());
        s.push_str(&format!("\n{pretty}\n"));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_cases_answer_the_same_through_serve() {
    // Requests without time or randomness in their answers, so both sides must match exactly.
    let cases: [LiveCase; 5] = [
        ("html", "GET", "Greeting", &[], "name=Ann"),
        (
            "no qty",
            "POST",
            "Order",
            &[("content-type", "application/json")],
            "",
        ),
        ("wrong method", "DELETE", "Greeting", &[], ""),
        ("preflight-less options", "OPTIONS", "Greeting", &[], ""),
        ("async data", "POST", "Hook", &[], ""),
    ];
    let mut text = String::new();
    for (name, method, ep, headers, query) in cases {
        text.push_str(&format!(
            "[[case]]\nname = \"{name}\"\nendpoint = \"{ep}\"\nmethod = \"{method}\"\nquery = \"{query}\"\n"
        ));
        if name == "no qty" {
            text.push_str("body = '{\"qty\": 0}'\n");
        }
        if name == "async data" {
            text.push_str("[[case.webhook]]\nurl = \"*\"\n");
        }
        text.push_str("headers = {");
        text.push_str(
            &headers
                .iter()
                .map(|(k, v)| format!("\"{k}\" = \"{v}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        text.push_str("}\n[case.expect]\nsnapshot = true\n");
    }
    let dir = project(&text);
    let (code, out, err) = run(&dir, &["--update"]);
    assert_eq!(code, 0, "{out}{err}");

    let server = serve_file(&dir.join("endpoints.toml")).await;
    let paths = [
        ("Greeting", ep_path('a', 'b')),
        ("Order", ep_path('c', 'd')),
        ("Hook", ep_path('e', 'f')),
    ];
    for (name, method, ep, headers, query) in cases {
        let path = &paths.iter().find(|(n, _)| *n == ep).expect("path").1;
        let target = if query.is_empty() {
            path.clone()
        } else {
            format!("{path}?{query}")
        };
        let body: &[u8] = if name == "no qty" {
            b"{\"qty\": 0}"
        } else {
            b""
        };
        let r = request(server.addr, method, &target, headers, body).await;
        let live = as_snapshot(r.status, &r.headers, &r.body);
        let snap =
            std::fs::read_to_string(dir.join(format!("tests/snapshots/orders.cases/{name}.snap")))
                .expect("snapshot");
        let section = snap
            .split("\n## steps")
            .next()
            .and_then(|s| s.split_once("## response"))
            .map(|(_, rest)| format!("## response{rest}"))
            .expect("response section");
        assert_eq!(section.trim_end(), live.trim_end(), "case {name}");
    }
    server.running.shutdown().await;
}
