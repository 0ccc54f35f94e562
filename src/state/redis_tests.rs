//! The `F` op of the Redis journal writer (a fresh run's end in one `HSET`): the hash it leaves
//! is the one the same events leave applied one by one (the format every version of the
//! backend reads and writes, docs/redis.md), on its fast path and on its fallback.

use super::super::memory::MemoryBackend;
use super::super::tests::{block_on, started, status, succeeded, Gen, RedisChild};
use super::super::{record, Backend, RunEvent, RunRecord, RunStatus, StateError};
use super::{fold, fresh_end, RedisBackend};
use std::collections::HashMap;

/// A run of endpoint `e`, resumable (the shared journal tests' record).
fn new_run(id: &str) -> RunRecord {
    super::super::tests::new_run(id, "e", true)
}

fn failed(run: &str, step: &str, at: i64) -> RunEvent {
    RunEvent::StepFailed {
        run: run.into(),
        step: step.into(),
        at,
        error: format!("{step} broke"),
    }
}

/// The runner's one write of a run of `store` steps: `running`, each step's start and end, the
/// final status.
fn store_end(id: &str, steps: &[&str], end: RunStatus, error: Option<&str>) -> Vec<RunEvent> {
    let mut out = vec![status(id, RunStatus::Running, 1_100, None)];
    for (i, s) in steps.iter().enumerate() {
        let at = 1_110 + 10 * i as i64;
        out.push(started(id, s, at));
        if end == RunStatus::Failed && i + 1 == steps.len() {
            out.push(failed(id, s, at + 5));
        } else {
            out.push(succeeded(id, s, at + 5));
        }
    }
    out.push(status(id, end, 1_200, error));
    out
}

#[test]
fn fresh_end_only_for_distinct_steps_then_a_final_status() {
    let head = fresh_end(&fold(store_end(
        "r",
        &["a", "b"],
        RunStatus::Succeeded,
        None,
    )))
    .unwrap();
    // id, started, has_error, status, at, error, steps, the field count, then the fields.
    assert_eq!(head[..7], ["r", "1100", "0", "succeeded", "1200", "", "2"]);
    assert_eq!(head[7], (head.len() - 8).to_string());
    let fields: HashMap<_, _> = head[8..]
        .chunks(2)
        .map(|p| (p[0].as_str(), p[1].as_str()))
        .collect();
    assert_eq!(fields["o:a"], "1");
    assert_eq!(fields["o:b"], "2");
    assert_eq!(fields["nsteps"], "2");
    assert_eq!(fields["k:b"], "store");
    assert!(!fields.contains_key("error"));
    let failed = fold(store_end("r", &["a"], RunStatus::Failed, Some("a broke")));
    let head = fresh_end(&failed).unwrap();
    assert_eq!(head[2], "1");
    assert!(head.iter().any(|f| f == "e:a"));
    // Not that shape: a step twice, a step without its start, a status that is not final,
    // another run's event, a waiting step.
    let mut twice = store_end("r", &["a"], RunStatus::Succeeded, None);
    twice.splice(3..3, [started("r", "a", 1_130), succeeded("r", "a", 1_140)]);
    let mut unstarted = store_end("r", &["a"], RunStatus::Succeeded, None);
    unstarted.remove(1);
    let mut waiting = store_end("r", &["a"], RunStatus::Waiting, None);
    waiting.pop();
    waiting.push(status("r", RunStatus::Waiting, 1_200, None));
    let mut other = store_end("r", &["a"], RunStatus::Succeeded, None);
    other.splice(3..3, [started("x", "b", 1_130), succeeded("x", "b", 1_140)]);
    let mut delayed = store_end("r", &["a"], RunStatus::Succeeded, None);
    delayed.insert(
        3,
        RunEvent::StepWaiting {
            run: "r".into(),
            step: "w".into(),
            kind: "http".into(),
            due: 9_000,
        },
    );
    for events in [twice, unstarted, waiting, other, delayed] {
        assert!(fresh_end(&fold(events.clone())).is_none(), "{events:?}");
    }
}

