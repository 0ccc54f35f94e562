//! Arbitrary text through the listener configuration loader and checker
//! (`load_config` / `check_config`): never a panic; a refused file always explains itself.
#![no_main]
use flexscript::listener::{check_config, load_config};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One scratch file per fuzzing process (the loader reads a path).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("flexscript-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir.join("endpoints.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // `records = "/dev/zero"` would make the loader read forever: keep the file system out.
    if text.contains("records") {
        return;
    }
    let path = scratch();
    if std::fs::write(path, text).is_err() {
        return;
    }
    match load_config(path) {
        Ok(config) => {
            for ep in &config.endpoints {
                assert!(ep.first_hash.len() >= 32 && ep.second_hash.len() >= 32);
            }
        }
        Err(errors) => {
            assert!(
                !errors.diagnostics.is_empty(),
                "a refused file lists its errors"
            );
            for d in &errors.diagnostics {
                assert!(!d.message.is_empty());
            }
        }
    }
    let (errors, _warnings) = check_config(path);
    let _ = errors.len();
});
