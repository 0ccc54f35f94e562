//! Durable runs and state (docs/state.md) against real `flexscript serve` children killed with
//! SIGKILL, a real SQLite file in a temp dir and a real local webhook receiver on 127.0.0.1.
mod listener_support;
use flexscript::state::{sqlite::SqliteBackend, Backend, RunFilter, RunStatus};
use listener_support::*;

/// The configuration with `webhook_allow` opening this machine's test receivers: the
/// destination guard refuses loopback unless the operator allows it (docs/security.md).
fn allow_loopback(toml: &str) -> String {
    const ALLOW: &str = "[server]\nwebhook_allow = [\"127.0.0.1\"]\n";
    match toml.find("[server]\n") {
        Some(i) => format!("{}{ALLOW}{}", &toml[..i], &toml[i + "[server]\n".len()..]),
        None => format!("{ALLOW}{toml}"),
    }
}

/// Writes a configuration (see [`allow_loopback`]).
fn write_config(toml: &str) -> TempFile {
    listener_support::write_config(&allow_loopback(toml))
}
use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");

fn data_ep(n: usize, steps: &str) -> String {
    ep(
        n,
        "return_type = \"data\"\nreturn_data = '''{\"status\": \"received\"}'''",
        steps,
    )
}

/// Starts `flexscript serve PATH --addr 127.0.0.1:0` (through `sh -c PREFIX` when given) and
/// waits for its ready line; stderr is collected in the returned buffer.
async fn spawn_serve(
    path: &std::path::Path,
    prefix: Option<&str>,
) -> (Child, std::net::SocketAddr) {
    let mut cmd = match prefix {
        Some(p) => {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!("{p}; exec \"$0\" \"$@\"")).arg(BIN);
            c
        }
        None => Command::new(BIN),
    };
    let mut child = cmd
        .args([
            "serve",
            path.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    (child, addr)
}

fn kill9(child: &mut Child) {
    child.kill().expect("SIGKILL");
    let _ = child.wait();
}

/// Polls `cond` every 50 ms for up to `limit`.
async fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

/// The crash sequence of the mid-run kill tests: serves `cfg`, sends the request `send` builds
/// (the run's first webhook goes to `rx`, its second waits in a 1500 ms delay), waits for the
/// first call and for the run's record in the SQLite file, SIGKILLs the child, restarts it, and
/// waits for the run to turn final and past the delay's due time. Returns the run's final
/// status (the file must hold exactly one run) and the receiver's calls.
async fn kill_mid_run_and_restart<F, Fut>(
    cfg: &TempFile,
    rx: &Receiver,
    send: F,
) -> (Option<RunStatus>, Vec<Call>)
where
    F: FnOnce(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = Resp> + Send + 'static,
{
    let (mut child, addr) = spawn_serve(cfg.path(), None).await;
    let req = tokio::spawn(send(addr));
    assert!(wait_for(Duration::from_secs(20), || !rx.calls().is_empty()).await);
    // The record is queued without waiting (the request waits for the run): wait for its commit.
    let db = cfg.path().parent().unwrap().join(".flexscript/state.db");
    let b = SqliteBackend::open_reader(&db).expect("reader");
    for _ in 0..200 {
        if !b
            .list_runs(RunFilter::default())
            .await
            .expect("list")
            .runs
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill9(&mut child);
    let _ = req.await;
    let (mut child, _) = spawn_serve(cfg.path(), None).await;
    let mut status = None;
    for _ in 0..200 {
        let runs = b.list_runs(RunFilter::default()).await.expect("list");
        assert_eq!(runs.runs.len(), 1);
        if runs.runs[0].status.is_final() {
            status = Some(runs.runs[0].status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Past the delay's due time: a resumed run would have called its second step by now.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    kill9(&mut child);
    (status, rx.calls())
}

fn post_n(n: usize) -> String {
    format!("{{\"n\": {n}}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_hundreds_of_runs_loses_none() {
    const RUNS: usize = 300;
    let rx = Receiver::start(Duration::from_millis(20)).await;
    // A leading store step (journaled with each run's creation, docs/state.md "Leading
    // steps"), then the webhooks, which the runs' activations send.
    let steps = format!(
        "{}{}{}",
        step(
            "pre",
            "store",
            "name = \"m\"\nexpression = \"__data.n + 1000\""
        ),
        hook("first", &rx.url("/first"), "parent = \"pre\""),
        hook(
            "later",
            &rx.url("/later"),
            "parent = \"first\"\ndelay_ms = 1500"
        ),
    );
    let cfg = write_config(&format!("[server]\nworkers = 4\n{}", data_ep(1, &steps)));
    let (mut child, addr) = spawn_serve(cfg.path(), None).await;
    for n in 0..RUNS {
        let r = post_json_to(addr, &path(1), &post_n(n)).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // Kill when some runs wait on their delay, some run and most are queued behind 4 workers.
    let firsts = || rx.calls().iter().filter(|c| c.path == "/first").count();
    assert!(wait_for(Duration::from_secs(60), || firsts() >= 20).await);
    kill9(&mut child);
    let (first, later) = (firsts(), rx.calls().len() - firsts());
    assert!(
        first < RUNS && later < first,
        "the kill came too late: {first} first steps, {later} delayed steps done"
    );

    let (mut child, _addr) = spawn_serve(cfg.path(), None).await;
    let all = wait_for(Duration::from_secs(120), || {
        let c = rx.calls();
        let keys: HashSet<_> = c.iter().map(|c| c.key.clone()).collect();
        keys.len() >= 2 * RUNS
    })
    .await;
    // The journal says so too, once the last steps' answers are in.
    let b = SqliteBackend::open_reader(&cfg.path().parent().unwrap().join(".flexscript/state.db"))
        .expect("reader");
    let mut succeeded = 0;
    for _ in 0..600 {
        let page = b
            .list_runs(RunFilter {
                status: Some(RunStatus::Succeeded),
                limit: 1000,
                ..RunFilter::default()
            })
            .await
            .expect("list");
        succeeded = page.runs.len();
        if succeeded == RUNS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = rx.calls();
    kill9(&mut child);
    assert_eq!(succeeded, RUNS);
    // Each run has its leading step's checkpoint (made before it was journaled) and its two
    // webhooks.
    let page = b
        .list_runs(RunFilter {
            limit: 1000,
            ..RunFilter::default()
        })
        .await
        .expect("list");
    for r in &page.runs {
        let run = b.get_run(&r.id).await.expect("run");
        let n = run.data["n"].as_i64().expect("n");
        let pre = run.step("pre").and_then(|s| s.checkpoint.clone());
        assert_eq!(
            pre.map(|c| c.set),
            Some(vec![("m".to_string(), serde_json::json!(n + 1000))]),
            "{run:?}"
        );
        assert_eq!(run.steps.len(), 3, "{run:?}");
    }
    assert!(all, "only {} distinct keys", {
        calls.iter().map(|c| &c.key).collect::<HashSet<_>>().len()
    });
    // Every accepted request's two steps ran, under one run id per request.
    let mut run_of: HashMap<String, String> = HashMap::new();
    let mut steps_of: HashMap<String, HashSet<String>> = HashMap::new();
    for c in &calls {
        let (run, step) = c.key.split_once('.').expect("key is run.step");
        let prev = run_of.insert(c.body.clone(), run.to_string());
        assert!(
            prev.is_none() || prev.as_deref() == Some(run),
            "one run per request"
        );
        assert_eq!(format!("/{step}"), c.path);
        steps_of
            .entry(c.body.clone())
            .or_default()
            .insert(step.to_string());
    }
    for n in 0..RUNS {
        let s = steps_of
            .get(&n.to_string())
            .unwrap_or_else(|| panic!("run {n} lost"));
        assert_eq!(s.len(), 2, "run {n}: {s:?}");
    }
    // Repeats only for steps in flight at the kill: at most one per worker and waiting run.
    let dups = calls.len() - 2 * RUNS;
    assert!(dups <= 8, "{dups} repeated calls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_memory_and_history_survive_a_restart_without_credentials() {
    let steps = format!(
        "{}{}",
        step(
            "count",
            "store",
            "name = \"hits\"\nvalue = \"{{ incrementAndGet('hits') }}\""
        ),
        step(
            "remember",
            "set_memory",
            "parent = \"count\"\nname = \"last\"\nvalue = \"{{ __data.n }}\"\nttl_s = 600"
        ),
    );
    let read = ep(
        2,
        "return_type = \"data\"\nreturn_data = '''{\"hits\": {{ incrementAndGet('hits', 0) }}, \"last\": \"{{ memoryGet('last') }}\"}'''",
        "",
    );
    let cfg = write_config(&format!("{}{read}", data_ep(1, &steps)));
    let s = serve_file(cfg.path()).await;
    for n in 0..3 {
        let r = s
            .request(
                "POST",
                &path(1),
                &[
                    ("content-type", "application/json"),
                    ("authorization", "Bearer sup3r-s3cret-bearer"),
                    ("token", "t0ken-s3cret-value"),
                ],
                post_n(n).as_bytes(),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    // The three runs go concurrently: wait until all are finished, then read.
    let backend = s.running.backend();
    for _ in 0..400 {
        let page = backend.list_runs(RunFilter::default()).await.expect("list");
        if page.runs.len() == 3 && page.runs.iter().all(|r| r.status == RunStatus::Succeeded) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = s.get(&path(2)).await.body;
    let shown: serde_json::Value = serde_json::from_str(&before).expect("json");
    assert_eq!(shown["hits"], 3, "{before}");
    assert!(
        ["0", "1", "2"].contains(&shown["last"].as_str().unwrap_or("")),
        "{before}"
    );
    let runs = backend.list_runs(RunFilter::default()).await.expect("list");
    assert_eq!(runs.runs.len(), 3);
    let one = backend.get_run(&runs.runs[0].id).await.expect("run");
    assert!(one.data["n"].is_i64());
    drop(backend);
    s.running.shutdown().await;

    // The same file, a new server: counters and memory are still there.
    let s = serve_file(cfg.path()).await;
    assert_eq!(s.get(&path(2)).await.body, before);
    s.running.shutdown().await;

    // Credentials never reach the file (WAL included).
    let dir = cfg.path().parent().unwrap().join(".flexscript");
    // Read again if a file vanished meanwhile (the WAL is removed when the last connection of
    // the stopped server closes, which can trail its shutdown by a moment).
    let mut bytes = Vec::new();
    for _ in 0..50 {
        bytes.clear();
        let mut whole = true;
        for f in std::fs::read_dir(&dir).expect("state dir") {
            match std::fs::read(f.expect("entry").path()) {
                Ok(b) => bytes.extend(b),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => whole = false,
                Err(e) => panic!("read: {e}"),
            }
        }
        if whole {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.contains("\"n\":2") || text.contains("\"n\": 2"),
        "runs are in the file"
    );
    assert!(!text.contains("sup3r-s3cret-bearer"));
    assert!(!text.contains("t0ken-s3cret-value"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_delay_resumes_after_a_restart_with_what_is_left() {
    let rx = Receiver::start(Duration::ZERO).await;
    let cfg = write_config(&data_ep(1, &hook("w", &rx.url("/late"), "delay_ms = 2000")));
    let (mut child, addr) = spawn_serve(cfg.path(), None).await;
    let t0 = Instant::now();
    let r = request(
        addr,
        "POST",
        &path(1),
        &[("content-type", "application/json")],
        b"{\"n\": 7}",
    )
    .await;
    assert_eq!(r.status, 200);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    kill9(&mut child);
    assert!(rx.calls().is_empty());
    let (mut child, _) = spawn_serve(cfg.path(), None).await;
    let restarted = Instant::now();
    assert!(wait_for(Duration::from_secs(20), || !rx.calls().is_empty()).await);
    let at = rx.calls()[0].at;
    kill9(&mut child);
    assert!(
        at.duration_since(t0) >= Duration::from_millis(1950),
        "not before the due time"
    );
    assert!(
        at.saturating_duration_since(restarted) < Duration::from_millis(1800),
        "waited {:?} after the restart: the full delay again",
        at.saturating_duration_since(restarted)
    );
    assert_eq!(rx.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_continue_killed_mid_run_is_interrupted_not_resumed() {
    let rx = Receiver::start(Duration::ZERO).await;
    let steps = format!(
        "{}{}",
        hook("first", &rx.url("/first"), ""),
        hook(
            "second",
            &rx.url("/second"),
            "parent = \"first\"\ndelay_ms = 1500"
        ),
    );
    let cfg = write_config(&ep(
        1,
        "return_type = \"continue\"\nrun_mode = \"sync\"\nresponse_timeout_ms = 30000",
        &steps,
    ));
    let (status, calls) = kill_mid_run_and_restart(&cfg, &rx, |addr| async move {
        request(
            addr,
            "POST",
            &path(1),
            &[("content-type", "application/json")],
            b"{\"n\": 1}",
        )
        .await
    })
    .await;
    assert_eq!(status, Some(RunStatus::Interrupted));
    let paths: Vec<_> = calls.into_iter().map(|c| c.path).collect();
    assert_eq!(paths, ["/first"], "not resumed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_journal_answers_503_and_recovers() {
    // A real "disk full": the child's file size limit (RLIMIT_FSIZE) is raised later with
    // prlimit; SIGXFSZ is ignored so the write fails with EFBIG instead of killing it.
    let cfg = write_config(&data_ep(
        1,
        &step("s", "store", "name = \"x\"\nvalue = \"{{ __data.pad }}\""),
    ));
    let (mut child, addr) = spawn_serve(cfg.path(), Some("ulimit -S -f 400; trap '' XFSZ")).await;
    let pad = "p".repeat(8000);
    let body = format!("{{\"pad\": \"{pad}\"}}");
    let mut first_503 = None;
    for i in 0..400 {
        let r = request(
            addr,
            "POST",
            &path(1),
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
        match r.status {
            200 => {}
            503 => {
                first_503 = Some((i, r));
                break;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let (i, r) = first_503.expect("the journal filled up");
    assert!(i > 0, "the first runs fitted");
    assert!(r.header("retry-after").is_some());
    assert!(r.json()["error"].as_str().unwrap_or("").contains("retry"));
    // Space returns: runs are accepted again.
    let ok = Command::new("prlimit")
        .args(["--pid", &child.id().to_string(), "--fsize=unlimited"])
        .status()
        .expect("prlimit");
    assert!(ok.success());
    let r = request(
        addr,
        "POST",
        &path(1),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // And the runs accepted before the disk filled, whose later writes failed, finish without
    // a restart (their process gives them back to the journal and claims them again): none
    // stays `running`, `queued` or `waiting`, and none failed.
    let unfinished = || {
        let mut n = 0;
        for status in ["running", "queued", "waiting", "failed"] {
            let out = Command::new(BIN)
                .args([
                    "runs", "list", "--json", "--limit", "1000", "--status", status,
                ])
                .arg("--config")
                .arg(cfg.path())
                .output()
                .expect("runs list");
            let page: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            n += page["runs"].as_array().map_or(1000, |r| r.len());
        }
        n
    };
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let mut left = unfinished();
    while left > 0 && std::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(200)).await;
        left = unfinished();
    }
    kill9(&mut child);
    assert_eq!(left, 0, "runs left unfinished after space returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_or_owned_state_file_stops_the_start() {
    let cfg = write_config(&data_ep(1, ""));
    let dir = cfg.path().parent().unwrap().join(".flexscript");
    std::fs::create_dir_all(&dir).expect("dir");
    let db = dir.join("state.db");
    std::fs::write(&db, vec![b'#'; 4096]).expect("write");
    let out = Command::new(BIN)
        .args([
            "serve",
            cfg.path().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains("not a database"), "{err}");
    std::fs::remove_file(&db).expect("rm");

    let (mut owner, _) = spawn_serve(cfg.path(), None).await;
    let out = Command::new(BIN)
        .args([
            "serve",
            cfg.path().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    let pid = owner.id();
    kill9(&mut owner);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&db.display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
}

#[test]
fn render_has_a_shared_store_by_default() {
    let out = Command::new(BIN)
        .args([
            "render",
            "-e",
            "{{ incrementAndGet('n') }}{{ incrementAndGet('n') }}:[{{ memoryGet('x') }}]",
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "12:[]");
    let dir = temp_dir();
    let state = format!("sqlite:{}", dir.join("s.db").display());
    for want in ["1", "2"] {
        let out = Command::new(BIN)
            .args([
                "render",
                "--state",
                &state,
                "-e",
                "{{ incrementAndGet('n') }}",
            ])
            .output()
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_survive_a_reload_and_fail_when_their_step_or_endpoint_vanished() {
    let rx = Receiver::start(Duration::ZERO).await;
    let waits = |n: usize, id: &str| {
        data_ep(
            n,
            &format!(
                "{}{}",
                step("s1", "store", "name = \"x\"\nvalue = \"1\""),
                hook(
                    id,
                    &rx.url(&format!("/ep{n}")),
                    "parent = \"s1\"\ndelay_ms = 1500"
                ),
            ),
        )
    };
    let cfg = write_config(&format!(
        "{}{}{}",
        waits(1, "w"),
        waits(2, "w"),
        waits(3, "w")
    ));
    let s = serve_file(cfg.path()).await;
    for n in 1..=3 {
        let r = s.post_json(&path(n), &post_n(n)).await;
        assert_eq!(r.status, 200);
    }
    let runner = s.running.runner();
    assert!(wait_for(Duration::from_secs(10), || runner.gauges().waiting == 3).await);
    // Endpoint 1 unchanged, endpoint 2's delayed step renamed, endpoint 3 gone.
    std::fs::write(
        cfg.path(),
        allow_loopback(&format!("{}{}", waits(1, "w"), waits(2, "renamed"))),
    )
    .expect("write");
    s.running.reload().expect("reload");
    let backend = s.running.backend();
    let mut statuses = Vec::new();
    for _ in 0..200 {
        let page = backend.list_runs(RunFilter::default()).await.expect("list");
        statuses = page
            .runs
            .iter()
            .map(|r| (r.endpoint.clone(), r.status, r.error.clone()))
            .collect();
        if statuses.iter().all(|(_, st, _)| st.is_final()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(statuses[0].1, RunStatus::Succeeded, "{statuses:?}");
    assert_eq!(statuses[1].1, RunStatus::Failed);
    assert!(
        statuses[1].2.as_deref().unwrap_or("").contains("\"w\""),
        "{statuses:?}"
    );
    assert_eq!(statuses[2].1, RunStatus::Failed);
    assert!(
        statuses[2]
            .2
            .as_deref()
            .unwrap_or("")
            .contains("no longer in the configuration"),
        "{statuses:?}"
    );
    let paths: Vec<_> = rx.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(paths, ["/ep1"]);
    assert_eq!(runner.gauges().waiting, 0);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_bound_runs_and_the_answer_never_waits_for_one() {
    let rx = Receiver::start(Duration::from_millis(400)).await;
    let cfg = write_config(&format!(
        "[server]\nworkers = 1\nstate = \"memory\"\n{}",
        data_ep(1, &hook("w", &rx.url("/slow"), ""))
    ));
    let s = serve_file(cfg.path()).await;
    let t = Instant::now();
    for n in 0..5 {
        assert_eq!(s.post_json(&path(1), &post_n(n)).await.status, 200);
    }
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "answers waited: {:?}",
        t.elapsed()
    );
    let runner = s.running.runner();
    let g = runner.gauges();
    assert!(g.running <= 1 && g.queued >= 3, "{g:?}");
    assert!(wait_for(Duration::from_secs(20), || rx.calls().len() == 5).await);
    // One at a time: the calls are at least the receiver's delay apart.
    let calls = rx.calls();
    for pair in calls.windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(350));
    }
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_retried_through_the_backend_runs_again_from_its_failed_step() {
    let rx = Receiver::start(Duration::ZERO).await;
    let steps = format!(
        "{}{}{}",
        hook("before", &rx.url("/before"), ""),
        step(
            "divide",
            "store",
            "parent = \"before\"\nname = \"q\"\nvalue = \"{{ 10 // memoryGet('d', 0) }}\""
        ),
        hook("after", &rx.url("/after"), "parent = \"divide\""),
    );
    let cfg = write_config(&data_ep(1, &steps));
    let s = serve_file(cfg.path()).await;
    assert_eq!(s.post_json(&path(1), &post_n(1)).await.status, 200);
    let backend = s.running.backend();
    let mut run = None;
    for _ in 0..200 {
        let page = backend.list_runs(RunFilter::default()).await.expect("list");
        if page.runs[0].status == RunStatus::Failed {
            run = Some(page.runs[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = run.expect("the run failed");
    assert!(
        run.error.as_deref().unwrap_or("").contains("divide"),
        "{run:?}"
    );
    // Running runs cannot be retried; the failed one can, once the cause is fixed.
    backend
        .store()
        .set("d", flexscript::Value::Int(5), Duration::from_secs(60));
    backend
        .retry_run(&run.id, flexscript::state::RetryFrom::Failed)
        .await
        .expect("retry");
    assert!(matches!(
        backend
            .retry_run(&run.id, flexscript::state::RetryFrom::Failed)
            .await,
        Err(flexscript::state::StateError::Conflict(_))
    ));
    s.running.runner().claim_now().await.expect("claim");
    assert!(wait_for(Duration::from_secs(20), || rx.calls().len() == 2).await);
    let paths: Vec<_> = rx.calls().into_iter().map(|c| c.path).collect();
    assert_eq!(
        paths,
        ["/before", "/after"],
        "the finished step is not repeated"
    );
    let mut rec = backend.get_run(&run.id).await.expect("get");
    for _ in 0..100 {
        if rec.status.is_final() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        rec = backend.get_run(&run.id).await.expect("get");
    }
    assert_eq!(rec.status, RunStatus::Succeeded);
    assert_eq!(rec.attempt, 2);
    let divide = rec.step("divide").expect("step");
    assert_eq!(divide.checkpoint.as_ref().expect("cp").set[0].1, "2");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_never_finishes_is_given_up_after_its_attempts() {
    // Two runs left `running` by crashed servers: one already resumed 5 times (a step that
    // takes the process down every time), one on its first attempt.
    let rx = Receiver::start(Duration::ZERO).await;
    let cfg = write_config(&data_ep(1, &hook("w", &rx.url("/w"), "")));
    let db = cfg.path().parent().unwrap().join(".flexscript/state.db");
    {
        let b = SqliteBackend::open(&db, flexscript::state::Durability::Normal).expect("open");
        for (id, attempt) in [("looping", 5), ("fresh", 1)] {
            let mut rec = flexscript::state::RunRecord::new(
                id.into(),
                "ep1".into(),
                h(1),
                h(1),
                String::new(),
                true,
                serde_json::json!({"n": id}),
                flexscript::state::now_ms(),
                Some("a-dead-server".into()),
            );
            rec.attempt = attempt;
            b.create_run(rec).await.expect("create");
            b.record(flexscript::state::RunEvent::Status {
                run: id.into(),
                status: RunStatus::Running,
                at: flexscript::state::now_ms(),
                error: None,
            })
            .await
            .expect("running");
        }
    }
    let (mut child, _) = spawn_serve(cfg.path(), None).await;
    let reader = SqliteBackend::open_reader(&db).expect("reader");
    let mut finals = HashMap::new();
    for _ in 0..400 {
        let page = reader.list_runs(RunFilter::default()).await.expect("list");
        finals = page
            .runs
            .iter()
            .filter(|r| r.status.is_final())
            .map(|r| (r.id.clone(), (r.status, r.error.clone())))
            .collect();
        if finals.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    kill9(&mut child);
    let (status, error) = finals.get("looping").expect("looping run finished").clone();
    assert_eq!(status, RunStatus::Failed);
    assert!(
        error
            .as_deref()
            .unwrap_or("")
            .contains("gave up after 5 attempts"),
        "{error:?}"
    );
    assert_eq!(finals.get("fresh").map(|f| f.0), Some(RunStatus::Succeeded));
    let bodies: Vec<_> = rx.calls().into_iter().map(|c| c.body).collect();
    assert_eq!(bodies, ["fresh"], "only the fresh run ran its step");
}

#[test]
fn state_settings_are_read_and_bad_ones_are_named() {
    use flexscript::state::{Durability, StateSpec};
    let cfg = write_config(&format!(
        "[server]\nstate = \"sqlite:data/runs.db\"\ndurability = \"fsync\"\nworkers = 3\n\
         history_days = 2\nhistory_max = 50\n{}",
        data_ep(1, "")
    ));
    let c = flexscript::listener::load_config(cfg.path()).expect("config");
    let dir = cfg.path().parent().unwrap();
    assert_eq!(c.server.state, StateSpec::Sqlite(dir.join("data/runs.db")));
    assert_eq!(c.server.durability, Durability::Fsync);
    assert_eq!(c.server.workers, 3);
    assert_eq!(
        (c.server.retention.days, c.server.retention.max_per_endpoint),
        (2, 50)
    );
    // The defaults: SQLite beside the file, crash-safe, 4 × cores workers, 7 days / 10,000.
    let cfg = write_config(&data_ep(1, ""));
    let c = flexscript::listener::load_config(cfg.path()).expect("config");
    assert_eq!(
        c.server.state,
        StateSpec::Sqlite(cfg.path().parent().unwrap().join(".flexscript/state.db"))
    );
    assert_eq!(c.server.durability, Durability::Normal);
    assert!(c.server.workers >= 4);
    assert_eq!(
        (c.server.retention.days, c.server.retention.max_per_endpoint),
        (7, 10_000)
    );

    for (line, needle) in [
        ("durability = \"sometimes\"", "durability"),
        ("workers = 0", "workers"),
        ("state = \"postgres://db\"", "state"),
        ("state = \"sqlite:\"", "state"),
        ("history_days = -1", "history_days"),
    ] {
        let cfg = write_config(&format!("[server]\n{line}\n{}", data_ep(1, "")));
        let err = match flexscript::listener::load_config(cfg.path()) {
            Ok(_) => panic!("`{line}` accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains(needle), "`{line}`: {err}");
    }
    // `serve` refuses it with exit status 1 before binding.
    let cfg = write_config(&format!("[server]\nworkers = 0\n{}", data_ep(1, "")));
    let out = Command::new(BIN)
        .args([
            "serve",
            cfg.path().to_str().unwrap(),
            "--addr",
            "127.0.0.1:0",
        ])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workers"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_run_killed_mid_stream_is_interrupted_not_resumed() {
    let rx = Receiver::start(Duration::ZERO).await;
    let steps = format!(
        "{}{}{}",
        step("hello", "emit", "data = \"started\""),
        hook("first", &rx.url("/first"), "parent = \"hello\""),
        hook(
            "second",
            &rx.url("/second"),
            "parent = \"first\"\ndelay_ms = 1500"
        ),
    );
    let cfg = write_config(&ep(
        1,
        "return_type = \"sse\"\nrun_mode = \"sync\"\nresponse_timeout_ms = 30000",
        &steps,
    ));
    let (status, calls) = kill_mid_run_and_restart(&cfg, &rx, |addr| async move {
        request(addr, "GET", &path(1), &[], b"").await
    })
    .await;
    assert_eq!(status, Some(RunStatus::Interrupted));
    let paths: Vec<_> = calls.into_iter().map(|c| c.path).collect();
    assert_eq!(paths, ["/first"], "not resumed");
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the state file");
    c.query_row(sql, [], |r| r.get(0)).expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_waits_in_the_journal_not_in_memory_and_all_of_it_completes() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    const RUNS: usize = 2000;
    // One worker and a step slower than acceptance: the backlog grows.
    let rx = Receiver::start(Duration::from_millis(3)).await;
    let call = step(
        "w",
        "webhook",
        &format!(
            "url = \"{}\"\nbody = '''{{{{ __data.n }}}}:{{{{ __data.__headers.authorization|default('none') }}}}'''",
            rx.url("/w")
        ),
    );
    let cfg = write_config(&format!("[server]\nworkers = 1\n{}", data_ep(1, &call)));
    let db = cfg.path().parent().unwrap().join(".flexscript/state.db");
    let s = serve_file(cfg.path()).await;
    let runner = s.running.runner();
    let bound = runner.queue_bound();
    assert!(bound * 4 < RUNS, "bound {bound}");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (runner, stop) = (runner.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut queued, mut backlog) = (0, 0);
            while !stop.load(SeqCst) {
                let g = runner.gauges();
                queued = queued.max(g.queued);
                backlog = backlog.max(g.backlog);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (queued, backlog)
        })
    };
    let next = Arc::new(AtomicUsize::new(0));
    let mut posters = Vec::new();
    for _ in 0..16 {
        let (next, addr) = (next.clone(), s.addr);
        posters.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, SeqCst);
                if n >= RUNS {
                    return;
                }
                let auth = format!("Bearer tok-{n}");
                let headers = [
                    ("content-type", "application/json"),
                    ("authorization", auth.as_str()),
                ];
                let r = request(addr, "POST", &path(1), &headers, post_n(n).as_bytes()).await;
                assert_eq!(r.status, 200, "run {n}");
            }
        }));
    }
    for p in posters {
        p.await.expect("poster");
    }
    // Every run is accepted; most wait in the journal only, not as tasks in memory.
    let in_journal = count(&db, "SELECT count(*) FROM runs WHERE status = 'queued'");
    stop.store(true, SeqCst);
    let (max_queued, max_backlog) = sampler.await.expect("sampler");
    // New requests may take places while a claim holds the room: one batch over at most.
    assert!(
        max_queued <= 2 * bound,
        "in-memory queue {max_queued} > twice the bound {bound}"
    );
    assert!(
        max_backlog > bound && in_journal > 2 * bound as i64,
        "backlog {max_backlog}, queued in the journal {in_journal}, bound {bound}"
    );
    // All of them complete, each step once, with the credential headers the journal never
    // stored.
    let done = "SELECT count(*) FROM runs WHERE status = 'succeeded'";
    assert!(
        wait_for(Duration::from_secs(300), || count(&db, done) == RUNS as i64).await,
        "{} of {RUNS} succeeded",
        count(&db, done)
    );
    let bodies: HashSet<String> = rx.calls().into_iter().map(|c| c.body).collect();
    assert_eq!(rx.calls().len(), RUNS);
    let want: HashSet<String> = (0..RUNS).map(|n| format!("{n}:Bearer tok-{n}")).collect();
    assert_eq!(bodies, want);
    assert_eq!(
        count(&db, "SELECT count(*) FROM runs WHERE data LIKE '%tok-%'"),
        0,
        "no credential in the journal"
    );
    assert!(
        wait_for(Duration::from_secs(20), || {
            let g = runner.gauges();
            (g.queued, g.running, g.backlog) == (0, 0, 0)
        })
        .await,
        "{:?}",
        runner.gauges()
    );
    s.running.shutdown().await;
}

/// Runs of `store` steps only are journaled as their creation and one write at their end (their
/// steps and final status in one transaction): a SIGKILL in the middle of a burst leaves each
/// run either with no step (it runs again from its first step after the restart) or finished
/// with every checkpoint — never half of its store writes — and after the restart every
/// accepted run succeeds with each step journaled once, with the values of its own request
/// (docs/state.md, "What a crash can re-run").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_runs_killed_mid_burst_are_all_or_nothing_and_all_complete() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    use std::sync::Mutex;
    const STEPS: usize = 30;
    // One worker and a chain of store steps slower than acceptance: runs queue up, so the kill
    // finds runs accepted and not finished. A `log` step first: it acts outside `__data`, so the
    // store steps run in the runs' activations, after the answer (a run of leading store steps
    // only is journaled finished at once: `leading_store_and_condition_steps_are_journaled_with_the_run`).
    let mut steps = step("go", "log", "message = \"go\"");
    for i in 0..STEPS {
        let parent = if i == 0 {
            "parent = \"go\"\n".to_string()
        } else {
            format!("parent = \"s{}\"\n", i - 1)
        };
        steps.push_str(&step(
            &format!("s{i}"),
            "store",
            &format!("{parent}name = \"v{i}\"\nvalue = \"{{{{ __data.n }}}}-{i}\""),
        ));
    }
    let cfg = write_config(&format!("[server]\nworkers = 1\n{}", data_ep(1, &steps)));
    let db = cfg.path().parent().unwrap().join(".flexscript/state.db");
    let (mut child, addr) = spawn_serve(cfg.path(), None).await;
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let mut posters = Vec::new();
    for _ in 0..16 {
        let (stop, next, answered) = (stop.clone(), next.clone(), answered.clone());
        posters.push(tokio::spawn(async move {
            while !stop.load(SeqCst) {
                let n = next.fetch_add(1, SeqCst);
                let r = post_json_to(addr, &path(1), &post_n(n)).await;
                if r.status == 200 {
                    answered.lock().unwrap().insert(n);
                }
            }
        }));
    }
    // Killed once 400 runs are answered and the journal shows a backlog (the worker is not
    // always slower than acceptance: without the second condition a fast machine could find
    // every run finished at the kill).
    assert!(
        wait_for(Duration::from_secs(60), || answered.lock().unwrap().len()
            >= 400
            && count(
                &db,
                "SELECT count(*) FROM runs WHERE status != 'succeeded'"
            ) > 0)
        .await
    );
    kill9(&mut child);
    stop.store(true, SeqCst);
    for p in posters {
        let _ = p.await;
    }
    let answered = answered.lock().unwrap().clone();
    // At the kill: every run has all of its steps and its final status, or none of them.
    let runs = count(&db, "SELECT count(*) FROM runs");
    let finished = count(&db, "SELECT count(*) FROM runs WHERE status = 'succeeded'");
    let unfinished = count(&db, "SELECT count(*) FROM runs WHERE status != 'succeeded'");
    assert_eq!(
        count(
            &db,
            &format!(
                "SELECT count(*) FROM runs WHERE status = 'succeeded'
                 AND (SELECT count(*) FROM steps WHERE run = runs.id AND status = 'succeeded'
                      AND kind = 'store') = {STEPS}"
            )
        ),
        finished
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM runs WHERE status != 'succeeded'
             AND status IN ('queued', 'running')
             AND NOT EXISTS (SELECT 1 FROM steps WHERE run = runs.id AND kind = 'store')"
        ),
        unfinished,
        "an unfinished run with some of its steps journaled"
    );
    assert!(
        unfinished > 0,
        "the kill found no unfinished run ({runs} runs): nothing was tested"
    );
    assert!(runs as usize >= answered.len());

    let (mut child, _) = spawn_serve(cfg.path(), None).await;
    let done = wait_for(Duration::from_secs(60), || {
        count(&db, "SELECT count(*) FROM runs WHERE status != 'succeeded'") == 0
    })
    .await;
    kill9(&mut child);
    assert!(done, "runs left unfinished after the restart");
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), runs);
    assert_eq!(
        count(&db, "SELECT count(*) FROM steps"),
        runs * (STEPS as i64 + 1),
        "each step journaled once"
    );
    // Only the unfinished runs ran again (those in the backlog, never started, are claimed
    // without counting an attempt).
    assert!(count(&db, "SELECT count(*) FROM runs WHERE attempt = 2") <= unfinished);
    assert_eq!(count(&db, "SELECT count(*) FROM runs WHERE attempt > 2"), 0);
    // Each run's checkpoints hold its own request's values; every answered request has its run.
    let b = SqliteBackend::open_reader(&db).expect("reader");
    let mut seen = HashSet::new();
    let mut before = None;
    loop {
        let page = b
            .list_runs(RunFilter {
                limit: 1000,
                before: before.clone(),
                ..RunFilter::default()
            })
            .await
            .expect("list");
        for s in &page.runs {
            let rec = b.get_run(&s.id).await.expect("run");
            let n = rec.data["n"].as_u64().expect("n") as usize;
            assert!(seen.insert(n), "two runs for request {n}");
            for i in 0..STEPS {
                let cp = rec
                    .step(&format!("s{i}"))
                    .and_then(|s| s.checkpoint.clone());
                assert_eq!(
                    cp.map(|c| c.set),
                    Some(vec![(
                        format!("v{i}"),
                        serde_json::json!(format!("{n}-{i}"))
                    )])
                );
            }
        }
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert!(answered.is_subset(&seen), "an answered request has no run");
}

/// Leading steps (docs/state.md): a `data` run of `store` / `condition` steps is journaled
/// `succeeded`, with every step and checkpoint, before its answer leaves — one row in `runs`
/// and its step rows, nothing left to run; a run whose `store` step is followed by a webhook
/// is journaled with that step finished, and its activation sends the webhook with the
/// step's `__data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leading_store_and_condition_steps_are_journaled_with_the_run() {
    let rx = Receiver::start(Duration::ZERO).await;
    let pure = format!(
        "{}{}{}{}",
        step("a", "store", "name = \"m\"\nexpression = \"__data.n * 2\""),
        step(
            "c",
            "condition",
            "parent = \"a\"\nleft = \"{{ __data.m }}\"\noperator = \"equal\"\nright = \"4\""
        ),
        step(
            "yes",
            "store",
            "parent = \"c\"\nbranch = \"yes\"\nname = \"b\"\nvalue = \"four\""
        ),
        step(
            "no",
            "store",
            "parent = \"c\"\nbranch = \"no\"\nname = \"b\"\nvalue = \"other\""
        ),
    );
    let then_hook = format!(
        "{}{}",
        step("a", "store", "name = \"n\"\nexpression = \"__data.n + 40\""),
        hook("w", &rx.url("/after"), "parent = \"a\""),
    );
    let cfg = write_config(&format!("{}{}", data_ep(1, &pure), data_ep(2, &then_hook)));
    let s = serve_file(cfg.path()).await;
    let backend = s.running.backend();
    let r = s.post_json(&path(1), &post_n(2)).await;
    assert_eq!(r.status, 200);
    // Journaled finished before the answer: no waiting.
    let page = backend.list_runs(RunFilter::default()).await.expect("list");
    assert_eq!(page.runs.len(), 1);
    let run = backend.get_run(&page.runs[0].id).await.expect("run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.data["n"], 2, "the request data");
    let ids: Vec<_> = run.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "c", "yes"]);
    let cp = |id: &str| run.step(id).and_then(|s| s.checkpoint.clone()).unwrap();
    assert_eq!(cp("a").set, vec![("m".to_string(), serde_json::json!(4))]);
    assert_eq!(cp("c").branch, Some(true));
    assert_eq!(
        cp("yes").set,
        vec![("b".to_string(), serde_json::json!("four"))]
    );
    assert!(run.started.is_some() && run.finished >= run.started);

    let r = s.post_json(&path(2), &post_n(2)).await;
    assert_eq!(r.status, 200);
    let page = backend
        .list_runs(RunFilter {
            endpoint: Some("ep2".into()),
            ..RunFilter::default()
        })
        .await
        .expect("list");
    let id = page.runs[0].id.clone();
    let run = backend.get_run(&id).await.expect("run");
    assert_eq!(
        run.step("a").map(|s| s.status),
        Some(flexscript::state::StepStatus::Succeeded),
        "the store step is journaled with the run: {run:?}"
    );
    assert!(
        wait_for(Duration::from_secs(10), || rx.calls().len() == 1).await,
        "the webhook is sent"
    );
    let call = &rx.calls()[0];
    assert_eq!(call.body, "42", "with the store step's __data");
    assert_eq!(call.key, format!("{id}.w"));
    for _ in 0..200 {
        if backend.get_run(&id).await.expect("run").status == RunStatus::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = backend.get_run(&id).await.expect("run");
    assert_eq!(run.status, RunStatus::Succeeded);
    let ids: Vec<_> = run.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["a", "w"]);
    drop(backend);
    s.running.shutdown().await;
    let db = cfg.path().parent().unwrap().join(".flexscript/state.db");
    assert_eq!(count(&db, "SELECT count(*) FROM runs"), 2);
    // The leading steps are in their run's row (`runs.steps`), the webhook's journal writes
    // came later: one row of `steps`.
    assert_eq!(
        count(&db, "SELECT count(*) FROM runs WHERE steps IS NOT NULL"),
        2
    );
    assert_eq!(count(&db, "SELECT count(*) FROM steps"), 1);
    assert_eq!(
        count(&db, "SELECT count(*) FROM runs WHERE status = 'succeeded'"),
        2
    );
}
