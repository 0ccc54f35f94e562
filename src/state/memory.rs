//! `[server] state = "memory"`: the journal and the shared store in this process only. Nothing
//! survives a restart; runs still go through the same journal path as on SQLite.

use super::{
    Backend, Retention, RetryFrom, RunEvent, RunFilter, RunPage, RunRecord, RunStatus, StateError,
    StateResult,
};
use crate::host::{MemoryStore, SharedStore};
use futures_util::future::{BoxFuture, FutureExt};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Default)]
struct Journal {
    /// Insertion number → run (newest = largest).
    runs: BTreeMap<u64, RunRecord>,
    ids: HashMap<String, u64>,
    next: u64,
}

/// The in-process backend.
pub struct MemoryBackend {
    store: Arc<MemoryStore>,
    journal: Mutex<Journal>,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl MemoryBackend {
    /// An empty journal and store.
    pub fn new() -> MemoryBackend {
        MemoryBackend {
            store: Arc::new(MemoryStore::new()),
            journal: Mutex::new(Journal::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Journal> {
        // Every update leaves the maps consistent: a poisoned lock is still usable.
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: &str) -> StateResult<RunRecord> {
        let j = self.lock();
        j.ids
            .get(id)
            .and_then(|n| j.runs.get(n))
            .cloned()
            .ok_or(StateError::NotFound)
    }
}

fn ready<T: Send + 'static>(v: T) -> BoxFuture<'static, T> {
    futures_util::future::ready(v).boxed()
}

/// The runs of `runs` (newest first) matching `filter`, as a page.
pub(crate) fn page<'a>(
    runs: impl Iterator<Item = (u64, &'a RunRecord)>,
    filter: &RunFilter,
) -> RunPage {
    let before = filter.before.as_deref().and_then(|c| c.parse::<u64>().ok());
    let limit = filter.clamped_limit();
    let mut out = Vec::new();
    let mut next = None;
    for (n, r) in runs {
        if before.is_some_and(|b| n >= b)
            || filter.endpoint.as_ref().is_some_and(|e| *e != r.endpoint)
            || filter.status.is_some_and(|s| s != r.status)
        {
            continue;
        }
        if out.len() == limit {
            next = Some((n + 1).to_string());
            break;
        }
        out.push(r.summary());
    }
    RunPage { runs: out, next }
}

impl Backend for MemoryBackend {
    fn describe(&self) -> String {
        "memory".into()
    }

    fn store(&self) -> Arc<dyn SharedStore> {
        self.store.clone()
    }

    fn create_run(&self, run: RunRecord) -> BoxFuture<'static, StateResult<()>> {
        let mut j = self.lock();
        let n = j.next;
        j.next += 1;
        j.ids.insert(run.id.clone(), n);
        j.runs.insert(n, run);
        ready(Ok(()))
    }

    fn record(&self, event: RunEvent) -> BoxFuture<'static, StateResult<()>> {
        let run = match &event {
            RunEvent::Status { run, .. }
            | RunEvent::StepStarted { run, .. }
            | RunEvent::StepWaiting { run, .. }
            | RunEvent::StepSucceeded { run, .. }
            | RunEvent::StepFailed { run, .. } => run.clone(),
        };
        let mut j = self.lock();
        let result = match j.ids.get(&run).copied() {
            Some(n) => {
                if let Some(r) = j.runs.get_mut(&n) {
                    r.apply(&event);
                }
                Ok(())
            }
            None => Err(StateError::NotFound),
        };
        ready(result)
    }

    fn recover(&self, owner: &str, _now: i64) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        // A fresh memory backend has no unfinished runs of an earlier process; this only
        // claims what is unfinished now (used after a reload keeps the same backend).
        let mut j = self.lock();
        let mut out = Vec::new();
        for r in j.runs.values_mut() {
            if r.status.is_final() || (r.status == RunStatus::Queued && r.owner.is_none()) {
                // Owner-less queued runs (the backlog) are left for `claim`.
                continue;
            }
            if !r.resumable {
                r.status = RunStatus::Interrupted;
                r.finished = Some(super::now_ms());
                r.error = Some("interrupted by a restart".into());
                continue;
            }
            r.owner = Some(owner.to_string());
            r.attempt = r.attempt.saturating_add(1);
            out.push(r.clone());
        }
        ready(Ok(out))
    }

    fn claim(&self, owner: &str, limit: usize) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        let mut j = self.lock();
        let mut out = Vec::new();
        for r in j.runs.values_mut() {
            if out.len() >= limit {
                break;
            }
            if r.status == RunStatus::Queued && r.owner.is_none() {
                r.owner = Some(owner.to_string());
                out.push(r.clone());
            }
        }
        ready(Ok(out))
    }

    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'static, StateResult<RunPage>> {
        let j = self.lock();
        let p = page(j.runs.iter().rev().map(|(n, r)| (*n, r)), &filter);
        ready(Ok(p))
    }

    fn get_run(&self, id: &str) -> BoxFuture<'static, StateResult<RunRecord>> {
        ready(self.get(id))
    }

    fn retry_run(&self, id: &str, from: RetryFrom) -> BoxFuture<'static, StateResult<RunRecord>> {
        let mut j = self.lock();
        let result = match j.ids.get(id).copied().and_then(|n| j.runs.get_mut(&n)) {
            None => Err(StateError::NotFound),
            Some(r) => r.requeue(from).map(|()| r.clone()),
        };
        ready(result)
    }

    fn purge(&self, retention: Retention, now: i64) -> BoxFuture<'static, StateResult<u64>> {
        let cutoff = now.saturating_sub((retention.days as i64).saturating_mul(86_400_000));
        let mut j = self.lock();
        let mut per_endpoint: HashMap<String, u64> = HashMap::new();
        let mut doomed = Vec::new();
        for (n, r) in j.runs.iter().rev() {
            if !r.status.is_final() {
                continue;
            }
            let kept = per_endpoint.entry(r.endpoint.clone()).or_default();
            if r.finished.unwrap_or(r.created) < cutoff || *kept >= retention.max_per_endpoint {
                doomed.push((*n, r.id.clone()));
            } else {
                *kept += 1;
            }
        }
        for (n, id) in &doomed {
            j.runs.remove(n);
            j.ids.remove(id);
        }
        ready(Ok(doomed.len() as u64))
    }
}
