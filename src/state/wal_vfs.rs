//! A shim over SQLite's default VFS, used by the journal writer's connection
//! (src/state/sqlite.rs `connect_writer`): each transaction reaches the WAL file in one `pwrite`
//! instead of two per page. SQLite writes a WAL frame as its 24-byte header, then its page, and
//! a commit of the durable benchmark's batch (32 runs) is about 16 frames: 33 system calls,
//! each touching page-cache pages the next one touches again (frames are 4,120 bytes, pages
//! 4,096). Kept together they are one (docs/state.md, "Performance").
//!
//! The one module of the crate with `unsafe` code: SQLite's VFS is a C interface (structs of
//! function pointers, files as caller-allocated memory). Everything but a WAL file's writes is
//! forwarded to the default VFS unchanged.
//!
//! Only writes that append to the WAL file are kept; a rewrite of bytes written before (SQLite
//! rewrites the frame checksums of a transaction that wrote a page twice) writes the kept
//! bytes, then itself, at once. When the kept bytes leave (what SQLite, reading or publishing,
//! may rely on):
//! - a write that does not continue them writes them first;
//! - the page after a *commit* frame's header (its bytes 4..8, the database size after the
//!   commit, are non-zero only there) is written with them in that same `xWrite` call: a commit
//!   that cannot be written (disk full) fails there, as it would unbuffered, before SQLite
//!   publishes it in the WAL index (`walIndexWriteHdr`, after the frames);
//! - every other call on the WAL file (read, sync, size, truncate, lock, file control, close)
//!   writes them first, so SQLite reads what it wrote;
//! - the database file's `xShmBarrier` and its `xShmLock` unlocks write its connection's WAL
//!   bytes first: the frames of a transaction that spilled pages and then rolled back reach the
//!   file when the write lock is released, as they had unbuffered (before any other writer may
//!   write there), and a publication never precedes its frames.
//!
//! A crash can lose only kept bytes of a transaction that was not committed — which recovery
//! would discard anyway.

use rusqlite::ffi;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::OnceLock;

/// The name the shim is registered under.
pub(super) const NAME: &str = "flexscript-wal";
const NAME_C: &CStr = c"flexscript-wal";

/// A WAL frame header's size.
const FRAME_HEADER: c_int = 24;
/// The most bytes kept for a WAL file: the default VFS writes at most 128 KiB − 1 bytes per
/// call (`seekAndWriteFd` masks the length with `0x1ffff`), so a larger transaction is written
/// in pieces of at most this size.
const MAX_KEPT: usize = 0x1ffff;

/// A file opened through the shim: SQLite allocates `szOsFile` bytes and passes them to
/// `xOpen`; this struct comes first, the default VFS's file follows at [`REAL_OFFSET`].
#[repr(C)]
struct File {
    base: ffi::sqlite3_file,
    real: *mut ffi::sqlite3_file,
    /// A main database file: its connection's WAL file while that is open, else null.
    wal: *mut File,
    /// A WAL file: its connection's main database file (null for other files).
    db: *mut File,
    /// A WAL file's bytes not yet written, and the offset of the first.
    kept: Vec<u8>,
    at: i64,
    /// A WAL file: the end of the bytes written (kept or not) since its last header.
    end: i64,
    /// The last write was a commit frame's header: the next one (its page) writes them all.
    commit: bool,
}

const REAL_OFFSET: usize = (std::mem::size_of::<File>() + 15) & !15;

/// Registers the shim (once per process); the connection names it with [`NAME`].
pub(super) fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        // SAFETY: `sqlite3_vfs_find` returns SQLite's registered default VFS (never freed); the
        // copy keeps its function pointers (none but `xOpen` reads `pAppData`, which the copy
        // repoints) and is leaked, as registered VFSes must live as long as the process.
        unsafe {
            let real = ffi::sqlite3_vfs_find(ptr::null());
            if real.is_null() {
                return Err("SQLite has no default VFS".into());
            }
            let mut vfs: ffi::sqlite3_vfs = ptr::read(real);
            vfs.szOsFile = (*real).szOsFile + REAL_OFFSET as c_int;
            vfs.pNext = ptr::null_mut();
            vfs.zName = NAME_C.as_ptr();
            vfs.pAppData = real.cast();
            vfs.xOpen = Some(open);
            let rc = ffi::sqlite3_vfs_register(Box::leak(Box::new(vfs)), 0);
            if rc != ffi::SQLITE_OK {
                return Err(format!("cannot register SQLite's WAL shim (code {rc})"));
            }
            Ok(())
        }
    })
    .clone()
}

