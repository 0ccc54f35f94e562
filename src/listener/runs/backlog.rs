//! The bounded in-memory run queue (docs/state.md "Workers and the backlog").
//!
//! At most [`Runner::queue_bound`] activations wait for a worker in memory: a place is
//! *reserved* in the `queued` count before a run is journaled. A run accepted beyond the bound
//! (and that no request waits for) is journaled *unowned*: it waits only in the journal and
//! holds nothing in memory but a counter (and its credential headers, which the journal never
//! stores). It is *claimed* back ([`crate::state::Backend::claim`], which takes every backend's owner-less
//! `queued` runs, and on Redis expired leases too) in batches when the queue has room again:
//! each time an activation ends, and every `CLAIM_EVERY` (which also catches any owner-less
//! run the `backlog` count missed). At start, recovery leaves owner-less runs in the journal
//! (`more` is set): they are claimed the same way, never all loaded at once.
//!
//! Invariants: a place reserved in `queued` is given back exactly once (by the activation
//! taking a worker, or on every path where no activation follows); a committed run owned by
//! this process always gets an activation (`Runner::start` commits and activates in a task of
//! its own, so a request that goes away meanwhile cannot strand it).

use super::Runner;
use crate::state::{self, RunRecord, StateError};
use crate::Value;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

/// In-memory queue bound: this many activations waiting per worker, and at least
/// [`MIN_QUEUE`].
pub(super) const QUEUE_PER_WORKER: usize = 8;
/// The smallest in-memory queue bound.
pub(super) const MIN_QUEUE: usize = 64;

/// Credential headers of one run, kept in memory while it waits in the backlog.
pub(super) type Secrets = Vec<(String, serde_json::Value)>;

impl Runner {
    pub(super) fn held(&self) -> MutexGuard<'_, HashMap<String, Secrets>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts back the credential headers of a run claimed from the backlog.
    pub(super) fn restore_held(&self, rec: &mut RunRecord) {
        let Some(secrets) = self.held().remove(&rec.id) else {
            return;
        };
        if let Some(headers) = rec
            .data
            .get_mut("__headers")
            .and_then(serde_json::Value::as_object_mut)
        {
            for (k, v) in secrets {
                headers.insert(k, v);
            }
        }
    }

    /// Claims queued runs from the journal while the in-memory queue has room (in batches
    /// of at least a quarter of the bound). Only with `force` (the periodic chore) when this
    /// process has no backlog: runs retried from the CLI are unowned and queued too.
    pub(super) fn refill(self: &Arc<Self>, force: bool) {
        if !wants_claim(self, force) || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            let mut force = force;
            loop {
                let seen = me.backlog.load(Ordering::Relaxed);
                let room = me.reserve(room_of(&me));
                if room == 0 {
                    me.refilling.store(false, Ordering::Release);
                    return;
                }
                me.claiming.fetch_add(room, Ordering::Relaxed);
                let backend = me.backend.clone();
                let owner = me.owner.clone();
                // The SQLite backend claims inside the call: off the async threads.
                let claimed =
                    match tokio::task::spawn_blocking(move || backend.claim(&owner, room)).await {
                        Ok(f) => f.await,
                        Err(e) => Err(StateError::Unavailable(e.to_string())),
                    };
                // `claiming` drops only after `queued` gave back the unused places, so a new
                // request never sees the queue fuller than it is.
                let runs = match claimed {
                    Ok(runs) => runs,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim queued runs");
                        me.queued.fetch_sub(room, Ordering::Relaxed);
                        me.claiming.fetch_sub(room, Ordering::Relaxed);
                        me.refilling.store(false, Ordering::Release);
                        return;
                    }
                };
                let got = runs.len();
                me.more.store(got == room, Ordering::Relaxed);
                // Every backlog run counted in `seen` was committed before this claim: when
                // fewer than asked came back, none of them is left unclaimed.
                let done = if got < room { seen } else { got.min(seen) };
                let _ = me
                    .backlog
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                        Some(b.saturating_sub(done))
                    });
                me.queued.fetch_sub(room - got.min(room), Ordering::Relaxed);
                me.claiming.fetch_sub(room, Ordering::Relaxed);
                for mut rec in runs {
                    me.restore_held(&mut rec);
                    me.resume_counted(rec, false, true);
                }
                force = force && got == room;
                me.refilling.store(false, Ordering::Release);
                if !wants_claim(&me, force) || me.refilling.swap(true, Ordering::AcqRel) {
                    return;
                }
            }
        });
    }

    /// Takes up to `n` places in the in-memory queue (fewer at the bound); returns how many.
    pub(super) fn reserve(&self, n: usize) -> usize {
        match self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.bound).then(|| q + n.min(self.bound - q))
            }) {
            Ok(q) => n.min(self.bound - q),
            Err(_) => 0,
        }
    }

    /// Takes a place in the in-memory queue for a new run, if there is one. Places held for a
    /// claim in progress do not count: a claim takes the whole room while it runs (usually
    /// finding little or nothing), and new requests must not spill into the journal meanwhile.
    /// So the queue may pass the bound by at most one claim batch.
    pub(super) fn reserve_one(&self) -> bool {
        let claiming = self.claiming.load(Ordering::Acquire);
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                (q < self.bound + claiming).then_some(q + 1)
            })
            .is_ok()
    }
}

