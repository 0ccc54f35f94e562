//! The Redis backend's journal writer (docs/redis.md, "How the journal is kept in Redis"): one
//! task per process applies every journal write — a run accepted, its events — in the order
//! they were made, on a connection of its own.
//!
//! **Group commit.** Everything queued while the writer is busy goes in the next batch: one
//! pipeline with, first, the plain commands of the runs journaled finished (per endpoint one
//! `XADD` of one history entry naming all its runs of the batch, then one `MSET` of the runs'
//! record texts — the busiest write, one per request of a `data` endpoint whose steps all ran
//! before the answer; plain commands cost Redis about 7 µs per run where the same writes
//! through a script cost 11–15), then calls of the [`APPLY`] script, each with up to
//! [`PER_SCRIPT`] of the other writes (in call order).
//! The runs journaled finished have no write before or after theirs, so taking them first
//! changes no run's order.
//!
//! **Batches in flight.** The writer sends the next batch without waiting for the previous
//! one's answer, up to [`IN_FLIGHT`] batches on the connection at once. Redis applies them in
//! the order they were sent (one connection: one ordered stream of commands), and the writer
//! delivers their answers in that order. Each batch is handed to the connection when it is
//! made (its future is polled once: the multiplexed connection's send queue, of which this
//! writer is the only user, takes it at once), so batches reach Redis in the order they were
//! made. Two batches in flight measured 1–4 % faster than one, three slower (smaller batches:
//! more per-call work in Redis and in the listener).
//!
//! **Scripts.** The calls are `EVALSHA`s (the 10 KB script text is not sent, copied and hashed
//! with every call). While the writer does not know Redis holds the script (at start, after a
//! connection error or a `NOSCRIPT`), the first call of a batch is an `EVAL` with the text,
//! which loads it before the `EVALSHA`s behind it run, and no other batch is sent until that
//! one is answered. A batch answered `NOSCRIPT` in every call (the script cache flushed
//! meanwhile: nothing of it was applied) is sent once more that way before any later answer is
//! delivered; every batch sent behind it finds the cache flushed as well, and is sent again in
//! its turn, so the order holds. A `NOSCRIPT` after an applied call fails that call's writes
//! only, like any other error of one call (resending it would apply it after the calls behind
//! it).
//!
//! **Faults.** A connection error fails the batch's writes (and those of the batches sent
//! behind it on that connection) with [`StateError::Unavailable`]; the next batch connects
//! again, at most once per backoff delay (50 ms doubling to 2 s) while Redis stays away —
//! writes in between fail at once.

use super::{applied, unavailable, Job, APPLY, FINISHED, J, TIMEOUT};
use crate::state::{StateError, StateResult};
use futures_util::future::{BoxFuture, FutureExt};
use redis::aio::MultiplexedConnection;
use redis::Script;
use std::collections::VecDeque;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Writes per batch at most.
const BATCH: usize = 512;
/// Writes per script call at most: Redis runs the calls of a batch one by one, so another
/// process's acceptances are not held behind one long script.
const PER_SCRIPT: usize = 64;
/// Batches on the connection at once at most (see the module documentation).
const IN_FLIGHT: usize = 2;
/// First and last delay between two connection attempts while Redis is away.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(2));

type Answer = redis::RedisResult<Vec<redis::Value>>;

/// A batch sent, waiting for its answer.
struct Batch {
    writes: Writes,
    answer: BoxFuture<'static, Answer>,
}

/// The writes of a batch.
struct Writes {
    /// Runs journaled finished ([`FINISHED`]), written as plain commands.
    finished: Vec<Job>,
    /// Every other write, in calls of [`APPLY`].
    groups: Vec<Vec<Job>>,
}

impl Writes {
    /// The number of answers of the batch's plain commands ([`finished_commands`]): an `XADD`
    /// per endpoint, the `MSET`, an `INCRBY` and a `SADD` per endpoint.
    fn plain(&self) -> usize {
        match self.finished.len() {
            0 => 0,
            _ => 1 + 3 * endpoints(&self.finished).len(),
        }
    }

