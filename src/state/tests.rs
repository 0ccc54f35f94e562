//! The same journal tests on both backends, plus SQLite-only ones (a real file in a temp dir).

use super::memory::MemoryBackend;
use super::sqlite::SqliteBackend;
use super::*;
use serde_json::json;
use std::time::Duration;

pub(super) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

pub(super) fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "flexscript-state-{tag}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub(super) fn new_run(id: &str, endpoint: &str, resumable: bool) -> RunRecord {
    RunRecord::new(
        id.into(),
        endpoint.into(),
        "a".repeat(32),
        "b".repeat(32),
        "fp".into(),
        resumable,
        json!({"name": "x"}),
        1_000,
        Some("me".into()),
    )
}

pub(super) fn status(run: &str, status: RunStatus, at: i64, error: Option<&str>) -> RunEvent {
    RunEvent::Status {
        run: run.into(),
        status,
        at,
        error: error.map(str::to_string),
    }
}

/// A `store` step's start.
pub(super) fn started(run: &str, step: &str, at: i64) -> RunEvent {
    RunEvent::StepStarted {
        run: run.into(),
        step: step.into(),
        kind: "store".into(),
        at,
    }
}

/// A step's end with a checkpoint that sets `step` to `at`.
pub(super) fn succeeded(run: &str, step: &str, at: i64) -> RunEvent {
    RunEvent::StepSucceeded {
        run: run.into(),
        step: step.into(),
        at,
        checkpoint: Checkpoint {
            set: vec![(step.into(), json!(at))],
            branch: None,
        },
    }
}

