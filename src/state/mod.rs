//! The listener's state backend (docs/state.md): the run journal and the shared store of
//! `set_memory` / `memoryGet` / `incrementAndGet`, behind one trait, [`Backend`].
//!
//! Two implementations: [`memory::MemoryBackend`] (in-process, nothing survives a restart) and
//! [`sqlite::SqliteBackend`] (an embedded SQLite file in WAL mode, the default). The trait is
//! shaped for a backend shared by several processes too: a run is executed by the process that
//! [claimed](Backend::claim) it, every write is an asynchronous, acknowledged operation, and the
//! journal holds everything needed to continue a run elsewhere (the request data and one
//! checkpoint per finished step).
//!
//! Engine-free: this module uses the engine's [`SharedStore`] trait and [`Value`] only.

mod json_text;
pub mod memory;
pub mod record;
pub mod redis;
pub mod sqlite;
// SQLite's VFS is a C interface: the crate's one module with `unsafe` code (src/lib.rs).
#[allow(unsafe_code)]
mod wal_vfs;

pub use record::{
    Checkpoint, RunFilter, RunPage, RunRecord, RunStatus, RunSummary, StepRecord, StepStatus,
};

use crate::host::SharedStore;
use futures_util::future::BoxFuture;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An error of the state backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateError {
    /// The backend cannot be written or read now (disk full, read-only file, backend down):
    /// endpoints that need it answer 503 with `Retry-After`.
    Unavailable(String),
    /// No run with that id.
    NotFound,
    /// The run is in a state that does not allow the operation (retry of a running run: 409).
    Conflict(String),
    /// A stored record cannot be read back (an error for that run, never a crash).
    Corrupt(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Unavailable(m) => write!(f, "state backend unavailable: {m}"),
            StateError::NotFound => write!(f, "no such run"),
            StateError::Conflict(m) => write!(f, "{m}"),
            StateError::Corrupt(m) => write!(f, "corrupt run record: {m}"),
        }
    }
}

impl std::error::Error for StateError {}

/// Result of a backend operation.
pub type StateResult<T> = Result<T, StateError>;

/// Where a retried run starts again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryFrom {
    /// From its failed (or interrupted) steps: finished steps keep their checkpoints.
    Failed,
    /// From the first step: every step record is dropped.
    Start,
}

/// A change to a run already in the journal. Times are milliseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum RunEvent {
    /// The run's status changed (`running`, `waiting`, `succeeded`, `failed`, `interrupted`).
    /// `at` is the start time for `running`, the finish time for final statuses.
    Status {
        /// The run's id.
        run: String,
        /// The new status.
        status: RunStatus,
        /// When.
        at: i64,
        /// Why a run failed.
        error: Option<String>,
    },
    /// A step began (or began again after a resume).
    StepStarted {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// The step's type.
        kind: String,
        /// When.
        at: i64,
    },
    /// A step waits for its `delay_ms` until `due` (the run holds no task meanwhile).
    StepWaiting {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// The step's type.
        kind: String,
        /// When it runs.
        due: i64,
    },
    /// A step finished; `checkpoint` holds the `__data` changes it made.
    StepSucceeded {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// When.
        at: i64,
        /// The `__data` changes of the step.
        checkpoint: Checkpoint,
    },
    /// A step failed with `error` (its branch stops).
    StepFailed {
        /// The run's id.
        run: String,
        /// The step's id.
        step: String,
        /// When.
        at: i64,
        /// Why.
        error: String,
    },
}

impl RunEvent {
    /// The id of the run the event belongs to.
    pub fn run(&self) -> &str {
        match self {
            RunEvent::Status { run, .. }
            | RunEvent::StepStarted { run, .. }
            | RunEvent::StepWaiting { run, .. }
            | RunEvent::StepSucceeded { run, .. }
            | RunEvent::StepFailed { run, .. } => run,
        }
    }
}

/// Retention of finished runs (`[server] history_days`, `history_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Finished runs older than this many days are purged.
    pub days: u64,
    /// At most this many finished runs are kept per endpoint (the newest).
    pub max_per_endpoint: u64,
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            days: 7,
            max_per_endpoint: 10_000,
        }
    }
}

