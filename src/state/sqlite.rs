//! `[server] state = "sqlite:PATH"` (the default): an embedded SQLite file in WAL mode.
//!
//! - **Group commit**: journal writes and shared-store writes go to one writer thread, which
//!   applies everything queued in one transaction and then acknowledges each write; a caller
//!   waits only for the commit that holds its write. If a transaction fails (disk full,
//!   read-only file), its writes are retried one by one so each gets its own answer.
//! - **Ownership**: a serving process holds an exclusive SQLite lock on `PATH.lock` for its
//!   lifetime and writes its pid to `PATH.pid`; a second serving process is refused with the
//!   file and that pid. The operating system drops the lock when the process dies, even on
//!   `kill -9`. Readers ([`SqliteBackend::open_reader`]) take no lock.
//! - **Shared store**: an in-memory copy ([`MemoryStore`], loaded at open) answers reads and
//!   keeps `incrementAndGet` atomic; every change is written through to the `store` table.

use super::record::{Checkpoint, RunRecord, RunStatus, StepRecord, StepStatus};
use super::wal_vfs;
use super::{
    Backend, Durability, Retention, RetryFrom, RunEvent, RunFilter, RunPage, StateError,
    StateResult,
};
use crate::error::Error;
use crate::host::{MemoryStore, SharedStore};
use crate::value::Value;
use futures_util::future::{BoxFuture, FutureExt};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most writes applied in one transaction.
const MAX_BATCH: usize = 1024;
/// How long at most the writer lets writes gather before a commit while writes keep coming
/// (the last batch held more than one): a commit's cost is mostly fixed (its WAL frames: a
/// page per table and index it touches), so under load more runs per commit is less CPU per
/// run, for at most this much more latency. The wait ends as soon as as many writes as the last
/// batch held are queued ([`Gather`]). A lone write (an idle server) is committed at once.
const LINGER: Duration = Duration::from_micros(500);
/// At most one checkpoint of the checkpointer ([`Checkpointer`]) per this interval.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(5);
/// WAL frames after which the writer checkpoints itself (SQLite's `wal_autocheckpoint`, 1000 by
/// default; a WAL file of up to 16 MiB with 4 KiB pages): the checkpointer has copied all but
/// the frames of the last [`CHECKPOINT_EVERY`], and the WAL file starts again from its
/// beginning at the next transaction.
const WRITER_CHECKPOINT_FRAMES: u32 = 4000;
/// Most runs purged in one transaction.
const PURGE_CHUNK: usize = 1000;
/// How long a connection waits for another writer's lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The statuses of an unfinished run, the rows of the partial index `runs_open`: a query uses
/// that index only when its `WHERE` holds this very term (SQLite's rule for partial indexes), so
/// every query for unfinished runs spells it out. Comparisons, not `status IN (…)`: SQLite
/// evaluates the index's condition for every row written, and an `IN` list of three builds a
/// temporary table each time a statement runs.
macro_rules! open_runs_term {
    () => {
        "(status = 'queued' OR status = 'running' OR status = 'waiting')"
    };
}

/// The tables and indexes, created when missing. Unfinished runs are indexed by status, the
/// finished history is not (nothing looks it up by status: the admin listing walks `seq`, the
/// purge walks `runs_endpoint`), so a run's end removes its index entry instead of adding one.
/// A file made before `runs_open` has `runs_status (status, seq)` over every run: it is dropped
/// (and `runs_open` built from the unfinished runs) when the file is opened.
///
/// `runs.seq` is the rowid, the largest one so far plus one for a new run, in files made by
/// this version; files made before have `AUTOINCREMENT` and keep it (changing it rebuilds the
/// table). Without it SQLite updates no `sqlite_sequence` row per insert (≈2,300 of a run's
/// instructions, 3 %); a `seq` can then be given again only after the run holding the largest
/// one was purged (every run finished and past retention: only a listing cursor from before
/// such a purge could then show later runs).
///
/// `runs.steps`: the steps a run was journaled with at its creation (its leading `store` /
/// `condition` steps, src/listener/workflow.rs `run_prefix`), as a JSON array of step records
/// in the run's own row — two rows of `steps` and two entries of its index fewer per run, about
/// a quarter of the writer's instructions per run of the durable benchmark (docs/state.md,
/// "Performance"). Steps journaled later are rows of `steps`; a row of a step also in the
/// array replaces it when the run is read ([`decode_run`]). A file made before the column has
/// it added when opened ([`add_steps_column`]).
const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    endpoint TEXT NOT NULL,
    first_hash TEXT NOT NULL,
    second_hash TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    resumable INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    created INTEGER NOT NULL,
    started INTEGER,
    finished INTEGER,
    error TEXT,
    data TEXT NOT NULL,
    owner TEXT,
    steps TEXT
);
CREATE INDEX IF NOT EXISTS runs_endpoint ON runs (endpoint, seq);
DROP INDEX IF EXISTS runs_status;
CREATE INDEX IF NOT EXISTS runs_open ON runs (status, seq) WHERE ",
    open_runs_term!(),
    ";
CREATE TABLE IF NOT EXISTS steps (
    run TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    started INTEGER,
    finished INTEGER,
    due INTEGER,
    error TEXT,
    checkpoint TEXT,
    UNIQUE (run, id)
);
CREATE TABLE IF NOT EXISTS store (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires INTEGER
);
"
);

/// Whether any run waits for a claim (owner-less and queued).
const ANY_CLAIMABLE: &str = concat!(
    "SELECT 1 FROM runs WHERE ",
    open_runs_term!(),
    " AND status = 'queued' AND owner IS NULL LIMIT 1"
);
/// A claim of up to `?2` owner-less queued runs for `?1`, oldest first ([`claim_in`] adds the
/// `RETURNING`).
const CLAIM: &str = concat!(
    "UPDATE runs SET owner = ?1 WHERE seq IN (SELECT seq FROM runs WHERE ",
    open_runs_term!(),
    " AND status = 'queued' AND owner IS NULL ORDER BY seq LIMIT ?2)"
);
/// Recovery: the unfinished runs that cannot resume are `interrupted` at `?1`...
const RECOVER_INTERRUPT: &str = concat!(
    "UPDATE runs SET status = 'interrupted', finished = ?1,
     error = 'interrupted: the server stopped during the run' WHERE resumable = 0 AND ",
    open_runs_term!()
);
/// ...the others that had an owner are taken by `?1`...
const RECOVER_TAKE: &str = concat!(
    "UPDATE runs SET owner = ?1, attempt = attempt + 1 WHERE ",
    open_runs_term!(),
    " AND (status IN ('running', 'waiting') OR (status = 'queued' AND owner IS NOT NULL))"
);
/// ...and read back, oldest first.
const RECOVER_IDS: &str = concat!(
    "SELECT id FROM runs WHERE owner = ?1 AND ",
    open_runs_term!(),
    " ORDER BY seq"
);

/// One queued write.
enum Op {
    /// A new run and the JSON text of its request data (made by the caller: its `data` is
    /// not read).
    Create {
        run: Box<RunRecord>,
        data: String,
        /// The text of the run's steps for `runs.steps` (see [`SCHEMA`]), made by the caller
        /// too ([`create_op`]): `run.steps` is then empty.
        steps: Option<String>,
    },
    Event(RunEvent),
    /// Several events of one run, applied in order in the same transaction
    /// ([`Backend::record_all`]).
    Events(Vec<RunEvent>),
    StoreSet {
        name: String,
        value: String,
        expires: Option<i64>,
    },
    StoreDel(String),
    /// A claim of owner-less queued runs ([`Backend::claim`]), made by the writer so that it
    /// never waits for (nor holds up) the journal's write lock; the runs are sent once the
    /// claim is committed.
    Claim {
        owner: String,
        limit: usize,
        runs: Mutex<Option<oneshot::Sender<StateResult<Vec<RunRecord>>>>>,
        claimed: Mutex<Vec<RunRecord>>,
    },
}

struct Job {
    op: Op,
    ack: Option<oneshot::Sender<StateResult<()>>>,
}

/// The writer's queue: the channel and the count that lets the writer stop lingering early.
#[derive(Clone)]
struct Queue {
    tx: mpsc::Sender<Job>,
    gather: Arc<Gather>,
}

impl Queue {
    /// Queues `job`; false when the writer has stopped.
    fn send(&self, job: Job) -> bool {
        let sent = self.tx.send(job).is_ok();
        self.gather.sent();
        sent
    }
}

/// How a batch gathers. Under load the writer waits for as many writes as its last batch held
/// (the load's own rhythm: with C requests in flight that each wait for their commit, C writes
/// come, then nothing until their answers are out), at most [`LINGER`]: waiting a fixed time
/// instead left the process idle once every waiting write was queued — MySQL's
/// `binlog_group_commit_sync_no_delay_count` bounds its group-commit delay the same way, with a
/// fixed count (docs/state.md, "Performance"). Producers count their writes; the one that
/// reaches the count the writer waits for wakes it, once per batch (a wake per write would be a
/// context switch per write).
struct Gather {
    /// Writes queued so far.
    sent: AtomicU64,
    /// The `sent` count the writer waits for (`u64::MAX`: it is not waiting).
    wake_at: AtomicU64,
    /// The writer's thread (set when it starts).
    writer: OnceLock<std::thread::Thread>,
}

