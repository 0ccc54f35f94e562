//! Record look-ups and the shared store through the engine: an [`Engine`] with a
//! [`JsonRecords`] source and a [`MemoryStore`], rendering real templates.

use flexscript::host::{JsonRecords, MemoryStore, SharedStore};
use flexscript::{Engine, ErrorKind, RenderOptions};
use std::sync::Arc;
use std::time::Duration;

const RECORDS: &str = r#"{
    "contact": [
        {"id": 3, "name": "Zoë", "email": "zoe@example.test", "city": "Paris", "phone": "+33 (1) 23-45-67", "score": 10, "created": "2024-03-01"},
        {"id": 1, "name": "Ann", "email": "ann@example.test", "city": "Oslo", "phone": "555-0100", "score": "5", "created": "2024-01-15"},
        {"id": 2, "name": "Bob", "email": "bob@example.test", "city": "Paris", "score": 7.5, "created": "2024-02-10"},
        {"id": 4, "name": "Dee", "email": "dee@example.test", "city": "paris", "score": null}
    ],
    "deal": [
        {"id": 10, "stage": "won", "amount": 1200, "owner": 7},
        {"id": 11, "stage": "won", "amount": 800.5, "owner": 8},
        {"id": 12, "stage": "lost", "amount": 300, "owner": 7}
    ],
    "organization": [
        {"id": 100, "name": "Acme Ltd", "vat": "GB123456789"},
        {"id": 101, "name": "Ünïcode GmbH", "vat": "DE987654321"}
    ],
    "user": [{"id": 7, "name": "Owner Seven"}, {"id": 8, "name": "Owner Eight"}],
    "smart_lists": {"contact": {"high_value": [3, 2, 999]}}
}"#;

fn engine_with(store: Arc<MemoryStore>) -> Engine {
    let mut engine = Engine::new();
    engine.set_records(Arc::new(
        JsonRecords::from_json_str(RECORDS).expect("valid records"),
    ));
    engine.set_store(store);
    engine
}

fn render_on(engine: &Engine, src: &str) -> String {
    let tpl = engine.compile("test", src).expect("compiles");
    tpl.render_with(&serde_json::json!({}), RenderOptions::default())
        .unwrap_or_else(|e| panic!("{src}\n{e}"))
}

fn render(src: &str) -> String {
    render_on(&engine_with(Arc::new(MemoryStore::new())), src)
}