/// The default VFS's methods of `f`.
///
/// # Safety
/// `f` is an open [`File`].
unsafe fn real(
    f: *mut ffi::sqlite3_file,
) -> (*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods) {
    let real = (*f.cast::<File>()).real;
    (real, &*(*real).pMethods)
}

/// Writes `file`'s kept bytes.
///
/// # Safety
/// `file` is an open [`File`].
unsafe fn flush(file: &mut File) -> c_int {
    file.commit = false;
    if file.kept.is_empty() {
        return ffi::SQLITE_OK;
    }
    // The length fits: kept bytes never exceed MAX_KEPT.
    let len = c_int::try_from(file.kept.len()).unwrap_or(c_int::MAX);
    let rc = write_real(file.real, file.kept.as_ptr().cast(), len, file.at);
    file.kept.clear();
    rc
}

/// [`flush`], then the default VFS's file and methods of `f`, or the error of the flush.
///
/// # Safety
/// `f` is an open [`File`].
unsafe fn flushed(
    f: *mut ffi::sqlite3_file,
) -> Result<(*mut ffi::sqlite3_file, &'static ffi::sqlite3_io_methods), c_int> {
    match flush(&mut *f.cast::<File>()) {
        ffi::SQLITE_OK => Ok(real(f)),
        rc => Err(rc),
    }
}

/// Writes the kept bytes of the WAL file of database file `f`, if any.
///
/// # Safety
/// `f` is an open [`File`].
unsafe fn flush_wal_of(f: *mut ffi::sqlite3_file) -> c_int {
    let wal = (*f.cast::<File>()).wal;
    if wal.is_null() {
        ffi::SQLITE_OK
    } else {
        flush(&mut *wal)
    }
}

/// The default VFS's write of `real`.
///
/// # Safety
/// `real` is an open file of the default VFS; `buf` holds `n` bytes.
unsafe fn write_real(real: *mut ffi::sqlite3_file, buf: *const c_void, n: c_int, at: i64) -> c_int {
    match (*(*real).pMethods).xWrite {
        Some(w) => w(real, buf, n, at),
        None => ffi::SQLITE_IOERR_WRITE,
    }
}

unsafe extern "C" fn open(
    vfs: *mut ffi::sqlite3_vfs,
    name: *const c_char,
    file: *mut ffi::sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    let real_vfs = (*vfs).pAppData.cast::<ffi::sqlite3_vfs>();
    let f = file.cast::<File>();
    let real = file
        .cast::<u8>()
        .add(REAL_OFFSET)
        .cast::<ffi::sqlite3_file>();
    ptr::write(
        f,
        File {
            base: ffi::sqlite3_file {
                pMethods: ptr::null(),
            },
            real,
            wal: ptr::null_mut(),
            db: ptr::null_mut(),
            kept: Vec::new(),
            at: 0,
            end: 0,
            commit: false,
        },
    );
    let Some(real_open) = (*real_vfs).xOpen else {
        ptr::drop_in_place(f);
        return ffi::SQLITE_CANTOPEN;
    };
    let rc = real_open(real_vfs, name, real, flags, out_flags);
    if rc != ffi::SQLITE_OK || (*real).pMethods.is_null() {
        // SQLite calls no xClose of a file whose pMethods is null.
        ptr::drop_in_place(f);
        return rc;
    }
    if flags & ffi::SQLITE_OPEN_WAL != 0 {
        // The main database file of a WAL file's name (SQLite's API for VFS shims): the
        // connection's own database file, opened through this shim too.
        let db = ffi::sqlite3_database_file_object(name).cast::<File>();
        if !db.is_null() && ptr::eq((*db).base.pMethods, &DB_METHODS) {
            (*db).wal = f;
            (*f).db = db;
        }
        (*f).base.pMethods = &WAL_METHODS;
    } else {
        (*f).base.pMethods = &DB_METHODS;
    }
    rc
}

unsafe extern "C" fn close(f: *mut ffi::sqlite3_file) -> c_int {
    let file = f.cast::<File>();
    let kept = flush(&mut *file);
    let db = (*file).db;
    if !db.is_null() && ptr::eq((*db).wal, file) {
        (*db).wal = ptr::null_mut();
    }
    let wal = (*file).wal;
    if !wal.is_null() {
        (*wal).db = ptr::null_mut();
    }
    let (real, m) = real(f);
    let rc = m.xClose.map_or(ffi::SQLITE_OK, |c| c(real));
    ptr::drop_in_place(file);
    if kept != ffi::SQLITE_OK {
        kept
    } else {
        rc
    }
}

