//! The `F` op of the Redis journal writer (a fresh run's end in one `HSET`): the hash it leaves
//! is the one the same events leave applied one by one (the format every version of the
//! backend reads and writes, docs/redis.md), on its fast path and on its fallback.

use super::super::memory::MemoryBackend;
use super::super::tests::{block_on, started, status, succeeded, Gen, RedisChild};
use super::super::{record, Backend, RunEvent, RunFilter, RunRecord, RunStatus, StateError};
use super::{fields, fold, fresh_end, fresh_end_args, write_rec, Args, RedisBackend};
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
        // Finished: acknowledged, each in its endpoint's history once.
        let leased: Vec<String> = ::redis::cmd("ZRANGE")
            .arg("fs:{j}:leases")
            .arg(0)
            .arg(-1)
            .query(&mut raw)
            .unwrap();
        assert!(leased.is_empty(), "{leased:?}");
        let filed: i64 = ::redis::cmd("XLEN")
            .arg("fs:{j}:log:e")
            .query(&mut raw)
            .unwrap();
        assert_eq!(filed, 5);
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

/// `create_request_run` writes the run's `rec` from the `Value`
/// (`record::write_accepted_text`); the hash it leaves in Redis is byte for byte the one
/// `create_run` of `journal_data(data)` left (the previous path), for generated request data (credential headers, every number and
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

/// The text of each argument.
fn texts(a: &Args) -> Vec<String> {
    a.iter()
        .map(|b| String::from_utf8(b.to_vec()).unwrap())
        .collect()
}

/// A xorshift64* step.
fn next(x: &mut u64) -> u64 {
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// An event of run `r` (or, rarely, `x`) on steps `a`, `b`, `c` or `succeeded` (a step named as
/// a status).
fn any_event(x: &mut u64, at: i64) -> RunEvent {
    let run = if next(x) % 16 == 0 { "x" } else { "r" };
    let step = ["a", "b", "c", "succeeded"][(next(x) % 4) as usize];
    let statuses = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Waiting,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Interrupted,
    ];
    let error = match next(x) % 4 {
        0 => Some("went \"wrong\"\n"),
        1 => Some(""),
        _ => None,
    };
    match next(x) % 8 {
        0 => status(run, statuses[(next(x) % 6) as usize], at, error),
        1 => status(run, RunStatus::Running, at, None),
        2 | 3 => started(run, step, at),
        4 => succeeded(run, step, at),
        5 => RunEvent::StepSucceeded {
            run: run.into(),
            step: step.into(),
            at,
            checkpoint: super::super::Checkpoint {
                set: vec![],
                branch: Some(next(x) % 2 == 0),
            },
        },
        6 => failed(run, step, at),
        _ => RunEvent::StepWaiting {
            run: run.into(),
            step: step.into(),
            kind: "http".into(),
            due: at + 1_000,
        },
    }
}

/// The `F` arguments written straight from the events (`fresh_end_args`, what the writer
/// sends) are exactly `fresh_end` of their `fold` (the previous encoding), argument for
/// argument, and for exactly the same event lists: the runner's shapes (with and without
/// `running`, failed, interleaved steps) and random lists.
#[test]
fn fresh_end_args_are_fresh_end_of_fold() {
    let mut lists = vec![
        store_end("r", &["keep", "seen"], RunStatus::Succeeded, None),
        store_end(
            "r",
            &["keep", "seen"],
            RunStatus::Failed,
            Some("seen broke"),
        ),
        store_end("r", &[], RunStatus::Succeeded, None),
        vec![status("r", RunStatus::Interrupted, 5, Some(""))],
        vec![
            started("r", "a", 1),
            started("r", "b", 2),
            succeeded("r", "b", 3),
            status("r", RunStatus::Running, 4, None),
            failed("r", "a", 5),
            status("r", RunStatus::Failed, 6, Some("a broke")),
        ],
    ];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200_000 {
        let n = 1 + (next(&mut x) % 8) as usize;
        let mut events: Vec<RunEvent> = (0..n).map(|i| any_event(&mut x, 100 + i as i64)).collect();
        if next(&mut x) % 2 == 0 {
            let end = [RunStatus::Succeeded, RunStatus::Failed][(next(&mut x) % 2) as usize];
            events.push(status("r", end, 900, None));
        }
        lists.push(events);
    }
    let mut fresh = 0;
    for events in lists {
        let direct = fresh_end_args(&events).map(|a| texts(&a));
        assert_eq!(direct, fresh_end(&fold(events.clone())), "{events:?}");
        fresh += usize::from(direct.is_some());
    }
    assert!(fresh > 2_000, "{fresh} lists had the F shape");
}

