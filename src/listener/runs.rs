//! Durable workflow runs (docs/state.md): the journal around [`workflow`], the worker pool,
//! parked delays, recovery after a restart and the background chores.
//!
//! A run moves through *activations*: the first one when the request is accepted, one per
//! recovery or retry, one each time a parked delay is due. An activation holds one worker
//! permit (`[server] workers`) while its branches run; runs waiting for a permit are
//! `queued`. A branch that reaches a `delay_ms` while nobody waits for the run's answer parks
//! it: the due time is journaled, a timer entry (two ids) is all that stays in memory, and a
//! new activation continues that branch when it is due. The run ends when no activation runs
//! and no branch is parked: `failed` if any step failed, else `succeeded`.
//!
//! Sync `continue` and `sse` runs are journaled for history but run outside the pool (their
//! request is the answer path) and are never resumed: after a crash they are `interrupted`.
//!
//! **Backlog.** At most [`Runner::queue_bound`] activations wait for a worker in memory; runs
//! accepted beyond it wait only in the journal and are claimed back (src/listener/runs/backlog.rs).

mod backlog;

use super::config::{Branch, Config, Endpoint};
use super::metrics::{Metered, Metrics, RunEnd};
use super::workflow::{self, Run, Wait};
use crate::state::{self, Backend, RunEvent, RunRecord, RunStatus, StateError, StepStatus};
use crate::Value;
use backlog::{secret_headers, Secrets, MIN_QUEUE, QUEUE_PER_WORKER};
use futures_util::future::BoxFuture;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinHandle;

/// A run resumed this many times without finishing is `failed` (a step that crashes the
/// process, or never finishes, is not retried forever).
pub const MAX_ATTEMPTS: u32 = 5;
/// How often unowned `queued` runs (retried from the CLI) are looked for.
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// How often finished runs beyond the retention are purged.
const PURGE_EVERY: Duration = Duration::from_secs(600);

/// Counts of runs, for metrics (cheap: three atomics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunGauges {
    /// Activations waiting for a worker.
    pub queued: usize,
    /// Activations holding a worker.
    pub running: usize,
    /// Branches parked on a delay.
    pub waiting: usize,
    /// Runs accepted past the in-memory queue bound, waiting only in the journal (claimed
    /// back when the queue has room).
    pub backlog: usize,
}

#[derive(Default)]
struct Active {
    /// Activations not yet finished.
    live: usize,
    /// Branches parked on a delay.
    parked: usize,
    /// The first step failure.
    error: Option<String>,
    /// For the metrics: the endpoint and when this process started (or resumed) the run.
    endpoint: Option<Arc<Endpoint>>,
    since: Option<Instant>,
}

struct Timer {
    due: i64,
    run: String,
    step: String,
}

/// The journal, the worker pool and the timers of one serving process.
pub struct Runner {
    /// The state backend, measured for the metrics (journal latency, backend errors).
    pub backend: Arc<dyn Backend>,
    /// The server's metrics (src/listener/metrics.rs).
    pub metrics: Arc<Metrics>,
    /// This process's claim on the runs it executes.
    owner: String,
    workers: Arc<Semaphore>,
    queued: AtomicUsize,
    running: AtomicUsize,
    waiting: AtomicUsize,
    /// Bound of `queued` beyond which new runs wait only in the journal.
    bound: usize,
    backlog: AtomicUsize,
    /// A claim from the journal is in progress.
    refilling: AtomicBool,
    /// The journal may hold owner-less queued runs the `backlog` count does not know of (true
    /// at start — recovery leaves the backlog of an earlier process there — and after a claim
    /// that filled its batch).
    more: AtomicBool,
    /// Places of `queued` reserved for a claim in progress (not shown in the gauge).
    claiming: AtomicUsize,
    /// Credential headers of runs in the backlog (the journal does not keep them), by run id.
    held: Mutex<HashMap<String, Secrets>>,
    active: Mutex<HashMap<String, Active>>,
    /// Resumable runs of this process with a journal write that failed: once their activation
    /// has ended they are given back to the journal ([`Backend::release`]) at the next claim,
    /// which continues them after their last journaled step.
    stranded: Mutex<std::collections::HashSet<String>>,
    timers: mpsc::UnboundedSender<Timer>,
    config: Arc<RwLock<Arc<Config>>>,
}

impl Runner {
    /// A runner on `backend` with `workers` permits; spawns the timer task (call inside a
    /// tokio runtime). `config` is the server's live configuration (reloads included).
    pub fn new(
        backend: Arc<dyn Backend>,
        workers: usize,
        config: Arc<RwLock<Arc<Config>>>,
    ) -> Arc<Runner> {
        let (tx, rx) = mpsc::unbounded_channel();
        let workers = workers.max(1);
        let metrics = Arc::new(Metrics::new());
        let runner = Arc::new(Runner {
            backend: Arc::new(Metered::new(backend, metrics.clone())),
            metrics,
            owner: uuid::Uuid::new_v4().simple().to_string(),
            workers: Arc::new(Semaphore::new(workers)),
            queued: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            bound: workers.saturating_mul(QUEUE_PER_WORKER).max(MIN_QUEUE),
            backlog: AtomicUsize::new(0),
            refilling: AtomicBool::new(false),
            more: AtomicBool::new(true),
            claiming: AtomicUsize::new(0),
            held: Mutex::new(HashMap::new()),
            active: Mutex::new(HashMap::new()),
            stranded: Mutex::new(std::collections::HashSet::new()),
            timers: tx,
            config,
        });
        tokio::spawn(timer_loop(Arc::downgrade(&runner), rx));
        runner
    }

    /// Current counts of queued, running and waiting runs.
    pub fn gauges(&self) -> RunGauges {
        RunGauges {
            queued: self
                .queued
                .load(Ordering::Relaxed)
                .saturating_sub(self.claiming.load(Ordering::Relaxed)),
            running: self.running.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
            backlog: self.backlog.load(Ordering::Relaxed),
        }
    }

