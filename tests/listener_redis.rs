//! Many instances on one Redis (docs/redis.md): real `redis-server` children on free loopback
//! ports, real `flexscript serve` children (killed with SIGKILL), a real webhook receiver on
//! 127.0.0.1. Without `redis-server` installed these tests say how to install it and pass
//! locally, but fail under `CI=true`.
mod listener_support;
use listener_support::*;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");

const DATA: &str = "return_type = \"data\"\nreturn_data = '''{\"status\": \"received\"}'''";

/// A `redis-server` child on a loopback port (the same port again after [`Redis::restart`]).
struct Redis {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    aof: bool,
}

impl Redis {
    /// `None` when `redis-server` is missing (a failure under `CI=true`).
    fn start(aof: bool) -> Option<Redis> {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            let msg = "redis-server is not installed: these tests need it \
                       (Debian/Ubuntu, as root: `apt-get install -y redis-server`)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let dir = std::env::temp_dir().join(format!(
            "flexscript-redis-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        let mut r = Redis {
            child: None,
            dir,
            port,
            aof,
        };
        r.restart();
        Some(r)
    }

    fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null());
        if self.aof {
            // Every acknowledged write is on disk before the answer: a SIGKILL loses nothing.
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        }
        self.child = Some(cmd.spawn().expect("spawn redis-server"));
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < end, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `flexscript serve` children, killed on drop.
struct Fleet(Vec<(Child, SocketAddr)>);

impl Drop for Fleet {
    fn drop(&mut self) {
        for (c, _) in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Fleet {
    async fn start(cfg: &Path, n: usize) -> Fleet {
        let mut f = Fleet(Vec::new());
        for _ in 0..n {
            f.0.push(spawn_serve(cfg).await);
        }
        f
    }
    fn addr(&self, i: usize) -> SocketAddr {
        self.0[i].1
    }
    fn kill9(&mut self, i: usize) {
        let _ = self.0[i].0.kill();
        let _ = self.0[i].0.wait();
    }
}

async fn spawn_serve(path: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            path.to_str().expect("utf-8"),
            "--addr",
            "127.0.0.1:0",
        ])
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    (child, addr)
}

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

