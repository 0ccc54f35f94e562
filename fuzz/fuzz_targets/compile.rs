//! Arbitrary bytes as template source through `Engine::compile`: never a panic,
//! only a template or an error with a location.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let engine = common::small_engine();
    if let Err(err) = engine.compile("fuzz", source) {
        // Rendering the message must not panic either (snippet and caret slicing).
        let _ = err.to_string();
    }
});