impl Gather {
    fn new() -> Gather {
        Gather {
            sent: AtomicU64::new(0),
            wake_at: AtomicU64::new(u64::MAX),
            writer: OnceLock::new(),
        }
    }

    /// A write was queued.
    fn sent(&self) {
        let n = self.sent.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.wake_at.load(Ordering::SeqCst) {
            if let Some(t) = self.writer.get() {
                t.unpark();
            }
        }
    }

    /// On the writer's thread: waits until `count` writes have been queued in all, or until
    /// `deadline`.
    fn wait_for(&self, count: u64, deadline: Instant) {
        self.wake_at.store(count, Ordering::SeqCst);
        // (Re-read after the store: a write that reached `count` before it woke nobody.)
        while self.sent.load(Ordering::SeqCst) < count {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
        }
        self.wake_at.store(u64::MAX, Ordering::SeqCst);
    }
}

/// The SQLite backend.
pub struct SqliteBackend {
    path: PathBuf,
    writer: Mutex<Option<Queue>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Queries and the rare multi-row updates (recover, claim, retry, purge).
    reader: Mutex<Connection>,
    store: Arc<SqliteStore>,
    /// Held for the process lifetime: the ownership lock.
    _owner: Option<Mutex<Connection>>,
}

fn sql_err(path: &Path, e: rusqlite::Error) -> String {
    format!("state file {}: {e}", path.display())
}

fn unavailable(e: rusqlite::Error) -> StateError {
    StateError::Unavailable(e.to_string())
}

/// Opens (creating) the database at `path` with the pragmas of `durability`.
fn connect(path: &Path, durability: Durability) -> Result<Connection, String> {
    connect_with(path, durability, None)
}

/// [`connect`] for the journal writer: through the WAL shim (src/state/wal_vfs.rs), which
/// writes each of its transactions to the WAL file in one system call.
fn connect_writer(path: &Path, durability: Durability) -> Result<Connection, String> {
    wal_vfs::register().map_err(|e| format!("state file {}: {e}", path.display()))?;
    connect_with(path, durability, Some(wal_vfs::NAME))
}

fn connect_with(
    path: &Path,
    durability: Durability,
    vfs: Option<&str>,
) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match vfs {
        Some(vfs) => Connection::open_with_flags_and_vfs(path, flags, vfs),
        None => Connection::open_with_flags(path, flags),
    }
    .map_err(|e| sql_err(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| sql_err(path, e))?;
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Fsync => "FULL",
    };
    // journal_mode reads the header first: a file that is not a database fails here.
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(|e| sql_err(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "state file {}: cannot switch to WAL mode (journal mode is {mode})",
            path.display()
        ));
    }
    conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))
        .map_err(|e| sql_err(path, e))?;
    Ok(conn)
}

/// Takes the ownership lock of `path` for this process, or names the owner.
fn take_ownership(path: &Path) -> Result<Connection, String> {
    let lock_path = with_suffix(path, ".lock");
    let pid_path = with_suffix(path, ".pid");
    let conn = Connection::open(&lock_path).map_err(|e| sql_err(&lock_path, e))?;
    conn.busy_timeout(Duration::from_millis(200))
        .map_err(|e| sql_err(&lock_path, e))?;
    let taken = conn.execute_batch(
        "PRAGMA locking_mode = EXCLUSIVE;
         BEGIN EXCLUSIVE;
         CREATE TABLE IF NOT EXISTS owner (pid INTEGER);
         DELETE FROM owner;
         COMMIT;",
    );
    match taken {
        Ok(()) => {
            let _ = std::fs::write(&pid_path, format!("{}\n", std::process::id()));
            Ok(conn)
        }
        Err(rusqlite::Error::SqliteFailure(f, _))
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            let pid = std::fs::read_to_string(&pid_path)
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into());
            Err(format!(
                "state file {} is in use by another flexscript serve (pid {pid})",
                path.display()
            ))
        }
        Err(e) => Err(sql_err(&lock_path, e)),
    }
}

/// Adds `runs.steps` to a file made before it (see [`SCHEMA`]): `ALTER TABLE … ADD COLUMN` only
/// changes the table's definition, the rows are not rewritten.
fn add_steps_column(conn: &Connection) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('runs') WHERE name = 'steps')",
        [],
        |r| r.get(0),
    )?;
    if !has {
        conn.execute_batch("ALTER TABLE runs ADD COLUMN steps TEXT")?;
    }
    Ok(())
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

impl SqliteBackend {
    /// Opens `path` for a serving process: creates the folder and the file, takes
    /// ownership, checks the file is a readable database, loads the shared store.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteBackend, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create the folder {}: {e}", dir.display()))?;
        }
        let owner = take_ownership(path)?;
        let mut backend = SqliteBackend::open_inner(path, durability, true)?;
        backend._owner = Some(Mutex::new(owner));
        Ok(backend)
    }

    /// Opens an existing `path` without taking ownership (the CLI's reader).
    pub fn open_reader(path: &Path) -> Result<SqliteBackend, String> {
        if !path.exists() {
            return Err(format!("state file {} does not exist", path.display()));
        }
        SqliteBackend::open_inner(path, Durability::Normal, false)
    }

    /// `checkpointer`: whether the writer gets a [`Checkpointer`] (a serving process; the CLI
    /// commits a few writes at most and leaves checkpoints to the writer, as SQLite does).
    fn open_inner(
        path: &Path,
        durability: Durability,
        checkpointer: bool,
    ) -> Result<SqliteBackend, String> {
        let writer = connect_writer(path, durability)?;
        writer.execute_batch(SCHEMA).map_err(|e| sql_err(path, e))?;
        add_steps_column(&writer).map_err(|e| sql_err(path, e))?;
        let reader = connect(path, durability)?;
        let mem = MemoryStore::new();
        load_store(&reader, &mem, super::now_ms()).map_err(|e| sql_err(path, e))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let tx = Queue {
            tx,
            gather: Arc::new(Gather::new()),
        };
        let gather = tx.gather.clone();
        // Without its own connection the writer checkpoints alone, as SQLite does by default.
        let checkpoints = checkpointer
            .then(|| connect(path, durability).ok())
            .flatten();
        let thread = std::thread::Builder::new()
            .name("flexscript-journal".into())
            .spawn(move || {
                let checkpointer = checkpoints.and_then(Checkpointer::start);
                writer_loop(writer, rx, &gather, checkpointer.as_ref());
            })
            .map_err(|e| format!("cannot start the journal writer: {e}"))?;
        Ok(SqliteBackend {
            path: path.to_path_buf(),
            writer: Mutex::new(Some(tx.clone())),
            thread: Mutex::new(Some(thread)),
            reader: Mutex::new(reader),
            store: Arc::new(SqliteStore {
                mem,
                tx: Mutex::new(tx),
            }),
            _owner: None,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn reader(&self) -> MutexGuard<'_, Connection> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn submit(&self, op: Op) -> BoxFuture<'static, StateResult<()>> {
        let (ack, rx) = oneshot::channel();
        let sent = match &*self.writer.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(Job { op, ack: Some(ack) }),
            None => false,
        };
        async move {
            if !sent {
                return Err(StateError::Unavailable("the journal writer stopped".into()));
            }
            rx.await.unwrap_or_else(|_| {
                Err(StateError::Unavailable("the journal writer stopped".into()))
            })
        }
        .boxed()
    }
}

impl Drop for SqliteBackend {
    fn drop(&mut self) {
        // Close both senders (the store may outlive the backend: it gets a closed one), let
        // the writer drain its queue and close its connection.
        if let Ok(mut w) = self.writer.lock() {
            w.take();
        }
        let (closed, _) = mpsc::channel();
        if let Ok(mut s) = self.store.tx.lock() {
            *s = Queue {
                tx: closed,
                gather: Arc::new(Gather::new()),
            };
        }
        if let Some(h) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = h.join();
        }
    }
}

fn load_store(conn: &Connection, mem: &MemoryStore, now: i64) -> rusqlite::Result<()> {
    let mut stmt = conn
        .prepare("SELECT name, value, expires FROM store WHERE expires IS NULL OR expires > ?1")?;
    let rows = stmt.query_map(params![now], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    for row in rows {
        let (name, text, expires) = row?;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            tracing::warn!(name = %name, "shared store: unreadable stored value skipped");
            continue;
        };
        match expires {
            None => {
                if let Some(n) = json.as_i64() {
                    let _ = mem.increment(&name, n);
                }
            }
            Some(t) => {
                let ttl = Duration::from_millis((t - now).max(1) as u64);
                mem.set(&name, Value::from(json), ttl);
            }
        }
    }
    Ok(())
}