/// The run journal and the shared store. Every method may be called from any thread; the
/// futures of writes resolve once the change is durable (committed), so a caller that awaits
/// [`Backend::create_run`] before answering keeps the promise of docs/state.md.
///
/// A write ([`Backend::create_run`], [`Backend::record`]) is queued by the call itself (its
/// future need not be polled for the change to be made), and the writes of one run are applied
/// in the order of the calls: once a write's future resolves `Ok`, every earlier write of that
/// run was applied too (or its own future reports why not). The runner relies on it: a step
/// that acts outside `__data` waits for its start record only (src/listener/workflow.rs).
pub trait Backend: Send + Sync {
    /// A short description for logs and errors (`sqlite:/path/state.db`, `memory`).
    fn describe(&self) -> String;

    /// The shared store of `set_memory` / `memoryGet` / `incrementAndGet`.
    fn store(&self) -> Arc<dyn SharedStore>;

    /// Journals a new run (status `queued`, claimed by `run.owner`); resolves once committed.
    fn create_run(&self, run: RunRecord) -> BoxFuture<'static, StateResult<()>>;

    /// [`Backend::create_run`] of a run accepted for a request whose `__data` is `data`:
    /// journals `run` with `data` as its request data, without the credential headers
    /// ([`record::journal_data`]); `run.data` is not used. The default converts `data` that way
    /// and calls [`Backend::create_run`]. The SQLite backend writes the same JSON text
    /// straight from `data` ([`record::journal_text`]), on the caller's thread rather than the
    /// journal writer's, with no `serde_json::Value` in between.
    fn create_request_run(
        &self,
        run: RunRecord,
        data: &crate::Value,
    ) -> BoxFuture<'static, StateResult<()>> {
        self.create_run(record::with_request_data(run, data))
    }

    /// Records a change to a run; resolves once committed.
    fn record(&self, event: RunEvent) -> BoxFuture<'static, StateResult<()>>;

    /// Records several changes of one run, in order, as one write (the runner's buffered
    /// events of a run: its `running` mark, steps and final status); resolves once all are
    /// committed. The SQLite and Redis backends apply them atomically (one transaction, one
    /// script call), so a crash leaves all of them or none (docs/state.md, "What a crash can
    /// re-run"). The default queues each with [`Backend::record`] and waits for all.
    fn record_all(&self, events: Vec<RunEvent>) -> BoxFuture<'static, StateResult<()>> {
        let all: Vec<_> = events.into_iter().map(|e| self.record(e)).collect();
        Box::pin(async move {
            let mut first = Ok(());
            for f in all {
                let r = f.await;
                if first.is_ok() {
                    first = r;
                }
            }
            first
        })
    }

    /// At the start of a serving process (`owner`): runs that cannot resume (sync `continue`,
    /// `sse`) and were left unfinished become `interrupted`; every other unfinished run that
    /// had an owner is claimed by `owner`, its attempt count raised by one, and returned to be
    /// continued. Owner-less `queued` runs (never started: the backlog, retried runs) are left
    /// for [`Backend::claim`], so a large backlog is not loaded into memory at once.
    fn recover(&self, owner: &str, now: i64) -> BoxFuture<'static, StateResult<Vec<RunRecord>>>;

    /// Claims up to `limit` `queued` runs that no process owns (retried runs) for `owner`.
    fn claim(&self, owner: &str, limit: usize) -> BoxFuture<'static, StateResult<Vec<RunRecord>>>;

    /// Runs, newest first, filtered by endpoint and status, after the cursor `before`.
    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'static, StateResult<RunPage>>;

    /// One run's whole record (request data, steps with timing, checkpoints and errors).
    fn get_run(&self, id: &str) -> BoxFuture<'static, StateResult<RunRecord>>;

    /// Queues a `failed` or `interrupted` run again (unowned, so a serving process claims
    /// it); [`StateError::Conflict`] for any other status. Returns the updated record.
    fn retry_run(&self, id: &str, from: RetryFrom) -> BoxFuture<'static, StateResult<RunRecord>>;

    /// Gives run `id` back after its process could not journal part of what it did (a write
    /// failed: disk full, read-only file): an unfinished run becomes `queued` without an owner,
    /// its journaled steps kept, so a claim continues it after its last journaled step. A
    /// finished or unknown run is left alone. The default does nothing: a backend whose owner
    /// lets go otherwise (Redis: the lease runs out) or whose writes cannot fail (memory).
    fn release(&self, id: &str) -> BoxFuture<'static, StateResult<()>> {
        let _ = id;
        Box::pin(std::future::ready(Ok(())))
    }

    /// Purges finished runs beyond `retention` (older than `now - days`, or past the newest
    /// `max_per_endpoint` of their endpoint); returns how many were removed.
    fn purge(&self, retention: Retention, now: i64) -> BoxFuture<'static, StateResult<u64>>;
}