    /// Every write of the batch.
    fn into_jobs(self) -> impl Iterator<Item = Job> {
        self.finished
            .into_iter()
            .chain(self.groups.into_iter().flatten())
    }
}

/// The writer's connection, made again after an error.
struct Link {
    client: redis::Client,
    conn: Option<MultiplexedConnection>,
    /// No connection attempt before this instant.
    wait_until: Option<Instant>,
    backoff: Duration,
}

impl Link {
    async fn get(&mut self) -> StateResult<MultiplexedConnection> {
        if let Some(c) = &self.conn {
            return Ok(c.clone());
        }
        if self.wait_until.is_some_and(|t| Instant::now() < t) {
            return Err(StateError::Unavailable(
                "redis: not connected (retrying)".into(),
            ));
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        match self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
        {
            Ok(c) => {
                self.conn = Some(c.clone());
                self.wait_until = None;
                self.backoff = BACKOFF.0;
                Ok(c)
            }
            Err(e) => {
                self.wait_until = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(BACKOFF.1);
                Err(unavailable(e))
            }
        }
    }

    fn broken(&mut self) {
        self.conn = None;
    }
}

/// How to call the script: its hash, or (while Redis may not hold it) its text first.
struct Calls {
    sha: String,
    lease: String,
}

impl Calls {
    /// One script call of `group`'s writes.
    fn call(&self, text: bool, group: &[Job]) -> redis::Cmd {
        let (name, script) = if text {
            ("EVAL", APPLY)
        } else {
            ("EVALSHA", self.sha.as_str())
        };
        let args = 5 + group.iter().map(|j| 2 + j.args.len()).sum::<usize>();
        let bytes = name.len()
            + script.len()
            + J.len()
            + self.lease.len()
            + 1
            + group.iter().map(|j| 4 + j.args.buf.len()).sum::<usize>();
        let mut cmd = redis::Cmd::with_capacity(args, bytes);
        cmd.arg(name).arg(script).arg(0).arg(J).arg(&self.lease);
        for j in group {
            cmd.arg(j.op).arg(j.args.len());
            for a in j.args.iter() {
                cmd.arg(a);
            }
        }
        cmd
    }

    /// The batch's pipeline sent on `conn`: the plain commands of `finished` (none when
    /// sent again), then the script calls of `groups`, the first with the script's text if
    /// `text`. The future is polled once here, which queues the pipeline on the connection.
    fn send(
        &self,
        mut conn: MultiplexedConnection,
        finished: &[Job],
        groups: &[Vec<Job>],
        text: bool,
    ) -> BoxFuture<'static, Answer> {
        let mut pipe = redis::Pipeline::with_capacity(groups.len() + 3 * finished.len());
        pipe.ignore_errors();
        finished_commands(&mut pipe, finished);
        for (i, g) in groups.iter().enumerate() {
            pipe.add_command(self.call(text && i == 0, g));
        }
        let mut answer =
            async move { pipe.query_async::<Vec<redis::Value>>(&mut conn).await }.boxed();
        let waker = futures_util::task::noop_waker();
        match answer
            .as_mut()
            .poll(&mut std::task::Context::from_waker(&waker))
        {
            Poll::Ready(r) => futures_util::future::ready(r).boxed(),
            Poll::Pending => answer,
        }
    }
}

/// The writer task: applies the writes of `queue` until every sender is gone.
pub(super) async fn run(
    client: redis::Client,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Job>,
    lease_ms: u64,
) {
    let calls = Calls {
        sha: Script::new(APPLY).get_hash().to_string(),
        lease: lease_ms.to_string(),
    };
    let mut link = Link {
        client,
        conn: None,
        wait_until: None,
        backoff: BACKOFF.0,
    };
    let mut loaded = false;
    let mut open = true;
    let mut sent: VecDeque<Batch> = VecDeque::new();
    loop {
        if sent.is_empty() && !open {
            return;
        }
        let room = sent.is_empty() || (loaded && sent.len() < IN_FLIGHT);
        tokio::select! {
            biased;
            answer = async { sent.front_mut().expect("a batch in flight").answer.as_mut().await },
                if !sent.is_empty() =>
            {
                let batch = sent.pop_front().expect("a batch in flight");
                deliver(batch.writes, answer, &calls, &mut link, &mut loaded).await;
            }
            job = queue.recv(), if open && room => {
                let Some(first) = job else {
                    open = false;
                    continue;
                };
                let writes = gather(first, &mut queue);
                match link.get().await {
                    Ok(conn) => {
                        let answer = calls.send(conn, &writes.finished, &writes.groups, !loaded);
                        sent.push_back(Batch { writes, answer });
                    }
                    Err(e) => fail(writes.into_jobs(), &e),
                }
            }
        }
    }
}