unsafe extern "C" fn read(f: *mut ffi::sqlite3_file, buf: *mut c_void, n: c_int, at: i64) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xRead
                .map_or(ffi::SQLITE_IOERR_READ, |r| r(real, buf, n, at))
        },
    )
}

unsafe extern "C" fn write_through(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    n: c_int,
    at: i64,
) -> c_int {
    let (real, m) = real(f);
    m.xWrite
        .map_or(ffi::SQLITE_IOERR_WRITE, |w| w(real, buf, n, at))
}

/// A WAL file's write: kept when it appends to what was written (see the module's
/// documentation), written at once when it rewrites written bytes.
unsafe extern "C" fn wal_write(
    f: *mut ffi::sqlite3_file,
    buf: *const c_void,
    n: c_int,
    at: i64,
) -> c_int {
    let file = &mut *f.cast::<File>();
    let Ok(len) = usize::try_from(n) else {
        return write_real(file.real, buf, n, at);
    };
    let follows = i64::try_from(file.kept.len()).is_ok_and(|k| file.at + k == at);
    if !file.kept.is_empty() && (!follows || file.kept.len() + len > MAX_KEPT) {
        let rc = flush(file);
        if rc != ffi::SQLITE_OK {
            return rc;
        }
    }
    if at == 0 {
        // The header of a new generation of the file (SQLite restarts the WAL from its start
        // once checkpointed): what follows appends again.
        file.end = 0;
    }
    let end = i64::try_from(len).map_or(i64::MAX, |l| at.saturating_add(l));
    if at < file.end || len > MAX_KEPT {
        // A rewrite (the checksums of a transaction that wrote a page twice, or that page):
        // written at once, so that nothing kept is ever before the end of the file — the
        // header of a rewritten commit frame is not followed by its page.
        file.end = file.end.max(end);
        #[cfg(test)]
        REWRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return write_real(file.real, buf, n, at);
    }
    if file.kept.is_empty() {
        file.at = at;
    }
    let ends_commit = file.commit;
    let bytes = std::slice::from_raw_parts(buf.cast::<u8>(), len);
    file.kept.extend_from_slice(bytes);
    file.end = end;
    file.commit = n == FRAME_HEADER && bytes[4..8] != [0, 0, 0, 0];
    if ends_commit {
        return flush(file);
    }
    ffi::SQLITE_OK
}

unsafe extern "C" fn truncate(f: *mut ffi::sqlite3_file, size: i64) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xTruncate
                .map_or(ffi::SQLITE_IOERR_TRUNCATE, |t| t(real, size))
        },
    )
}

unsafe extern "C" fn sync(f: *mut ffi::sqlite3_file, flags: c_int) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| m.xSync.map_or(ffi::SQLITE_IOERR_FSYNC, |s| s(real, flags)),
    )
}

unsafe extern "C" fn file_size(f: *mut ffi::sqlite3_file, size: *mut i64) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xFileSize
                .map_or(ffi::SQLITE_IOERR_FSTAT, |s| s(real, size))
        },
    )
}

unsafe extern "C" fn lock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| m.xLock.map_or(ffi::SQLITE_IOERR_LOCK, |l| l(real, level)),
    )
}

unsafe extern "C" fn unlock(f: *mut ffi::sqlite3_file, level: c_int) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xUnlock
                .map_or(ffi::SQLITE_IOERR_UNLOCK, |u| u(real, level))
        },
    )
}

unsafe extern "C" fn check_reserved_lock(f: *mut ffi::sqlite3_file, out: *mut c_int) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xCheckReservedLock
                .map_or(ffi::SQLITE_IOERR_CHECKRESERVEDLOCK, |c| c(real, out))
        },
    )
}

unsafe extern "C" fn file_control(f: *mut ffi::sqlite3_file, op: c_int, arg: *mut c_void) -> c_int {
    flushed(f).map_or_else(
        |rc| rc,
        |(real, m)| {
            m.xFileControl
                .map_or(ffi::SQLITE_NOTFOUND, |c| c(real, op, arg))
        },
    )
}

unsafe extern "C" fn sector_size(f: *mut ffi::sqlite3_file) -> c_int {
    let (real, m) = real(f);
    m.xSectorSize.map_or(4096, |s| s(real))
}

unsafe extern "C" fn device_characteristics(f: *mut ffi::sqlite3_file) -> c_int {
    let (real, m) = real(f);
    m.xDeviceCharacteristics.map_or(0, |d| d(real))
}