/// The writer's connection with its most frequent statements held prepared for its lifetime,
/// found by the address of their SQL text: rusqlite's statement cache (`prepare_cached`) hashes
/// the whole text twice per execution (lookup and return), which showed as 1.5 % of the
/// server's CPU in the durable benchmark (docs/state.md, "Performance"). Other statements go
/// through that cache (`Deref` to the connection).
struct Writes<'c> {
    conn: &'c Connection,
    held: std::cell::RefCell<Vec<(&'static str, rusqlite::Statement<'c>)>>,
}

impl<'c> Writes<'c> {
    fn new(conn: &'c Connection) -> Writes<'c> {
        Writes {
            conn,
            held: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// Executes `sql` (a string literal: its address is its key) with `p`.
    fn exec(&self, sql: &'static str, p: impl rusqlite::Params) -> rusqlite::Result<usize> {
        let mut held = self.held.borrow_mut();
        let i = match held.iter().position(|(s, _)| std::ptr::eq(*s, sql)) {
            Some(i) => i,
            None => {
                held.push((sql, self.conn.prepare(sql)?));
                held.len() - 1
            }
        };
        held[i].1.execute(p)
    }
}

impl std::ops::Deref for Writes<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

fn writer_loop(
    conn: Connection,
    rx: mpsc::Receiver<Job>,
    gather: &Gather,
    checkpointer: Option<&Checkpointer>,
) {
    let _ = gather.writer.set(std::thread::current());
    if checkpointer.is_some() {
        let _ = conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_FRAMES}"
        ));
    }
    let w = Writes::new(&conn);
    // Writes received so far (the writer's side of `gather.sent`).
    let mut taken: u64 = 0;
    let drain = |batch: &mut Vec<Job>, taken: &mut u64| {
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => {
                    batch.push(j);
                    *taken += 1;
                }
                Err(_) => break,
            }
        }
    };
    // The size of the last batch when it held more than one write (writes keep coming: the
    // next commit waits for as many, at most LINGER; docs/state.md, "Performance"), else 0.
    let mut expect = 0;
    while let Ok(first) = rx.recv() {
        taken += 1;
        let mut batch = vec![first];
        drain(&mut batch, &mut taken);
        if batch.len() < expect {
            gather.wait_for(
                taken + (expect - batch.len()) as u64,
                Instant::now() + LINGER,
            );
            drain(&mut batch, &mut taken);
        }
        expect = if batch.len() > 1 { batch.len() } else { 0 };
        let together = (|| {
            // (Unchecked: `w` holds statements of `conn`; no transaction is ever nested.)
            let tx = conn.unchecked_transaction()?;
            apply_batch(&w, &batch)?;
            tx.commit()
        })();
        match together {
            Ok(()) => {
                if let Some(c) = checkpointer {
                    c.committed();
                }
                for j in batch {
                    claimed(&j.op, Ok(()));
                    if let Some(a) = j.ack {
                        let _ = a.send(Ok(()));
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = batch.len(), "journal commit failed; retrying each write alone");
                for j in batch {
                    let one = (|| {
                        let tx = conn.unchecked_transaction()?;
                        apply(&w, &j.op)?;
                        tx.commit()
                    })();
                    if let Err(e) = &one {
                        tracing::error!(error = %e, "journal write failed");
                    }
                    let one = one.map_err(unavailable);
                    claimed(&j.op, one.clone());
                    if let Some(a) = j.ack {
                        let _ = a.send(one);
                    }
                }
            }
        }
    }
}

/// A thread with its own connection that copies committed WAL frames into the database
/// (`PRAGMA wal_checkpoint(PASSIVE)`) after commits, at most once per [`CHECKPOINT_EVERY`], so
/// that the writer's own checkpoints — SQLite runs one in the committing thread once the WAL
/// holds [`WRITER_CHECKPOINT_FRAMES`] — find almost nothing left to copy. A checkpoint copies pages
/// and syncs the WAL and the database file (with `synchronous = NORMAL` too); done by the
/// writer, every answer waiting for a commit waited for those syncs as well (docs/state.md,
/// "Performance"). A passive checkpoint never waits for the writer, nor the writer for it.
///
/// The writer's checkpoints stay: only a checkpoint that copies every frame lets SQLite start
/// the WAL file again from its beginning, and under steady writes only the writer, between two
/// of its transactions, sees a WAL with no frame newer than its checkpoint.
struct Checkpointer {
    /// The writer committed since the checkpointer last looked.
    committed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(conn: Connection) -> Option<Checkpointer> {
        let committed = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (committed.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("flexscript-ckpt".into())
            .spawn(move || {
                while !s.load(Ordering::Acquire) {
                    if !c.swap(false, Ordering::AcqRel) {
                        // Idle: woken by the next commit (or the stop).
                        std::thread::park();
                        continue;
                    }
                    // (Busy when the writer checkpoints at that moment: the next round copies.)
                    if let Err(e) =
                        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0))
                    {
                        tracing::debug!(error = %e, "journal checkpoint");
                    }
                    // At most one checkpoint per interval (a sleep: commits do not cut it short).
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            })
            .ok()?;
        Some(Checkpointer {
            committed,
            stop,
            thread: Some(thread),
        })
    }

    /// The writer committed (an `unpark` of a thread that is not parked is one atomic swap).
    fn committed(&self) {
        self.committed.store(true, Ordering::Release);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// What one write of a batch becomes.
#[derive(Clone, Copy)]
enum Planned {
    /// Applied as it is.
    Alone,
    /// Folded into a later write of the same row (nothing of it is written on its own).
    Folded,
    /// A run's status change that also carries the earlier status changes of the run in this
    /// batch: `started` is the start time of the first `running` among them.
    Status { started: Option<i64> },
    /// A step's end (succeeded or failed) that also carries its start, made in this batch
    /// (the write at that index).
    StepEnd { start: usize },
}

/// Applies a batch's writes in one transaction, folding the writes of one row that the same
/// batch overwrites: the batch is committed (or not) as a whole, so the file ends in the same
/// state as with every write applied in turn, with fewer statements (docs/state.md,
/// "Performance"). A step's start followed by its end becomes one row write; a run's status
/// changes become one update (the last status, the first start time); of the writes of one
/// shared-store name only the last is applied. Runs, steps and the store are different tables,
/// so folding a row's writes never reorders writes of one row.
fn apply_batch(tx: &Writes<'_>, batch: &[Job]) -> rusqlite::Result<()> {
    apply_flat(tx, &flatten(batch.iter().map(|j| &j.op)))
}

/// One write of a batch with the events of [`Op::Events`] taken one by one.
#[derive(Clone, Copy)]
enum Flat<'a> {
    Event(&'a RunEvent),
    Other(&'a Op),
}

fn flatten<'a>(ops: impl Iterator<Item = &'a Op>) -> Vec<Flat<'a>> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Event(e) => out.push(Flat::Event(e)),
            Op::Events(es) => out.extend(es.iter().map(Flat::Event)),
            op => out.push(Flat::Other(op)),
        }
    }
    out
}

fn apply_flat(tx: &Writes<'_>, ops: &[Flat<'_>]) -> rusqlite::Result<()> {
    let plan = plan(ops);
    for (op, p) in ops.iter().zip(&plan) {
        match (*p, *op) {
            (Planned::Folded, _) => {}
            (_, Flat::Other(op)) => apply(tx, op)?,
            (Planned::Alone, Flat::Event(e)) => apply_event(tx, e)?,
            (
                Planned::Status { started },
                Flat::Event(RunEvent::Status {
                    run,
                    status,
                    at,
                    error,
                }),
            ) => status_update(tx, run, *status, *at, error.as_deref(), started)?,
            (Planned::StepEnd { start }, Flat::Event(end)) => {
                let Flat::Event(RunEvent::StepStarted { kind, at, .. }) = ops[start] else {
                    apply_event(tx, end)?;
                    continue;
                };
                step_done(tx, end, kind, *at)?;
            }
            (_, Flat::Event(e)) => apply_event(tx, e)?,
        }
    }
    Ok(())
}

/// The maps of [`plan`] keyed by run and step ids: FxHash's mixing step (src/compile/ir.rs,
/// `NameHasher`) instead of std's SipHash, sized for the batch at once. Their keys are the
/// server's own run ids and the configuration's step ids, so flooding resistance buys nothing,
/// while SipHash and the maps' regrowth took ≈4,700 of the writer's instructions per durable
/// run under callgrind (docs/state.md, "Performance"). Shared-store names, which templates
/// make, stay in a std `HashSet`.
type Keyed<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<crate::compile::ir::NameHasher>>;

fn keyed<K, V>(capacity: usize) -> Keyed<K, V> {
    Keyed::with_capacity_and_hasher(capacity, Default::default())
}