/// The hash fields of a record as the backend wrote them before they went into one buffer
/// (`fields` of the previous version, verbatim): the reference of the test below.
fn fields_before(run: &RunRecord) -> Vec<(String, String)> {
    let rec = if run.steps.is_empty() {
        run.to_text()
    } else {
        let mut base = run.clone();
        base.steps.clear();
        base.to_text()
    };
    let mut f = vec![
        ("rec".to_string(), rec),
        ("endpoint".into(), run.endpoint.clone()),
        ("status".into(), run.status.as_str().into()),
        ("attempt".into(), run.attempt.to_string()),
        ("created".into(), run.created.to_string()),
        (
            "resumable".into(),
            if run.resumable { "1" } else { "0" }.into(),
        ),
        ("nsteps".into(), run.steps.len().to_string()),
    ];
    let mut opt = |name: &str, v: Option<String>| {
        if let Some(v) = v {
            f.push((name.to_string(), v));
        }
    };
    opt("started", run.started.map(|v| v.to_string()));
    opt("finished", run.finished.map(|v| v.to_string()));
    opt("error", run.error.clone());
    opt("owner", run.owner.clone());
    for (i, s) in run.steps.iter().enumerate() {
        let id = &s.id;
        f.push((format!("o:{id}"), (i + 1).to_string()));
        f.push((format!("k:{id}"), s.kind.clone()));
        f.push((format!("t:{id}"), s.status.as_str().into()));
        let mut opt = |p: &str, v: Option<String>| {
            if let Some(v) = v {
                f.push((format!("{p}:{id}"), v));
            }
        };
        opt("b", s.started.map(|v| v.to_string()));
        opt("f", s.finished.map(|v| v.to_string()));
        opt("d", s.due.map(|v| v.to_string()));
        opt("e", s.error.clone());
        opt("c", s.checkpoint.as_ref().map(|c| c.to_text()));
    }
    f
}

/// A run's hash fields written into one argument buffer (a creation's, a retry's) are the
/// fields and values the previous encoding wrote, in the same order, for records with and
/// without owner, times, error and steps in every state; `field_count` counts them.
#[test]
fn fields_in_one_buffer_are_the_fields_before() {
    let mut x = 0x6a09_e667_f3bc_c909u64;
    for i in 0..3_000 {
        let mut run = new_run(&format!("r{i}"));
        run.data = serde_json::json!({"ref": format!("A-{i}"), "s": "\u{1}\"é"});
        if next(&mut x) % 2 == 0 {
            run.owner = None;
        }
        run.resumable = next(&mut x) % 3 != 0;
        run.attempt = (next(&mut x) % 4) as u32;
        for k in 0..(next(&mut x) % 8) {
            run.apply(&any_event(&mut x, 100 + k as i64));
        }
        let mut a = Args::default();
        fields(&run, &mut a, |a| write_rec(&run, a));
        let pairs: Vec<(String, String)> = texts(&a)
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        assert_eq!(pairs, fields_before(&run), "{run:?}");
        assert_eq!(super::field_count(&run), pairs.len());
    }
}