unsafe extern "C" fn shm_map(
    f: *mut ffi::sqlite3_file,
    page: c_int,
    size: c_int,
    extend: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (real, m) = real(f);
    if m.iVersion < 2 {
        return ffi::SQLITE_IOERR_SHMMAP;
    }
    m.xShmMap.map_or(ffi::SQLITE_IOERR_SHMMAP, |s| {
        s(real, page, size, extend, out)
    })
}

unsafe extern "C" fn shm_lock(
    f: *mut ffi::sqlite3_file,
    offset: c_int,
    n: c_int,
    flags: c_int,
) -> c_int {
    if flags & ffi::SQLITE_SHM_UNLOCK != 0 {
        // Before another connection may take the lock (and write at these offsets).
        let _ = flush_wal_of(f);
    }
    let (real, m) = real(f);
    if m.iVersion < 2 {
        return ffi::SQLITE_IOERR_SHMLOCK;
    }
    m.xShmLock
        .map_or(ffi::SQLITE_IOERR_SHMLOCK, |l| l(real, offset, n, flags))
}

/// Rewrites written at once (tests: the random workload has some).
#[cfg(test)]
static REWRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Publications that found WAL bytes still kept (tests: their commit should have written them).
#[cfg(test)]
static KEPT_AT_BARRIER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