/// The `[server] durability` setting of a SQLite backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous = NORMAL` in WAL mode: survives a process crash (`kill -9`).
    #[default]
    Normal,
    /// `synchronous = FULL`: every commit reaches the disk (survives a power loss).
    Fsync,
}

/// A parsed `[server] state` / `--state` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateSpec {
    /// `memory`.
    Memory,
    /// `sqlite:PATH` (relative paths resolved against the configuration file's folder).
    Sqlite(PathBuf),
    /// `redis://…` / `rediss://…` (the URL as written; shown only with its password hidden).
    Redis(String),
}

/// The default `[server] state`.
pub const DEFAULT_STATE: &str = "sqlite:.flexscript/state.db";

impl StateSpec {
    /// Parses `value`; a relative SQLite path is resolved against `base`.
    pub fn parse(value: &str, base: &Path) -> Result<StateSpec, String> {
        let value = value.trim();
        if value == "memory" {
            return Ok(StateSpec::Memory);
        }
        if let Some(path) = value.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("`sqlite:` needs a file path (sqlite:PATH)".into());
            }
            let p = Path::new(path);
            return Ok(StateSpec::Sqlite(if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }));
        }
        if value.starts_with("redis://") || value.starts_with("rediss://") {
            let url = ::redis::IntoConnectionInfo::into_connection_info(value).map_err(|e| {
                format!(
                    "bad Redis URL `{}`: {}",
                    redis::redact(value),
                    e.to_string().replace(value, "…")
                )
            });
            url?;
            return Ok(StateSpec::Redis(value.to_string()));
        }
        Err(format!(
            "unknown state backend `{value}` (use `memory`, `sqlite:PATH` or `redis://HOST:PORT/DB`)"
        ))
    }

    /// Opens the backend for a serving process (takes ownership of a SQLite file).
    pub fn open(&self, durability: Durability) -> Result<Arc<dyn Backend>, String> {
        self.open_with(durability, redis::DEFAULT_LEASE_S, None)
    }

    /// [`StateSpec::open`] with the lease of a claimed run on Redis (`[server] lease_s`) and
    /// the PEM roots trusted for `rediss://` (`[server] redis_ca`; `None`: the built-in roots).
    pub fn open_with(
        &self,
        durability: Durability,
        lease_s: u64,
        redis_ca: Option<&[u8]>,
    ) -> Result<Arc<dyn Backend>, String> {
        match self {
            StateSpec::Redis(url) => redis::RedisBackend::open_with_ca(url, lease_s, redis_ca)
                .map(|b| Arc::new(b) as Arc<dyn Backend>),
            StateSpec::Memory => Ok(Arc::new(memory::MemoryBackend::new())),
            StateSpec::Sqlite(path) => sqlite::SqliteBackend::open(path, durability)
                .map(|b| Arc::new(b) as Arc<dyn Backend>),
        }
    }

    /// Opens the backend for a reader (the CLI): a SQLite file is not owned, so this works
    /// while a server runs. Writes (a retry) go through SQLite's own locking.
    pub fn open_reader(&self) -> Result<Arc<dyn Backend>, String> {
        self.open_reader_with(None)
    }

    /// [`StateSpec::open_reader`] trusting `redis_ca` for `rediss://` (`[server] redis_ca`).
    pub fn open_reader_with(&self, redis_ca: Option<&[u8]>) -> Result<Arc<dyn Backend>, String> {
        match self {
            StateSpec::Redis(url) => {
                redis::RedisBackend::open_with_ca(url, redis::DEFAULT_LEASE_S, redis_ca)
                    .map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
            StateSpec::Memory => Ok(Arc::new(memory::MemoryBackend::new())),
            StateSpec::Sqlite(path) => {
                sqlite::SqliteBackend::open_reader(path).map(|b| Arc::new(b) as Arc<dyn Backend>)
            }
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    crate::clock::now_millis()
}

#[cfg(test)]
mod tests;