/// A request's run journaled finished with its steps (the runner's leading `store` /
/// `condition` steps, src/listener/workflow.rs `run_prefix`: one write) is one string — its
/// record's text — and one entry of its endpoint's history, never in the leases; it reads back,
/// and lists, as the same run created and then ended by one write (`store_end`) does, with and
/// without an owner, for one to three steps and generated request data.
#[test]
fn a_run_journaled_finished_leaves_what_its_creation_and_end_leave() {
    use super::super::{Checkpoint, StepRecord, StepStatus};
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let (old, new) = (
        RedisBackend::open(&redis.url(11), 30).unwrap(),
        RedisBackend::open(&redis.url(12), 30).unwrap(),
    );
    let raw = |db| {
        ::redis::Client::open(redis.url(db))
            .unwrap()
            .get_connection()
            .unwrap()
    };
    let (mut raw_old, mut raw_new) = (raw(11), raw(12));
    let zscore = |c: &mut ::redis::Connection, key: &str, id: &str| -> Option<String> {
        ::redis::cmd("ZSCORE")
            .arg(format!("fs:{{j}}:{key}"))
            .arg(id)
            .query(c)
            .unwrap()
    };
    // The run ids of an endpoint's history, oldest first.
    let history = |c: &mut ::redis::Connection| log(c, "e").concat();
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    block_on(async {
        for i in 0..120 {
            let data = g.data();
            let id = format!("f{i}");
            let names: Vec<String> = (0..1 + i % 3).map(|k| format!("s{k}")).collect();
            let steps: Vec<&str> = names.iter().map(String::as_str).collect();
            let mut run = new_run(&id);
            if i % 2 == 0 {
                run.owner = None;
            }
            old.create_request_run(run.clone(), &data).await.unwrap();
            old.record_all(store_end(&id, &steps, RunStatus::Succeeded, None))
                .await
                .unwrap();
            let mut done = run;
            done.status = RunStatus::Succeeded;
            done.started = Some(1_100);
            done.finished = Some(1_200);
            done.steps = steps
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let at = 1_110 + 10 * k as i64;
                    StepRecord {
                        id: s.to_string(),
                        kind: "store".into(),
                        status: StepStatus::Succeeded,
                        started: Some(at),
                        finished: Some(at + 5),
                        due: None,
                        error: None,
                        checkpoint: Some(Checkpoint {
                            set: vec![(s.to_string(), serde_json::json!(at + 5))],
                            branch: None,
                        }),
                    }
                })
                .collect();
            new.create_request_run(done.clone(), &data).await.unwrap();
            let text: String = ::redis::cmd("GET")
                .arg(format!("fs:{{j}}:run:{id}"))
                .query(&mut raw_new)
                .unwrap();
            assert_eq!(
                text,
                super::super::record::record_text(&done, &data),
                "{id}"
            );
            for key in ["leases", "delays"] {
                assert_eq!(zscore(&mut raw_new, key, &id), None, "{id} in {key}");
            }
            assert_eq!(
                history(&mut raw_new).last(),
                Some(&id),
                "{id}: filed once, last"
            );
            let read = new.get_run(&id).await.unwrap();
            assert_eq!(read, old.get_run(&id).await.unwrap(), "{id}");
            assert_eq!(read.steps, done.steps, "{id}");
        }
        assert_eq!(history(&mut raw_new), history(&mut raw_old));
        let filter = RunFilter {
            limit: 200,
            ..RunFilter::default()
        };
        let listed = new.list_runs(filter.clone()).await.unwrap().runs;
        assert_eq!(listed.len(), 120);
        assert_eq!(listed, old.list_runs(filter).await.unwrap().runs);
    });
}

/// A plain connection to database `db` of `redis`.
fn connect(redis: &RedisChild, db: u8) -> ::redis::Connection {
    ::redis::Client::open(redis.url(db))
        .unwrap()
        .get_connection()
        .unwrap()
}