    /// Most activations waiting for a worker in memory (`[server] workers` × 8, at least 64);
    /// runs accepted beyond it wait only in the journal.
    pub fn queue_bound(&self) -> usize {
        self.bound
    }

    /// This process's owner id in the journal.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn active(&self) -> MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Journals a new run and starts it. A resumable run is committed before this returns
    /// (the caller answers only then); a journal error is returned and nothing runs. The
    /// leading steps of a run nobody waits for that only change its `__data` run first and are
    /// journaled with it; a run made only of such steps is journaled finished and nothing is
    /// started (`None`, as for a run left in the journal). Past the
    /// in-memory queue bound, a resumable run nobody waits for is only journaled (unowned)
    /// and claimed back later; the handle is then of a task that does nothing.
    ///
    /// Cancel-safe: hyper drops a request's future when its client disconnects, possibly while
    /// the journal commits. A resumable run that has steps left to run is therefore committed
    /// and activated in a task of its own, which the caller only waits for: a committed run
    /// always runs, and a reserved place in the queue is always given back (before, such a run
    /// stayed `queued`, owned by this process, until the next start). A run journaled finished
    /// needs no task: its write is queued before anything is awaited.
    pub async fn start(
        self: &Arc<Self>,
        run: Arc<Run>,
        data: Value,
        fingerprint: &str,
    ) -> Result<Option<JoinHandle<()>>, StateError> {
        if !run.resumable {
            // Nothing is awaited for these: `accept` completes in its first poll.
            return self
                .clone()
                .accept(run, data, fingerprint.to_string(), None, Instant::now())
                .await;
        }
        let since = Instant::now();
        // A run nobody waits for: its leading `store` / `condition` steps run now and are
        // journaled with its creation (src/listener/workflow.rs, `run_prefix`).
        let mut prefix = (!run.has_listener())
            .then(|| workflow::run_prefix(&run, &data))
            .filter(|p| !p.steps.is_empty());
        if let Some(p) = prefix.take_if(|p| p.frontier.is_empty()) {
            // Cancel-safe in this task: the write is queued by the call, and nothing is reserved
            // or started that a dropped request would leave behind.
            return self
                .journal_finished(&run, &data, fingerprint.to_string(), p, since)
                .await;
        }
        let me = self.clone();
        let fingerprint = fingerprint.to_string();
        tokio::spawn(async move { me.accept(run, data, fingerprint, prefix, since).await })
            .await
            .unwrap_or_else(|e| Err(StateError::Unavailable(format!("run not started: {e}"))))
    }

    /// [`Runner::start`]'s work: reserve a place (or spill), journal (with the leading steps
    /// `prefix` ran), activate. `None`: nothing runs after the answer (the run was only
    /// journaled and left for a claim).
    async fn accept(
        self: Arc<Self>,
        run: Arc<Run>,
        data: Value,
        fingerprint: String,
        prefix: Option<workflow::Prefix>,
        since: Instant,
    ) -> Result<Option<JoinHandle<()>>, StateError> {
        let ep = &run.endpoint;
        // A place in the in-memory queue is taken now (so concurrent requests cannot pass the
        // bound); a run a request waits for (async `continue`) always gets one.
        let reserved = run.resumable && self.reserve_one();
        let spill = run.resumable && !reserved && !run.has_listener();
        let release = |me: &Self| {
            if reserved {
                me.queued.fetch_sub(1, Ordering::Relaxed);
            }
        };
        if spill {
            let secrets = secret_headers(&data);
            if !secrets.is_empty() {
                self.held().insert(run.run_id.clone(), secrets);
            }
        }
        // With leading steps: created and started with the first of them; `queued` until an
        // activation takes it.
        let started = prefix.as_ref().and_then(workflow::Prefix::started);
        let mut record = new_record(
            &run,
            fingerprint,
            started.unwrap_or_else(state::now_ms),
            (!spill).then(|| self.owner.clone()),
        );
        record.started = started;
        let roots = match prefix {
            Some(p) => {
                record.steps = p.steps;
                p.frontier
            }
            None => ep.roots().iter().map(|i| (*i, data.clone())).collect(),
        };
        // The write is queued by the call itself: later events follow it in order. The
        // backend journals `data` without its credential headers.
        let created = self.backend.create_request_run(record, &data);
        if spill {
            if let Err(e) = created.await {
                self.held().remove(&run.run_id);
                return Err(e);
            }
            self.backlog.fetch_add(1, Ordering::Relaxed);
            // Workers may have emptied the queue meanwhile.
            self.refill(false);
            return Ok(None);
        }
        if run.resumable {
            if let Err(e) = created.await {
                release(&self);
                return Err(e);
            }
        } else {
            tokio::spawn(async move {
                if let Err(e) = created.await {
                    tracing::error!(error = %e, "journal write failed");
                }
            });
        }
        self.active().insert(
            run.run_id.clone(),
            Active {
                live: 1,
                endpoint: Some(ep.clone()),
                since: Some(since),
                ..Active::default()
            },
        );
        Ok(Some(self.activate(run, roots, reserved)))
    }

    /// Journals a run whose steps all ran (and succeeded) in [`workflow::run_prefix`] as
    /// `succeeded`: one write (its creation, its steps, its final status), committed before
    /// the answer; no activation, no worker.
    async fn journal_finished(
        &self,
        run: &Run,
        data: &Value,
        fingerprint: String,
        prefix: workflow::Prefix,
        since: Instant,
    ) -> Result<Option<JoinHandle<()>>, StateError> {
        let ep = &run.endpoint;
        let started = prefix.started();
        let mut record = new_record(
            run,
            fingerprint,
            started.unwrap_or(prefix.ended),
            Some(self.owner.clone()),
        );
        record.status = RunStatus::Succeeded;
        record.started = started;
        record.finished = Some(prefix.ended);
        record.steps = prefix.steps;
        self.backend.create_request_run(record, data).await?;
        // (Not counted if the request is dropped during the commit: the run is journaled.)
        ep.metrics
            .get_or_resolve(&self.metrics, &ep.name)
            .run_finished(RunEnd::Succeeded, since.elapsed());
        Ok(None)
    }