/// Every journal query on `b`.
fn journal_queries(b: &dyn Backend) {
    block_on(async {
        for i in 0..5 {
            let ep = if i % 2 == 0 { "even" } else { "odd" };
            b.create_run(new_run(&format!("r{i}"), ep, true))
                .await
                .unwrap();
        }
        b.record(status("r0", RunStatus::Running, 1_100, None))
            .await
            .unwrap();
        b.record(RunEvent::StepStarted {
            run: "r0".into(),
            step: "s1".into(),
            kind: "store".into(),
            at: 1_110,
        })
        .await
        .unwrap();
        let cp = Checkpoint {
            set: vec![("a.b".into(), json!(1))],
            branch: None,
        };
        b.record(RunEvent::StepSucceeded {
            run: "r0".into(),
            step: "s1".into(),
            at: 1_120,
            checkpoint: cp.clone(),
        })
        .await
        .unwrap();
        b.record(RunEvent::StepStarted {
            run: "r0".into(),
            step: "s2".into(),
            kind: "webhook".into(),
            at: 1_130,
        })
        .await
        .unwrap();
        b.record(RunEvent::StepFailed {
            run: "r0".into(),
            step: "s2".into(),
            at: 1_140,
            error: "boom".into(),
        })
        .await
        .unwrap();
        b.record(status(
            "r0",
            RunStatus::Failed,
            1_150,
            Some("step s2 failed"),
        ))
        .await
        .unwrap();
        b.record(RunEvent::StepWaiting {
            run: "r1".into(),
            step: "later".into(),
            kind: "log".into(),
            due: 9_000,
        })
        .await
        .unwrap();

        let r0 = b.get_run("r0").await.unwrap();
        assert_eq!(r0.status, RunStatus::Failed);
        assert_eq!(r0.started, Some(1_100));
        assert_eq!(r0.finished, Some(1_150));
        assert_eq!(r0.error.as_deref(), Some("step s2 failed"));
        assert_eq!(r0.data, json!({"name": "x"}));
        assert_eq!(r0.steps.len(), 2);
        assert_eq!(r0.steps[0].id, "s1");
        assert_eq!(r0.steps[0].kind, "store");
        assert_eq!(r0.steps[0].status, StepStatus::Succeeded);
        assert_eq!(r0.steps[0].checkpoint.as_ref(), Some(&cp));
        assert_eq!(r0.steps[1].status, StepStatus::Failed);
        assert_eq!(r0.steps[1].error.as_deref(), Some("boom"));
        assert_eq!(r0.summary().duration_ms, Some(50));
        let r1 = b.get_run("r1").await.unwrap();
        assert_eq!(r1.steps[0].status, StepStatus::Waiting);
        assert_eq!(r1.steps[0].due, Some(9_000));
        assert_eq!(b.get_run("nope").await, Err(StateError::NotFound));

        // Listing: newest first, filters, cursor.
        let all = b.list_runs(RunFilter::default()).await.unwrap();
        let ids: Vec<_> = all.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r4", "r3", "r2", "r1", "r0"]);
        assert_eq!(all.next, None);
        let even = b
            .list_runs(RunFilter {
                endpoint: Some("even".into()),
                limit: 2,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let ids: Vec<_> = even.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r4", "r2"]);
        let rest = b
            .list_runs(RunFilter {
                endpoint: Some("even".into()),
                limit: 2,
                before: even.next.clone(),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let ids: Vec<_> = rest.runs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r0"]);
        assert_eq!(rest.next, None);
        let failed = b
            .list_runs(RunFilter {
                status: Some(RunStatus::Failed),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(failed.runs.len(), 1);
        assert_eq!(failed.runs[0].error.as_deref(), Some("step s2 failed"));

        // Retry: only failed / interrupted; from the failed step keeps finished steps.
        match b.retry_run("r1", RetryFrom::Failed).await {
            Err(StateError::Conflict(m)) => assert!(m.contains("queued"), "{m}"),
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(
            b.retry_run("zz", RetryFrom::Start).await,
            Err(StateError::NotFound)
        );
        let again = b.retry_run("r0", RetryFrom::Failed).await.unwrap();
        assert_eq!(again.status, RunStatus::Queued);
        assert_eq!(again.attempt, 2);
        assert_eq!(again.owner, None);
        let stored = b.get_run("r0").await.unwrap();
        assert_eq!(stored.status, RunStatus::Queued);
        assert_eq!(stored.error, None);
        assert_eq!(stored.finished, None);
        assert_eq!(stored.steps.len(), 1, "the failed step is dropped");
        assert_eq!(stored.steps[0].id, "s1");
        // Claim: only unowned queued runs (r0 now), once.
        let claimed = b.claim("other", 10).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, "r0");
        assert_eq!(claimed[0].steps.len(), 1);
        assert!(b.claim("third", 10).await.unwrap().is_empty());
        b.record(status("r0", RunStatus::Interrupted, 2_000, Some("x")))
            .await
            .unwrap();
        let from_start = b.retry_run("r0", RetryFrom::Start).await.unwrap();
        assert!(from_start.steps.is_empty());
        assert!(b.get_run("r0").await.unwrap().steps.is_empty());
    });
}

/// A queued run nobody owns (the backlog of the bounded run queue).
fn unowned(id: &str) -> RunRecord {
    let mut r = new_run(id, "e", true);
    r.owner = None;
    r
}

/// Recovery leaves the owner-less queued runs for `claim` (never all in memory at once).
fn backlog_left_for_claim(b: &dyn Backend, owner: &str) {
    block_on(async {
        let left = b.get_run("backlog").await.unwrap();
        assert_eq!(
            (left.status, left.owner.as_deref(), left.attempt),
            (RunStatus::Queued, None, 1)
        );
        let claimed = b.claim(owner, 10).await.unwrap();
        let ids: Vec<_> = claimed.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["backlog"]);
        assert_eq!(claimed[0].attempt, 1, "a claim is not an attempt");
    });
}

fn recovery(b: &dyn Backend) {
    block_on(async {
        b.create_run(unowned("backlog")).await.unwrap();
        b.create_run(new_run("keep", "e", true)).await.unwrap();
        b.create_run(new_run("sync", "e", false)).await.unwrap();
        b.create_run(new_run("done", "e", true)).await.unwrap();
        b.record(status("done", RunStatus::Succeeded, 5, None))
            .await
            .unwrap();
        let back = b.recover("new-owner", 7_000).await.unwrap();
        recovered_by_new_owner(b, back).await;
    });
    backlog_left_for_claim(b, "new-owner");
}

/// What `recover` by `new-owner` must give back from the runs `keep` (resumable, taken over
/// as attempt 2) and `sync` (not resumable: marked interrupted).
async fn recovered_by_new_owner(b: &dyn Backend, back: Vec<RunRecord>) {
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, "keep");
    assert_eq!(back[0].attempt, 2);
    assert_eq!(back[0].owner.as_deref(), Some("new-owner"));
    let sync = b.get_run("sync").await.unwrap();
    assert_eq!(sync.status, RunStatus::Interrupted);
    assert!(sync.error.unwrap().contains("interrupted"));
}

fn retention(b: &dyn Backend) {
    block_on(async {
        let day = 86_400_000;
        for i in 0..6 {
            let mut r = new_run(&format!("p{i}"), if i < 4 { "a" } else { "b" }, true);
            r.created = i * day;
            b.create_run(r).await.unwrap();
            b.record(status(
                &format!("p{i}"),
                RunStatus::Succeeded,
                i * day,
                None,
            ))
            .await
            .unwrap();
        }
        b.create_run(new_run("open", "a", true)).await.unwrap();
        // Older than 2 days before day 6 (p0..p3 finished before day 4) or beyond 1 per
        // endpoint: only p5 (b's newest) is left, and the unfinished run.
        let purged = b
            .purge(
                Retention {
                    days: 2,
                    max_per_endpoint: 1,
                },
                6 * day,
            )
            .await
            .unwrap();
        assert_eq!(purged, 5);
        let mut left: Vec<_> = b
            .list_runs(RunFilter::default())
            .await
            .unwrap()
            .runs
            .into_iter()
            .map(|r| r.id)
            .collect();
        // Which runs are left (the listing's order is journal_queries' business: on Redis,
        // runs of two endpoints accepted within one millisecond are ordered by run id).
        left.sort();
        assert_eq!(left, ["open", "p5"]);
    });
}

#[test]
fn memory_journal() {
    journal_queries(&MemoryBackend::new());
    recovery(&MemoryBackend::new());
    retention(&MemoryBackend::new());
}

#[test]
fn sqlite_journal() {
    let dir = temp_dir("journal");
    journal_queries(&SqliteBackend::open(&dir.join("a.db"), Durability::Normal).unwrap());
    recovery(&SqliteBackend::open(&dir.join("b.db"), Durability::Fsync).unwrap());
    retention(&SqliteBackend::open(&dir.join("c.db"), Durability::Normal).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sqlite_survives_reopen_and_keeps_the_store() {
    let dir = temp_dir("reopen");
    let path = dir.join("sub/state.db");
    {
        let b = SqliteBackend::open(&path, Durability::Normal).unwrap();
        block_on(b.create_run(new_run("r", "e", true))).unwrap();
        let s = b.store();
        assert_eq!(s.increment("hits", 1).unwrap(), 1);
        assert_eq!(s.increment("hits", 2).unwrap(), 3);
        s.set(
            "greeting",
            crate::Value::from("hi"),
            Duration::from_secs(60),
        );
        s.set("gone", crate::Value::from("x"), Duration::from_millis(1));
        s.set("removed", crate::Value::from("x"), Duration::from_secs(60));
        s.set("removed", crate::Value::Null, Duration::ZERO);
    }
    let b = SqliteBackend::open(&path, Durability::Normal).unwrap();
    assert_eq!(block_on(b.get_run("r")).unwrap().endpoint, "e");
    let s = b.store();
    assert_eq!(s.increment("hits", 0).unwrap(), 3);
    assert_eq!(s.get("greeting").unwrap().to_output(), "hi");
    assert!(s.get("gone").is_none());
    assert!(s.get("removed").is_none());
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sqlite_has_one_owner_and_any_readers() {
    let dir = temp_dir("owner");
    let path = dir.join("state.db");
    let owner = SqliteBackend::open(&path, Durability::Normal).unwrap();
    block_on(owner.create_run(new_run("r", "e", true))).unwrap();
    let err = SqliteBackend::open(&path, Durability::Normal)
        .err()
        .expect("a second owner is refused");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
    let reader = SqliteBackend::open_reader(&path).unwrap();
    assert_eq!(block_on(reader.get_run("r")).unwrap().id, "r");
    drop(owner);
    // Once the owner is gone, the file can be owned again.
    SqliteBackend::open(&path, Durability::Normal).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sqlite_refuses_a_corrupt_file_with_the_reason() {
    let dir = temp_dir("corrupt");
    let path = dir.join("state.db");
    std::fs::write(&path, vec![b'x'; 8192]).unwrap();
    let err = SqliteBackend::open(&path, Durability::Normal)
        .err()
        .expect("refused");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("not a database"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_rows_are_an_error_for_that_run() {
    let dir = temp_dir("rows");
    let path = dir.join("state.db");
    let b = SqliteBackend::open(&path, Durability::Normal).unwrap();
    block_on(b.create_run(new_run("bad", "e", true))).unwrap();
    block_on(b.create_run(new_run("good", "e", true))).unwrap();
    block_on(b.create_run(new_run("badsteps", "e", true))).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE runs SET data = '{not json' WHERE id = 'bad'", [])
        .unwrap();
    // The steps a run was journaled with (`runs.steps`), not an array of step records.
    raw.execute(
        "UPDATE runs SET steps = '[{\"id\": 1}' WHERE id = 'badsteps'",
        [],
    )
    .unwrap();
    for id in ["bad", "badsteps"] {
        match block_on(b.get_run(id)) {
            Err(StateError::Corrupt(m)) => assert!(m.contains(id), "{m}"),
            other => panic!("expected corrupt, got {other:?}"),
        }
    }
    let back = block_on(b.recover("me2", 5)).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].id, "good");
    let bad = block_on(b.list_runs(RunFilter {
        status: Some(RunStatus::Failed),
        ..RunFilter::default()
    }))
    .unwrap();
    let ids: Vec<_> = bad.runs.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["badsteps", "bad"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn credentials_never_reach_the_journal() {
    let data = crate::Value::from(json!({
        "name": "x",
        "__headers": {"authorization": "Bearer s3cret", "token": "t0k", "x_other": "kept"}
    }));
    let j = record::journal_data(&data);
    assert_eq!(j["__headers"], json!({"x_other": "kept"}));
    assert_eq!(j["name"], "x");
}

/// A deterministic generator of request-like values (xorshift64*): every value kind, the
/// floats serde_json and `Value` may write differently (negative zero, subnormals, huge and
/// tiny exponents, NaN and infinities), the integer extremes, strings with every control
/// character, quotes, backslashes and non-ASCII text, nested maps and lists, and `__headers`
/// maps with and without credential headers (and `__headers` that is not a map).
pub(super) struct Gen(pub(super) u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, of: &[&'a str]) -> &'a str {
        of[self.below(of.len() as u64) as usize]
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            "a",
            "ref",
            "A-1",
            " ",
            "\"",
            "\\",
            "/",
            "</script>",
            "'",
            "\u{7f}",
            "é",
            "日本",
            "😀",
            "\u{2028}",
            "\u{2029}",
            "\u{fffd}",
            "\u{feff}",
            "\u{10ffff}",
            "e\u{301}",
            "\\u0000",
            "null",
            "1e5",
            "-0",
        ];
        let mut s = String::new();
        for _ in 0..self.below(5) {
            match self.below(3) {
                0 => s.push(char::from_u32(self.below(0x20) as u32).unwrap()),
                1 => s.push_str(self.pick(PIECES)),
                _ => {
                    let c = char::from_u32(self.below(0x11_0000) as u32).unwrap_or('?');
                    s.push(c);
                }
            }
        }
        s
    }

    fn float(&mut self) -> f64 {
        const EDGES: &[f64] = &[
            0.0,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            1e-7,
            123456789.125,
            9007199254740993.0,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            f64::EPSILON,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            i64::MAX as f64,
            u64::MAX as f64,
        ];
        match self.below(3) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => f64::from_bits(self.next()),
            _ => (self.next() as i64 % 1_000_000) as f64 / 64.0,
        }
    }

    fn int(&mut self) -> i64 {
        const EDGES: &[i64] = &[0, -1, 1, i64::MIN, i64::MAX, 9007199254740993, -(1 << 53)];
        match self.below(3) {
            0 => EDGES[self.below(EDGES.len() as u64) as usize],
            1 => self.next() as i64,
            _ => self.below(1000) as i64 - 500,
        }
    }

    fn headers(&mut self) -> crate::Value {
        const NAMES: &[&str] = &[
            "authorization",
            "proxy_authorization",
            "token",
            "apikey",
            "x_api_key",
            "cookie",
            "host",
            "user_agent",
            "x_request_id",
            "Authorization",
            "authorization_x",
            "",
        ];
        let mut m = crate::value::Map::new();
        for _ in 0..self.below(8) {
            let v = if self.below(4) == 0 {
                self.value(1)
            } else {
                crate::Value::str(self.string())
            };
            m.insert(self.pick(NAMES).into(), v);
        }
        crate::Value::Map(std::sync::Arc::new(m))
    }

    fn value(&mut self, depth: u32) -> crate::Value {
        use crate::Value as V;
        let kinds = if depth == 0 { 8 } else { 10 };
        match self.below(kinds) {
            0 => V::Undefined,
            1 => V::Null,
            2 => V::Bool(self.below(2) == 0),
            3 => V::Int(self.int()),
            4 => V::Float(self.float()),
            5 => V::str(self.string()),
            6 => V::safe(self.string()),
            7 => V::Int(self.below(10) as i64),
            8 => V::list((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut m = crate::value::Map::new();
                for _ in 0..self.below(6) {
                    let k = self.string();
                    m.insert(k.into(), self.value(depth - 1));
                }
                V::Map(std::sync::Arc::new(m))
            }
        }
    }

    /// A request `__data`: mostly a map with `__headers` somewhere among its keys.
    pub(super) fn data(&mut self) -> crate::Value {
        if self.below(10) == 0 {
            return self.value(3);
        }
        let mut m = crate::value::Map::new();
        let at = self.below(5);
        for i in 0..5 {
            if i == at {
                let h = match self.below(6) {
                    0 => self.value(2),
                    _ => self.headers(),
                };
                m.insert("__headers".into(), h);
            }
            if self.below(2) == 0 {
                let k = self.pick(&["ref", "__method", "__query", "n", "user", "__headers_x"]);
                m.insert(k.into(), self.value(3));
            }
        }
        crate::Value::Map(std::sync::Arc::new(m))
    }
}

/// The journal's text of the request data, written straight from the `Value`
/// (`record::journal_text`, what the SQLite backend stores), is exactly serde_json's text of
/// `record::journal_data` (what it stored before): same key order, numbers, escapes, and the
/// same credential headers removed.
/// A run's leading steps as the SQLite journal writes them (`runs.steps`, src/state/json_text.rs)
/// are `serde_json::to_string` of the step records, for generated records: every status,
/// times and their absence, errors and ids with every escape, checkpoints with generated
/// values (every number kind included), branches and both empty.
#[test]
fn step_texts_are_serde_json_texts() {
    use super::{Checkpoint, StepRecord, StepStatus};
    let mut g = Gen(0x2545_f491_4f6c_dd1d);
    let statuses = [
        StepStatus::Running,
        StepStatus::Waiting,
        StepStatus::Succeeded,
        StepStatus::Failed,
    ];
    for i in 0..5_000 {
        let n = g.below(4) as usize;
        let steps: Vec<StepRecord> = (0..n)
            .map(|_| {
                let opt = |g: &mut Gen| (g.below(3) > 0).then(|| g.int());
                StepRecord {
                    id: g.string(),
                    kind: g.string(),
                    status: statuses[g.below(4) as usize],
                    started: opt(&mut g),
                    finished: opt(&mut g),
                    due: opt(&mut g),
                    error: (g.below(2) == 0).then(|| g.string()),
                    checkpoint: (g.below(4) > 0).then(|| Checkpoint {
                        set: (0..g.below(3))
                            .map(|_| (g.string(), record::journal_data(&g.data())))
                            .collect(),
                        branch: match g.below(3) {
                            0 => None,
                            1 => Some(true),
                            _ => Some(false),
                        },
                    }),
                }
            })
            .collect();
        let mut text = String::new();
        super::json_text::steps(&mut text, &steps);
        assert_eq!(
            text,
            serde_json::to_string(&steps).unwrap(),
            "#{i}: {steps:?}"
        );
        let back: Vec<StepRecord> = serde_json::from_str(&text).unwrap();
        assert_eq!(back.len(), steps.len());
    }
}

#[test]
fn journal_text_is_the_text_of_journal_data() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    let mut secrets_seen = 0;
    for i in 0..20_000 {
        let v = g.data();
        let journaled = record::journal_data(&v);
        assert_eq!(
            record::journal_text(&v),
            journaled.to_string(),
            "value #{i}: {v:?}"
        );
        if journaled != v.to_json() {
            secrets_seen += 1;
        }
    }
    assert!(
        secrets_seen > 1000,
        "credential headers were removed {secrets_seen} times"
    );
    let v = crate::Value::from(json!({
        "__headers": {"authorization": "Bearer s", "cookie": "c", "token": "t", "apikey": "k",
                      "x_api_key": "x", "proxy_authorization": "p", "host": "h"},
        "n": [1.0, -0.0, 1e300, 12345678901234567890u64, -9223372036854775808i64],
        "s": "\u{0}\u{1f}\"\\/\u{7f}\u{2028}😀",
    }));
    assert_eq!(
        record::journal_text(&v),
        "{\"__headers\":{\"host\":\"h\"},\
         \"n\":[1.0,-0.0,1e+300,1.2345678901234567e+19,-9223372036854775808],\
         \"s\":\"\\u0000\\u001f\\\"\\\\/\u{7f}\u{2028}😀\"}"
    );
}

/// `record::record_text` (src/state/json_text.rs; Redis's `rec` is its accepted form) is the
/// text of the record with `journal_data` as its data, with and without an owner, steps, times
/// and an error.
#[test]
fn record_text_is_the_text_of_the_record_with_journal_data() {
    let mut g = Gen(0x6a09_e667_f3bc_c909);
    for i in 0..5_000 {
        let data = g.data();
        let mut run = new_run(&format!("r{i}"), "e\"p", i % 2 == 0);
        if i % 3 == 0 {
            run.owner = None;
        }
        if i % 5 == 0 {
            run.apply(&status(
                &run.id.clone(),
                RunStatus::Failed,
                7,
                Some("x\u{1}y"),
            ));
            run.apply(&started(&run.id.clone(), "s", 5));
        }
        let text = record::record_text(&run, &data);
        run.data = record::journal_data(&data);
        assert_eq!(text, run.to_text(), "value #{i}: {data:?}");
    }
}

/// `create_request_run` journals the request data as `create_run` of `journal_data` did: the
/// SQLite backend stores the very same text (it writes it from the `Value`), the memory
/// backend the same record.
#[test]
fn a_request_run_journals_its_data_without_credentials() {
    let data = crate::Value::from(json!({
        "ref": "A-1",
        "__headers": {"authorization": "Bearer s3cret", "cookie": "c", "x_other": "kept"},
        "f": 0.30000000000000004,
    }));
    let dir = temp_dir("request-run");
    let path = dir.join("state.db");
    let b = SqliteBackend::open(&path, Durability::Normal).unwrap();
    let mut old = new_run("old", "e", true);
    old.data = record::journal_data(&data);
    block_on(b.create_run(old)).unwrap();
    let mut new = new_run("new", "e", true);
    new.data = json!("ignored");
    block_on(b.create_request_run(new, &data)).unwrap();
    let raw = rusqlite::Connection::open(&path).unwrap();
    let text = |id: &str| -> String {
        raw.query_row("SELECT data FROM runs WHERE id = ?1", [id], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(text("new"), text("old"));
    assert!(!text("new").contains("s3cret") && text("new").contains("kept"));
    assert_eq!(
        block_on(b.get_run("new")).unwrap().data,
        record::journal_data(&data)
    );
    let m = MemoryBackend::new();
    block_on(m.create_request_run(new_run("m", "e", true), &data)).unwrap();
    assert_eq!(
        block_on(m.get_run("m")).unwrap().data,
        record::journal_data(&data)
    );
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn state_values_parse() {
    let base = Path::new("/srv/app");
    assert_eq!(
        StateSpec::parse(DEFAULT_STATE, base).unwrap(),
        StateSpec::Sqlite(PathBuf::from("/srv/app/.flexscript/state.db"))
    );
    assert_eq!(
        StateSpec::parse("sqlite:/var/x.db", base).unwrap(),
        StateSpec::Sqlite(PathBuf::from("/var/x.db"))
    );
    assert_eq!(StateSpec::parse("memory", base).unwrap(), StateSpec::Memory);
    assert!(StateSpec::parse("sqlite:", base).is_err());
    assert!(StateSpec::parse("postgres://x", base)
        .unwrap_err()
        .contains("unknown"));
}

#[test]
fn sqlite_purges_many_runs_in_chunks_and_keeps_their_steps_tidy() {
    let dir = temp_dir("purge");
    let b = SqliteBackend::open(&dir.join("p.db"), Durability::Normal).unwrap();
    block_on(async {
        // More runs than one purge transaction takes, each with a step.
        let n = 2_500;
        for i in 0..n {
            let id = format!("r{i}");
            b.create_run(new_run(&id, "e", true)).await.unwrap();
            b.record(RunEvent::StepFailed {
                run: id.clone(),
                step: "s".into(),
                at: 2_000,
                error: "boom".into(),
            })
            .await
            .unwrap();
            b.record(status(&id, RunStatus::Failed, 2_000, Some("boom")))
                .await
                .unwrap();
        }
        let keep = Retention {
            days: 7,
            max_per_endpoint: 100,
        };
        assert_eq!(b.purge(keep, 3_000).await.unwrap(), n - 100);
        let page = b
            .list_runs(RunFilter {
                limit: 1000,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.runs.len(), 100);
        assert_eq!(
            page.runs[0].id,
            format!("r{}", n - 1),
            "the newest are kept"
        );
        let kept = b.get_run(&format!("r{}", n - 1)).await.unwrap();
        assert_eq!(kept.steps.len(), 1);
        assert_eq!(b.purge(keep, 3_000).await.unwrap(), 0);
    });
    let raw = rusqlite::Connection::open(dir.join("p.db")).unwrap();
    let steps: i64 = raw
        .query_row("SELECT count(*) FROM steps", [], |r| r.get(0))
        .unwrap();
    assert_eq!(steps, 100, "the purged runs' steps are gone too");
    drop(raw);
    drop(b);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A `redis-server` child on a free loopback port, with its data in a temp dir; killed and
/// removed on drop. `None` (with instructions) when `redis-server` is not installed, unless
/// `CI=true`, where that is a failure.
pub(crate) struct RedisChild {
    child: std::process::Child,
    dir: PathBuf,
    pub port: u16,
}

impl RedisChild {
    pub(crate) fn start() -> Option<RedisChild> {
        let missing = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err();
        if missing {
            let msg = "redis-server is not installed: the Redis backend tests need it \
                       (Debian/Ubuntu: `apt-get install -y redis-server`)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{msg}");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = temp_dir("redis");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        Some(RedisChild { child, dir, port })
    }

    pub(crate) fn url(&self, db: u8) -> String {
        format!("redis://127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for RedisChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn redis_journal() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let open = |db: u8, lease: u64| redis::RedisBackend::open(&redis.url(db), lease).unwrap();
    journal_queries(&open(1, 30));
    retention(&open(2, 30));
    // Recovery on Redis takes over only runs whose lease expired (others may be running).
    let b = open(3, 1);
    block_on(async {
        b.create_run(unowned("backlog")).await.unwrap();
        b.create_run(new_run("keep", "e", true)).await.unwrap();
        b.create_run(new_run("sync", "e", false)).await.unwrap();
        assert!(
            b.recover("other", 0).await.unwrap().is_empty(),
            "lease held"
        );
    });
    drop(b);
    // The owner stopped renewing (its backend is gone): after the lease, another takes over.
    std::thread::sleep(Duration::from_millis(1_300));
    let b = open(3, 1);
    recovery_after_lease(&b);
    // A run taken over too often is given up.
    block_on(async {
        b.create_run(new_run("doomed", "e", true)).await.unwrap();
    });
    let mut c = ::redis::Client::open(redis.url(3))
        .unwrap()
        .get_connection()
        .unwrap();
    ::redis::cmd("HSET")
        .arg("fs:{j}:run:doomed")
        .arg("attempt")
        .arg(redis::MAX_ATTEMPTS)
        .exec(&mut c)
        .unwrap();
    ::redis::cmd("ZADD")
        .arg("fs:{j}:leases")
        .arg(1)
        .arg("doomed")
        .exec(&mut c)
        .unwrap();
    block_on(async {
        assert!(b.claim("x", 10).await.unwrap().is_empty());
        let r = b.get_run("doomed").await.unwrap();
        assert_eq!(r.status, RunStatus::Failed);
        assert!(r.error.unwrap().contains("gave up after 5 attempts"));
    });
    // Writes are applied in call order, whether or not their callers wait (a run's events
    // never overtake each other).
    let b = open(5, 30);
    block_on(async {
        let create = b.create_run(new_run("o", "e", true));
        for i in 0..50 {
            let step = format!("s{i}");
            drop(b.record(RunEvent::StepStarted {
                run: "o".into(),
                step: step.clone(),
                kind: "store".into(),
                at: 10,
            }));
            drop(b.record(RunEvent::StepSucceeded {
                run: "o".into(),
                step,
                at: 11,
                checkpoint: Checkpoint {
                    set: vec![("x".into(), json!(i))],
                    branch: None,
                },
            }));
        }
        let last = b.record(status("o", RunStatus::Succeeded, 12, None));
        create.await.unwrap();
        last.await.unwrap();
        let r = b.get_run("o").await.unwrap();
        assert_eq!(r.status, RunStatus::Succeeded);
        assert_eq!(r.steps.len(), 50);
        for (i, s) in r.steps.iter().enumerate() {
            assert_eq!(s.id, format!("s{i}"));
            assert_eq!(s.kind, "store");
            assert_eq!(s.status, StepStatus::Succeeded);
            assert_eq!(s.checkpoint.as_ref().unwrap().set[0].1, json!(i));
        }
    });
    // The store: JSON values with TTLs, exact counters, shared by two backends.
    let (x, y) = (open(4, 30), open(4, 30));
    let (sx, sy) = (x.store(), y.store());
    sx.set(
        "v",
        crate::Value::from(&json!({"a": [1, "b"]})),
        Duration::from_secs(60),
    );
    assert_eq!(sy.get("v").unwrap().to_json(), json!({"a": [1, "b"]}));
    sx.set("short", crate::Value::from(1i64), Duration::from_millis(50));
    std::thread::sleep(Duration::from_millis(120));
    assert!(sy.get("short").is_none());
    std::thread::scope(|s| {
        for st in [&sx, &sy, &sx, &sy] {
            s.spawn(move || {
                for _ in 0..250 {
                    st.increment("hits", 1).unwrap();
                }
            });
        }
    });
    assert_eq!(sy.increment("hits", 0).unwrap(), 1000);
    assert_eq!(sx.get("hits").unwrap().to_json(), json!(1000));
    assert!(sx.increment("v", 1).is_err());
    assert!(sx.remove("v"));
    assert!(sy.get("v").is_none());
}

/// One run's whole life as journal events: steps started, waiting, failed, started again,
/// succeeded (one never started), a non-final status with an error, then the final status.
fn life(id: &str) -> Vec<RunEvent> {
    let cp = |v: i64| Checkpoint {
        set: vec![("n".into(), json!(v))],
        branch: Some(v % 2 == 0),
    };
    let started = |step: &str, kind: &str, at: i64| RunEvent::StepStarted {
        run: id.into(),
        step: step.into(),
        kind: kind.into(),
        at,
    };
    vec![
        status(id, RunStatus::Running, 1_100, None),
        started("a", "store", 1_110),
        RunEvent::StepSucceeded {
            run: id.into(),
            step: "a".into(),
            at: 1_120,
            checkpoint: cp(1),
        },
        RunEvent::StepWaiting {
            run: id.into(),
            step: "b".into(),
            kind: "http".into(),
            due: 5_000,
        },
        started("b", "http", 5_010),
        RunEvent::StepFailed {
            run: id.into(),
            step: "b".into(),
            at: 5_020,
            error: "boom".into(),
        },
        status(id, RunStatus::Running, 5_030, Some("retrying b")),
        started("b", "http", 5_040),
        RunEvent::StepSucceeded {
            run: id.into(),
            step: "b".into(),
            at: 5_050,
            checkpoint: cp(2),
        },
        RunEvent::StepSucceeded {
            run: id.into(),
            step: "c".into(),
            at: 5_060,
            checkpoint: cp(3),
        },
        status(id, RunStatus::Succeeded, 5_070, None),
    ]
}

/// The runs in Redis's lease set (every unfinished run), in score order.
fn leased_runs(raw: &mut ::redis::Connection) -> Vec<String> {
    ::redis::cmd("ZRANGE")
        .arg("fs:{j}:leases")
        .arg(0)
        .arg(-1)
        .query(raw)
        .unwrap()
}

/// The journal writer applies a whole batch of writes in one script call (src/state/redis.rs,
/// `APPLY`): a run created and journaled with every event queued at once (merged into few
/// calls) reads back exactly as when each write is its own call, and as the in-memory journal
/// applies the same events; one write's error fails that write only.
#[test]
fn redis_batched_writes_read_back_as_applied_one_by_one() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let open = |db: u8| redis::RedisBackend::open(&redis.url(db), 30).unwrap();
    let mut raw = ::redis::Client::open(redis.url(6))
        .unwrap()
        .get_connection()
        .unwrap();
    let evals = |c: &mut ::redis::Connection| -> i64 {
        let info: String = ::redis::cmd("INFO").arg("commandstats").query(c).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("cmdstat_eval:calls="))
            .and_then(|l| l.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let mem = MemoryBackend::new();
    let (merged, serial) = (open(6), open(7));
    block_on(async {
        mem.create_run(new_run("m", "e", true)).await.unwrap();
        serial.create_run(new_run("m", "e", true)).await.unwrap();
        for e in life("m") {
            mem.record(e.clone()).await.unwrap();
            serial.record(e).await.unwrap();
        }
        let before = evals(&mut raw);
        let mut writes = vec![merged.create_run(new_run("m", "e", true))];
        writes.extend(life("m").into_iter().map(|e| merged.record(e)));
        let n = writes.len() as i64;
        for w in writes {
            w.await.unwrap();
        }
        let calls = evals(&mut raw) - before;
        assert!(calls < n, "{n} writes queued together took {calls} EVALs");
        let want = mem.get_run("m").await.unwrap();
        assert_eq!(want.steps.len(), 3);
        assert_eq!(serial.get_run("m").await.unwrap(), want);
        assert_eq!(merged.get_run("m").await.unwrap(), want);
        for b in [&merged, &serial] {
            let page = b.list_runs(RunFilter::default()).await.unwrap();
            assert_eq!(page.runs.len(), 1);
            assert_eq!(page.runs[0].status, RunStatus::Succeeded);
            assert_eq!(page.runs[0].duration_ms, Some(5_070 - 1_100));
        }
        // Finished: acknowledged (no lease, no delay), in its endpoint's history.
        let mut score = |key: &str| -> Option<f64> {
            ::redis::cmd("ZSCORE")
                .arg(key)
                .arg("m")
                .query(&mut raw)
                .unwrap()
        };
        assert_eq!(score("fs:{j}:leases"), None);
        assert_eq!(score("fs:{j}:delays"), None);
        let filed: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
            .arg("fs:{j}:log:e")
            .arg("-")
            .arg("+")
            .query(&mut raw)
            .unwrap();
        assert_eq!(filed.len(), 1);
        assert_eq!(filed[0].1, [("r".to_string(), "m".to_string())]);

        // One failing write in a batch: the others are applied, each answer is its own.
        for id in ["good", "bad"] {
            merged.create_run(new_run(id, "e", true)).await.unwrap();
        }
        ::redis::cmd("HSET")
            .arg("fs:{j}:run:bad")
            .arg("nsteps")
            .arg("x")
            .exec(&mut raw)
            .unwrap();
        let step = |run: &str| RunEvent::StepStarted {
            run: run.into(),
            step: "s".into(),
            kind: "store".into(),
            at: 10,
        };
        let bad = merged.record(step("bad"));
        let nope = merged.record(step("nope"));
        let good = merged.record(step("good"));
        let done = merged.record(status("good", RunStatus::Succeeded, 20, None));
        match bad.await {
            Err(StateError::Unavailable(m)) => assert!(m.contains("integer"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(nope.await, Err(StateError::NotFound));
        good.await.unwrap();
        done.await.unwrap();
        let g = merged.get_run("good").await.unwrap();
        assert_eq!(g.status, RunStatus::Succeeded);
        assert_eq!(g.steps.len(), 1);
        assert_eq!(g.steps[0].status, StepStatus::Running);
        assert!(merged.get_run("bad").await.unwrap().steps.is_empty());
        // `bad` is still unfinished and leased to its owner; `good` is acknowledged.
        let leased = leased_runs(&mut raw);
        assert_eq!(leased, vec!["bad".to_string()]);
    });
}

fn recovery_after_lease(b: &dyn Backend) {
    block_on(async {
        let back = b.recover("new-owner", 0).await.unwrap();
        recovered_by_new_owner(b, back).await;
    });
    backlog_left_for_claim(b, "new-owner");
    block_on(async {
        // Now leased to new-owner: nobody else takes it.
        assert!(b.claim("third", 10).await.unwrap().is_empty());
    });
}

#[test]
fn redis_down_is_unavailable_and_urls_are_checked() {
    let base = Path::new("/srv");
    assert_eq!(
        StateSpec::parse("redis://u:pw@127.0.0.1:6379/2", base).unwrap(),
        StateSpec::Redis("redis://u:pw@127.0.0.1:6379/2".into())
    );
    assert!(StateSpec::parse("rediss://127.0.0.1:6380/0", base).is_ok());
    let bad = StateSpec::parse("redis://u:pw@127.0.0.1:notaport/0", base).unwrap_err();
    assert!(!bad.contains("pw"), "{bad}");
    assert_eq!(redis::redact("redis://u:pw@h:1/0"), "redis://u:***@h:1/0");
    // Nothing listens on this port: every operation is Unavailable, quickly, without panic.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let b = redis::RedisBackend::open(&format!("redis://:pw@127.0.0.1:{port}/0"), 30).unwrap();
    assert!(!b.describe().contains("pw"));
    block_on(async {
        let e = b.create_run(new_run("x", "e", true)).await.unwrap_err();
        assert!(matches!(e, StateError::Unavailable(_)), "{e:?}");
        assert!(!e.to_string().contains("pw"));
        assert!(matches!(
            b.list_runs(RunFilter::default()).await,
            Err(StateError::Unavailable(_))
        ));
        assert!(b.recover("me", 0).await.unwrap().is_empty());
    });
    let st = b.store();
    assert!(st.get("k").is_none());
    assert!(st.increment("k", 1).is_err());
}

/// A run of `store` steps as the runner writes it at its end: `running`, each step's start and
/// checkpoint, the final status.
fn store_run_life(id: &str) -> Vec<RunEvent> {
    let mut out = vec![status(id, RunStatus::Running, 1_100, None)];
    for (i, step) in ["keep", "seen"].into_iter().enumerate() {
        let at = 1_110 + 10 * i as i64;
        out.push(RunEvent::StepStarted {
            run: id.into(),
            step: step.into(),
            kind: "store".into(),
            at,
        });
        out.push(RunEvent::StepSucceeded {
            run: id.into(),
            step: step.into(),
            at: at + 5,
            checkpoint: Checkpoint {
                set: vec![(step.into(), json!(i))],
                branch: None,
            },
        });
    }
    out.push(status(id, RunStatus::Succeeded, 1_200, None));
    out
}

/// `record_all` (the runner's buffered events of a run, one write) leaves the run exactly as
/// the same events recorded one by one do, on `b`.
fn record_all_reads_back_as_one_by_one(b: &dyn Backend) {
    let mem = MemoryBackend::new();
    block_on(async {
        for (id, events) in [("s", store_run_life("s")), ("l", life("l"))] {
            mem.create_run(new_run(id, "e", true)).await.unwrap();
            b.create_run(new_run(id, "e", true)).await.unwrap();
            for e in events.clone() {
                mem.record(e).await.unwrap();
            }
            b.record_all(events).await.unwrap();
            assert_eq!(b.get_run(id).await.unwrap(), mem.get_run(id).await.unwrap());
        }
        let s = b.get_run("s").await.unwrap();
        assert_eq!(s.status, RunStatus::Succeeded);
        assert_eq!(s.started, Some(1_100));
        assert_eq!(s.steps.len(), 2);
    });
}

#[test]
fn record_all_on_every_backend() {
    record_all_reads_back_as_one_by_one(&MemoryBackend::new());
    let dir = temp_dir("record-all");
    record_all_reads_back_as_one_by_one(
        &SqliteBackend::open(&dir.join("a.db"), Durability::Normal).unwrap(),
    );
    std::fs::remove_dir_all(&dir).unwrap();
    if let Some(redis) = RedisChild::start() {
        let b = redis::RedisBackend::open(&redis.url(8), 30).unwrap();
        record_all_reads_back_as_one_by_one(&b);
        // One script call applied all of a run's events; the run is acknowledged (no lease).
        let mut raw = ::redis::Client::open(redis.url(8))
            .unwrap()
            .get_connection()
            .unwrap();
        let leased = leased_runs(&mut raw);
        assert!(leased.is_empty(), "{leased:?}");
    }
}