/// The plan of a batch (see [`apply_batch`]), one entry per write.
fn plan(ops: &[Flat<'_>]) -> Vec<Planned> {
    let mut plan = vec![Planned::Alone; ops.len()];
    // Walking backwards: the next status change of each run, the next event of each step.
    let mut next_status: Keyed<&str, usize> = keyed(ops.len());
    let mut next_step: Keyed<(&str, &str), usize> = keyed(ops.len());
    let mut status_after = vec![None; ops.len()];
    let mut step_after = vec![None; ops.len()];
    // And the shared-store names written later in the batch: a store write (`set_memory`,
    // `incrementAndGet`) sets or deletes its whole row, so of one name's writes in a batch only
    // the last is seen once the batch is committed; the earlier ones are folded (not written).
    let mut stored_later: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            Flat::Event(RunEvent::Status { run, .. }) => {
                status_after[i] = next_status.insert(run.as_str(), i);
            }
            Flat::Event(e) => {
                if let Some(key) = step_key(e) {
                    step_after[i] = next_step.insert(key, i);
                }
            }
            Flat::Other(Op::StoreSet { name, .. } | Op::StoreDel(name)) => {
                if !stored_later.insert(name.as_str()) {
                    plan[i] = Planned::Folded;
                }
            }
            Flat::Other(_) => {}
        }
    }
    // Forward: a status change followed by another of its run is folded into it (carrying
    // the first start time); a step start whose next event ends the step is folded into it.
    let mut started: Keyed<&str, i64> = keyed(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let Flat::Event(e) = op else { continue };
        match e {
            RunEvent::Status {
                run,
                status,
                at,
                error,
            } => {
                if *status == RunStatus::Running {
                    started.entry(run.as_str()).or_insert(*at);
                }
                // A later final status overwrites everything this one wrote but the start
                // time; a later non-final one keeps this one's finish time and error (a final
                // status, or an error given), so only a plain non-final status folds into it.
                let foldable = |j: usize| {
                    let later_final = matches!(
                        ops[j],
                        Flat::Event(RunEvent::Status { status, .. }) if status.is_final()
                    );
                    later_final || (!status.is_final() && error.is_none())
                };
                if status_after[i].is_some_and(foldable) {
                    plan[i] = Planned::Folded;
                } else if let Some(s) = started.get(run.as_str()) {
                    plan[i] = Planned::Status { started: Some(*s) };
                }
            }
            RunEvent::StepStarted { .. } => {
                if let Some(j) = step_after[i] {
                    if matches!(
                        ops[j],
                        Flat::Event(RunEvent::StepSucceeded { .. } | RunEvent::StepFailed { .. })
                    ) {
                        plan[i] = Planned::Folded;
                        plan[j] = Planned::StepEnd { start: i };
                    }
                }
            }
            _ => {}
        }
    }
    plan
}

fn step_key(e: &RunEvent) -> Option<(&str, &str)> {
    match e {
        RunEvent::Status { .. } => None,
        RunEvent::StepStarted { run, step, .. }
        | RunEvent::StepWaiting { run, step, .. }
        | RunEvent::StepSucceeded { run, step, .. }
        | RunEvent::StepFailed { run, step, .. } => Some((run.as_str(), step.as_str())),
    }
}

/// A run's status change. `started`: the start time of a `running` folded into it (kept only
/// if the run has none yet, as that `running` would have).
fn status_update(
    tx: &Writes<'_>,
    run: &str,
    status: RunStatus,
    at: i64,
    error: Option<&str>,
    started: Option<i64>,
) -> rusqlite::Result<()> {
    if status.is_final() {
        tx.exec(
            "UPDATE runs SET status = ?2, finished = ?3, error = ?4,
             started = COALESCE(started, ?5) WHERE id = ?1",
            params![run, status.as_str(), at, error, started],
        )?;
    } else {
        // (`plan` folds no error-carrying status into a non-final one.)
        let at = if status == RunStatus::Running {
            Some(at)
        } else {
            None
        };
        tx.exec(
            "UPDATE runs SET status = ?2, started = COALESCE(started, ?5, ?3),
             error = COALESCE(?4, error) WHERE id = ?1",
            params![run, status.as_str(), at, error, started],
        )?;
    }
    Ok(())
}

/// A step's start and end (`end`: succeeded or failed) as one row write.
fn step_done(tx: &Writes<'_>, end: &RunEvent, kind: &str, started: i64) -> rusqlite::Result<()> {
    let (run, step, status, at, error, checkpoint) = match end {
        RunEvent::StepSucceeded {
            run,
            step,
            at,
            checkpoint,
        } => (
            run,
            step,
            StepStatus::Succeeded,
            at,
            None,
            Some(checkpoint.to_text()),
        ),
        RunEvent::StepFailed {
            run,
            step,
            at,
            error,
        } => (run, step, StepStatus::Failed, at, Some(error), None),
        _ => return apply_event(tx, end),
    };
    tx.exec(
        "INSERT INTO steps (run, id, kind, status, started, finished, due, error, checkpoint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7, ?8)
         ON CONFLICT (run, id) DO UPDATE SET kind = excluded.kind, status = excluded.status,
         started = excluded.started, finished = excluded.finished, error = excluded.error,
         checkpoint = excluded.checkpoint",
        params![
            run,
            step,
            kind,
            status.as_str(),
            started,
            at,
            error,
            checkpoint
        ],
    )?;
    Ok(())
}

/// The creation of `run` with `data` (its request data's text): the texts of its row are made
/// here, on the caller's thread — a request's run journaled with the steps it ran first
/// (src/listener/workflow.rs, `run_prefix`), or a whole record, has its steps in its row (see
/// [`SCHEMA`]); the step records are dropped here too, not by the writer.
fn create_op(mut run: RunRecord, data: String) -> Op {
    let steps = (!run.steps.is_empty()).then(|| {
        let mut text = String::with_capacity(160 * run.steps.len());
        super::json_text::steps(&mut text, &run.steps);
        run.steps = Vec::new();
        text
    });
    Op::Create {
        run: Box::new(run),
        data,
        steps,
    }
}

fn apply(tx: &Writes<'_>, op: &Op) -> rusqlite::Result<()> {
    match op {
        Op::Create {
            run: r,
            data,
            steps,
        } => {
            tx.exec(
                "INSERT INTO runs (id, endpoint, first_hash, second_hash, fingerprint, resumable,
                 status, attempt, created, started, finished, error, data, owner, steps)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    r.id,
                    r.endpoint,
                    r.first_hash,
                    r.second_hash,
                    r.config_fingerprint,
                    r.resumable,
                    r.status.as_str(),
                    r.attempt,
                    r.created,
                    r.started,
                    r.finished,
                    r.error,
                    data,
                    r.owner,
                    steps,
                ],
            )?;
        }
        Op::Event(e) => apply_event(tx, e)?,
        Op::Events(es) => {
            let ops: Vec<Flat<'_>> = es.iter().map(Flat::Event).collect();
            apply_flat(tx, &ops)?;
        }
        Op::StoreSet {
            name,
            value,
            expires,
        } => {
            tx.exec(
                "INSERT INTO store (name, value, expires) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value, expires = excluded.expires",
                params![name, value, expires],
            )?;
        }
        Op::StoreDel(name) => {
            tx.prepare_cached("DELETE FROM store WHERE name = ?1")?
                .execute(params![name])?;
        }
        Op::Claim {
            owner,
            limit,
            claimed,
            ..
        } => {
            let runs = claim_in(tx, owner, *limit)?;
            *claimed.lock().unwrap_or_else(|e| e.into_inner()) = runs;
        }
    }
    Ok(())
}

/// Sends a committed claim's runs (or the commit's error) to the claimer.
fn claimed(op: &Op, result: StateResult<()>) {
    if let Op::Claim { runs, claimed, .. } = op {
        let taken = std::mem::take(&mut *claimed.lock().unwrap_or_else(|e| e.into_inner()));
        if let Some(tx) = runs.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(result.map(|()| taken));
        }
    }
}