/// POST `{"n": n}` to `addr`; `None` when the connection fails (a killed instance).
async fn post(addr: SocketAddr, p: &str, n: usize) -> Option<Resp> {
    let body = format!("{{\"n\": {n}}}");
    let p = p.to_string();
    // in a task of its own: a request to a killed instance panics there, not here
    tokio::spawn(async move { post_json_to(addr, &p, &body).await })
        .await
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_exact_counters_and_memory() {
    let Some(redis) = Redis::start(false) else {
        return;
    };
    let count = ep(
        1,
        "return_type = \"data\"\nreturn_data = '''{\"n\": {{ incrementAndGet('hits') }}}'''",
        "",
    );
    let remember = ep(
        2,
        DATA,
        &step(
            "remember",
            "set_memory",
            "name = \"greeting\"\nvalue = \"{{ __data.n }}\"\nttl_s = 600",
        ),
    );
    let read = ep(
        3,
        "return_type = \"data\"\nreturn_data = '''{\"greeting\": \"{{ memoryGet('greeting') }}\", \"hits\": {{ incrementAndGet('hits', 0) }}}'''",
        "",
    );
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\nadmin_key = \"adm1n-key\"\n{count}{remember}{read}",
        redis.url()
    ));
    let fleet = Fleet::start(cfg.path(), 3).await;
    // 3 instances × 100 concurrent increments: every value 1..=300 handed out exactly once.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let addr = fleet.addr(i % 3);
        tasks.push(tokio::spawn(async move {
            request(addr, "GET", &path(1), &[], b"").await
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        let r = t.await.expect("join");
        assert_eq!(r.status, 200, "{}", r.body);
        let n = r.json()["n"].as_i64().expect("n");
        assert!(seen.insert(n), "{n} handed out twice");
    }
    assert_eq!(seen, (1..=300).collect::<HashSet<i64>>());
    // Set through instance 0, read through 1 and 2.
    let r = post(fleet.addr(0), &path(2), 4242).await.expect("answer");
    assert_eq!(r.status, 200, "{}", r.body);
    for i in [1, 2] {
        let mut last = String::new();
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            last = request(fleet.addr(i), "GET", &path(3), &[], b"").await.body;
            if last.contains("4242") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let v: serde_json::Value = serde_json::from_str(&last).expect("json");
        assert_eq!(v["greeting"], "4242", "instance {i}: {last}");
        assert_eq!(v["hits"], 300, "instance {i}: {last}");
    }
    // The run accepted by instance 0 is seen by the admin API of instance 2 and by the CLI.
    let r = request(
        fleet.addr(2),
        "GET",
        "/runs?endpoint=ep2",
        &[("authorization", "Bearer adm1n-key")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let runs = r.json()["runs"].as_array().cloned().expect("runs");
    assert_eq!(runs.len(), 1, "{}", r.body);
    assert_eq!(runs[0]["status"], "succeeded", "{}", r.body);
    let id = runs[0]["id"].as_str().expect("id").to_string();
    let out = Command::new(BIN)
        .args(["runs", "show", &id, "--config"])
        .arg(cfg.path())
        .output()
        .expect("runs show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["data"]["n"], 4242);
    assert_eq!(shown["steps"][0]["id"], "remember");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_has_its_runs_finished_by_the_others() {
    const RUNS: usize = 150;
    let Some(redis) = Redis::start(false) else {
        return;
    };
    let rx = Receiver::start(Duration::from_millis(150)).await;
    let steps = format!(
        "{}{}",
        hook("first", &rx.url("/first"), ""),
        hook(
            "later",
            &rx.url("/later"),
            "parent = \"first\"\ndelay_ms = 1000"
        ),
    );
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\nlease_s = 2\nwebhook_allow = [\"127.0.0.1\"]\nworkers = 2\n{}",
        redis.url(),
        ep(1, DATA, &steps)
    ));
    let mut fleet = Fleet::start(cfg.path(), 3).await;
    let mut accepted = HashSet::new();
    let mut accepted_by_victim = 0;
    let mut unfinished_at_kill = 0;
    for n in 0..RUNS {
        let i = n % 3;
        if n == RUNS / 2 {
            // Mid-load, with runs of instance 0 queued behind its 2 workers.
            fleet.kill9(0);
            let finished_by_victim: HashSet<String> = rx
                .calls()
                .into_iter()
                .filter(|c| c.path == "/later" && c.body.parse::<usize>().is_ok_and(|b| b % 3 == 0))
                .map(|c| c.body)
                .collect();
            unfinished_at_kill = accepted_by_victim - finished_by_victim.len();
        }
        if n >= RUNS / 2 && i == 0 {
            continue;
        }
        if let Some(r) = post(fleet.addr(i), &path(1), n).await {
            if r.status == 200 {
                accepted.insert(n.to_string());
                if i == 0 {
                    accepted_by_victim += 1;
                }
            }
        }
    }
    let sent = (0..RUNS).filter(|n| *n < RUNS / 2 || n % 3 != 0).count();
    assert_eq!(accepted.len(), sent, "every live answer is a 200");
    assert!(
        unfinished_at_kill >= 5,
        "the kill came too late: {unfinished_at_kill} of {accepted_by_victim} runs unfinished"
    );
    let done = wait_for(Duration::from_secs(180), || {
        let keys: HashSet<String> = rx.calls().into_iter().map(|c| c.key).collect();
        keys.len() >= 2 * accepted.len()
    })
    .await;
    let calls = rx.calls();
    let mut steps_of: HashMap<String, HashSet<String>> = HashMap::new();
    let mut run_of: HashMap<String, String> = HashMap::new();
    for Call {
        key, path: p, body, ..
    } in &calls
    {
        let (run, step) = key.split_once('.').expect("key is run.step");
        assert_eq!(format!("/{step}"), *p);
        let prev = run_of.insert(body.clone(), run.to_string());
        assert!(
            prev.is_none() || prev.as_deref() == Some(run),
            "one run id per request"
        );
        steps_of
            .entry(body.clone())
            .or_default()
            .insert(step.into());
    }
    for n in &accepted {
        let s = steps_of.get(n).unwrap_or_else(|| panic!("run {n} lost"));
        assert_eq!(s.len(), 2, "run {n}: {s:?}");
    }
    assert!(done);
    // Repeats only for the steps in flight at the kill (2 workers).
    let distinct: HashSet<&String> = calls.iter().map(|c| &c.key).collect();
    assert!(
        calls.len() - distinct.len() <= 2,
        "{} repeats",
        calls.len() - distinct.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_503_keeps_stateless_endpoints_and_recovers() {
    let Some(mut redis) = Redis::start(true) else {
        return;
    };
    let rx = Receiver::start(Duration::ZERO).await;
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\nlease_s = 2\nwebhook_allow = [\"127.0.0.1\"]\n{}{}{}{}",
        redis.url(),
        ep(1, DATA, &hook("send", &rx.url("/send"), "")),
        ep(
            2,
            "return_type = \"data\"\nreturn_data = '''{\"plain\": true}'''",
            ""
        ),
        ep(
            3,
            "return_type = \"data\"\nreturn_data = '''{\"n\": {{ incrementAndGet('c') }}}'''",
            ""
        ),
        ep(
            4,
            "return_type = \"data\"\nreturn_data = '''{\"m\": \"{{ memoryGet('m', 'none') }}\"}'''",
            ""
        ),
    ));
    let fleet = Fleet::start(cfg.path(), 2).await;
    let ready = |i: usize| {
        let a = fleet.addr(i);
        async move { request(a, "GET", "/readyz", &[], b"").await }
    };
    assert_eq!(ready(0).await.status, 200);
    let mut accepted = HashSet::new();
    let (mut ok_before, mut unavailable) = (0, 0);
    let mut n = 0;
    // Under load: Redis dies after 40 requests and comes back after 80.
    while n < 160 {
        if n == 40 {
            redis.kill9();
        }
        if n == 80 {
            // Both instances notice: 503 with Retry-After, /readyz 503, plain endpoints 200.
            for i in 0..2 {
                let r = ready(i).await;
                assert_eq!(r.status, 503, "{}", r.body);
                assert!(r.body.contains("state backend"), "{}", r.body);
                let plain = request(fleet.addr(i), "GET", &path(2), &[], b"").await;
                assert_eq!(plain.status, 200, "{}", plain.body);
                // Renders that need the shared store: 503 too, never a value made up.
                for p in [path(3), path(4)] {
                    let r = request(fleet.addr(i), "GET", &p, &[], b"").await;
                    assert_eq!(r.status, 503, "{p}: {}", r.body);
                    assert!(r.header("retry-after").is_some());
                }
            }
            redis.restart();
        }
        let r = post(fleet.addr(n % 2), &path(1), n).await.expect("answer");
        match r.status {
            200 => {
                accepted.insert(n.to_string());
                if n < 40 {
                    ok_before += 1;
                }
            }
            503 => {
                assert!(r.header("retry-after").is_some());
                assert!((40..80).contains(&n) || n >= 80, "503 at {n} with Redis up");
                unavailable += 1;
            }
            s => panic!("request {n}: {s} {}", r.body),
        }
        n += 1;
        if (40..80).contains(&n) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(ok_before, 40);
    assert!(
        unavailable >= 30,
        "only {unavailable} answers were 503 while Redis was down"
    );
    // Full recovery: after Redis is back, both answer 200 and /readyz is ready again.
    for i in 0..2 {
        assert!(
            wait_for_async(Duration::from_secs(30), || async {
                post(fleet.addr(i), &path(1), 10_000 + i)
                    .await
                    .is_some_and(|r| r.status == 200)
            })
            .await,
            "instance {i} did not recover"
        );
        accepted.insert((10_000 + i).to_string());
        assert_eq!(ready(i).await.status, 200);
        let m = request(fleet.addr(i), "GET", &path(4), &[], b"").await;
        assert_eq!((m.status, m.body.as_str()), (200, "{\"m\": \"none\"}"));
    }
    // No 200 for work that was not kept: every accepted request's webhook is sent.
    let all = wait_for(Duration::from_secs(60), || {
        let sent: HashSet<String> = rx.calls().into_iter().map(|c| c.body).collect();
        accepted.iter().all(|n| sent.contains(n))
    })
    .await;
    let sent: HashSet<String> = rx.calls().into_iter().map(|c| c.body).collect();
    let lost: Vec<_> = accepted.iter().filter(|n| !sent.contains(*n)).collect();
    assert!(all, "accepted but never run: {lost:?}");
    // And nothing stays unfinished in the journal: a run whose writes failed while Redis was
    // down is given up by its (live) process — no more lease renewals — then taken over after
    // its lease and finished, so every run leaves the lease set.
    let port = redis.port;
    let drained = wait_for(Duration::from_secs(30), || {
        unfinished_runs(port).is_some_and(|n| n == 0)
    })
    .await;
    assert!(
        drained,
        "{:?} runs still unfinished (leased) after Redis came back",
        unfinished_runs(port)
    );
}

/// Runs whose journal writes fail while their process lives (Redis down while their webhook
/// step works) are not kept leased by that process: it stops renewing them, and once Redis is
/// back they are taken over after their lease and finished — none stays `running` in the
/// journal for as long as the process lives (src/state/redis.rs `give_up`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_whose_writes_failed_are_taken_over_once_redis_is_back() {
    let Some(mut redis) = Redis::start(true) else {
        return;
    };
    // A slow receiver: the runs are inside their webhook step when Redis dies.
    let rx = Receiver::start(Duration::from_millis(800)).await;
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\nlease_s = 2\nwebhook_allow = [\"127.0.0.1\"]\n{}",
        redis.url(),
        ep(1, DATA, &hook("send", &rx.url("/send"), "")),
    ));
    let fleet = Fleet::start(cfg.path(), 2).await;
    let mut accepted = HashSet::new();
    for n in 0..10 {
        let r = post(fleet.addr(n % 2), &path(1), n).await.expect("answer");
        assert_eq!(r.status, 200, "{}", r.body);
        accepted.insert(n.to_string());
    }
    redis.kill9();
    // The webhooks answer meanwhile; the runs' last writes (the step's end, the final status)
    // fail against the dead Redis.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(unfinished_runs(redis.port).is_none(), "Redis is down");
    redis.restart();
    let port = redis.port;
    let drained = wait_for(Duration::from_secs(40), || unfinished_runs(port) == Some(0)).await;
    assert!(
        drained,
        "{:?} runs still unfinished (leased) after Redis came back",
        unfinished_runs(port)
    );
    // Every accepted run's webhook was sent (a step taken over mid-way may be sent again,
    // with the same Idempotency-Key).
    let sent: HashSet<String> = rx.calls().into_iter().map(|c| c.body).collect();
    let lost: Vec<_> = accepted.iter().filter(|n| !sent.contains(*n)).collect();
    assert!(lost.is_empty(), "accepted but never run: {lost:?}");
}

/// How many runs are unfinished (in the lease set), asked of Redis over its inline protocol.
fn unfinished_runs(port: u16) -> Option<u64> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"ZCARD fs:{j}:leases\r\n").ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).ok()?;
    let line = std::str::from_utf8(&buf[..n]).ok()?;
    line.strip_prefix(':')?.trim_end().parse().ok()
}

async fn wait_for_async<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// A `set_memory` write Redis cannot take fails its step (it is not lost quietly): a sync
/// `continue` endpoint waiting for the workflow answers 503 with `Retry-After`, as a render that
/// reads the store does; once Redis is back the same request stores its value and answers 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_memory_write_redis_cannot_take_fails_with_503() {
    let Some(mut redis) = Redis::start(false) else {
        return;
    };
    let write = format!(
        "{}{}",
        step(
            "m",
            "set_memory",
            "name = \"k\"\nvalue = \"{{ __data.n }}\"\nttl_s = 600"
        ),
        step(
            "r",
            "respond",
            "parent = \"m\"\nreturn_type = \"data\"\nreturn_data = \"stored\""
        ),
    );
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\n{}{}{}",
        redis.url(),
        ep(
            1,
            "return_type = \"continue\"\nrun_mode = \"sync\"\nresponse_timeout_ms = 30000",
            &write
        ),
        ep(
            2,
            "return_type = \"data\"\nreturn_data = '''{{ memoryGet('k', 'none') }}'''",
            ""
        ),
        ep(
            3,
            "return_type = \"sse\"\nrun_mode = \"sync\"\nresponse_timeout_ms = 30000",
            &format!(
                "{}{}",
                step(
                    "m",
                    "set_memory",
                    "name = \"s\"\nvalue = \"{{ __data.n }}\"\nttl_s = 600"
                ),
                step("e", "emit", "parent = \"m\"\ndata = \"stored\""),
            )
        ),
    ));
    let fleet = Fleet::start(cfg.path(), 1).await;
    let r = post(fleet.addr(0), &path(1), 1).await.expect("answer");
    assert_eq!((r.status, r.body.as_str()), (200, "stored"));
    redis.kill9();
    let r = post(fleet.addr(0), &path(1), 2).await.expect("answer");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    assert!(r.body.contains("shared store"), "{}", r.body);
    // an `sse` endpoint whose first step cannot write answers 503 the same way (not 500)
    let r = post(fleet.addr(0), &path(3), 2).await.expect("answer");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    redis.restart();
    assert!(
        wait_for_async(Duration::from_secs(30), || async {
            post(fleet.addr(0), &path(1), 3)
                .await
                .is_some_and(|r| r.status == 200)
        })
        .await,
        "no recovery"
    );
    let got = request(fleet.addr(0), "GET", &path(2), &[], b"").await;
    assert_eq!((got.status, got.body.as_str()), (200, "3"));
}