/// `INFO commandstats` calls of `name`.
fn calls(c: &mut ::redis::Connection, name: &str) -> i64 {
    let info: String = ::redis::cmd("INFO").arg("commandstats").query(c).unwrap();
    let prefix = format!("cmdstat_{name}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn hash(c: &mut ::redis::Connection, id: &str) -> HashMap<String, String> {
    ::redis::cmd("HGETALL")
        .arg(format!("fs:{{j}}:run:{id}"))
        .query(c)
        .unwrap()
}

/// Each case: events recorded one by one first (the run's journal before its last write),
/// then the last write (`record_all`); the Redis hash must equal the hash the same events leave
/// recorded one by one (main's ops, field for field), and the record the in-memory journal's.
#[test]
fn fresh_end_leaves_the_hash_the_events_leave_one_by_one() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let (folded, serial) = (
        RedisBackend::open(&redis.url(10), 30).unwrap(),
        RedisBackend::open(&redis.url(11), 30).unwrap(),
    );
    let mut raw = ::redis::Client::open(redis.url(10))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut raw_serial = ::redis::Client::open(redis.url(11))
        .unwrap()
        .get_connection()
        .unwrap();
    let store = |id: &str| store_end(id, &["keep", "seen"], RunStatus::Succeeded, None);
    // (run, events before, the last write, whether the fast path applies: no step yet).
    let cases: Vec<(&str, Vec<RunEvent>, Vec<RunEvent>, bool)> = vec![
        ("fresh", vec![], store("fresh"), true),
        (
            "broke",
            vec![],
            store_end(
                "broke",
                &["keep", "seen"],
                RunStatus::Failed,
                Some("seen broke"),
            ),
            true,
        ),
        // An error left by a non-final status is removed by the final one; an earlier start
        // time is kept.
        (
            "retried",
            vec![status("retried", RunStatus::Running, 500, Some("retrying"))],
            store("retried"),
            true,
        ),
        // Taken over after its first step: the steps keep their order, the fallback applies.
        (
            "resumed",
            vec![
                status("resumed", RunStatus::Running, 900, None),
                started("resumed", "keep", 950),
                succeeded("resumed", "keep", 960),
            ],
            vec![
                started("resumed", "seen", 1_110),
                succeeded("resumed", "seen", 1_115),
                status("resumed", RunStatus::Succeeded, 1_200, None),
            ],
            false,
        ),
        // The step that was in flight runs again after a takeover: same step, again.
        (
            "again",
            vec![started("again", "keep", 950), failed("again", "keep", 960)],
            store("again"),
            false,
        ),
    ];
    let mem = MemoryBackend::new();
    block_on(async {
        for (id, before, last, fast) in cases {
            for b in [&folded, &serial] {
                b.create_run(new_run(id)).await.unwrap();
            }
            mem.create_run(new_run(id)).await.unwrap();
            for e in before.iter().chain(&last) {
                mem.record(e.clone()).await.unwrap();
                serial.record(e.clone()).await.unwrap();
            }
            for e in before {
                folded.record(e).await.unwrap();
            }
            assert!(fresh_end(&fold(last.clone())).is_some(), "{id}: an F write");
            let hincrby = calls(&mut raw, "hincrby");
            folded.record_all(last).await.unwrap();
            let fell_back = calls(&mut raw, "hincrby") > hincrby;
            assert_eq!(
                fell_back, !fast,
                "{id}: the fast path applies iff no step yet"
            );
            assert_eq!(
                hash(&mut raw, id),
                hash(&mut raw_serial, id),
                "{id}: the same hash field for field"
            );
            assert_eq!(
                folded.get_run(id).await.unwrap(),
                mem.get_run(id).await.unwrap(),
                "{id}"
            );
        }
        // Finished: acknowledged, in the retention sets.
        let leased: Vec<String> = ::redis::cmd("ZRANGE")
            .arg("fs:{j}:leases")
            .arg(0)
            .arg(-1)
            .query(&mut raw)
            .unwrap();
        assert!(leased.is_empty(), "{leased:?}");
        let done: i64 = ::redis::cmd("ZCARD")
            .arg("fs:{j}:done:e")
            .query(&mut raw)
            .unwrap();
        assert_eq!(done, 5);
        // The end of a run that is not there: not found, and nothing is created.
        assert_eq!(
            folded.record_all(store("gone")).await,
            Err(StateError::NotFound)
        );
        assert!(hash(&mut raw, "gone").is_empty());
    });
}

