//! End-to-end workflows over real sockets: every step type, the 18 condition operators, the
//! step tree (branches, concurrency, copy-on-write data, delays), webhooks against a real local
//! hyper server (timeouts, retries), continue sync/async/504/500, SSE frame by frame.
#![cfg(feature = "listener")]
mod listener_support;
use listener_support::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sync_continue(n: usize, steps: &str) -> String {
    ep(n, "return_type = \"continue\"\nrun_mode = \"sync\"", steps)
}
fn respond(id: &str, extra: &str, body: &str) -> String {
    format!("[[endpoint.step]]\nid = \"{id}\"\ntype = \"respond\"\n{extra}\nreturn_type = \"data\"\nreturn_data = '''{body}'''\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_condition_operators() {
    // (operator, left, right, right2, expected branch)
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        ("equal", "10", "10.0", "", true),
        ("equal", "abc", "abd", "", false),
        ("not_equal", "abc", "abd", "", true),
        ("not_equal", "5", "5", "", false),
        ("greater", "10", "9", "", true), // numbers, not strings
        ("greater", "b", "a", "", true),
        ("greater", "2024-01-01", "2024-01-02", "", false), // dates
        ("greater_or_equal", "3", "3", "", true),
        ("greater_or_equal", "2", "3", "", false),
        ("less", "9", "10", "", true),
        (
            "less",
            "2024-03-01 10:00:00",
            "2024-03-01T09:00:00Z",
            "",
            false,
        ),
        ("less_or_equal", "3", "3", "", true),
        ("less_or_equal", "4", "3", "", false),
        ("greater_than_now", "2999-01-01", "", "", true),
        ("greater_than_now", "2000-01-01", "", "", false),
        ("less_than_now", "2000-01-01T00:00:00Z", "", "", true),
        ("less_than_now", "not a date", "", "", false),
        ("between", "5", "1", "10", true),
        ("between", "2024-06-01", "2024-01-01", "2024-12-31", true),
        ("between", "11", "1", "10", false),
        ("contains", "hello world", "o w", "", true),
        ("contains", "hello", "x", "", false),
        ("not_contains", "hello", "x", "", true),
        ("not_contains", "hello", "ell", "", false),
        ("begins_with", "invoice-7", "invoice", "", true),
        ("begins_with", "invoice-7", "7", "", false),
        ("not_begins_with", "invoice-7", "x", "", true),
        ("not_begins_with", "invoice-7", "inv", "", false),
        ("ends_with", "file.pdf", ".pdf", "", true),
        ("ends_with", "file.pdf", ".doc", "", false),
        ("not_ends_with", "file.pdf", ".doc", "", true),
        ("not_ends_with", "file.pdf", "pdf", "", false),
        ("is_empty", "", "", "", true),
        ("is_empty", "x", "", "", false),
        ("empty", "  ", "", "", true),
        ("is_not_empty", "x", "", "", true),
        ("is_not_empty", "", "", "", false),
        ("not_empty", "", "", "", false),
    ];
    let mut cfg = String::new();
    for (i, (op, _, _, _, _)) in cases.iter().enumerate() {
        // Operands come from the request, so they are rendered like real data.
        let steps = format!(
            "{}{}{}",
            step(
                "c",
                "condition",
                &format!("left = \"{{{{ __data.l }}}}\"\noperator = \"{op}\"\nright = \"{{{{ __data.r }}}}\"\nright2 = \"{{{{ __data.r2 }}}}\"")
            ),
            respond("y", "parent = \"c\"\nbranch = \"yes\"", "yes"),
            respond("n", "parent = \"c\"\nbranch = \"no\"", "no"),
        );
        cfg.push_str(&sync_continue(i + 1, &steps));
    }
    let s = serve(&cfg).await;
    for (i, (op, l, r, r2, want)) in cases.iter().enumerate() {
        let body = serde_json::json!({"l": l, "r": r, "r2": r2}).to_string();
        let resp = s.post_json(&path(i + 1), &body).await;
        assert_eq!(resp.status, 200, "{op}");
        assert_eq!(
            resp.body,
            if *want { "yes" } else { "no" },
            "{op} {l:?} {r:?} {r2:?}"
        );
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_value_is_a_string_and_expression_is_typed() {
    let steps = [
        step("a", "store", "name = \"s\"\nvalue = \"{{ __data.n * 2 }}\""),
        step("b", "store", "name = \"t\"\nexpression = \"__data.n * 2\""),
        step("c", "store", "name = \"deep.list\"\nexpression = \"[__data.n, 'x']\""),
        respond("r", "", "{{ __data.s is same as('8') ? 'str' : 'notstr' }} {{ __data.t is same as(8) ? 'int' : 'notint' }} {{ __data.deep.list|json_encode }}"),
    ]
    .concat();
    let s = serve(&sync_continue(1, &steps)).await;
    let r = s.post_json(&path(1), r#"{"n": 4}"#).await;
    assert_eq!((r.status, r.body.as_str()), (200, r#"str int [4,"x"]"#));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn siblings_see_their_own_copy_of_data_and_run_concurrently() {
    // root → (left: store x=left, then respond later) and (right: store x=right, delay, respond)
    let cow = [
        step("root", "store", "name = \"x\"\nvalue = \"root\""),
        step(
            "left",
            "store",
            "parent = \"root\"\nname = \"x\"\nvalue = \"left\"",
        ),
        respond("r", "parent = \"root\"\ndelay_ms = 100", "{{ __data.x }}"),
    ]
    .concat();
    let sse = [
        step("a", "emit", "delay_ms = 400\ndata = \"a\""),
        step("b", "emit", "parent = \"\"\ndelay_ms = 400\ndata = \"b\""),
        step("c", "emit", "parent = \"\"\ndelay_ms = 400\ndata = \"c\""),
    ]
    .concat();
    let cfg = sync_continue(1, &cow) + &ep(2, "return_type = \"sse\"\nrun_mode = \"sync\"", &sse);
    let s = serve(&cfg).await;
    let r = s.get(&path(1)).await;
    assert_eq!(r.body, "root", "a sibling's write must be invisible");
    let t = Instant::now();
    let mut st = Stream::open(s.addr, "GET", &path(2), &[]).await;
    let mut datas = Vec::new();
    while let Some(f) = st.next_frame(Duration::from_secs(5)).await {
        if f.starts_with("event: end") {
            break;
        }
        datas.push(
            f.lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("")
                .to_string(),
        );
    }
    let took = t.elapsed();
    datas.sort();
    assert_eq!(datas, ["a", "b", "c"]);
    assert!(
        took >= Duration::from_millis(390) && took < Duration::from_millis(1100),
        "{took:?}"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_sync_timeout_missing_response_failure_and_async() {
    let cfg = [
        sync_continue(
            1,
            &respond("r", "delay_ms = 50", "{\"ok\": {{ __data.n }}}"),
        ),
        ep(
            2,
            "return_type = \"continue\"\nrun_mode = \"sync\"\nresponse_timeout_ms = 200",
            &respond("r", "delay_ms = 5000", "late"),
        ),
        sync_continue(3, &step("l", "log", "message = \"nothing to say\"")),
        sync_continue(
            4,
            &[
                step("bad", "store", "name = \"x\"\nexpression = \"1 / 0\""),
                respond("r", "", "never"),
            ]
            .concat(),
        ),
        ep(
            5,
            "return_type = \"continue\"",
            &respond("r", "delay_ms = 50", "quick"),
        ),
        ep(
            6,
            "return_type = \"continue\"",
            &step("m", "set_memory", "name = \"async6\"\nvalue = \"done\""),
        ),
        ep(
            7,
            "return_type = \"data\"\nreturn_data = \"{{ memoryGet('async6') }}\"",
            "",
        ),
        // Two respond steps: the first one wins.
        sync_continue(
            8,
            &[
                respond("r1", "", "first"),
                respond("r2", "parent = \"\"\ndelay_ms = 100", "second"),
            ]
            .concat(),
        ),
    ]
    .concat();
    let s = serve(&cfg).await;
    let r = s.get(&format!("{}?n=3", path(1))).await;
    assert_eq!((r.status, r.json()), (200, serde_json::json!({"ok": 3})));
    let t = Instant::now();
    let r = s.get(&path(2)).await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_millis(3000));
    let r = s.get(&path(3)).await;
    assert_eq!(r.status, 500);
    insta::assert_snapshot!(r.body, @r#"{"error":"workflow finished without a response"}"#);
    let r = s.get(&path(4)).await;
    assert_eq!(r.status, 500);
    insta::assert_snapshot!(r.body, @r#"{"error":"workflow step \"bad\" failed"}"#);
    let r = s.get(&path(5)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "quick"));
    let r = s.get(&path(6)).await;
    assert_eq!(r.status, 202);
    assert_eq!(r.json(), serde_json::json!({"status": "accepted"}));
    assert_eq!(s.get(&path(7)).await.body, "done");
    let r = s.get(&path(8)).await;
    assert_eq!(r.body, "first");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_endpoints_answer_first_and_run_the_workflow_after() {
    let steps = [
        step(
            "d",
            "set_memory",
            "delay_ms = 500\nname = \"after\"\nexpression = \"__data.n + 1\"\nttl_s = 60",
        ),
        step("bad", "store", "name = \"x\"\nexpression = \"1 / 0\""),
    ]
    .concat();
    let cfg = ep(
        1,
        "return_type = \"data\"\nreturn_data = \"got {{ __data.n }}\"",
        &steps,
    ) + &ep(
        2,
        "return_type = \"data\"\nreturn_data = \"{{ memoryGet('after', 'unset') }}\"",
        "",
    );
    let s = serve(&cfg).await;
    let t = Instant::now();
    let r = s.get(&format!("{}?n=41", path(1))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "got 41"));
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "answered before the workflow"
    );
    assert_eq!(s.get(&path(2)).await.body, "unset");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        s.get(&path(2)).await.body,
        "42",
        "set_memory is shared by every endpoint"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_frames_ids_multiline_events_and_end() {
    let steps = [
        step("a", "emit", "data = '''line one\nline two'''"),
        step(
            "b",
            "emit",
            "event = \"progress\"\ndata = \"{{ __data.n }}%\"",
        ),
        step("c", "emit", "final = true\ndata = \"bye\""),
        step("d", "emit", "data = \"after final is ignored\""),
    ]
    .concat();
    let cfg = ep(1, "return_type = \"sse\"\nrun_mode = \"sync\"", &steps)
        + &ep(
            2,
            "return_type = \"sse\"\nrun_mode = \"sync\"",
            &step("l", "log", "message = \"x\""),
        )
        + &ep(
            3,
            "return_type = \"sse\"\nrun_mode = \"sync\"",
            &step("bad", "emit", "data = \"{{ 1 / 0 }}\""),
        );
    let s = serve(&cfg).await;
    let mut st = Stream::open(s.addr, "GET", &format!("{}?n=50", path(1)), &[]).await;
    assert_eq!(st.status, 200);
    assert_eq!(
        st.headers
            .iter()
            .find(|(k, _)| k == "content-type")
            .map(|(_, v)| v.as_str()),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(
        st.headers
            .iter()
            .find(|(k, _)| k == "cache-control")
            .map(|(_, v)| v.as_str()),
        Some("no-cache")
    );
    let mut frames = Vec::new();
    while let Some(f) = st.next_frame(Duration::from_secs(5)).await {
        frames.push(f);
    }
    insta::assert_debug_snapshot!(frames, @r#"
    [
        "id: 1\ndata: line one\ndata: line two",
        "id: 2\nevent: progress\ndata: 50%",
        "id: 3\ndata: bye",
        "event: end\ndata:",
    ]
    "#);
    // A run without emits: just the end.
    let mut st = Stream::open(s.addr, "GET", &path(2), &[]).await;
    assert_eq!(
        st.next_frame(Duration::from_secs(5)).await.as_deref(),
        Some("event: end\ndata:")
    );
    // A failure before the first frame: 500 JSON.
    let r = s.get(&path(3)).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["error"], "workflow step \"bad\" failed");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_client_disconnect_cancels_the_run() {
    let steps = [
        step("a", "emit", "data = \"hello\""),
        step(
            "m",
            "set_memory",
            "delay_ms = 400\nname = \"cancel-check\"\nvalue = \"ran\"",
        ),
    ]
    .concat();
    let cfg = ep(1, "return_type = \"sse\"\nrun_mode = \"sync\"", &steps)
        + &ep(2, "return_type = \"data\"\nreturn_data = \"{{ memoryGet('cancel-check', 'cancelled') }}\"", "");
    let s = serve(&cfg).await;
    let mut st = Stream::open(s.addr, "GET", &path(1), &[]).await;
    assert_eq!(
        st.next_frame(Duration::from_secs(5)).await.as_deref(),
        Some("id: 1\ndata: hello")
    );
    drop(st);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(s.get(&path(2)).await.body, "cancelled");
    // Control: staying connected lets the run finish.
    let mut st = Stream::open(s.addr, "GET", &path(1), &[]).await;
    while st.next_frame(Duration::from_secs(5)).await.is_some() {}
    assert_eq!(s.get(&path(2)).await.body, "ran");
    s.running.shutdown().await;
}

/// One request seen by the hook server: method, path, `x-sig` header, body.
type Seen1 = (String, String, String, String);
type Seen = Arc<Mutex<Vec<Seen1>>>;

/// A tiny real HTTP server for webhook tests: records requests, answers by path.
struct Hook {
    addr: std::net::SocketAddr,
    seen: Seen,
    hits: Arc<AtomicUsize>,
}

async fn hook_server() -> Hook {
    use http_body_util::{BodyExt, Full};
    use hyper::{body::Incoming, Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::<Seen1>::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (seen2, hits2) = (seen.clone(), hits.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, hits) = (seen2.clone(), hits2.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (seen, hits) = (seen.clone(), hits.clone());
                    async move {
                        hits.fetch_add(1, Ordering::SeqCst);
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let sig = req
                            .headers()
                            .get("x-sig")
                            .map(|v| v.to_str().unwrap_or("").to_string())
                            .unwrap_or_default();
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let flaky_before = {
                            let mut seen = seen.lock().expect("lock");
                            let n = seen.iter().filter(|s| s.1 == "/flaky").count();
                            seen.push((
                                method,
                                path.clone(),
                                sig,
                                String::from_utf8_lossy(&body).into_owned(),
                            ));
                            n
                        };
                        let (status, text) = match path.as_str() {
                            "/slow" => {
                                tokio::time::sleep(Duration::from_millis(2000)).await;
                                (200, "{}".to_string())
                            }
                            "/flaky" if flaky_before < 2 => (503, "busy".to_string()),
                            "/text" => (404, "nope".to_string()),
                            _ => (
                                200,
                                format!("{{\"echo\": {}}}", String::from_utf8_lossy(&body)),
                            ),
                        };
                        let mut r = Response::new(Full::new(bytes::Bytes::from(text)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        r.headers_mut()
                            .insert("x-reply", "yes".parse().expect("hv"));
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Hook { addr, seen, hits }
}

fn webhook(url: &str, extra: &str) -> String {
    step("w", "webhook", &format!("url = \"{url}\"\n{extra}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_calls_a_real_server() {
    let hook = hook_server().await;
    let base = format!("http://{}", hook.addr);
    let report = "{{ __data.webhook.ok ? 'ok' : 'fail' }} {{ __data.webhook.status }} {{ __data.webhook.body.echo.n ?? __data.webhook.body }} {{ __data.webhook.headers.x_reply }}";
    let cfg = [
        "[server]\nwebhook_allow = [\"127.0.0.1\"]\n".to_string(),
        sync_continue(1, &[
            webhook(&format!("{base}/echo"), "method = \"put\"\nheaders = { x-sig = \"sig-{{ __data.n }}\" }\nbody = '''{\"n\": {{ __data.n }}}'''"),
            respond("r", "", report),
        ].concat()),
        sync_continue(2, &[webhook(&format!("{base}/slow"), "timeout_ms = 100"), respond("r", "", "{{ __data.webhook.ok ? 'ok' : 'fail' }} {{ __data.webhook.status }}")].concat()),
        sync_continue(3, &[webhook(&format!("{base}/flaky"), "retries = 2\nbody = \"{{ 9 }}\""), respond("r", "", report)].concat()),
        sync_continue(4, &[webhook(&format!("{base}/text"), ""), respond("r", "", report)].concat()),
        sync_continue(5, &[webhook("http://127.0.0.1:1/none", "timeout_ms = 500"), respond("r", "", "{{ __data.webhook.ok ? 'ok' : 'fail' }} {{ __data.webhook.status }}")].concat()),
    ]
    .concat();
    let s = serve(&cfg).await;
    let r = s.get(&format!("{}?n=7", path(1))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok 200 7 yes"));
    {
        let seen = hook.seen.lock().expect("lock");
        assert_eq!(
            seen[0],
            (
                "PUT".into(),
                "/echo".into(),
                "sig-7".into(),
                "{\"n\": 7}".into()
            )
        );
    }
    let t = Instant::now();
    let r = s.get(&path(2)).await;
    assert_eq!(r.body, "fail 0");
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "timed out after 100 ms"
    );
    let before = hook.hits.load(Ordering::SeqCst);
    let r = s.get(&path(3)).await;
    // /flaky answers 503 twice, then 200: retries = 2 makes three attempts.
    assert_eq!(r.body, r#"ok 200 {"echo":9} yes"#);
    assert_eq!(
        hook.hits.load(Ordering::SeqCst) - before,
        3,
        "retried twice"
    );
    let r = s.get(&path(4)).await;
    assert_eq!(r.body, "fail 404 nope yes");
    let r = s.get(&path(5)).await;
    assert_eq!(r.body, "fail 0");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_records_and_snippets() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("records.json"),
        r#"{"contact": [{"id": 1, "email": "a@x.io", "name": "Ann"}]}"#,
    )
    .expect("write");
    let cfg = format!(
        "[server]\nrecords = \"records.json\"\ntimezone = \"Europe/Berlin\"\n[snippets]\nsig = \"-- {{{{ who }}}}\"\n{}",
        sync_continue(1, &[
            step("l", "log", "message = \"looking up {{ __data.email }}\""),
            respond("r", "", "{{ findOne('contact', 'email', __data.email).name }} {% include 'sig' with {who: 'bot'} %}"),
        ].concat())
    );
    let path_cfg = dir.join("endpoints.toml");
    std::fs::write(&path_cfg, cfg).expect("write");
    let s = serve_file(&path_cfg).await;
    let r = s.get(&format!("{}?email=a@x.io", path(1))).await;
    assert_eq!((r.status, r.body.as_str()), (200, "Ann -- bot"));
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_memory_honours_ttl() {
    let cfg = ep(
        1,
        "return_type = \"data\"\nreturn_data = \"set\"",
        &step(
            "m",
            "set_memory",
            "name = \"short\"\nvalue = \"v\"\nttl_s = 1",
        ),
    ) + &ep(
        2,
        "return_type = \"data\"\nreturn_data = \"{{ memoryGet('short', 'gone') }}\"",
        "",
    );
    let s = serve(&cfg).await;
    assert_eq!(s.get(&path(1)).await.body, "set");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.get(&path(2)).await.body, "v");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.get(&path(2)).await.body, "gone");
    s.running.shutdown().await;
}

/// Takes 20 s of wall-clock time (the documented async wait); sleeps, costs no CPU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_continue_answers_202_after_20_s_while_the_run_goes_on() {
    let steps = [
        respond("r", "delay_ms = 21000", "too late"),
        step(
            "m",
            "set_memory",
            "parent = \"\"\ndelay_ms = 20500\nname = \"async-late\"\nvalue = \"finished\"",
        ),
    ]
    .concat();
    let cfg = ep(1, "return_type = \"continue\"", &steps)
        + &ep(
            2,
            "return_type = \"data\"\nreturn_data = \"{{ memoryGet('async-late', 'pending') }}\"",
            "",
        );
    let s = serve(&cfg).await;
    let t = Instant::now();
    let r = s.get(&path(1)).await;
    let took = t.elapsed();
    assert_eq!(
        (r.status, r.json()),
        (202, serde_json::json!({"status": "accepted"}))
    );
    assert!(
        took >= Duration::from_secs(20) && took < Duration::from_secs(21),
        "{took:?}"
    );
    assert_eq!(s.get(&path(2)).await.body, "pending");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        s.get(&path(2)).await.body,
        "finished",
        "the run went on after the 202"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_1000_steps_runs_and_1001_is_refused() {
    let chain = |n: usize| {
        let mut steps = String::new();
        for i in 0..n - 1 {
            steps.push_str(&step(
                &format!("s{i}"),
                "store",
                "name = \"n\"\nexpression = \"(__data.n ?? 0) + 1\"",
            ));
        }
        steps + &respond("r", "", "{{ __data.n }}")
    };
    let s = serve(&sync_continue(1, &chain(1000))).await;
    let r = s.get(&path(1)).await;
    assert_eq!((r.status, r.body.as_str()), (200, "999"));
    s.running.shutdown().await;
    let (errors, _) =
        flexscript::listener::check_config(&write_config(&sync_continue(1, &chain(1001))));
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .ends_with("endpoint[0].step: at most 1000 steps per endpoint"),
        "{errors:?}"
    );
}