/// Claims up to `limit` owner-less queued runs for `owner`, oldest first, in one statement;
/// returns them whole. A run whose record cannot be read is marked failed instead.
fn claim_in(tx: &Writes<'_>, owner: &str, limit: usize) -> rusqlite::Result<Vec<RunRecord>> {
    let rows = tx
        .prepare_cached(&format!("{CLAIM} RETURNING {RUN_COLUMNS}"))?
        .query_map(params![owner, limit as i64], run_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    let mut rows = rows;
    // RETURNING gives no order: oldest first, as claimed.
    rows.sort_by_key(|r| r.seq);
    for row in rows {
        let id = row.record.id.clone();
        match decode_run(tx, row) {
            Ok(r) => out.push(r),
            Err(StateError::Corrupt(m)) => {
                tracing::error!(run_id = %id, error = %m, "unreadable run marked failed");
                tx.execute(
                    "UPDATE runs SET status = 'failed', finished = ?2, error = ?3 WHERE id = ?1",
                    params![id, super::now_ms(), format!("corrupt run record: {m}")],
                )?;
            }
            Err(e) => {
                return Err(rusqlite::Error::ToSqlConversionFailure(
                    e.to_string().into(),
                ))
            }
        }
    }
    Ok(out)
}

fn apply_event(tx: &Writes<'_>, e: &RunEvent) -> rusqlite::Result<()> {
    let upsert =
        "INSERT INTO steps (run, id, kind, status, started, finished, due, error, checkpoint)
                  VALUES (?1, ?2, ?3, ?4, ?5, NULL, ?6, NULL, NULL)
                  ON CONFLICT (run, id) DO UPDATE SET";
    match e {
        RunEvent::Status {
            run,
            status,
            at,
            error,
        } => {
            let sql = if status.is_final() {
                "UPDATE runs SET status = ?2, finished = ?3, error = ?4 WHERE id = ?1"
            } else {
                "UPDATE runs SET status = ?2, started = COALESCE(started, ?3),
                 error = COALESCE(?4, error) WHERE id = ?1"
            };
            let at = if *status == RunStatus::Running || status.is_final() {
                Some(*at)
            } else {
                None
            };
            tx.prepare_cached(sql)?
                .execute(params![run, status.as_str(), at, error])?;
        }
        RunEvent::StepStarted {
            run,
            step,
            kind,
            at,
        } => {
            tx.prepare_cached(&format!(
                "{upsert} kind = excluded.kind, status = excluded.status, started = excluded.started,
                 finished = NULL, error = NULL, checkpoint = NULL"
            ))?
            .execute(params![run, step, kind, StepStatus::Running.as_str(), at, None::<i64>])?;
        }
        RunEvent::StepWaiting {
            run,
            step,
            kind,
            due,
        } => {
            tx.prepare_cached(&format!(
                "{upsert} kind = excluded.kind, status = excluded.status, due = excluded.due"
            ))?
            .execute(params![
                run,
                step,
                kind,
                StepStatus::Waiting.as_str(),
                None::<i64>,
                due
            ])?;
        }
        RunEvent::StepSucceeded {
            run,
            step,
            at,
            checkpoint,
        } => {
            // (A step never started — not made by the runner — gets its end all the same.)
            tx.prepare_cached(
                "INSERT INTO steps (run, id, kind, status, started, finished, due, error, checkpoint)
                 VALUES (?1, ?2, '', ?3, NULL, ?4, NULL, NULL, ?5)
                 ON CONFLICT (run, id) DO UPDATE SET status = excluded.status,
                 finished = excluded.finished, checkpoint = excluded.checkpoint",
            )?
            .execute(params![
                run,
                step,
                StepStatus::Succeeded.as_str(),
                at,
                checkpoint.to_text()
            ])?;
        }
        RunEvent::StepFailed {
            run,
            step,
            at,
            error,
        } => {
            tx.prepare_cached(
                "INSERT INTO steps (run, id, kind, status, started, finished, due, error, checkpoint)
                 VALUES (?1, ?2, '', ?3, NULL, ?4, NULL, ?5, NULL)
                 ON CONFLICT (run, id) DO UPDATE SET status = excluded.status,
                 finished = excluded.finished, error = excluded.error",
            )?
            .execute(params![run, step, StepStatus::Failed.as_str(), at, error])?;
        }
    }
    Ok(())
}

const RUN_COLUMNS: &str =
    "seq, id, endpoint, first_hash, second_hash, fingerprint, resumable, status,
    attempt, created, started, finished, error, data, owner, steps";

/// A `runs` row, its data still text (decoded by [`decode_run`]).
struct RunRow {
    seq: i64,
    record: RunRecord,
    status: String,
    data: String,
    /// `runs.steps` (see [`SCHEMA`]).
    steps: Option<String>,
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let status: String = r.get(7)?;
    Ok(RunRow {
        seq: r.get(0)?,
        status: status.clone(),
        data: r.get(13)?,
        steps: r.get(15)?,
        record: RunRecord {
            id: r.get(1)?,
            endpoint: r.get(2)?,
            first_hash: r.get(3)?,
            second_hash: r.get(4)?,
            config_fingerprint: r.get(5)?,
            resumable: r.get(6)?,
            status: RunStatus::parse(&status).unwrap_or(RunStatus::Failed),
            attempt: r.get(8)?,
            created: r.get(9)?,
            started: r.get(10)?,
            finished: r.get(11)?,
            error: r.get(12)?,
            data: serde_json::Value::Null,
            steps: Vec::new(),
            owner: r.get(14)?,
        },
    })
}

/// Completes a row: status and data decoded, steps loaded.
fn decode_run(conn: &Connection, row: RunRow) -> StateResult<RunRecord> {
    let mut rec = row.record;
    rec.status = RunStatus::parse(&row.status)
        .ok_or_else(|| StateError::Corrupt(format!("run {}: status `{}`", rec.id, row.status)))?;
    rec.data = serde_json::from_str(&row.data)
        .map_err(|e| StateError::Corrupt(format!("run {}: request data: {e}", rec.id)))?;
    rec.steps = match &row.steps {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StateError::Corrupt(format!("run {}: steps: {e}", rec.id)))?,
        None => Vec::new(),
    };
    for s in load_steps(conn, &rec.id)? {
        match rec.steps.iter_mut().find(|x| x.id == s.id) {
            Some(x) => *x = s,
            None => rec.steps.push(s),
        }
    }
    Ok(rec)
}

fn load_steps(conn: &Connection, run: &str) -> StateResult<Vec<StepRecord>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, kind, status, started, finished, due, error, checkpoint
             FROM steps WHERE run = ?1 ORDER BY rowid",
        )
        .map_err(unavailable)?;
    let rows = stmt
        .query_map(params![run], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
            ))
        })
        .map_err(unavailable)?;
    let mut out = Vec::new();
    for row in rows {
        let (id, kind, status, started, finished, due, error, checkpoint) =
            row.map_err(unavailable)?;
        let status = StepStatus::parse(&status).ok_or_else(|| {
            StateError::Corrupt(format!("run {run}: step {id}: status `{status}`"))
        })?;
        let checkpoint = checkpoint
            .map(|t| Checkpoint::from_text(&t))
            .transpose()
            .map_err(|e| StateError::Corrupt(format!("run {run}: step {id}: {e}")))?;
        out.push(StepRecord {
            id,
            kind,
            status,
            started,
            finished,
            due,
            error,
            checkpoint,
        });
    }
    Ok(out)
}

fn get_run(conn: &Connection, id: &str) -> StateResult<RunRecord> {
    let row = conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
            params![id],
            run_row,
        )
        .optional()
        .map_err(unavailable)?
        .ok_or(StateError::NotFound)?;
    decode_run(conn, row)
}

/// Runs `f` in an immediate (write-locked) transaction on `conn`.
fn immediate<T>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> StateResult<T>,
) -> StateResult<T> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(unavailable)?;
    let out = f(&tx)?;
    tx.commit().map_err(unavailable)?;
    Ok(out)
}

/// The ids of the runs selected by `sql` (one `?1` parameter).
fn ids(conn: &Connection, sql: &str, p: impl rusqlite::Params) -> StateResult<Vec<String>> {
    let mut stmt = conn.prepare(sql).map_err(unavailable)?;
    let rows = stmt
        .query_map(p, |r| r.get::<_, String>(0))
        .map_err(unavailable)?;
    rows.collect::<Result<_, _>>().map_err(unavailable)
}

impl Backend for SqliteBackend {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn store(&self) -> Arc<dyn SharedStore> {
        self.store.clone()
    }