/// `TYPE` of run `id`'s key.
fn kind(c: &mut ::redis::Connection, id: &str) -> String {
    ::redis::cmd("TYPE")
        .arg(format!("fs:{{j}}:run:{id}"))
        .query(c)
        .unwrap()
}

/// The number of run ids named by the entries of endpoint `ep`'s history stream; its count
/// (`count:NAME`, retention by count) must be the number of those runs that exist.
fn filed(c: &mut ::redis::Connection, ep: &str) -> i64 {
    let (mut ids, mut held) = (0, 0);
    for entry in log(c, ep) {
        for id in entry {
            ids += 1;
            let there: bool = ::redis::cmd("EXISTS")
                .arg(format!("fs:{{j}}:run:{id}"))
                .query(c)
                .unwrap();
            held += i64::from(there);
        }
    }
    let count: Option<i64> = ::redis::cmd("GET")
        .arg(format!("fs:{{j}}:count:{ep}"))
        .query(c)
        .unwrap();
    assert_eq!(
        count.unwrap_or(0),
        held,
        "count:{ep} against the runs it holds"
    );
    ids
}

/// The ids of every run a listing of all endpoints gives, page after page of `limit` runs.
async fn listed(b: &RedisBackend, limit: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let page = b
            .list_runs(RunFilter {
                limit,
                before,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        out.extend(page.runs.into_iter().map(|r| r.id));
        match page.next {
            Some(n) => before = Some(n),
            None => return out,
        }
    }
}

/// The entries of endpoint `ep`'s history stream, oldest first: each one's run ids (fields
/// `r`), in order.
fn log(c: &mut ::redis::Connection, ep: &str) -> Vec<Vec<String>> {
    let entries: Vec<(String, Vec<(String, String)>)> = ::redis::cmd("XRANGE")
        .arg(format!("fs:{{j}}:log:{ep}"))
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap();
    entries
        .into_iter()
        .map(|(_, f)| f.into_iter().map(|(_, id)| id).collect())
        .collect()
}

fn ids(runs: &[super::super::RunSummary]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

/// A journal left by an earlier version (run ids in the sorted sets `all` / `ep:NAME` by a
/// `seq` number, `finished` / `done:NAME` for retention) is moved to the history streams by
/// the first backend that lists, purges or recovers: every run is listed in its old order,
/// before the runs of this version, by endpoint too, and the old keys are gone.
#[test]
fn the_journal_of_an_earlier_version_is_moved_to_the_history_streams() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 13);
    let q = |c: &mut ::redis::Connection, args: &[&str]| {
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.exec(c).unwrap();
    };
    block_on(async {
        // The hashes as this version writes them (the fields are the same), then the earlier
        // layout's keys by hand.
        let writer = RedisBackend::open(&redis.url(13), 30).unwrap();
        for (id, ep) in [("o1", "a"), ("o2", "b"), ("o3", "a"), ("o4", "b")] {
            writer
                .create_run(super::super::tests::new_run(id, ep, true))
                .await
                .unwrap();
        }
        for id in ["o1", "o2", "o4"] {
            writer
                .record(status(id, RunStatus::Succeeded, 2_000, None))
                .await
                .unwrap();
        }
        drop(writer);
        q(&mut raw, &["DEL", "fs:{j}:log:a", "fs:{j}:log:b"]);
        for (seq, id, ep) in [
            ("1", "o1", "a"),
            ("2", "o2", "b"),
            ("3", "o3", "a"),
            ("4", "o4", "b"),
        ] {
            q(
                &mut raw,
                &["HSET", &format!("fs:{{j}}:run:{id}"), "seq", seq],
            );
            q(&mut raw, &["ZADD", "fs:{j}:all", seq, id]);
            q(&mut raw, &["ZADD", &format!("fs:{{j}}:ep:{ep}"), seq, id]);
            if id != "o3" {
                q(&mut raw, &["ZADD", "fs:{j}:finished", "2000", id]);
                q(&mut raw, &["ZADD", &format!("fs:{{j}}:done:{ep}"), seq, id]);
            }
        }
        q(&mut raw, &["SET", "fs:{j}:seq", "4"]);

        let b = RedisBackend::open(&redis.url(13), 30).unwrap();
        let all = b.list_runs(RunFilter::default()).await.unwrap().runs;
        assert_eq!(ids(&all), ["o4", "o3", "o2", "o1"]);
        assert_eq!(all[1].status, RunStatus::Queued);
        let a = b
            .list_runs(RunFilter {
                endpoint: Some("a".into()),
                ..RunFilter::default()
            })
            .await
            .unwrap()
            .runs;
        assert_eq!(ids(&a), ["o3", "o1"]);
        for key in ["all", "ep:a", "ep:b", "finished", "done:a", "done:b", "seq"] {
            let n: i64 = ::redis::cmd("EXISTS")
                .arg(format!("fs:{{j}}:{key}"))
                .query(&mut raw)
                .unwrap();
            assert_eq!(n, 0, "{key} is gone");
        }
        // This version's runs come after them; retention works on the moved runs.
        b.create_run(super::super::tests::new_run("n1", "a", true))
            .await
            .unwrap();
        let all = b.list_runs(RunFilter::default()).await.unwrap().runs;
        assert_eq!(ids(&all), ["n1", "o4", "o3", "o2", "o1"]);
        let purged = b
            .purge(
                super::super::Retention {
                    days: 1,
                    max_per_endpoint: 100,
                },
                2_000 + 86_400_000 + 1,
            )
            .await
            .unwrap();
        assert_eq!(purged, 3, "the finished old runs");
        let all = b.list_runs(RunFilter::default()).await.unwrap().runs;
        assert_eq!(ids(&all), ["n1", "o3"]);
    });
}