fn room_of(r: &Runner) -> usize {
    r.bound.saturating_sub(r.queued.load(Ordering::Relaxed))
}

/// A claim is worth it: something may be in the journal (`force`, or a backlog) and the
/// in-memory queue has room for a batch (a quarter of the bound).
fn wants_claim(r: &Runner, force: bool) -> bool {
    (force || r.backlog.load(Ordering::Relaxed) > 0 || r.more.load(Ordering::Relaxed))
        && room_of(r) >= (r.bound / 4).max(1)
}

/// The credential headers of `data` (removed from the journal's copy), to keep in memory
/// while the run waits in the backlog.
pub(super) fn secret_headers(data: &Value) -> Secrets {
    let Value::Map(m) = data else {
        return Vec::new();
    };
    let Some(Value::Map(h)) = m.get("__headers") else {
        return Vec::new();
    };
    state::record::SECRET_HEADERS
        .iter()
        .filter_map(|k| h.get(*k).map(|v| (k.to_string(), v.to_json())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::Runner;
    use crate::listener::workflow::Run;
    use crate::state::{
        self, sqlite::SqliteBackend, Backend, Durability, RunFilter, RunRecord, RunStatus,
    };
    use crate::Value;
    use std::sync::{Arc, RwLock};
    use std::time::{Duration, Instant};

    /// How many runs of `status` the journal holds (at most 1000).
    async fn count(backend: &Arc<dyn Backend>, status: Option<RunStatus>) -> usize {
        let page = backend
            .list_runs(RunFilter {
                status,
                limit: 1000,
                ..RunFilter::default()
            })
            .await
            .expect("list runs");
        page.runs.len()
    }

    /// A configuration with one `data` endpoint of two `store` steps, and a SQLite journal, in
    /// a fresh temp dir.
    /// Two store steps: a new run of them is journaled finished at once (no activation).
    const STORE_STEPS: &str = "[[endpoint.step]]\nid = \"a\"\ntype = \"store\"\nname = \"x\"\nvalue = \"1\"\n\
         [[endpoint.step]]\nid = \"b\"\nparent = \"a\"\ntype = \"store\"\nname = \"y\"\nvalue = \"2\"\n";
    /// A `log` step, then the two store steps: a new run of them waits for a worker.
    const LOG_FIRST: &str = "[[endpoint.step]]\nid = \"l\"\ntype = \"log\"\nmessage = \"m\"\n\
         [[endpoint.step]]\nid = \"a\"\nparent = \"l\"\ntype = \"store\"\nname = \"x\"\nvalue = \"1\"\n\
         [[endpoint.step]]\nid = \"b\"\nparent = \"a\"\ntype = \"store\"\nname = \"y\"\nvalue = \"2\"\n";

    fn setup() -> (
        std::path::PathBuf,
        Arc<crate::listener::config::Config>,
        Arc<dyn Backend>,
    ) {
        setup_with(STORE_STEPS)
    }

    fn setup_with(
        steps: &str,
    ) -> (
        std::path::PathBuf,
        Arc<crate::listener::config::Config>,
        Arc<dyn Backend>,
    ) {
        let (dir, config) = super::super::tests::config_in_temp_dir(steps);
        let config = Arc::new(config);
        let backend: Arc<dyn Backend> =
            Arc::new(SqliteBackend::open(&dir.join("state.db"), Durability::Normal).unwrap());
        (dir, config, backend)
    }

    /// Requests whose future is dropped while their run commits (hyper drops a request's
    /// future when its client disconnects): every run is journaled, and every one of them must
    /// still run and finish. Before `start` committed and activated in a task of its own, such
    /// a run stayed `queued`, owned by the server, until a restart, and its reserved place in
    /// the queue was never given back (past the bound, the backlog then stalled too). Both for
    /// runs with an activation (a `log` step first) and for runs journaled finished at once
    /// (store steps only: no task of their own).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_of_requests_that_went_away_during_the_commit_all_finish() {
        for steps in [LOG_FIRST, STORE_STEPS] {
            went_away(steps).await;
        }
    }

    async fn went_away(steps: &str) {
        const RUNS: usize = 300;
        let (dir, config, backend) = setup_with(steps);
        let ep = config.endpoints[0].clone();
        let runner = Runner::new(backend.clone(), 1, Arc::new(RwLock::new(config.clone())));
        assert!(runner.queue_bound() < RUNS, "past the bound too");
        runner.recover().await.expect("recover");
        for i in 0..RUNS {
            let run = Arc::new(Run::new(
                ep.clone(),
                format!("run-{i:04}"),
                config.store.clone(),
                config.server.timezone,
                config.client.clone(),
                runner.clone(),
                None,
                None,
            ));
            let data = Value::from(&serde_json::json!({"n": i}));
            // One poll, then the future is dropped: the client went away.
            let _ = tokio::time::timeout(Duration::ZERO, runner.start(run, data, "fp")).await;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let total = count(&backend, None).await;
            let done = count(&backend, Some(RunStatus::Succeeded)).await;
            let g = runner.gauges();
            if total == RUNS && done == RUNS && (g.queued, g.running, g.backlog) == (0, 0, 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {total} journaled runs succeeded ({RUNS} accepted); \
                 {} queued, {} running in the journal; gauges {g:?}",
                count(&backend, Some(RunStatus::Queued)).await,
                count(&backend, Some(RunStatus::Running)).await,
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(runner);
        drop(backend);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The backlog an earlier process left in the journal (owner-less queued runs) is not
    /// loaded at start: recovery leaves it, and the runner claims it in batches that never pass
    /// the in-memory bound, until every run has finished.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlog_left_in_the_journal_is_claimed_in_batches_after_a_start() {
        const RUNS: usize = 400;
        let (dir, config, backend) = setup();
        let ep = &config.endpoints[0];
        for i in 0..RUNS {
            let rec = RunRecord::new(
                format!("left-{i:04}"),
                ep.name.clone(),
                ep.first_hash.clone(),
                ep.second_hash.clone(),
                "fp".into(),
                true,
                serde_json::json!({"n": i}),
                state::now_ms(),
                None,
            );
            backend.create_run(rec).await.expect("journal");
        }
        let runner = Runner::new(backend.clone(), 1, Arc::new(RwLock::new(config.clone())));
        let bound = runner.queue_bound();
        assert!(bound * 4 <= RUNS);
        assert_eq!(
            runner.recover().await.expect("recover"),
            0,
            "nothing loaded"
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut most = 0;
        loop {
            let g = runner.gauges();
            most = most.max(g.queued + g.running);
            let done = count(&backend, Some(RunStatus::Succeeded)).await;
            if done == RUNS && (g.queued, g.running) == (0, 0) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{done} of {RUNS} succeeded; {g:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            most <= 2 * bound + 1,
            "{most} runs in memory, bound {bound}"
        );
        drop(runner);
        drop(backend);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