    fn create_run(&self, mut run: RunRecord) -> BoxFuture<'static, StateResult<()>> {
        let data = std::mem::take(&mut run.data).to_string();
        self.submit(create_op(run, data))
    }

    fn create_request_run(
        &self,
        run: RunRecord,
        data: &Value,
    ) -> BoxFuture<'static, StateResult<()>> {
        let data = super::record::journal_text(data);
        self.submit(create_op(run, data))
    }

    fn record(&self, event: RunEvent) -> BoxFuture<'static, StateResult<()>> {
        self.submit(Op::Event(event))
    }

    fn record_all(&self, events: Vec<RunEvent>) -> BoxFuture<'static, StateResult<()>> {
        self.submit(Op::Events(events))
    }

    fn recover(&self, owner: &str, now: i64) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        let owner = owner.to_string();
        let result = (|| {
            let mut conn = self.reader();
            let ids = immediate(&mut conn, |tx| {
                tx.execute(RECOVER_INTERRUPT, params![now])
                    .map_err(unavailable)?;
                // Owner-less queued runs (the backlog: never started) stay in the journal for
                // the runner to claim as its queue has room (src/listener/runs/backlog.rs).
                tx.execute(RECOVER_TAKE, params![owner])
                    .map_err(unavailable)?;
                ids(tx, RECOVER_IDS, params![owner])
            })?;
            let mut out = Vec::new();
            for id in ids {
                match get_run(&conn, &id) {
                    Ok(r) => out.push(r),
                    Err(StateError::Corrupt(m)) => {
                        tracing::error!(run_id = %id, error = %m, "unreadable run marked failed");
                        let _ = conn.execute(
                            "UPDATE runs SET status = 'failed', finished = ?2, error = ?3 WHERE id = ?1",
                            params![id, now, format!("corrupt run record: {m}")],
                        );
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })();
        futures_util::future::ready(result).boxed()
    }

    fn claim(&self, owner: &str, limit: usize) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        // A cheap read first: the writer only when there is something to claim.
        let any = self
            .reader()
            .query_row(ANY_CLAIMABLE, [], |_| Ok(()))
            .optional()
            .map_err(unavailable);
        match any {
            Err(e) => return futures_util::future::ready(Err(e)).boxed(),
            Ok(None) => return futures_util::future::ready(Ok(Vec::new())).boxed(),
            Ok(Some(())) => {}
        }
        let (tx, rx) = oneshot::channel();
        let written = self.submit(Op::Claim {
            owner: owner.to_string(),
            limit,
            runs: Mutex::new(Some(tx)),
            claimed: Mutex::new(Vec::new()),
        });
        async move {
            written.await?;
            rx.await.unwrap_or_else(|_| {
                Err(StateError::Unavailable("the journal writer stopped".into()))
            })
        }
        .boxed()
    }

    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'static, StateResult<RunPage>> {
        let result = (|| {
            let conn = self.reader();
            let limit = filter.clamped_limit();
            let before = filter
                .before
                .as_deref()
                .map(|c| c.parse::<i64>())
                .transpose()
                .map_err(|_| StateError::Conflict("bad cursor".into()))?
                .unwrap_or(i64::MAX);
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {RUN_COLUMNS} FROM runs WHERE seq < ?1
                     AND (?2 IS NULL OR endpoint = ?2) AND (?3 IS NULL OR status = ?3)
                     ORDER BY seq DESC LIMIT ?4"
                ))
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(
                    params![
                        before,
                        filter.endpoint,
                        filter.status.map(|s| s.as_str()),
                        (limit + 1) as i64
                    ],
                    run_row,
                )
                .map_err(unavailable)?;
            let mut runs = Vec::new();
            let mut next = None;
            for row in rows {
                let row = row.map_err(unavailable)?;
                if runs.len() == limit {
                    next = Some((row.seq + 1).to_string());
                    break;
                }
                let mut rec = row.record;
                rec.status = RunStatus::parse(&row.status).unwrap_or(RunStatus::Failed);
                runs.push(rec.summary());
            }
            Ok(RunPage { runs, next })
        })();
        futures_util::future::ready(result).boxed()
    }

    fn get_run(&self, id: &str) -> BoxFuture<'static, StateResult<RunRecord>> {
        let result = get_run(&self.reader(), id);
        futures_util::future::ready(result).boxed()
    }

    fn retry_run(&self, id: &str, from: RetryFrom) -> BoxFuture<'static, StateResult<RunRecord>> {
        let result = {
            let mut conn = self.reader();
            immediate(&mut conn, |tx| {
                let mut rec = get_run(tx, id)?;
                rec.requeue(from)?;
                // The steps kept (`requeue` dropped the others) become rows; the run's own
                // array (see SCHEMA) is emptied.
                tx.execute("DELETE FROM steps WHERE run = ?1", params![id])
                    .map_err(unavailable)?;
                for st in &rec.steps {
                    tx.execute(
                        "INSERT INTO steps (run, id, kind, status, started, finished, due, error,
                         checkpoint) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                        params![
                            id,
                            st.id,
                            st.kind,
                            st.status.as_str(),
                            st.started,
                            st.finished,
                            st.due,
                            st.error,
                            st.checkpoint.as_ref().map(Checkpoint::to_text),
                        ],
                    )
                    .map_err(unavailable)?;
                }
                tx.execute(
                    "UPDATE runs SET status = 'queued', attempt = ?2, finished = NULL, error = NULL,
                     owner = NULL, resumable = 1, steps = NULL WHERE id = ?1",
                    params![id, rec.attempt],
                )
                .map_err(unavailable)?;
                Ok(rec)
            })
        };
        futures_util::future::ready(result).boxed()
    }

    fn release(&self, id: &str) -> BoxFuture<'static, StateResult<()>> {
        // Through SQLite's own locking on the second connection, as a retry: the run's
        // activation has ended, so the writer holds nothing more of it.
        let result = {
            let mut conn = self.reader();
            immediate(&mut conn, |tx| {
                tx.execute(
                    "UPDATE runs SET status = 'queued', owner = NULL
                     WHERE id = ?1 AND status IN ('queued', 'running', 'waiting')",
                    params![id],
                )
                .map_err(unavailable)?;
                Ok(())
            })
        };
        futures_util::future::ready(result).boxed()
    }

    fn purge(&self, retention: Retention, now: i64) -> BoxFuture<'static, StateResult<u64>> {
        let cutoff = now.saturating_sub((retention.days as i64).saturating_mul(86_400_000));
        let max = i64::try_from(retention.max_per_endpoint).unwrap_or(i64::MAX);
        // Chosen in one read, deleted in chunks of PURGE_CHUNK runs, one transaction each: the
        // journal writer (answers waiting for their commit) gets the write lock between chunks.
        // A run retried meanwhile is no longer final and is kept.
        let result = (|| {
            let mut conn = self.reader();
            let doomed = ids(
                &conn,
                "SELECT id FROM (
                   SELECT id, finished, ROW_NUMBER() OVER (PARTITION BY endpoint ORDER BY seq DESC) AS n
                   FROM runs WHERE status IN ('succeeded', 'failed', 'interrupted'))
                 WHERE finished < ?1 OR n > ?2",
                params![cutoff, max],
            )?;
            let mut purged = 0u64;
            for chunk in doomed.chunks(PURGE_CHUNK) {
                purged += immediate(&mut conn, |tx| {
                    let mut n = 0;
                    for id in chunk {
                        let gone = tx
                            .execute(
                                "DELETE FROM runs WHERE id = ?1
                                 AND status IN ('succeeded', 'failed', 'interrupted')",
                                params![id],
                            )
                            .map_err(unavailable)?;
                        if gone > 0 {
                            tx.execute("DELETE FROM steps WHERE run = ?1", params![id])
                                .map_err(unavailable)?;
                            n += 1;
                        }
                    }
                    Ok(n)
                })?;
            }
            immediate(&mut conn, |tx| {
                tx.execute(
                    "DELETE FROM store WHERE expires IS NOT NULL AND expires <= ?1",
                    params![now],
                )
                .map_err(unavailable)
            })?;
            Ok(purged)
        })();
        futures_util::future::ready(result).boxed()
    }
}

/// The shared store of a SQLite backend: a [`MemoryStore`] written through to the file.
pub struct SqliteStore {
    mem: MemoryStore,
    /// Also serialises each change with its write, so the file sees changes in order.
    tx: Mutex<Queue>,
}

impl SqliteStore {
    fn send(tx: &Queue, op: Op) {
        if !tx.send(Job { op, ack: None }) {
            tracing::error!("shared store: the journal writer stopped; change not saved");
        }
    }
}

impl SharedStore for SqliteStore {
    fn get(&self, name: &str) -> Option<Value> {
        self.mem.get(name)
    }