/// A `redis-server` child serving TLS only (`rediss://`), with a leaf for 127.0.0.1 signed by a
/// private CA made here; killed on drop.
struct TlsRedis {
    child: Child,
    dir: PathBuf,
    port: u16,
    ca_pem: String,
}

impl TlsRedis {
    fn start() -> Option<TlsRedis> {
        // Skips (or fails under CI) exactly like the plain server when redis-server is missing.
        let plain = Redis::start(false)?;
        drop(plain);
        let ca = private_ca("flexscript redis test CA");
        let dir = std::env::temp_dir().join(format!(
            "flexscript-rediss-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("ca.pem"), &ca.ca_pem).expect("ca");
        std::fs::write(dir.join("leaf.pem"), &ca.leaf_pem).expect("leaf");
        std::fs::write(dir.join("leaf.key"), &ca.key_pem).expect("key");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string()])
            .args([
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--tls-auth-clients",
                "no",
            ])
            .arg("--tls-cert-file")
            .arg(dir.join("leaf.pem"))
            .arg("--tls-key-file")
            .arg(dir.join("leaf.key"))
            .arg("--tls-ca-cert-file")
            .arg(dir.join("ca.pem"))
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let end = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < end, "redis-server (TLS) did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        Some(TlsRedis {
            child,
            dir,
            port,
            ca_pem: ca.ca_pem,
        })
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `state = "rediss://…"` works against a Redis serving TLS with a private CA when
/// `redis_ca` names that CA (journal and shared store), and is refused without it (the built-in
/// roots do not know the CA: 503s and an unready `/readyz`, never a plain-text fallback).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_works_with_the_ca_trusted_and_is_refused_without() {
    let Some(redis) = TlsRedis::start() else {
        return;
    };
    let endpoints = format!(
        "{}{}",
        ep(
            1,
            DATA,
            &step("s", "store", "name = \"n\"\nvalue = \"{{ __data.n }}\"")
        ),
        ep(
            2,
            "return_type = \"data\"\nreturn_data = '''{\"c\": {{ incrementAndGet('c') }}}'''",
            ""
        ),
    );
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let trusted = write_config(&format!(
        "[server]\nstate = \"{url}\"\nredis_ca = \"ca.pem\"\n{endpoints}"
    ));
    std::fs::write(trusted.path().with_file_name("ca.pem"), &redis.ca_pem).expect("ca");
    let fleet = Fleet::start(trusted.path(), 1).await;
    let a = fleet.addr(0);
    assert_eq!(request(a, "GET", "/readyz", &[], b"").await.status, 200);
    let r = post(a, &path(1), 7).await.expect("answer");
    assert_eq!(r.status, 200, "a run journaled over TLS: {}", r.body);
    for want in 1..=2 {
        let r = request(a, "GET", &path(2), &[], b"").await;
        assert_eq!((r.status, r.body), (200, format!("{{\"c\": {want}}}")));
    }
    drop(fleet);

    let untrusted = write_config(&format!("[server]\nstate = \"{url}\"\n{endpoints}"));
    let fleet = Fleet::start(untrusted.path(), 1).await;
    let a = fleet.addr(0);
    let ready = request(a, "GET", "/readyz", &[], b"").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let r = post(a, &path(1), 8).await.expect("answer");
    assert_eq!(r.status, 503, "{}", r.body);
    let r = request(a, "GET", &path(2), &[], b"").await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.header("retry-after").is_some());
}