unsafe extern "C" fn shm_barrier(f: *mut ffi::sqlite3_file) {
    // Before SQLite publishes what it wrote (its commits were written when their last page
    // was: this finds nothing kept).
    #[cfg(test)]
    {
        let wal = (*f.cast::<File>()).wal;
        if !wal.is_null() && !(*wal).kept.is_empty() {
            KEPT_AT_BARRIER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let _ = flush_wal_of(f);
    let (real, m) = real(f);
    if m.iVersion >= 2 {
        if let Some(b) = m.xShmBarrier {
            b(real);
        }
    }
}

unsafe extern "C" fn shm_unmap(f: *mut ffi::sqlite3_file, delete: c_int) -> c_int {
    let _ = flush_wal_of(f);
    let (real, m) = real(f);
    if m.iVersion < 2 {
        return ffi::SQLITE_OK;
    }
    m.xShmUnmap.map_or(ffi::SQLITE_OK, |u| u(real, delete))
}

unsafe extern "C" fn fetch(
    f: *mut ffi::sqlite3_file,
    at: i64,
    n: c_int,
    out: *mut *mut c_void,
) -> c_int {
    let (real, m) = real(f);
    match m.xFetch {
        Some(x) if m.iVersion >= 3 => x(real, at, n, out),
        _ => {
            *out = ptr::null_mut();
            ffi::SQLITE_OK
        }
    }
}

unsafe extern "C" fn unfetch(f: *mut ffi::sqlite3_file, at: i64, p: *mut c_void) -> c_int {
    let (real, m) = real(f);
    match m.xUnfetch {
        Some(x) if m.iVersion >= 3 => x(real, at, p),
        _ => ffi::SQLITE_OK,
    }
}

/// The methods of every file but a WAL file: forwarded; the shared-memory calls also write the
/// connection's WAL bytes first.
static DB_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    iVersion: 3,
    xClose: Some(close),
    xRead: Some(read),
    xWrite: Some(write_through),
    xTruncate: Some(truncate),
    xSync: Some(sync),
    xFileSize: Some(file_size),
    xLock: Some(lock),
    xUnlock: Some(unlock),
    xCheckReservedLock: Some(check_reserved_lock),
    xFileControl: Some(file_control),
    xSectorSize: Some(sector_size),
    xDeviceCharacteristics: Some(device_characteristics),
    xShmMap: Some(shm_map),
    xShmLock: Some(shm_lock),
    xShmBarrier: Some(shm_barrier),
    xShmUnmap: Some(shm_unmap),
    xFetch: Some(fetch),
    xUnfetch: Some(unfetch),
};

/// A WAL file's methods: its writes are kept.
static WAL_METHODS: ffi::sqlite3_io_methods = ffi::sqlite3_io_methods {
    xWrite: Some(wal_write),
    ..DB_METHODS
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::temp_dir;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rusqlite::{Connection, OpenFlags};
    use std::collections::BTreeMap;
    use std::path::Path;

    fn open(path: &Path, shim: bool) -> Connection {
        register().unwrap();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        let conn = if shim {
            Connection::open_with_flags_and_vfs(path, flags, NAME).unwrap()
        } else {
            Connection::open_with_flags(path, flags).unwrap()
        };
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        conn.execute_batch("PRAGMA synchronous = NORMAL").unwrap();
        conn
    }

    /// This thread's write system calls so far (Linux's per-thread I/O accounting).
    fn writes_of_this_thread() -> u64 {
        let io = std::fs::read_to_string("/proc/thread-self/io").unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("syscw: "))
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Write system calls of one transaction of 40 rows of 1,000 bytes (about ten pages).
    fn writes_of_a_transaction(shim: bool) -> u64 {
        let dir = temp_dir("wal-one-write");
        let conn = open(&dir.join("t.db"), shim);
        conn.execute_batch(
            "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);",
        )
        .unwrap();
        let before = writes_of_this_thread();
        let tx = conn.unchecked_transaction().unwrap();
        for k in 0..40 {
            tx.execute("INSERT INTO t VALUES (?1, ?2)", (k, vec![7u8; 1000]))
                .unwrap();
        }
        tx.commit().unwrap();
        let n = writes_of_this_thread() - before;
        drop(conn);
        let _ = std::fs::remove_dir_all(&dir);
        n
    }

    #[test]
    fn a_transaction_reaches_the_wal_in_one_write() {
        assert_eq!(writes_of_a_transaction(true), 1);
        let plain = writes_of_a_transaction(false);
        assert!(plain >= 20, "two per frame without the shim: {plain}");
    }

    /// Every committed state, read by another connection (SQLite's own VFS) right after the
    /// commit, and from a copy of the files taken then (what a crash of the writer leaves), is
    /// the model's; rolled-back transactions — also ones that spilled pages into the WAL under
    /// a two-page cache — leave nothing; checkpoints of every kind run between.
    #[test]
    fn what_the_shim_commits_is_what_others_read() {
        let dir = temp_dir("wal-reads");
        let path = dir.join("t.db");
        let writer = open(&path, true);
        writer
            .execute_batch(
                "PRAGMA cache_size = 2; PRAGMA wal_autocheckpoint = 50;
                 CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB);
                 CREATE INDEX t_v ON t (v);",
            )
            .unwrap();
        let reader = open(&path, false);
        let mut rng = StdRng::seed_from_u64(11);
        let mut model: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        let read = |c: &Connection| -> BTreeMap<i64, Vec<u8>> {
            let mut s = c.prepare("SELECT k, v FROM t").unwrap();
            let rows = s
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows
        };
        for round in 0..400 {
            let mut next = model.clone();
            let tx = writer.unchecked_transaction().unwrap();
            for _ in 0..rng.gen_range(1..30) {
                let k = rng.gen_range(0..300i64);
                match rng.gen_range(0..3) {
                    0 => {
                        tx.execute("DELETE FROM t WHERE k = ?1", [k]).unwrap();
                        next.remove(&k);
                    }
                    _ => {
                        let v: Vec<u8> = (0..rng.gen_range(0..6000)).map(|_| rng.gen()).collect();
                        tx.execute("INSERT OR REPLACE INTO t VALUES (?1, ?2)", (k, &v))
                            .unwrap();
                        next.insert(k, v);
                    }
                }
            }
            if rng.gen_bool(0.2) {
                tx.rollback().unwrap();
            } else {
                tx.commit().unwrap();
                model = next;
            }
            assert_eq!(read(&reader), model, "round {round}");
            if round % 37 == 0 {
                let copy = dir.join(format!("copy{round}"));
                std::fs::create_dir(&copy).unwrap();
                for suffix in ["", "-wal"] {
                    let from = format!("{}{suffix}", path.display());
                    if Path::new(&from).exists() {
                        std::fs::copy(&from, copy.join(format!("t.db{suffix}"))).unwrap();
                    }
                }
                let c = Connection::open(copy.join("t.db")).unwrap();
                assert_eq!(read(&c), model, "copy of round {round}");
            }
            if round % 53 == 0 {
                let mode = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"][round / 53 % 4];
                writer
                    .execute_batch(&format!("PRAGMA wal_checkpoint({mode})"))
                    .unwrap();
            }
        }
        assert_eq!(
            KEPT_AT_BARRIER.load(std::sync::atomic::Ordering::Relaxed),
            0,
            "a commit was published before its frames were written"
        );
        assert!(REWRITES.load(std::sync::atomic::Ordering::Relaxed) > 0);
        let ok: String = reader
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ok, "ok");
        drop(reader);
        drop(writer);
        assert_eq!(read(&Connection::open(&path).unwrap()), model);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
