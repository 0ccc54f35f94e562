//! Determinism: what the parser accepts, the engine evaluates the same way twice,
//! from two separately compiled templates (same output or the same error).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    // Input format: `common::RenderInput`, its template being an expression.
    let Some(input) = common::RenderInput::parse(data) else {
        return;
    };
    // Non-deterministic functions (so marked in the registry) are excluded: their output
    // differs by design. `qrCode` is deterministic but slow: left out to keep the runs fast.
    let registry = flexscript::builtins::Registry::with_builtins();
    let skipped = registry.non_deterministic().into_iter().chain(["qrCode"]);
    for name in skipped {
        if input.template.contains(name) {
            return;
        }
    }
    let engine = common::small_engine();
    let source = format!("{{{{ {} }}}}", input.template);
    let Ok(a) = engine.compile("fuzz", &source) else {
        return;
    };
    let b = engine
        .compile("fuzz", &source)
        .expect("the same source compiled once");
    let ctx = &input.context;
    let ra = a.render(ctx).map_err(|e| e.to_string());
    let rb = b.render(ctx).map_err(|e| e.to_string());
    let ra2 = a.render(ctx).map_err(|e| e.to_string());
    assert_eq!(ra, rb, "two compilations of one source disagree");
    assert_eq!(ra, ra2, "two renders of one template disagree");
});