#[test]
fn find_one() {
    assert_eq!(
        render(r#"{{ findOne("contact", "city", "Paris").name }}"#),
        "Zoë"
    );
    assert_eq!(
        render(r#"{{ findOne("contact", "city", "Paris", "score", "7.5").name }}"#),
        "Bob"
    );
    // Loose ==: "5" matches 5, "1" matches 1.
    assert_eq!(
        render(r#"{{ findOne("contact", "score", 5).name }}"#),
        "Ann"
    );
    assert_eq!(
        render(r#"{{ findOne("contact", "id", "1").email }}"#),
        "ann@example.test"
    );
    assert_eq!(
        render(r#"{{ findOne("contact", "city", "Rome") is null ? "null" }}"#),
        "null"
    );
    assert_eq!(
        render(r#"{{ findOne("nothing", "id", 1) is null ? "null" }}"#),
        "null"
    );
    assert_eq!(render(r#"{{ findOne("contact", "name", "Zoë").id }}"#), "3");
}

#[test]
fn find_many_orders_and_limits() {
    assert_eq!(
        render(
            r#"{% for c in findMany("contact", "city", "Paris") %}{{ c.id }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "2,3"
    );
    assert_eq!(
        render(
            r#"{% for c in findMany("contact", "city", "Paris", "name", "DESC") %}{{ c.name }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "Zoë,Bob"
    );
    assert_eq!(
        render(
            r#"{% for d in findMany("deal", "stage", "won", orderBy: "amount", dir: "asc", limit: 1) %}{{ d.id }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "11"
    );
    assert_eq!(
        render(r#"{{ findMany("deal", "stage", "won", "id", "ASC", 5000)|length }}"#),
        "2"
    );
    assert_eq!(
        render(r#"{{ findMany("deal", "stage", "open")|length }}"#),
        "0"
    );
}

#[test]
fn counts_and_aggregates() {
    assert_eq!(render(r#"{{ findCount("deal", "stage", "won") }}"#), "2");
    assert_eq!(
        render(r#"{{ findCount("deal", "stage", "won", "owner", 7) }}"#),
        "1"
    );
    assert_eq!(render(r#"{{ findCount("deal", "stage", "open") }}"#), "0");
    assert_eq!(
        render(r#"{{ findSum("deal", "amount", "stage", "won") }}"#),
        "2000.5"
    );
    assert_eq!(
        render(r#"{{ findSum("deal", "amount", "owner", 7) }}"#),
        "1500"
    );
    assert_eq!(
        render(r#"{{ findSum("deal", "amount", "stage", "open") }}"#),
        "0"
    );
    assert_eq!(
        render(r#"{{ findMin("deal", "amount", "owner", 7) }}"#),
        "300"
    );
    assert_eq!(
        render(r#"{{ findMax("deal", "amount", "stage", "won") }}"#),
        "1200"
    );
    assert_eq!(
        render(r#"{{ findMax("contact", "created", "city", "Paris") }}"#),
        "2024-03-01"
    );
    assert_eq!(
        render(r#"{{ findMin("deal", "amount", "stage", "open") is null ? "null" }}"#),
        "null"
    );
    // Null values are skipped, numeric strings count.
    assert_eq!(render(r#"{{ findSum("contact", "score", "id", 1) }}"#), "5");
    assert_eq!(
        render(r#"{{ findMax("contact", "score", "id", 4) is null ? "null" }}"#),
        "null"
    );
}

#[test]
fn phone_numbers_match_on_digits() {
    assert_eq!(
        render(r#"{{ findByPhoneNumber("contact", "phone", "33 1 23 45 67").name }}"#),
        "Zoë"
    );
    assert_eq!(
        render(r#"{{ findByPhoneNumber("contact", "phone", "(555) 0100").name }}"#),
        "Ann"
    );
    assert_eq!(
        render(r#"{{ findByPhoneNumber("contact", "phone", "no digits") is null ? "null" }}"#),
        "null"
    );
}

#[test]
fn smart_lists_organizations_users() {
    assert_eq!(
        render(
            r#"{% for c in getSmartListRecords("contact", "high_value") %}{{ c.name }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "Zoë,Bob"
    );
    assert_eq!(
        render(r#"{{ getSmartListRecords("contact", "nope")|length }}"#),
        "0"
    );
    assert_eq!(render(r#"{{ getOrganization(100).name }}"#), "Acme Ltd");
    assert_eq!(
        render(r#"{{ getOrganization("DE987654321").name }}"#),
        "Ünïcode GmbH"
    );
    assert_eq!(
        render(r#"{{ getOrganization("XX") is null ? "null" }}"#),
        "null"
    );
    assert_eq!(
        render(r#"{{ getOrganization(null) is null ? "null" }}"#),
        "null"
    );
    assert_eq!(render(r#"{{ getUserById("8").name }}"#), "Owner Eight");
    assert_eq!(
        render(r#"{{ getUserById(findOne("deal", "id", 12).owner).name }}"#),
        "Owner Seven"
    );
}

#[test]
fn query_filters_order_limit() {
    assert_eq!(
        render(
            r#"{% for c in query("contact", {city: "Paris"}) %}{{ c.id }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "2,3"
    );
    assert_eq!(
        render(
            r#"{% for d in query("deal", {stage: "won", owner: 8}) %}{{ d.id }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "11"
    );
    assert_eq!(
        render(
            r#"{% for c in query("contact", {}, "created", "DESC", 2) %}{{ c.name }}{% if not loop.last %},{% endif %}{% endfor %}"#
        ),
        "Zoë,Bob"
    );
    assert_eq!(render(r#"{{ query("contact")|length }}"#), "4");
}

#[test]
fn argument_errors_name_the_function() {
    let engine = engine_with(Arc::new(MemoryStore::new()));
    for (src, needle) in [
        (
            r#"{{ findMany("contact", "city", "Paris", "id", "sideways") }}"#,
            "findMany: dir must be",
        ),
        (
            r#"{{ query("contact", "city") }}"#,
            "query: filters must be a map",
        ),
        (
            r#"{{ query("contact", {}, "id", "ASC", -1) }}"#,
            "query: limit must not be negative",
        ),
        (
            r#"{{ findOne("", "id", 1) }}"#,
            "findOne: type must not be empty",
        ),
        (
            r#"{{ findCount("contact", [1], 1) }}"#,
            "findCount: field must be a string",
        ),
        (
            r#"{{ getUserById({a: 1}) }}"#,
            "getUserById: id must be a string or a number",
        ),
    ] {
        let err = engine
            .compile("test", src)
            .and_then(|t| t.render(&serde_json::json!({})))
            .expect_err(src);
        assert!(err.to_string().contains(needle), "{src}: {err}");
    }
}

#[test]
fn no_record_source_is_a_host_error() {
    let engine = Engine::new();
    let err = engine
        .compile("test", r#"{{ findOne("contact", "id", 1) }}"#)
        .and_then(|t| t.render(&serde_json::json!({})))
        .expect_err("no records");
    assert_eq!(err.kind(), ErrorKind::Host);
    assert!(err.to_string().contains("findOne"));
}

#[test]
fn shared_store_counters_and_memory() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine_with(Arc::clone(&store));
    assert_eq!(render_on(&engine, r#"{{ incrementAndGet("hits") }}"#), "1");
    assert_eq!(
        render_on(&engine, r#"{{ incrementAndGet("hits", 10) }}"#),
        "11"
    );
    assert_eq!(
        render_on(&engine, r#"{{ incrementAndGet("hits", by: -1) }}"#),
        "10"
    );
    assert_eq!(render_on(&engine, r#"{{ memoryGet("hits") }}"#), "10");
    // A set_memory step writes through the store; templates read it back, typed.
    store.set(
        "token",
        flexscript::Value::from(serde_json::json!({"value": "abc", "n": 2})),
        Duration::from_secs(60),
    );
    assert_eq!(
        render_on(&engine, r#"{{ memoryGet("token").value }}"#),
        "abc"
    );
    assert_eq!(render_on(&engine, r#"{{ memoryGet("token").n + 1 }}"#), "3");
    assert_eq!(
        render_on(&engine, r#"{{ memoryGet("missing", "fallback") }}"#),
        "fallback"
    );
    assert_eq!(
        render_on(&engine, r#"{{ memoryGet("missing") is null ? "null" }}"#),
        "null"
    );
    store.set(
        "short",
        flexscript::Value::from("x"),
        Duration::from_millis(20),
    );
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(
        render_on(&engine, r#"{{ memoryGet("short", "expired") }}"#),
        "expired"
    );
}

#[test]
fn counters_are_atomic_across_threads() {
    let store = Arc::new(MemoryStore::new());
    let engine = Arc::new(engine_with(Arc::clone(&store)));
    let tpl = Arc::new(
        engine
            .compile("test", r#"{{ incrementAndGet("n") }}"#)
            .expect("compiles"),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let tpl = Arc::clone(&tpl);
            std::thread::spawn(move || {
                (0..250)
                    .map(|_| {
                        tpl.render(&serde_json::json!({}))
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut seen: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("thread"))
        .map(|v| v.expect("a number"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
}

/// `RenderOptions::with_read_only_store(true)`: `incrementAndGet` fails with a host error and
/// leaves the counter as it was; `memoryGet` reads as usual; the next ordinary render writes.
#[test]
fn a_read_only_store_refuses_increments_and_allows_reads() {
    let store = Arc::new(MemoryStore::new());
    let engine = engine_with(Arc::clone(&store));
    assert_eq!(render_on(&engine, r#"{{ incrementAndGet("hits") }}"#), "1");
    let ro = RenderOptions::default().with_read_only_store(true);
    let tpl = engine
        .compile(
            "t",
            r#"{{ memoryGet("hits") }}-{{ incrementAndGet("hits") }}"#,
        )
        .unwrap();
    let err = tpl
        .render_with(&serde_json::json!({}), ro)
        .expect_err("the increment is refused");
    assert_eq!(err.kind(), ErrorKind::Host);
    assert!(err.to_string().contains("read-only"), "{err}");
    let read = engine.compile("r", r#"{{ memoryGet("hits") }}"#).unwrap();
    assert_eq!(read.render_with(&serde_json::json!({}), ro).unwrap(), "1");
    assert_eq!(render_on(&engine, r#"{{ incrementAndGet("hits") }}"#), "2");
}