    /// Spawns one activation of `run` over `steps`; `reserved`: its place in the queue count
    /// is already taken.
    fn activate(
        self: &Arc<Self>,
        run: Arc<Run>,
        steps: Vec<(usize, Value)>,
        reserved: bool,
    ) -> JoinHandle<()> {
        let me = self.clone();
        // Counted before the task starts: the bound in `start` sees it at once.
        if run.resumable && !reserved {
            me.queued.fetch_add(1, Ordering::Relaxed);
        }
        tokio::spawn(async move {
            let permit = if run.resumable {
                let p = me.workers.clone().acquire_owned().await.ok();
                me.queued.fetch_sub(1, Ordering::Relaxed);
                p
            } else {
                None
            };
            me.running.fetch_add(1, Ordering::Relaxed);
            // Buffered (a resumable run): the `running` mark is written with the run's next
            // write that is waited for, or with its final status. A crash before that leaves
            // the run `queued`, which recovery resumes the same way.
            let started = RunEvent::Status {
                run: run.run_id.clone(),
                status: RunStatus::Running,
                at: state::now_ms(),
                error: None,
            };
            if run.resumable {
                run.journal(started, Wait::Later).await;
            } else {
                let started = me.backend.record(started);
                tokio::spawn(async move {
                    if let Err(e) = started.await {
                        tracing::error!(error = %e, "journal write failed");
                    }
                });
            }
            // Counters and the end-of-activation bookkeeping run even if the task is aborted
            // (an `sse` client that went away).
            let mut guard = ActivationGuard {
                runner: me.clone(),
                run: run.clone(),
                permit,
                ended: false,
            };
            workflow::run_from(run.clone(), steps).await;
            // The worker is given back and the run's buffered events and final status are
            // written as one write; the task then only waits for its commit (for the error
            // log and the journal metrics).
            let written = guard.end();
            drop(guard);
            let Some(f) = written else { return };
            if !run.resumable {
                // Its request (a stream, a sync `continue`) may wait for this task: not for a
                // commit.
                drop(run);
                tokio::spawn(async move {
                    if let Err(e) = f.await {
                        tracing::error!(error = %e, "journal write failed");
                    }
                });
            } else if let Err(e) = f.await {
                tracing::error!(endpoint = %run.endpoint.name, run_id = %run.run_id,
                    error = %e, "journal write failed");
                me.strand(&run.run_id);
            }
        })
    }