/// A run journaled finished (a string) that failed is retried in place: it becomes a queued
/// hash run with its history entry kept (listed once, where it was).
#[test]
fn a_run_journaled_finished_is_retried_in_place() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 14);
    let b = RedisBackend::open(&redis.url(14), 30).unwrap();
    block_on(async {
        let mut run = new_run("f");
        run.status = RunStatus::Failed;
        run.started = Some(1_100);
        run.finished = Some(1_200);
        run.error = Some("step s broke".into());
        b.create_run(run.clone()).await.unwrap();
        b.create_run(new_run("later")).await.unwrap();
        assert_eq!(kind(&mut raw, "f"), "string");
        assert_eq!(b.get_run("f").await.unwrap(), run);
        let again = b
            .retry_run("f", super::super::RetryFrom::Start)
            .await
            .unwrap();
        assert_eq!(again.status, RunStatus::Queued);
        assert_eq!(b.get_run("f").await.unwrap(), again);
        assert_eq!(kind(&mut raw, "f"), "hash");
        assert_eq!(filed(&mut raw, "e"), 2);
        let all = b.list_runs(RunFilter::default()).await.unwrap().runs;
        assert_eq!(ids(&all), ["later", "f"]);
        assert_eq!(all[1].status, RunStatus::Queued);
        // A second retry finds it queued: refused.
        assert!(matches!(
            b.retry_run("f", super::super::RetryFrom::Start).await,
            Err(StateError::Conflict(_))
        ));
    });
}