/// The writer sends `EVALSHA` once Redis holds its script, and loads it again (an `EVAL` with
/// the text) when Redis lost it: nothing is refused meanwhile.
#[test]
fn the_writer_loads_its_script_again_after_a_flush() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let b = RedisBackend::open(&redis.url(12), 30).unwrap();
    let mut raw = ::redis::Client::open(redis.url(12))
        .unwrap()
        .get_connection()
        .unwrap();
    block_on(async {
        b.create_run(new_run("one")).await.unwrap();
        let (eval, evalsha) = (calls(&mut raw, "eval"), calls(&mut raw, "evalsha"));
        assert_eq!(eval, 1, "the first call carries the text");
        b.create_run(new_run("two")).await.unwrap();
        assert_eq!(calls(&mut raw, "eval"), eval, "then only its hash");
        assert_eq!(calls(&mut raw, "evalsha"), evalsha + 1);
        ::redis::cmd("SCRIPT").arg("FLUSH").exec(&mut raw).unwrap();
        b.create_run(new_run("three")).await.unwrap();
        assert_eq!(calls(&mut raw, "eval"), eval + 1, "loaded again");
        b.record_all(store_end("three", &["keep"], RunStatus::Succeeded, None))
            .await
            .unwrap();
        for id in ["one", "two"] {
            assert_eq!(b.get_run(id).await.unwrap().status, RunStatus::Queued);
        }
        assert_eq!(
            b.get_run("three").await.unwrap().status,
            RunStatus::Succeeded
        );
    });
}

/// `create_request_run` writes the run's `rec` from the `Value` (`record::record_text`); the
/// hash it leaves in Redis is byte for byte the one `create_run` of `journal_data(data)` left
/// (the previous path), for generated request data (credential headers, every number and
/// string kind) with and without an owner, and still after the run's end.
#[test]
fn a_request_run_leaves_the_hash_create_run_left() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let (old, new) = (
        RedisBackend::open(&redis.url(13), 30).unwrap(),
        RedisBackend::open(&redis.url(14), 30).unwrap(),
    );
    let mut raw_old = ::redis::Client::open(redis.url(13))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut raw_new = ::redis::Client::open(redis.url(14))
        .unwrap()
        .get_connection()
        .unwrap();
    let mut g = Gen(0x2545_f491_4f6c_dd1d);
    let fixed = crate::Value::from(serde_json::json!({
        "ref": "A-1",
        "__headers": {"authorization": "Bearer s3cret", "cookie": "c", "x_other": "kept"},
        "f": 0.30000000000000004,
        "s": "\u{0}\"\\/\u{2028}😀",
    }));
    block_on(async {
        for i in 0..400 {
            let data = if i == 0 { fixed.clone() } else { g.data() };
            let id = format!("r{i}");
            let mut run = new_run(&id);
            run.resumable = i % 3 != 0;
            if i % 2 == 0 {
                run.owner = None;
            }
            let mut was = run.clone();
            was.data = record::journal_data(&data);
            old.create_run(was).await.unwrap();
            run.data = serde_json::json!("not used");
            new.create_request_run(run, &data).await.unwrap();
            let h = hash(&mut raw_new, &id);
            assert_eq!(hash(&mut raw_old, &id), h, "{id}: {data:?}");
            assert!(!h["rec"].contains("s3cret"), "{id}");
            if i < 20 {
                let end = store_end(&id, &["keep", "seen"], RunStatus::Succeeded, None);
                old.record_all(end.clone()).await.unwrap();
                new.record_all(end).await.unwrap();
                assert_eq!(hash(&mut raw_old, &id), hash(&mut raw_new, &id), "{id}");
            }
        }
    });
}