    /// A journal write of resumable run `id` failed: the run is given back to the journal
    /// once its activation has ended (see `stranded`).
    pub(crate) fn strand(&self, id: &str) {
        self.stranded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    /// Gives back the stranded runs whose activation has ended; a release that fails (the
    /// journal still cannot be written) is tried again at the next claim.
    async fn release_stranded(&self) {
        let ready: Vec<String> = {
            let stranded = self.stranded.lock().unwrap_or_else(|e| e.into_inner());
            if stranded.is_empty() {
                return;
            }
            let active = self.active();
            stranded
                .iter()
                .filter(|id| !active.contains_key(*id))
                .cloned()
                .collect()
        };
        let mut released = 0;
        for id in ready {
            match self.backend.release(&id).await {
                Ok(()) => {
                    self.stranded
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    tracing::info!(run_id = %id, "run given back to the journal after a failed write: it continues after its last journaled step");
                    released += 1;
                }
                Err(e) => {
                    tracing::debug!(run_id = %id, error = %e, "run not given back yet");
                }
            }
        }
        if released > 0 {
            // The journal now holds owner-less queued runs for the claim to take.
            self.more.store(true, Ordering::Relaxed);
        }
    }

    /// A branch of `run` parks until `due` on step `step`.
    pub(crate) fn park(&self, run: &str, step: &str, due: i64) {
        if let Some(a) = self.active().get_mut(run) {
            a.parked += 1;
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _ = self.timers.send(Timer {
            due,
            run: run.to_string(),
            step: step.to_string(),
        });
    }

    /// Remembers the first failure of `run` (its final status is `failed`).
    pub(crate) fn step_failed(&self, run: &str, error: &str) {
        if let Some(a) = self.active().get_mut(run) {
            a.error.get_or_insert_with(|| error.to_string());
        }
    }

    /// An activation of `run` ended: finishes the run or marks it waiting. `pending`: the
    /// activation's buffered events, written first in the same write as the status; returns
    /// that write (`None`: nothing to write).
    fn activation_done(
        &self,
        run: &str,
        mut pending: Vec<RunEvent>,
    ) -> Option<BoxFuture<'static, state::StateResult<()>>> {
        let write = |me: &Self, events: Vec<RunEvent>| match events.len() {
            0 => None,
            1 => events.into_iter().next().map(|e| me.backend.record(e)),
            _ => Some(me.backend.record_all(events)),
        };
        let outcome = {
            let mut active = self.active();
            let Some(a) = active.get_mut(run) else {
                return write(self, pending);
            };
            a.live = a.live.saturating_sub(1);
            if a.live > 0 {
                return write(self, pending);
            }
            if a.parked > 0 {
                (RunStatus::Waiting, None)
            } else {
                let a = active.remove(run).unwrap_or_default();
                let end = match a.error {
                    Some(e) => (RunStatus::Failed, Some(e)),
                    None => (RunStatus::Succeeded, None),
                };
                if let (Some(ep), Some(since)) = (&a.endpoint, a.since) {
                    let status = match end.0 {
                        RunStatus::Failed => RunEnd::Failed,
                        _ => RunEnd::Succeeded,
                    };
                    ep.metrics
                        .get_or_resolve(&self.metrics, &ep.name)
                        .run_finished(status, since.elapsed());
                }
                end
            }
        };
        pending.push(RunEvent::Status {
            run: run.to_string(),
            status: outcome.0,
            at: state::now_ms(),
            error: outcome.1,
        });
        write(self, pending)
    }

    /// Writes an activation's end in a task of its own (an activation without a task to wait
    /// in: aborted, or never started).
    fn spawn_done(&self, run: &str, pending: Vec<RunEvent>) {
        if let Some(f) = self.activation_done(run, pending) {
            tokio::spawn(async move {
                if let Err(e) = f.await {
                    tracing::error!(error = %e, "journal write failed");
                }
            });
        }
    }

    /// A parked branch is due: continue it in a new activation.
    fn wake(self: &Arc<Self>, run_id: String, step_id: String) {
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        {
            let mut active = self.active();
            let a = active.entry(run_id.clone()).or_default();
            a.parked = a.parked.saturating_sub(1);
            a.live += 1;
        }
        let me = self.clone();
        tokio::spawn(async move {
            match me.backend.get_run(&run_id).await {
                Ok(rec) => match me.prepare(&rec) {
                    Ok((run, _)) => {
                        let i = run.endpoint.steps.iter().position(|s| s.id == step_id);
                        match i.and_then(|i| data_for(&run.endpoint, &rec, i).map(|d| (i, d))) {
                            Some((i, d)) => {
                                me.activate(run, vec![(i, d)], false);
                                return;
                            }
                            None => me.step_failed(
                                &run_id,
                                &format!("step \"{step_id}\" can no longer be resumed"),
                            ),
                        }
                    }
                    Err(e) => me.step_failed(&run_id, &e),
                },
                Err(e) => me.step_failed(&run_id, &format!("cannot read the run: {e}")),
            }
            me.spawn_done(&run_id, Vec::new());
        });
    }

    /// The endpoint of `rec` in the current configuration (matched by its hashes, its steps
    /// by id) and a [`Run`] for it; an error when the endpoint or a step vanished.
    fn prepare(self: &Arc<Self>, rec: &RunRecord) -> Result<(Arc<Run>, Arc<Endpoint>), String> {
        let config = self.config();
        let ep = config
            .endpoints
            .iter()
            .find(|e| e.first_hash == rec.first_hash && e.second_hash == rec.second_hash)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "endpoint \"{}\" is no longer in the configuration",
                    rec.endpoint
                )
            })?;
        for s in &rec.steps {
            if !ep.steps.iter().any(|x| x.id == s.id) {
                return Err(format!(
                    "step \"{}\" is no longer in endpoint \"{}\"",
                    s.id, ep.name
                ));
            }
        }
        let mut run = Run::new(
            ep.clone(),
            rec.id.clone(),
            config.store.clone(),
            config.server.timezone,
            // The current configuration's client: its allowlist and trusted roots apply.
            config.client.clone(),
            self.clone(),
            None,
            None,
        );
        run.resumable = true;
        run.dues = rec
            .steps
            .iter()
            .filter(|s| s.status == StepStatus::Waiting)
            .filter_map(|s| s.due.map(|d| (s.id.clone(), d)))
            .collect();
        Ok((Arc::new(run), ep))
    }

    /// Continues a run read back from the journal: after a restart (`after_crash`: a run
    /// past [`MAX_ATTEMPTS`] is given up), or after a retry.
    pub fn resume(self: &Arc<Self>, rec: RunRecord, after_crash: bool) {
        self.resume_counted(rec, after_crash, false)
    }

    /// [`Runner::resume`]; `reserved`: a place in the queue count is taken for this run (given
    /// back if it cannot be resumed).
    fn resume_counted(self: &Arc<Self>, rec: RunRecord, after_crash: bool, reserved: bool) {
        let release = |me: &Arc<Self>| {
            if reserved {
                me.queued.fetch_sub(1, Ordering::Relaxed);
            }
        };
        let fail = |me: &Arc<Self>, error: String| {
            tracing::error!(run_id = %rec.id, endpoint = %rec.endpoint, error = %error, "run cannot be resumed");
            let f = me.backend.record(RunEvent::Status {
                run: rec.id.clone(),
                status: RunStatus::Failed,
                at: state::now_ms(),
                error: Some(error),
            });
            tokio::spawn(f);
        };
        if after_crash && rec.attempt > MAX_ATTEMPTS {
            release(self);
            return fail(
                self,
                format!("gave up after {MAX_ATTEMPTS} attempts without finishing"),
            );
        }
        let (run, ep) = match self.prepare(&rec) {
            Ok(x) => x,
            Err(e) => {
                release(self);
                return fail(self, e);
            }
        };
        let frontier = frontier(&ep, &rec);
        let error = rec
            .steps
            .iter()
            .find(|s| s.status == StepStatus::Failed)
            .map(|s| {
                format!(
                    "step \"{}\" failed: {}",
                    s.id,
                    s.error.as_deref().unwrap_or("")
                )
            });
        if reserved {
            // Claimed back from the backlog (or retried): routine, one per run under load.
            tracing::debug!(run_id = %rec.id, endpoint = %ep.name, attempt = rec.attempt, "run claimed from the journal");
        } else {
            tracing::info!(run_id = %rec.id, endpoint = %ep.name, attempt = rec.attempt, steps = frontier.len(), "resuming run");
        }
        self.active().insert(
            rec.id.clone(),
            Active {
                live: 1,
                parked: 0,
                error,
                endpoint: Some(ep.clone()),
                since: Some(Instant::now()),
            },
        );
        self.activate(run, frontier, reserved);
    }

    /// Claims and starts runs queued again by a retry now, instead of within [`CLAIM_EVERY`]
    /// (the admin API calls this after [`Backend::retry_run`]).
    pub async fn claim_now(self: &Arc<Self>) -> Result<usize, StateError> {
        let runs = self.backend.claim(&self.owner, 64).await?;
        let n = runs.len();
        for mut rec in runs {
            self.restore_held(&mut rec);
            self.resume(rec, false);
        }
        Ok(n)
    }

    /// At start: marks interrupted runs, resumes the others, and starts the chores (claiming
    /// retried runs, purging old ones).
    pub async fn recover(self: &Arc<Self>) -> Result<usize, StateError> {
        let runs = self.backend.recover(&self.owner, state::now_ms()).await?;
        let n = runs.len();
        for rec in runs {
            self.resume(rec, true);
        }
        tokio::spawn(chores(Arc::downgrade(self)));
        Ok(n)
    }
}