/// Pages of a listing across endpoints (cursors naming an endpoint with `:` in its name
/// too) list every run once, in the order of one long page, hash runs and runs journaled
/// finished alike; an entry whose run is gone is not listed, and the purge deletes it.
#[test]
fn listing_pages_through_every_endpoint_in_one_order() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 15);
    let b = RedisBackend::open(&redis.url(15), 30).unwrap();
    block_on(async {
        let endpoints = ["a", "b:c", "z"];
        // An entry whose run is gone (the oldest): a Redis that stopped between a batch's entry
        // and its records (the count comes after both).
        ::redis::cmd("XADD")
            .arg("fs:{j}:log:a")
            .arg("*")
            .arg("r")
            .arg("ghost")
            .exec(&mut raw)
            .unwrap();
        let mut writes = Vec::new();
        for i in 0..40 {
            let mut run = super::super::tests::new_run(&format!("r{i:02}"), endpoints[i % 3], true);
            if i % 2 == 0 {
                run.status = RunStatus::Succeeded;
                run.finished = Some(1_500);
            }
            // Queued together: several runs share an entry id's millisecond.
            writes.push(b.create_run(run));
        }
        for w in writes {
            w.await.unwrap();
        }
        let whole = b
            .list_runs(RunFilter {
                limit: 100,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(whole.runs.len(), 40);
        assert_eq!(whole.next, None);
        let paged = listed(&b, 7).await;
        assert_eq!(paged, ids(&whole.runs));
        let mut sorted = paged.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 40);
        // Per endpoint, with a cursor naming `b:c`.
        let first = b
            .list_runs(RunFilter {
                endpoint: Some("b:c".into()),
                limit: 5,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let rest = b
            .list_runs(RunFilter {
                endpoint: Some("b:c".into()),
                limit: 100,
                before: first.next.clone(),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(first.runs.len() + rest.runs.len(), 13);
        assert!(first
            .runs
            .iter()
            .chain(&rest.runs)
            .all(|r| r.endpoint == "b:c"));
        assert_eq!(
            b.list_runs(RunFilter {
                before: Some("12".into()),
                ..RunFilter::default()
            })
            .await,
            Err(StateError::Conflict("bad cursor".into()))
        );
        // The ghost's entry goes with the next purge; nothing else does.
        assert_eq!(filed(&mut raw, "a"), 15);
        let purged = b
            .purge(
                super::super::Retention {
                    days: 7,
                    max_per_endpoint: 100,
                },
                2_000,
            )
            .await
            .unwrap();
        assert_eq!(purged, 0);
        assert_eq!(filed(&mut raw, "a"), 14);
    });
}

/// A run journaled finished that Redis refuses (full: `maxmemory` with `noeviction`) is an
/// error for its caller (never acknowledged), leaves no run, and the writer carries on once
/// Redis takes writes again.
#[test]
fn a_run_journaled_finished_that_redis_refuses_is_an_error() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 9);
    let b = RedisBackend::open(&redis.url(9), 30).unwrap();
    let finished = |id: &str| {
        let mut run = new_run(id);
        run.status = RunStatus::Succeeded;
        run.finished = Some(1_200);
        run
    };
    let config = |c: &mut ::redis::Connection, v: &str| {
        ::redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(v)
            .exec(c)
            .unwrap();
    };
    block_on(async {
        config(&mut raw, "1");
        match b.create_run(finished("full")).await {
            Err(StateError::Unavailable(m)) => assert!(m.contains("OOM"), "{m}"),
            other => panic!("expected an error, got {other:?}"),
        }
        config(&mut raw, "0");
        assert_eq!(kind(&mut raw, "full"), "none");
        assert_eq!(filed(&mut raw, "e"), 0);
        b.create_run(finished("ok")).await.unwrap();
        assert_eq!(b.get_run("ok").await.unwrap(), finished("ok"));
        assert_eq!(filed(&mut raw, "e"), 1);
    });
}

/// In a batch of runs journaled finished for several endpoints, a command Redis refuses for one
/// endpoint (its entry, or its count) fails that endpoint's runs only; so does a purge.
#[test]
fn a_batch_fails_the_runs_of_the_endpoint_redis_refuses_only() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 6);
    let b = RedisBackend::open(&redis.url(6), 30).unwrap();
    // Keys of the wrong type: `bad`'s stream, `uncounted`'s count.
    ::redis::cmd("SET")
        .arg("fs:{j}:log:bad")
        .arg("x")
        .exec(&mut raw)
        .unwrap();
    ::redis::cmd("HSET")
        .arg("fs:{j}:count:uncounted")
        .arg("x")
        .arg("y")
        .exec(&mut raw)
        .unwrap();
    ::redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(300)
        .arg("WRITE")
        .exec(&mut raw)
        .unwrap();
    let endpoints = ["good", "bad", "uncounted"];
    let writes: Vec<_> = (0..30)
        .map(|i| {
            let ep = endpoints[i % 3];
            let mut run = super::super::tests::new_run(&format!("{ep}{i:02}"), ep, true);
            run.status = RunStatus::Succeeded;
            run.finished = Some(1_200);
            b.create_run(run)
        })
        .collect();
    block_on(async {
        let answers = futures_util::future::join_all(writes).await;
        for (i, a) in answers.into_iter().enumerate() {
            match (endpoints[i % 3], a) {
                ("good", Ok(())) => {}
                ("bad" | "uncounted", Err(StateError::Unavailable(m))) => {
                    assert!(m.contains("WRONGTYPE"), "{i}: {m}")
                }
                (ep, a) => panic!("{ep} run {i}: {a:?}"),
            }
        }
        assert_eq!(filed(&mut raw, "good"), 10);
        let listed = b
            .list_runs(RunFilter {
                endpoint: Some("good".into()),
                limit: 100,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(listed.runs.len(), 10);
        // The purge refused for those endpoints still purges the others, then answers the error.
        let retention = super::super::Retention {
            days: 0,
            max_per_endpoint: 100,
        };
        match b.purge(retention, 2_000).await {
            Err(StateError::Unavailable(m)) => {
                assert!(m.contains("endpoint") && m.contains("WRONGTYPE"), "{m}")
            }
            other => panic!("expected the refused endpoint's error, got {other:?}"),
        }
        assert_eq!(filed(&mut raw, "good"), 0);
    });
}

/// Runs journaled finished together share one history entry per endpoint (`XADD … r ID1 r ID2
/// …`), counted run by run in `count:NAME`: listings page through such an entry (cursors in the
/// middle of it), retention by age deletes the runs of an entry and keeps the entry while one
/// of its runs is unfinished (a retry), and retention by count counts only the runs the history
/// still holds, keeping exactly the newest `max` (older runs are not purged in place of the
/// runs that entry lost).
#[test]
fn runs_journaled_finished_together_share_an_entry() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 8);
    let b = RedisBackend::open(&redis.url(8), 30).unwrap();
    // The number of runs each entry of the history names, oldest first.
    let entries =
        |c: &mut ::redis::Connection| -> Vec<usize> { log(c, "e").iter().map(Vec::len).collect() };
    // 30 runs journaled while Redis holds writes back: they queue behind the writer's first
    // batches and go in one.
    let together = |raw: &mut ::redis::Connection, prefix: &str| {
        ::redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(300)
            .arg("WRITE")
            .exec(raw)
            .unwrap();
        let runs: Vec<_> = (0..30)
            .map(|i| {
                let mut run = new_run(&format!("{prefix}{i:02}"));
                run.status = RunStatus::Succeeded;
                if i == 15 {
                    run.status = RunStatus::Failed;
                    run.error = Some("step s broke".into());
                }
                run.started = Some(1_100);
                run.finished = Some(1_200);
                b.create_run(run)
            })
            .collect();
        runs
    };
    block_on(async {
        // Ten older runs, an entry each, finished after the age cutoff below.
        for i in 0..10 {
            let mut run = new_run(&format!("a{i}"));
            run.status = RunStatus::Succeeded;
            run.finished = Some(1_600);
            b.create_run(run).await.unwrap();
        }
        for r in futures_util::future::join_all(together(&mut raw, "g")).await {
            r.unwrap();
        }
        assert_eq!(filed(&mut raw, "e"), 40);
        let shared = entries(&mut raw);
        assert!(
            shared.iter().any(|&n| n >= 20),
            "one entry for most: {shared:?}"
        );
        let whole = listed(&b, 100).await;
        assert_eq!(listed(&b, 4).await, whole);
        let mut sorted = whole.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 40);
        // Within one entry, the greatest run id first (the newest of one process).
        assert_eq!(whole[0], "g29");

        // By age: every run of the batch but the retried one goes; its entry stays, the other
        // entries of the batch (if any) do not; the older runs finished after the cutoff stay.
        b.retry_run("g15", super::super::RetryFrom::Start)
            .await
            .unwrap();
        let retention = |days, max_per_endpoint| super::super::Retention {
            days,
            max_per_endpoint,
        };
        assert_eq!(b.purge(retention(0, 100), 1_500).await.unwrap(), 29);
        let older: Vec<String> = (0..10).rev().map(|i| format!("a{i}")).collect();
        let mut left = vec!["g15".to_string()];
        left.extend(older.iter().cloned());
        assert_eq!(listed(&b, 100).await, left);
        let sizes = entries(&mut raw);
        assert_eq!(sizes.len(), 11, "{sizes:?}");
        assert_eq!(filed(&mut raw, "e"), 10 + sizes[10] as i64);

        // By count: 30 more. The runs the retried one's entry no longer holds are not counted:
        // with 38 kept, only the two oldest go (counting them would take all ten older runs).
        for r in futures_util::future::join_all(together(&mut raw, "h")).await {
            r.unwrap();
        }
        let before = listed(&b, 100).await;
        assert_eq!(before.len(), 41);
        assert_eq!(b.purge(retention(7, 38), 2_000).await.unwrap(), 2);
        assert_eq!(listed(&b, 100).await, before[..39]);
        filed(&mut raw, "e");
        // 5 kept — the newest — with the queued retry.
        assert_eq!(b.purge(retention(7, 5), 2_000).await.unwrap(), 33);
        let mut kept: Vec<String> = before[..5].to_vec();
        kept.push("g15".into());
        assert_eq!(listed(&b, 100).await, kept);
        filed(&mut raw, "e");
        // Nothing more to purge: the count holds the runs the entries still name.
        assert_eq!(b.purge(retention(7, 5), 2_000).await.unwrap(), 0);
        assert_eq!(listed(&b, 100).await, kept);
    });
}

