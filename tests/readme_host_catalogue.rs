//! The host-backed catalogue table of `docs/catalogue.md` (header `Example (host)`) is executable
//! documentation: every row renders with an engine that has the file's JSON record source,
//! a fresh `MemoryStore` per row, and `env()` allowed. (The main table is checked by
//! `tests/readme_catalogue.rs` with a bare engine.)

use flexscript::host::{JsonRecords, MemoryStore};
use flexscript::{Engine, RenderOptions};
use std::path::Path;
use std::sync::Arc;

const HOST_HEADER: &str = "| Name | Kind | Signature | Example (host) | Output |";

/// `(line, example, output)` rows of the table under `header`.
fn rows(text: &str, header: &str) -> Vec<(usize, String, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim() == header) else {
        panic!("no table with header {header}");
    };
    lines
        .iter()
        .enumerate()
        .skip(start + 2)
        .take_while(|(_, l)| l.trim_start().starts_with('|'))
        .map(|(i, l)| {
            let cells = split_cells(l);
            assert_eq!(cells.len(), 5, "line {}: {l}", i + 1);
            let code = |c: &str| {
                c.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("line {}: not a code span: {c}", i + 1))
                    .to_string()
            };
            (i + 1, code(&cells[3]), code(&cells[4]))
        })
        .collect()
}

/// Cells of a table line; `\|` stands for `|`.
fn split_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(s) = out.last_mut() {
                    s.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(s) = out.last_mut() {
                    s.push(c);
                }
            }
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/catalogue.md");
    std::fs::read_to_string(path).expect("docs/catalogue.md")
}

fn check(engine: impl Fn() -> Engine, rows: &[(usize, String, String)], opts: RenderOptions) {
    let mut failures = Vec::new();
    for (line, example, output) in rows {
        let got = engine()
            .compile("example", example)
            .and_then(|t| t.render_with(&serde_json::json!({}), opts));
        match got {
            Ok(out) if &out == output => {}
            Ok(out) => failures.push(format!(
                "line {line}: {example}\n  expected {output:?}\n  got      {out:?}"
            )),
            Err(e) => failures.push(format!(
                "line {line}: {example}\n  expected {output:?}\n  error: {e}"
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn host_table_renders_with_the_documented_records() {
    let text = doc();
    let json = text
        .split("## Host-backed functions")
        .nth(1)
        .expect("a host-backed functions section")
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a json block");
    let records = Arc::new(JsonRecords::from_json_str(json).expect("valid records"));
    let rows = rows(&text, HOST_HEADER);
    assert!(rows.len() >= 14, "rows: {}", rows.len());
    let engine = || {
        let mut e = Engine::new();
        e.set_records(records.clone());
        e.set_store(Arc::new(MemoryStore::new()));
        e
    };
    let opts = RenderOptions::default().with_env(true);
    check(engine, &rows, opts);
}