/// The journal record of a new run of a request: queued, created at `created`, its request
/// data left `Null` (the backend journals the request's `__data` itself,
/// [`Backend::create_request_run`]).
fn new_record(run: &Run, fingerprint: String, created: i64, owner: Option<String>) -> RunRecord {
    let ep = &run.endpoint;
    RunRecord::new(
        run.run_id.clone(),
        ep.name.clone(),
        ep.first_hash.clone(),
        ep.second_hash.clone(),
        fingerprint,
        run.resumable,
        serde_json::Value::Null,
        created,
        owner,
    )
}

/// Ends an activation, also when its task is aborted.
struct ActivationGuard {
    runner: Arc<Runner>,
    run: Arc<Run>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ended: bool,
}

impl ActivationGuard {
    /// Gives the worker back and queues the activation's end (its buffered events and the
    /// run's status, one write); returns that write.
    fn end(&mut self) -> Option<BoxFuture<'static, state::StateResult<()>>> {
        if std::mem::replace(&mut self.ended, true) {
            return None;
        }
        self.runner.running.fetch_sub(1, Ordering::Relaxed);
        let written = self
            .runner
            .activation_done(&self.run.run_id, self.run.take_pending());
        if self.permit.is_some() {
            self.runner.refill(false);
        }
        self.permit.take();
        written
    }
}

impl Drop for ActivationGuard {
    fn drop(&mut self) {
        if let Some(f) = self.end() {
            let stranded = self
                .run
                .resumable
                .then(|| (self.runner.clone(), self.run.run_id.clone()));
            tokio::spawn(async move {
                if let Err(e) = f.await {
                    tracing::error!(error = %e, "journal write failed");
                    if let Some((runner, id)) = stranded {
                        runner.strand(&id);
                    }
                }
            });
        }
    }
}

/// `__data` of step `i` of `rec`: the request data with its ancestors' checkpoints applied;
/// `None` when an ancestor did not succeed.
fn data_for(ep: &Endpoint, rec: &RunRecord, i: usize) -> Option<Value> {
    let mut chain = Vec::new();
    let mut cur = ep.steps.get(i)?.parent;
    while let Some(p) = cur {
        chain.push(p);
        cur = ep.steps.get(p)?.parent;
    }
    let mut data = Value::from(&rec.data);
    for p in chain.into_iter().rev() {
        let s = rec.step(&ep.steps[p].id)?;
        if s.status != StepStatus::Succeeded {
            return None;
        }
        if let Some(cp) = &s.checkpoint {
            workflow::apply_checkpoint(&mut data, cp);
        }
    }
    Some(data)
}

/// The steps of `rec` to run now, each with its `__data`: walking from the roots, finished
/// steps are replayed from their checkpoints (a condition follows the branch it took); the
/// first unfinished step of each branch (in flight, waiting or never started) is returned.
fn frontier(ep: &Endpoint, rec: &RunRecord) -> Vec<(usize, Value)> {
    workflow::walk(ep, Value::from(&rec.data), |i, data| {
        match rec.step(&ep.steps[i].id) {
            Some(s) if s.status == StepStatus::Succeeded => {
                let mut branch = None;
                if let Some(cp) = &s.checkpoint {
                    workflow::apply_checkpoint(data, cp);
                    branch = cp.branch.map(|y| if y { Branch::Yes } else { Branch::No });
                }
                workflow::Visit::Children(branch)
            }
            Some(s) if s.status == StepStatus::Failed => workflow::Visit::Stop,
            _ => workflow::Visit::Leave,
        }
    })
}

async fn timer_loop(runner: std::sync::Weak<Runner>, mut rx: mpsc::UnboundedReceiver<Timer>) {
    let mut heap: BinaryHeap<Reverse<(i64, String, String)>> = BinaryHeap::new();
    loop {
        let wait = heap
            .peek()
            .map(|Reverse((due, _, _))| (*due - state::now_ms()).max(0) as u64);
        tokio::select! {
            t = rx.recv() => match t {
                Some(t) => heap.push(Reverse((t.due, t.run, t.step))),
                None => return,
            },
            _ = tokio::time::sleep(Duration::from_millis(wait.unwrap_or(3_600_000))), if wait.is_some() => {
                let now = state::now_ms();
                while heap.peek().is_some_and(|Reverse((due, _, _))| *due <= now) {
                    if let Some(Reverse((_, run, step))) = heap.pop() {
                        match runner.upgrade() {
                            Some(r) => r.wake(run, step),
                            None => return,
                        }
                    }
                }
            }
        }
    }
}