    fn set(&self, name: &str, value: Value, ttl: Duration) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let json = value.to_json().to_string();
        self.mem.set(name, value, ttl);
        let stored = !ttl.is_zero() && self.mem.get(name).is_some();
        if stored {
            let expires = i64::try_from(ttl.as_millis())
                .ok()
                .and_then(|ms| super::now_ms().checked_add(ms));
            Self::send(
                &tx,
                Op::StoreSet {
                    name: name.to_string(),
                    value: json,
                    // A TTL too large for the clock never expires; kept as a far date.
                    expires: Some(expires.unwrap_or(i64::MAX)),
                },
            );
        } else {
            Self::send(&tx, Op::StoreDel(name.to_string()));
        }
    }

    fn increment(&self, name: &str, by: i64) -> Result<i64, Error> {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.mem.increment(name, by)?;
        Self::send(
            &tx,
            Op::StoreSet {
                name: name.to_string(),
                value: n.to_string(),
                expires: None,
            },
        );
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{block_on, temp_dir};
    use serde_json::json;

    fn dump(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        for sql in [
            "SELECT id, status, started, finished, error, owner FROM runs ORDER BY seq",
            "SELECT run, id, kind, status, started, finished, due, error, checkpoint FROM steps
             ORDER BY rowid",
        ] {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .unwrap();
            out.extend(rows.map(|r| r.unwrap().join("|")));
        }
        out
    }

    fn open(dir: &Path, name: &str) -> Connection {
        let conn = connect(&dir.join(name), Durability::Normal).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    /// Two files holding `before`, and `batch` applied to the first one write per
    /// transaction, in order: the reference a batch folded into the second must equal.
    fn in_turn(dir: &Path, before: &[Op], batch: &[Op]) -> (Connection, Connection) {
        let mut one_by_one = open(dir, "turn.db");
        let mut folded = open(dir, "fold.db");
        for conn in [&mut one_by_one, &mut folded] {
            for op in before {
                let tx = conn.transaction().unwrap();
                apply(&Writes::new(&tx), op).unwrap();
                tx.commit().unwrap();
            }
        }
        for op in batch {
            let tx = one_by_one.transaction().unwrap();
            apply(&Writes::new(&tx), op).unwrap();
            tx.commit().unwrap();
        }
        (one_by_one, folded)
    }

    fn create(id: &str) -> Op {
        Op::Create {
            run: Box::new(RunRecord::new(
                id.into(),
                "e".into(),
                "h1".into(),
                "h2".into(),
                "fp".into(),
                true,
                serde_json::Value::Null,
                1,
                Some("me".into()),
            )),
            data: json!({"ref": id}).to_string(),
            steps: None,
        }
    }

    fn status(run: &str, status: RunStatus, at: i64, error: Option<&str>) -> Op {
        Op::Event(crate::state::tests::status(run, status, at, error))
    }

    fn started(run: &str, step: &str, at: i64) -> Op {
        Op::Event(crate::state::tests::started(run, step, at))
    }

    fn succeeded(run: &str, step: &str, at: i64) -> Op {
        Op::Event(crate::state::tests::succeeded(run, step, at))
    }

    fn failed(run: &str, step: &str, at: i64) -> Op {
        Op::Event(RunEvent::StepFailed {
            run: run.into(),
            step: step.into(),
            at,
            error: format!("boom {at}"),
        })
    }

    fn waiting(run: &str, step: &str, due: i64) -> Op {
        Op::Event(RunEvent::StepWaiting {
            run: run.into(),
            step: step.into(),
            kind: "store".into(),
            due,
        })
    }

    /// Folding the writes of one batch leaves the file exactly as applying each write in its
    /// own transaction, in order, does; and it does fold.
    #[test]
    fn a_folded_batch_writes_what_the_writes_in_turn_write() {
        use RunStatus::*;
        let dir = temp_dir("fold");
        // Earlier batches: runs a, b and c exist, b is mid-way (resumed), c waits on a delay.
        let before = vec![
            create("a"),
            create("b"),
            create("c"),
            create("e"),
            status("b", Running, 5, None),
            started("b", "s1", 6),
            succeeded("b", "s1", 7),
            started("b", "s2", 8),
            waiting("c", "w", 100),
            status("c", Waiting, 9, None),
        ];
        // One batch: everything a run of the benchmark does after its creation, interleaved
        // with another run's resume, a failure, a retried step, a delay, a new run (created
        // and finished in the batch) and an error-carrying non-final status.
        let batch = vec![
            status("a", Running, 10, None),
            started("a", "s1", 11),
            status("b", Running, 12, None),
            succeeded("a", "s1", 13),
            started("b", "s2", 14),
            started("a", "s2", 15),
            failed("b", "s2", 16),
            succeeded("a", "s2", 17),
            status("a", Succeeded, 18, None),
            create("d"),
            status("d", Running, 19, None),
            started("d", "s1", 20),
            started("d", "s1", 21),
            succeeded("d", "s1", 22),
            waiting("d", "s2", 200),
            started("d", "s2", 23),
            status("d", Waiting, 24, Some("kept")),
            status("d", Running, 25, None),
            status("b", Failed, 26, Some("step \"s2\" failed: boom")),
            status("c", Running, 27, None),
            started("c", "w", 28),
            succeeded("c", "w", 29),
            status("c", Succeeded, 30, None),
            status("e", Interrupted, 31, None),
            status("e", Running, 32, None),
        ];
        let (one_by_one, mut folded) = in_turn(&dir, &before, &batch);
        let jobs: Vec<Job> = batch.into_iter().map(|op| Job { op, ack: None }).collect();
        let written = plan(&flatten(jobs.iter().map(|j| &j.op)))
            .iter()
            .filter(|p| !matches!(p, Planned::Folded))
            .count();
        assert!(
            written < jobs.len() - 8,
            "{written} of {} written",
            jobs.len()
        );
        let tx = folded.transaction().unwrap();
        apply_batch(&Writes::new(&tx), &jobs).unwrap();
        tx.commit().unwrap();
        let (a, b) = (dump(&one_by_one), dump(&folded));
        assert_eq!(a, b);
        assert!(a.iter().any(|r| r.contains("kept")), "{a:#?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn indexes(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'runs' AND sql IS NOT NULL ORDER BY name")
            .unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// The schema of the files written before `runs_open` (main at 238d035): the same tables,
    /// with `runs_status (status, seq)` over every run.
    const OLD_SCHEMA: &str = "
        CREATE TABLE IF NOT EXISTS runs (
            seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
            endpoint TEXT NOT NULL, first_hash TEXT NOT NULL, second_hash TEXT NOT NULL,
            fingerprint TEXT NOT NULL, resumable INTEGER NOT NULL, status TEXT NOT NULL,
            attempt INTEGER NOT NULL, created INTEGER NOT NULL, started INTEGER,
            finished INTEGER, error TEXT, data TEXT NOT NULL, owner TEXT);
        CREATE INDEX IF NOT EXISTS runs_endpoint ON runs (endpoint, seq);
        CREATE INDEX IF NOT EXISTS runs_status ON runs (status, seq);
        CREATE TABLE IF NOT EXISTS steps (
            run TEXT NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, status TEXT NOT NULL,
            started INTEGER, finished INTEGER, due INTEGER, error TEXT, checkpoint TEXT,
            UNIQUE (run, id));
        CREATE TABLE IF NOT EXISTS store (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires INTEGER);
    ";

    /// A file of the old schema is opened as it is: its `runs_status` index is replaced by
    /// `runs_open`, and recovery, claims and reads find its runs; a file migrated so and then
    /// opened by an older binary (which creates `runs_status` again) opens again.
    #[test]
    fn a_file_of_the_old_schema_is_migrated() {
        use RunStatus::*;
        let dir = temp_dir("migrate");
        let path = dir.join("state.db");
        {
            let mut conn = connect(&path, Durability::Normal).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            let mut backlog = create("backlog");
            if let Op::Create { run, .. } = &mut backlog {
                run.owner = None;
            }
            let mut sync = create("sync");
            if let Op::Create { run, .. } = &mut sync {
                run.resumable = false;
            }
            let tx = conn.transaction().unwrap();
            for op in [
                backlog,
                create("keep"),
                sync,
                create("done"),
                status("keep", Running, 5, None),
                started("keep", "s1", 6),
                succeeded("keep", "s1", 7),
                status("done", Succeeded, 8, None),
            ] {
                match &op {
                    // The older binary's insert (no `steps` column).
                    Op::Create { run: r, data, .. } => {
                        tx.execute(
                            "INSERT INTO runs (id, endpoint, first_hash, second_hash, fingerprint,
                             resumable, status, attempt, created, started, finished, error, data,
                             owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                             ?13, ?14)",
                            params![
                                r.id,
                                r.endpoint,
                                r.first_hash,
                                r.second_hash,
                                r.config_fingerprint,
                                r.resumable,
                                r.status.as_str(),
                                r.attempt,
                                r.created,
                                r.started,
                                r.finished,
                                r.error,
                                data,
                                r.owner,
                            ],
                        )
                        .unwrap();
                    }
                    _ => apply(&Writes::new(&tx), &op).unwrap(),
                }
            }
            tx.commit().unwrap();
            assert_eq!(indexes(&conn), ["runs_endpoint", "runs_status"]);
        }
        for round in 0..2 {
            let b = SqliteBackend::open(&path, Durability::Normal).unwrap();
            assert_eq!(indexes(&b.reader()), ["runs_endpoint", "runs_open"]);
            let has_steps: bool = b
                .reader()
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM pragma_table_info('runs') WHERE name = 'steps')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(has_steps, "runs.steps added");
            if round == 0 {
                // A run journaled with its steps in the migrated file reads back whole.
                let mut run = RunRecord::new(
                    "leading".into(),
                    "e".into(),
                    "h1".into(),
                    "h2".into(),
                    "fp".into(),
                    true,
                    serde_json::json!({"n": 1}),
                    4,
                    Some("new".into()),
                );
                run.status = Succeeded;
                run.started = Some(4);
                run.finished = Some(5);
                run.steps = vec![StepRecord {
                    id: "s".into(),
                    kind: "store".into(),
                    status: StepStatus::Succeeded,
                    started: Some(4),
                    finished: Some(5),
                    due: None,
                    error: None,
                    checkpoint: Some(Checkpoint {
                        set: vec![("x".into(), serde_json::json!(1))],
                        branch: None,
                    }),
                }];
                block_on(b.create_run(run.clone())).unwrap();
                assert_eq!(block_on(b.get_run("leading")).unwrap(), run);
                let back = block_on(b.recover("new", 9)).unwrap();
                let ids: Vec<_> = back.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(ids, ["keep"]);
                assert_eq!(back[0].steps.len(), 1);
                assert_eq!(back[0].attempt, 2);
                let claimed = block_on(b.claim("new", 10)).unwrap();
                let ids: Vec<_> = claimed.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(ids, ["backlog"]);
                assert_eq!(block_on(b.get_run("sync")).unwrap().status, Interrupted);
                assert_eq!(block_on(b.get_run("done")).unwrap().status, Succeeded);
                block_on(b.record(RunEvent::Status {
                    run: "keep".into(),
                    status: Succeeded,
                    at: 10,
                    error: None,
                }))
                .unwrap();
            } else {
                assert!(block_on(b.claim("new", 10)).unwrap().is_empty());
                let page = block_on(b.list_runs(RunFilter {
                    status: Some(Succeeded),
                    ..RunFilter::default()
                }))
                .unwrap();
                let ids: Vec<_> = page.runs.iter().map(|r| r.id.as_str()).collect();
                assert_eq!(ids, ["leading", "done", "keep"], "newest first");
            }
            drop(b);
            // What an older binary does when it opens the file.
            let conn = connect(&path, Durability::Normal).unwrap();
            conn.execute_batch(OLD_SCHEMA).unwrap();
            assert_eq!(
                indexes(&conn),
                ["runs_endpoint", "runs_open", "runs_status"]
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The queries for unfinished runs use `runs_open`, and writing a run's row evaluates the
    /// index's condition without a temporary table (what `status IN (…)` would build).
    #[test]
    fn unfinished_runs_are_found_through_the_partial_index() {
        let dir = temp_dir("plans");
        let conn = open(&dir, "plans.db");
        for sql in [
            ANY_CLAIMABLE,
            CLAIM,
            RECOVER_INTERRUPT,
            RECOVER_TAKE,
            RECOVER_IDS,
        ] {
            let n = conn.prepare(sql).unwrap().parameter_count();
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(vec![1; n]), |r| r.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|p| p.contains("USING INDEX runs_open")),
                "{sql}: {plan:?}"
            );
        }
        for sql in [
            "UPDATE runs SET status = ?2 WHERE id = ?1",
            "INSERT INTO runs (id, endpoint, first_hash, second_hash, fingerprint, resumable,
             status, attempt, created, data) VALUES (?1, '', '', '', '', 1, ?2, 1, 0, '{}')",
        ] {
            let mut stmt = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
            let ops: Vec<String> = stmt
                .query_map([1, 2], |r| r.get(1))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(ops.iter().any(|o| o == "IdxInsert"), "{sql}: {ops:?}");
            assert!(!ops.iter().any(|o| o == "OpenEphemeral"), "{sql}: {ops:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn store_set(name: &str, value: i64, expires: Option<i64>) -> Op {
        Op::StoreSet {
            name: name.into(),
            value: value.to_string(),
            expires,
        }
    }

    fn store_rows(conn: &Connection) -> Vec<(String, String, Option<i64>)> {
        let mut stmt = conn
            .prepare("SELECT name, value, expires FROM store ORDER BY name")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.map(Result::unwrap).collect()
    }

    /// A writer waiting for a batch to gather is woken by the write that completes it (once),
    /// not at its deadline.
    #[test]
    fn a_lingering_writer_is_woken_by_the_write_it_waits_for() {
        // Without the wake the writer would wait until the deadline (a minute here).
        let gather = Arc::new(Gather::new());
        let _ = gather.writer.set(std::thread::current());
        let producer = {
            let g = gather.clone();
            std::thread::spawn(move || {
                for _ in 0..5 {
                    std::thread::sleep(Duration::from_millis(2));
                    g.sent();
                }
            })
        };
        let t0 = Instant::now();
        gather.wait_for(5, t0 + Duration::from_secs(60));
        assert!(gather.sent.load(Ordering::SeqCst) >= 5);
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "woken by the fifth write"
        );
        producer.join().unwrap();
        // A count already reached does not wait; a deadline ends the wait.
        let t0 = Instant::now();
        gather.wait_for(3, t0 + Duration::from_secs(60));
        gather.wait_for(6, t0 + Duration::from_millis(20));
        assert!(t0.elapsed() < Duration::from_secs(30));
        assert_eq!(gather.wake_at.load(Ordering::SeqCst), u64::MAX);
    }

    /// The checkpointer copies committed frames into the database file while the writer keeps
    /// committing (below the writer's own checkpoint threshold the file grows only through it);
    /// under steady commits the writer's checkpoints still start the WAL file again, so it stays
    /// about [`WRITER_CHECKPOINT_FRAMES`] long; dropping it stops its thread at once.
    #[test]
    fn the_checkpointer_copies_commits_and_the_wal_stays_bounded() {
        let dir = temp_dir("checkpointer");
        let path = dir.join("state.db");
        let writer = connect_writer(&path, Durability::Normal).unwrap();
        writer
            .execute_batch(&format!(
                "PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_FRAMES};
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);"
            ))
            .unwrap();
        let checkpointer =
            Checkpointer::start(connect(&path, Durability::Normal).unwrap()).unwrap();
        let size = |suffix: &str| {
            std::fs::metadata(format!("{}{suffix}", path.display())).map_or(0, |m| m.len())
        };
        let commit = |k: i64| {
            writer
                .execute("INSERT INTO t VALUES (?1, ?2)", params![k, vec![1u8; 3000]])
                .unwrap();
            checkpointer.committed();
        };
        // About 1,000 frames: fewer than make the writer checkpoint.
        for k in 0..500 {
            commit(k);
        }
        let t0 = Instant::now();
        while size("") < 500 * 3000 && t0.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(size("") >= 500 * 3000, "copied: {} bytes", size(""));
        // Steady commits, ten times the threshold's worth of pages.
        let frame = 4096 + 24;
        let mut largest = 0;
        for k in 500..(500 + 10 * i64::from(WRITER_CHECKPOINT_FRAMES)) {
            commit(k);
            largest = largest.max(size("-wal"));
        }
        // About the threshold, plus what the writer commits while the checkpointer holds the
        // checkpoint lock (the writer's own checkpoint is skipped meanwhile, and retried at its
        // next commit): under a loaded CI run that thread can be off its CPU for a while, and
        // the file reached 2.04 times the threshold once (session 15). Without the writer's
        // checkpoints it reaches 510 MB, thirty times the threshold.
        assert!(
            largest <= 4 * u64::from(WRITER_CHECKPOINT_FRAMES) * frame,
            "WAL file of {largest} bytes"
        );
        let t0 = Instant::now();
        drop(checkpointer);
        assert!(t0.elapsed() < Duration::from_secs(2));
        let n: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 500 + 10 * i64::from(WRITER_CHECKPOINT_FRAMES));
        drop(writer);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Of a batch's writes of one shared-store name only the last is applied, and the file
    /// ends as with every write applied in turn.
    #[test]
    fn a_batch_writes_each_store_name_once() {
        let dir = temp_dir("store-fold");
        let before = [store_set("kept", 1, None), store_set("gone", 1, Some(50))];
        let batch = vec![
            store_set("hits", 1, None),
            create("a"),
            store_set("hits", 2, None),
            store_set("gone", 2, Some(60)),
            store_set("hits", 3, None),
            Op::StoreDel("gone".into()),
            Op::StoreDel("back".into()),
            store_set("back", 7, Some(70)),
            store_set("hits", 4, None),
            store_set("other", 9, Some(80)),
        ];
        let (one_by_one, mut folded) = in_turn(&dir, &before, &batch);
        let jobs: Vec<Job> = batch.into_iter().map(|op| Job { op, ack: None }).collect();
        let plan = plan(&flatten(jobs.iter().map(|j| &j.op)));
        let written: Vec<usize> = (0..plan.len())
            .filter(|&i| !matches!(plan[i], Planned::Folded))
            .collect();
        assert_eq!(written, [1, 5, 7, 8, 9]);
        let tx = folded.transaction().unwrap();
        apply_batch(&Writes::new(&tx), &jobs).unwrap();
        tx.commit().unwrap();
        let rows = store_rows(&folded);
        assert_eq!(rows, store_rows(&one_by_one));
        assert_eq!(
            rows,
            [
                ("back".to_string(), "7".to_string(), Some(70)),
                ("hits".to_string(), "4".to_string(), None),
                ("kept".to_string(), "1".to_string(), None),
                ("other".to_string(), "9".to_string(), Some(80)),
            ]
        );
        assert_eq!(dump(&folded), dump(&one_by_one));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