/// Runs journaled finished at their answer (a `store` step alone: in Redis one string and one
/// history entry) and runs whose steps run after it (a `log` step: a hash updated by the
/// journal script) are listed together by the admin API of either instance, newest first,
/// every run once across pages of 5; a finished run reads back whole, its step's checkpoint
/// included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_journaled_at_and_after_the_answer_list_together_across_pages() {
    let Some(redis) = Redis::start(false) else {
        return;
    };
    let kept = ep(
        1,
        DATA,
        &step("keep", "store", "name = \"n\"\nvalue = \"{{ __data.n }}\""),
    );
    let logged = ep(2, DATA, &step("go", "log", "message = \"go\""));
    let cfg = write_config(&format!(
        "[server]\nstate = \"{}\"\nadmin_key = \"adm1n-key\"\n{kept}{logged}",
        redis.url()
    ));
    let fleet = Fleet::start(cfg.path(), 2).await;
    for i in 0..12 {
        let r = post(fleet.addr(i % 2), &path(1 + i / 6), i)
            .await
            .expect("answer");
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let auth = [("authorization", "Bearer adm1n-key")];
    let list = |addr: SocketAddr, query: String| async move {
        let r = request(addr, "GET", &format!("/runs?{query}"), &auth, b"").await;
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    // The `log` runs finish after their answers.
    let end = Instant::now() + Duration::from_secs(30);
    let whole = loop {
        let whole = list(fleet.addr(1), "limit=100".into()).await;
        let runs = whole["runs"].as_array().cloned().unwrap_or_default();
        if runs.len() == 12 && runs.iter().all(|r| r["status"] == "succeeded") {
            break whole;
        }
        assert!(Instant::now() < end, "{whole}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .map(|r| r["id"].as_str().expect("id").to_string())
            .collect()
    };
    let all = ids(&whole);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 12);
    // Newest first: the `log` runs (ep2) were accepted last.
    assert!(whole["runs"].as_array().expect("runs")[..6]
        .iter()
        .all(|r| r["endpoint"] == "ep2"));
    let mut paged = Vec::new();
    let mut query = "limit=5".to_string();
    loop {
        let page = list(fleet.addr(0), query).await;
        paged.extend(ids(&page));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=5&before={}", next.replace(':', "%3A")),
            None => break,
        }
    }
    assert_eq!(paged, all);
    let first_kept = whole["runs"].as_array().expect("runs")[6]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = request(
        fleet.addr(0),
        "GET",
        &format!("/runs/{first_kept}"),
        &auth,
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let run = r.json();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["id"], "keep", "{run}");
    assert_eq!(run["steps"][0]["checkpoint"]["set"][0][0], "n", "{run}");
    assert_eq!(run["data"]["n"], 5, "{run}");
}