/// `first` and every write queued behind it (up to [`BATCH`]): the runs journaled finished
/// apart, the others in calls of [`PER_SCRIPT`].
fn gather(first: Job, queue: &mut tokio::sync::mpsc::UnboundedReceiver<Job>) -> Writes {
    let mut jobs = vec![first];
    while jobs.len() < BATCH {
        match queue.try_recv() {
            Ok(j) => jobs.push(j),
            Err(_) => break,
        }
    }
    let (finished, jobs): (Vec<Job>, Vec<Job>) = jobs.into_iter().partition(|j| j.op == FINISHED);
    let mut groups: Vec<Vec<Job>> = Vec::with_capacity(jobs.len().div_ceil(PER_SCRIPT));
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        groups.push(jobs.by_ref().take(PER_SCRIPT).collect());
    }
    Writes { finished, groups }
}

/// The endpoints of runs journaled finished `jobs` (`id`, `endpoint`, `text`), each once.
fn endpoints(jobs: &[Job]) -> Vec<&[u8]> {
    let mut eps: Vec<&[u8]> = Vec::new();
    for j in jobs {
        if let Some(ep) = j.args.iter().nth(1) {
            if !eps.contains(&ep) {
                eps.push(ep);
            }
        }
    }
    eps
}

/// Adds the commands of runs journaled finished `jobs` to `pipe`: per endpoint one entry
/// `XADD fs:{j}:log:NAME * r ID1 r ID2 …` of its runs in call order, then one `MSET` of every
/// run's `fs:{j}:run:ID` and text, then per endpoint `INCRBY fs:{j}:count:NAME N` (the runs
/// its history holds, for retention by count) and `SADD fs:{j}:endpoints NAME`
/// ([`Writes::plain`] answers). Not a transaction: the entries come first, the counts last, so
/// a Redis that stops in between keeps entries without their runs — listings skip them, the
/// purge deletes them — or runs not counted yet (retention by count keeps that many more), and
/// never a run without its entry (a run no listing would show, nor the purge find) nor a count
/// of runs that are not there (retention by count would keep fewer).
/// One entry per endpoint and one `MSET` instead of a command per run: Redis's work per
/// command (parsing, lookup, the AOF's framing, a stream entry's header) is paid once per batch.
fn finished_commands(pipe: &mut redis::Pipeline, jobs: &[Job]) {
    if jobs.is_empty() {
        return;
    }
    let mut buf = Vec::with_capacity(64);
    let eps = endpoints(jobs);
    let mut counts = Vec::with_capacity(eps.len());
    for &ep in &eps {
        let entry = pipe.cmd("XADD").arg(key(&mut buf, b"log:", ep)).arg("*");
        let mut n = 0usize;
        for (id, _, _) in jobs.iter().map(finished_args).filter(|a| a.1 == ep) {
            entry.arg("r").arg(id);
            n += 1;
        }
        counts.push(n);
    }
    let mset = pipe.cmd("MSET");
    for j in jobs {
        let (id, _, text) = finished_args(j);
        mset.arg(key(&mut buf, b"run:", id)).arg(text);
    }
    for (ep, n) in eps.into_iter().zip(counts) {
        pipe.cmd("INCRBY").arg(key(&mut buf, b"count:", ep)).arg(n);
        pipe.cmd("SADD").arg(format!("{J}endpoints")).arg(ep);
    }
}