/// Claims runs queued again by a retry and purges old runs, until the runner is dropped.
async fn chores(runner: std::sync::Weak<Runner>) {
    let mut claim = tokio::time::interval(CLAIM_EVERY);
    let mut purge = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = claim.tick() => {
                let Some(r) = runner.upgrade() else { return };
                r.release_stranded().await;
                r.refill(true);
            }
            _ = purge.tick() => {
                let Some(r) = runner.upgrade() else { return };
                let retention = r.config().server.retention;
                match r.backend.purge(retention, state::now_ms()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "old runs purged"),
                    Err(e) => tracing::warn!(error = %e, "cannot purge old runs"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Checkpoint, StepRecord};
    use futures_util::future::BoxFuture;
    use serde_json::json;

    /// A fresh temp dir holding `e.toml`, a configuration with one `data` endpoint `e` whose
    /// steps are `steps`, and that configuration loaded (also used by `backlog`'s tests).
    pub(super) fn config_in_temp_dir(
        steps: &str,
    ) -> (std::path::PathBuf, crate::listener::config::Config) {
        let dir = std::env::temp_dir().join(format!(
            "flexscript-runs-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.toml");
        std::fs::write(
            &path,
            format!(
                "[[endpoint]]\nname = \"e\"\nfirst_hash = \"{h}\"\nsecond_hash = \"{h}\"\n\
                 return_type = \"data\"\nreturn_data = \"ok\"\n{steps}",
                h = "a".repeat(32)
            ),
        )
        .unwrap();
        let config = crate::listener::load_config(&path).unwrap();
        (dir, config)
    }

    fn endpoint(steps: &str) -> Arc<Endpoint> {
        let (dir, c) = config_in_temp_dir(steps);
        std::fs::remove_dir_all(&dir).unwrap();
        c.endpoints[0].clone()
    }

    fn done(id: &str, set: &[(&str, serde_json::Value)], branch: Option<bool>) -> StepRecord {
        StepRecord {
            id: id.into(),
            kind: String::new(),
            status: StepStatus::Succeeded,
            started: Some(1),
            finished: Some(2),
            due: None,
            error: None,
            checkpoint: Some(Checkpoint {
                set: set
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
                branch,
            }),
        }
    }

    fn step(id: &str, status: StepStatus) -> StepRecord {
        StepRecord {
            id: id.into(),
            kind: String::new(),
            status,
            started: Some(1),
            finished: None,
            due: None,
            error: None,
            checkpoint: None,
        }
    }

    /// The [`Backend`] methods a test backend passes to its `inner` backend unchanged (the
    /// test backends below differ only in their writes).
    macro_rules! passes_the_rest_to_inner {
        () => {
            fn recover(
                &self,
                owner: &str,
                now: i64,
            ) -> BoxFuture<'static, state::StateResult<Vec<RunRecord>>> {
                self.inner.recover(owner, now)
            }
            fn claim(
                &self,
                owner: &str,
                limit: usize,
            ) -> BoxFuture<'static, state::StateResult<Vec<RunRecord>>> {
                self.inner.claim(owner, limit)
            }
            fn list_runs(
                &self,
                filter: state::RunFilter,
            ) -> BoxFuture<'static, state::StateResult<state::RunPage>> {
                self.inner.list_runs(filter)
            }
            fn get_run(&self, id: &str) -> BoxFuture<'static, state::StateResult<RunRecord>> {
                self.inner.get_run(id)
            }
            fn retry_run(
                &self,
                id: &str,
                from: state::RetryFrom,
            ) -> BoxFuture<'static, state::StateResult<RunRecord>> {
                self.inner.retry_run(id, from)
            }
            fn purge(
                &self,
                retention: state::Retention,
                now: i64,
            ) -> BoxFuture<'static, state::StateResult<u64>> {
                self.inner.purge(retention, now)
            }
        };
    }

    /// A backend whose journal writes are applied at once (in memory) but acknowledged only
    /// once the gate opens: a commit that takes as long as the test wants. A run's creation is
    /// not gated.
    struct Gated {
        inner: crate::state::memory::MemoryBackend,
        open: tokio::sync::watch::Receiver<bool>,
    }

    impl Backend for Gated {
        fn describe(&self) -> String {
            "gated".into()
        }
        fn store(&self) -> Arc<dyn crate::host::SharedStore> {
            self.inner.store()
        }
        fn create_run(&self, run: RunRecord) -> BoxFuture<'static, state::StateResult<()>> {
            self.inner.create_run(run)
        }
        fn record(&self, event: RunEvent) -> BoxFuture<'static, state::StateResult<()>> {
            let applied = self.inner.record(event);
            let mut open = self.open.clone();
            Box::pin(async move {
                let _ = open.wait_for(|o| *o).await;
                applied.await
            })
        }
        passes_the_rest_to_inner!();
    }

    /// A runner (one worker) on a [`Gated`] backend (gate closed) for the endpoint of `steps`,
    /// and a resumable run `r1` of it.
    fn gated(
        steps: &str,
    ) -> (
        tokio::sync::watch::Sender<bool>,
        Arc<dyn Backend>,
        Arc<Runner>,
        Arc<Run>,
    ) {
        let (dir, config) = config_in_temp_dir(steps);
        std::fs::remove_dir_all(&dir).unwrap();
        let config = Arc::new(config);
        let (gate, open) = tokio::sync::watch::channel(false);
        let backend: Arc<dyn Backend> = Arc::new(Gated {
            inner: crate::state::memory::MemoryBackend::new(),
            open,
        });
        let runner = Runner::new(backend.clone(), 1, Arc::new(RwLock::new(config.clone())));
        let run = Arc::new(Run::new(
            config.endpoints[0].clone(),
            "r1".into(),
            config.store.clone(),
            config.server.timezone,
            crate::listener::webhook::client_with_roots(rustls::RootCertStore::empty()),
            runner.clone(),
            None,
            None,
        ));
        assert!(run.resumable);
        (gate, backend, runner, run)
    }

    /// Polls the journal until run `r1` satisfies `done` (at most 5 s).
    async fn until(backend: &Arc<dyn Backend>, what: &str, done: impl Fn(&RunRecord) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rec = backend.get_run("r1").await.expect("journaled");
            if done(&rec) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {rec:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Two `store` steps, the second reading the first's value.
    const TWO_STORE_STEPS: &str =
        "[[endpoint.step]]\nid = \"a\"\ntype = \"store\"\nname = \"x\"\nvalue = \"1\"\n\
         [[endpoint.step]]\nid = \"b\"\nparent = \"a\"\ntype = \"store\"\nname = \"y\"\n\
         expression = \"__data.x ~ '2'\"\n";

    /// `store` steps act only on `__data`: an activation of them (here a run resumed from the
    /// journal, whose leading steps were not run before it was journaled) goes through every
    /// step and gives its worker back without waiting for one commit; its writes are all
    /// journaled, in order, and the activation ends once they are committed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_steps_do_not_wait_for_their_checkpoints() {
        let (gate, backend, runner, run) = gated(TWO_STORE_STEPS);
        let mut rec = new_record(
            &run,
            "fp".into(),
            state::now_ms(),
            Some(runner.owner.clone()),
        );
        rec.data = json!({"q": 1});
        backend.create_run(rec.clone()).await.unwrap();
        runner.resume(rec, false);
        // No commit has been acknowledged: with a wait per checkpoint, step b would never start.
        until(&backend, "the run ends with the gate closed", |r| {
            r.status == RunStatus::Succeeded
        })
        .await;
        let rec = backend.get_run("r1").await.unwrap();
        let cp = |id: &str| rec.step(id).and_then(|s| s.checkpoint.clone()).unwrap();
        assert_eq!(cp("a").set, vec![("x".to_string(), json!("1"))]);
        assert_eq!(cp("b").set, vec![("y".to_string(), json!("12"))]);
        assert_eq!(runner.gauges().running, 0, "the worker is free");
        assert!(runner.workers.available_permits() == 1);
        gate.send(true).unwrap();
    }

    /// A new run nobody waits for whose steps all only change `__data` runs them before it is
    /// journaled, and is journaled finished: its creation is its only write (not gated here:
    /// no other write is made, no activation starts, no worker is taken).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_of_store_steps_is_journaled_finished_at_its_creation() {
        let (_gate, backend, runner, run) = gated(TWO_STORE_STEPS);
        let before = state::now_ms();
        let handle = runner
            .start(run, Value::from(&json!({"q": 1})), "fp")
            .await
            .expect("accepted");
        assert!(handle.is_none(), "nothing runs after the answer");
        let rec = backend.get_run("r1").await.unwrap();
        assert_eq!(rec.status, RunStatus::Succeeded);
        assert_eq!(
            rec.data,
            json!({"q": 1}),
            "the request data, not the steps' __data"
        );
        assert!(rec.started.is_some_and(|t| t >= before));
        assert!(rec.finished >= rec.started && rec.created == rec.started.unwrap());
        assert_eq!(rec.error, None);
        let ids: Vec<_> = rec.steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let cp = |id: &str| rec.step(id).and_then(|s| s.checkpoint.clone()).unwrap();
        assert_eq!(cp("a").set, vec![("x".to_string(), json!("1"))]);
        assert_eq!(cp("b").set, vec![("y".to_string(), json!("12"))]);
        assert!(rec
            .steps
            .iter()
            .all(|s| s.status == StepStatus::Succeeded && s.finished >= s.started));
        let g = runner.gauges();
        assert_eq!((g.running, g.queued), (0, 0));
        assert!(runner.active().is_empty());
    }

    /// A leading step that fails is left to the activation, which runs it again after the
    /// answer and fails the run with its error, while a sibling branch (here a `log` step, which
    /// acts outside `__data`) still runs; a store step calling `incrementAndGet` is left to
    /// the activation too (its script cannot write the store before the run is journaled), and
    /// increments the counter once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_leading_step_fails_the_run_after_its_other_branches() {
        let (gate, backend, runner, run) = gated(
            "[[endpoint.step]]\nid = \"bad\"\ntype = \"store\"\nname = \"x\"\n\
             expression = \"1 / 0\"\n\
             [[endpoint.step]]\nid = \"say\"\nparent = \"\"\ntype = \"log\"\n\
             message = \"hi\"\n\
             [[endpoint.step]]\nid = \"count\"\nparent = \"\"\ntype = \"store\"\n\
             name = \"n\"\nexpression = \"incrementAndGet('hits')\"\n",
        );
        gate.send(true).unwrap();
        let store = run.store.clone();
        let handle = runner
            .start(run, Value::from(&json!({"q": 1})), "fp")
            .await
            .expect("accepted")
            .expect("the log step runs in an activation");
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the activation ends")
            .unwrap();
        until(&backend, "the run ended", |r| r.status.is_final()).await;
        let rec = backend.get_run("r1").await.unwrap();
        assert_eq!(rec.status, RunStatus::Failed);
        assert!(
            rec.error
                .as_deref()
                .unwrap_or("")
                .starts_with("step \"bad\" failed:"),
            "{:?}",
            rec.error
        );
        assert_eq!(rec.step("bad").map(|s| s.status), Some(StepStatus::Failed));
        assert_eq!(
            rec.step("say").map(|s| s.status),
            Some(StepStatus::Succeeded)
        );
        let count = rec
            .step("count")
            .and_then(|s| s.checkpoint.clone())
            .unwrap();
        assert_eq!(count.set, vec![("n".to_string(), json!(1))]);
        assert_eq!(store.get("hits"), Some(Value::Int(1)), "incremented once");
    }

    /// A backend counting its writes: (creations, single events, `record_all` calls and the
    /// events they carried).
    struct Counting {
        inner: crate::state::memory::MemoryBackend,
        writes: Mutex<(usize, usize, Vec<usize>)>,
    }

    impl Backend for Counting {
        fn describe(&self) -> String {
            "counting".into()
        }
        fn store(&self) -> Arc<dyn crate::host::SharedStore> {
            self.inner.store()
        }
        fn create_run(&self, run: RunRecord) -> BoxFuture<'static, state::StateResult<()>> {
            self.writes.lock().unwrap().0 += 1;
            self.inner.create_run(run)
        }
        fn record(&self, event: RunEvent) -> BoxFuture<'static, state::StateResult<()>> {
            self.writes.lock().unwrap().1 += 1;
            self.inner.record(event)
        }
        fn record_all(&self, events: Vec<RunEvent>) -> BoxFuture<'static, state::StateResult<()>> {
            self.writes.lock().unwrap().2.push(events.len());
            self.inner.record_all(events)
        }
        passes_the_rest_to_inner!();
    }

    /// A run of `store` and `condition` steps is journaled as one write, before the answer: its
    /// creation, holding every step (with its checkpoint, a condition's branch) and its final
    /// status (docs/state.md, "Leading steps").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_of_store_and_condition_steps_is_one_write() {
        let (dir, config) = config_in_temp_dir(
            "[[endpoint.step]]\nid = \"a\"\ntype = \"store\"\nname = \"x\"\nvalue = \"1\"\n\
             [[endpoint.step]]\nid = \"c\"\nparent = \"a\"\ntype = \"condition\"\n\
             left = \"{{ __data.x }}\"\noperator = \"equal\"\nright = \"1\"\n\
             [[endpoint.step]]\nid = \"b\"\nparent = \"c\"\nbranch = \"yes\"\ntype = \"store\"\n\
             name = \"y\"\nexpression = \"__data.x ~ '2'\"\n",
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let config = Arc::new(config);
        let counting = Arc::new(Counting {
            inner: crate::state::memory::MemoryBackend::new(),
            writes: Mutex::new((0, 0, Vec::new())),
        });
        let backend: Arc<dyn Backend> = counting.clone();
        let runner = Runner::new(backend.clone(), 1, Arc::new(RwLock::new(config.clone())));
        let run = Arc::new(Run::new(
            config.endpoints[0].clone(),
            "r1".into(),
            config.store.clone(),
            config.server.timezone,
            crate::listener::webhook::client_with_roots(rustls::RootCertStore::empty()),
            runner.clone(),
            None,
            None,
        ));
        let handle = runner
            .start(run, Value::from(&json!({"q": 1})), "fp")
            .await
            .expect("accepted");
        assert!(handle.is_none(), "no activation");
        // The creation, holding the three steps and the final status; nothing else.
        assert_eq!(*counting.writes.lock().unwrap(), (1, 0, vec![]));
        let rec = backend.get_run("r1").await.unwrap();
        assert_eq!(rec.status, RunStatus::Succeeded);
        assert!(rec.started.is_some());
        let cp = |id: &str| rec.step(id).and_then(|s| s.checkpoint.clone()).unwrap();
        assert_eq!(cp("a").set, vec![("x".to_string(), json!("1"))]);
        assert_eq!(cp("c").branch, Some(true));
        assert_eq!(cp("b").set, vec![("y".to_string(), json!("12"))]);
    }

    /// A `webhook` after `store` steps is sent only once everything the run journaled before it
    /// is committed (so after a crash it runs again, if at all, on the same `__data`), and
    /// with the `__data` those steps made.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_webhook_after_store_steps_waits_for_their_commit() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (sent, mut received) = mpsc::unbounded_channel::<String>();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let mut text = String::new();
                while !text.contains("x=1;y=12") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
                    }
                }
                let _ = sent.send(text);
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        let (gate, backend, runner, run) = gated(&format!(
            "[[endpoint.step]]\nid = \"a\"\ntype = \"store\"\nname = \"x\"\nvalue = \"1\"\n\
             [[endpoint.step]]\nid = \"b\"\nparent = \"a\"\ntype = \"store\"\nname = \"y\"\n\
             expression = \"__data.x ~ '2'\"\n\
             [[endpoint.step]]\nid = \"w\"\nparent = \"b\"\ntype = \"webhook\"\n\
             url = \"http://{addr}/hook\"\nbody = \"x={{{{ __data.x }}}};y={{{{ __data.y }}}}\"\n"
        ));
        let handle = runner
            .start(run, Value::from(&json!({"q": 1})), "fp")
            .await
            .expect("accepted")
            .expect("the webhook runs in an activation");
        // The store steps ran before the creation; the webhook has started and waits.
        until(
            &backend,
            "both store steps done, the webhook started",
            |r| {
                r.step("b")
                    .is_some_and(|s| s.status == StepStatus::Succeeded)
                    && r.step("w").is_some()
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            received.try_recv().is_err(),
            "the webhook was sent before the store steps were committed"
        );
        gate.send(true).unwrap();
        let request = tokio::time::timeout(Duration::from_secs(5), received.recv())
            .await
            .expect("the webhook is sent once they are committed")
            .unwrap();
        assert!(request.contains("x=1;y=12"), "{request}");
        assert!(
            request
                .to_ascii_lowercase()
                .contains("idempotency-key: r1.w"),
            "{request}"
        );
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the activation ends")
            .unwrap();
        until(&backend, "the run succeeded", |r| {
            r.status == RunStatus::Succeeded
        })
        .await;
    }

    #[test]
    fn frontier_follows_branches_siblings_and_checkpoints() {
        let s = |id: &str, extra: &str| {
            format!("[[endpoint.step]]\nid = \"{id}\"\ntype = \"store\"\nname = \"{id}\"\nvalue = \"1\"\n{extra}\n")
        };
        let ep = endpoint(&format!(
            "[[endpoint.step]]\nid = \"c\"\ntype = \"condition\"\nleft = \"1\"\noperator = \"equal\"\nright = \"1\"\n{}{}{}{}{}{}",
            s("yes1", "parent = \"c\"\nbranch = \"yes\""),
            s("no1", "parent = \"c\"\nbranch = \"no\""),
            s("a", "parent = \"yes1\""),
            s("b", "parent = \"yes1\""),
            s("a2", "parent = \"a\""),
            s("other_root", "parent = \"\""),
        ));
        let mut rec = RunRecord::new(
            "r".into(),
            "e".into(),
            String::new(),
            String::new(),
            String::new(),
            true,
            json!({"req": 1}),
            0,
            None,
        );
        rec.steps = vec![
            done("c", &[], Some(true)),
            done("yes1", &[("x.y", json!(1))], None),
            done("a", &[("only_a", json!("A"))], None),
            step("b", StepStatus::Running),
            step("other_root", StepStatus::Failed),
        ];
        let f = frontier(&ep, &rec);
        let names: Vec<_> = f.iter().map(|(i, _)| ep.steps[*i].id.as_str()).collect();
        assert_eq!(
            names,
            ["a2", "b"],
            "the no branch and the failed root stay out"
        );
        let data = |n: usize| f[n].1.to_json();
        assert_eq!(data(0), json!({"req": 1, "x": {"y": 1}, "only_a": "A"}));
        assert_eq!(
            data(1),
            json!({"req": 1, "x": {"y": 1}}),
            "a sibling's writes are invisible"
        );
        let b = ep.steps.iter().position(|s| s.id == "b").unwrap();
        assert_eq!(data_for(&ep, &rec, b).unwrap().to_json(), data(1));
        // Nothing done yet: the roots, on the request data.
        rec.steps.clear();
        let roots: Vec<_> = frontier(&ep, &rec)
            .iter()
            .map(|(i, _)| ep.steps[*i].id.clone())
            .collect();
        assert_eq!(roots, ["c", "other_root"]);
    }
}
