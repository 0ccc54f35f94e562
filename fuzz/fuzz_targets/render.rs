//! An arbitrary template and JSON-like context (input format: `common::RenderInput`) rendered under small fuel and
//! output limits: never a panic, a hang or unbounded memory.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(input) = common::RenderInput::parse(data) else {
        return;
    };
    let engine = common::small_engine();
    let Ok(tpl) = engine.compile("fuzz", &input.template) else {
        return;
    };
    let escape = if input.html {
        flexscript::Escape::Html
    } else {
        flexscript::Escape::None
    };
    let opts = flexscript::RenderOptions::default().with_escape(escape);
    match tpl.render_with(&input.context, opts) {
        Ok(out) => assert!(
            out.len() <= 64 * 1024,
            "output limit not enforced: {} bytes",
            out.len()
        ),
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