/// The journal key `fs:{j}:` + `kind` + `name`, written in `buf`.
fn key<'a>(buf: &'a mut Vec<u8>, kind: &[u8], name: &[u8]) -> &'a [u8] {
    buf.clear();
    buf.extend_from_slice(J.as_bytes());
    buf.extend_from_slice(kind);
    buf.extend_from_slice(name);
    buf
}

/// A run journaled finished's arguments: id, endpoint, text.
fn finished_args(j: &Job) -> (&[u8], &[u8], &[u8]) {
    let mut a = j.args.iter();
    let mut next = || a.next().unwrap_or_default();
    (next(), next(), next())
}

fn fail(jobs: impl IntoIterator<Item = Job>, e: &StateError) {
    for j in jobs {
        let _ = j.done.send(Err(e.clone()));
    }
}

fn noscript(v: &redis::Value) -> bool {
    matches!(v, redis::Value::ServerError(e)
        if e.kind() == Some(redis::ServerErrorKind::NoScript))
}

/// The answers of a pipeline of `expected` commands, or the error its writes fail with: a
/// transport error (the connection is made again; Redis may have restarted, its script cache
/// empty) or a short answer.
fn answers(
    answer: Answer,
    expected: usize,
    link: &mut Link,
    loaded: &mut bool,
) -> Result<Vec<redis::Value>, StateError> {
    match answer {
        Ok(values) if values.len() == expected => Ok(values),
        Ok(_) => {
            *loaded = false;
            Err(short())
        }
        Err(e) => {
            *loaded = false;
            link.broken();
            Err(unavailable(e))
        }
    }
}

fn short() -> StateError {
    StateError::Unavailable("redis: short journal answer".into())
}

/// Hands each write of a batch its answer (sending the batch's script calls again first when
/// Redis had lost the script).
async fn deliver(
    writes: Writes,
    answer: Answer,
    calls: &Calls,
    link: &mut Link,
    loaded: &mut bool,
) {
    let expected = writes.plain() + writes.groups.len();
    let mut values = match answers(answer, expected, link, loaded) {
        Ok(values) => values,
        Err(e) => return fail(writes.into_jobs(), &e),
    };
    let Writes { finished, groups } = writes;
    let mut scripted = values.split_off(expected - groups.len());
    // The XADDs' answers (one per endpoint), the MSET's, then per endpoint the INCRBY's and the
    // SADD's: a run's write failed when its entry, the MSET or its count did. `at`: each run's
    // endpoint, by its place among the batch's endpoints.
    let (at, endpoint_count) = {
        let eps = endpoints(&finished);
        let at: Vec<usize> = finished
            .iter()
            .map(|j| {
                eps.iter()
                    .position(|&e| e == finished_args(j).1)
                    .unwrap_or(0)
            })
            .collect();
        (at, eps.len())
    };
    let failed = |i: usize| match values.get(i) {
        Some(redis::Value::ServerError(e)) => Some(unavailable(e.clone().into())),
        Some(_) => None,
        None => Some(short()),
    };
    let mset = failed(endpoint_count);
    for (j, i) in finished.into_iter().zip(at) {
        let count = endpoint_count + 1 + 2 * i;
        let r = match failed(i).or(mset.clone()).or_else(|| failed(count)) {
            Some(e) => Err(e),
            None => Ok(1),
        };
        let _ = j.done.send(r);
    }
    if groups.is_empty() {
        return;
    }
    if scripted.iter().all(noscript) {
        let again = match link.get().await {
            Ok(conn) => calls.send(conn, &[], &groups, true).await,
            Err(e) => return fail(groups.into_iter().flatten(), &e),
        };
        scripted = match answers(again, groups.len(), link, loaded) {
            Ok(values) => values,
            Err(e) => return fail(groups.into_iter().flatten(), &e),
        };
    }
    *loaded = !scripted.iter().any(noscript);
    for (v, group) in scripted.into_iter().zip(groups) {
        match v {
            redis::Value::Array(items) if items.len() == group.len() => {
                for (item, j) in items.into_iter().zip(group) {
                    let _ = j.done.send(applied(item));
                }
            }
            redis::Value::ServerError(e) => fail(group, &unavailable(e.into())),
            _ => fail(group, &short()),
        }
    }
}
