//! Arbitrary text as stored run records and checkpoints of the run journal (src/state): decoding
//! never panics, a decoded record survives a round trip, and a corrupted SQLite row is an error
//! for that run (`Corrupt`), never a crash.
#![no_main]
use flexscript::state::sqlite::SqliteBackend;
use flexscript::state::{Backend, Checkpoint, Durability, RunRecord, StateError};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One state file per fuzzing process, with one run whose rows each input overwrites.
struct Scratch {
    backend: SqliteBackend,
    raw: std::sync::Mutex<rusqlite::Connection>,
    rt: tokio::runtime::Runtime,
}

fn scratch() -> &'static Scratch {
    static S: OnceLock<Scratch> = OnceLock::new();
    S.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("flexscript-fuzz-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        let backend = SqliteBackend::open(&path, Durability::Normal).expect("open");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let run = RunRecord::new(
            "r".into(),
            "e".into(),
            "a".into(),
            "b".into(),
            "f".into(),
            true,
            serde_json::json!({}),
            0,
            None,
        );
        rt.block_on(backend.create_run(run)).expect("create");
        let raw = rusqlite::Connection::open(&path).expect("raw");
        raw.execute(
            "INSERT INTO steps (run, id, kind, status) VALUES ('r', 's', 'store', 'running')",
            [],
        )
        .expect("step");
        Scratch {
            backend,
            raw: std::sync::Mutex::new(raw),
            rt,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = RunRecord::from_text(text) {
        assert_eq!(RunRecord::from_text(&r.to_text()).ok().as_ref(), Some(&r));
    }
    if let Ok(c) = Checkpoint::from_text(text) {
        assert_eq!(Checkpoint::from_text(&c.to_text()).ok().as_ref(), Some(&c));
        for (_, v) in &c.set {
            let _ = flexscript::Value::from(v);
        }
    }
    // The same text in every column a stored run is decoded from.
    let s = scratch();
    let column = data.first().copied().unwrap_or(0) % 4;
    {
        let raw = s.raw.lock().expect("lock");
        let sql = match column {
            0 => "UPDATE runs SET data = ?1 WHERE id = 'r'",
            1 => "UPDATE steps SET checkpoint = ?1 WHERE run = 'r'",
            // The steps a run was journaled with, in its row (src/state/sqlite.rs, SCHEMA).
            2 => "UPDATE runs SET steps = ?1 WHERE id = 'r'",
            _ => "UPDATE steps SET status = ?1 WHERE run = 'r'",
        };
        raw.execute(sql, [text]).expect("update");
    }
    match s.rt.block_on(s.backend.get_run("r")) {
        Ok(_) | Err(StateError::Corrupt(_)) => {}
        Err(e) => panic!("unexpected error: {e}"),
    }
    // Put the row back to a readable state for the next input.
    let raw = s.raw.lock().expect("lock");
    raw.execute_batch(
        "UPDATE runs SET data = '{}', steps = NULL WHERE id = 'r';
         UPDATE steps SET checkpoint = NULL, status = 'running' WHERE run = 'r';",
    )
    .expect("reset");
});