/// A history written before streams were counted (entries of one run each, no `count:NAME`)
/// gets its count from the stream's length on a process's first listing or purge, and
/// retention by count holds from there.
#[test]
fn a_history_without_a_count_is_counted_once() {
    let Some(redis) = RedisChild::start() else {
        return;
    };
    let mut raw = connect(&redis, 7);
    let b = RedisBackend::open(&redis.url(7), 30).unwrap();
    block_on(async {
        for i in 0..6 {
            let mut run = new_run(&format!("r{i}"));
            run.status = RunStatus::Succeeded;
            run.finished = Some(1_200);
            b.create_run(run).await.unwrap();
        }
        assert_eq!(filed(&mut raw, "e"), 6);
    });
    drop(b);
    ::redis::cmd("DEL")
        .arg("fs:{j}:count:e")
        .exec(&mut raw)
        .unwrap();
    let b = RedisBackend::open(&redis.url(7), 30).unwrap();
    block_on(async {
        let retention = super::super::Retention {
            days: 7,
            max_per_endpoint: 2,
        };
        assert_eq!(b.purge(retention, 2_000).await.unwrap(), 4);
        assert_eq!(filed(&mut raw, "e"), 2);
        let runs = b.list_runs(RunFilter::default()).await.unwrap().runs;
        assert_eq!(ids(&runs), ["r5", "r4"]);
    });
}
