//! The catalogue table of `docs/catalogue.md` is executable documentation: every row's Example is
//! rendered with a fresh engine and an empty context, and must print its Output exactly.
//!
//! A catalogue table starts with the header `| Name | Kind | Signature | Example | Output |`,
//! then a separator line, then one row per builtin. Example and Output cells are code
//! spans (one pair of backticks); `\|` in a cell stands for `|`. The file may hold
//! several such tables; together they must have at least [`MIN_ROWS`] rows.

use flexscript::Engine;
use std::path::Path;

/// The catalogue must not silently shrink.
const MIN_ROWS: usize = 60;
const HEADER: &str = "| Name | Kind | Signature | Example | Output |";

/// One documented example.
#[derive(Debug)]
struct Row {
    line: usize,
    name: String,
    example: String,
    output: String,
}

/// Splits a table line into cells on unescaped `|`, un-escaping `\|`.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim();
    let inner = inner.strip_prefix('|').unwrap_or(inner);
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut out = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                if let Some(cell) = out.last_mut() {
                    cell.push('|');
                }
            }
            '|' => out.push(String::new()),
            c => {
                if let Some(cell) = out.last_mut() {
                    cell.push(c);
                }
            }
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The text of a code-span cell: `` `x` `` → `x`.
fn code(cell: &str) -> Option<String> {
    cell.strip_prefix('`')
        .and_then(|c| c.strip_suffix('`'))
        .map(str::to_string)
}

/// Every catalogue row of `text`, or a description of the first malformed row.
fn parse_tables(text: &str) -> Result<Vec<Row>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rows = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines.get(i).map(|l| l.trim()) != Some(HEADER) {
            i += 1;
            continue;
        }
        i += 2; // header and separator
        while let Some(line) = lines.get(i).filter(|l| l.trim_start().starts_with('|')) {
            let c = cells(line);
            if c.len() != 5 {
                return Err(format!(
                    "line {}: expected 5 cells, found {}: {line}",
                    i + 1,
                    c.len()
                ));
            }
            let (Some(example), Some(output)) = (code(&c[3]), code(&c[4])) else {
                return Err(format!(
                    "line {}: Example and Output must be code spans: {line}",
                    i + 1
                ));
            };
            rows.push(Row {
                line: i + 1,
                name: c[0].trim_matches('`').to_string(),
                example,
                output,
            });
            i += 1;
        }
    }
    Ok(rows)
}

/// Renders every row; returns one message per mismatch.
fn check(rows: &[Row]) -> Vec<String> {
    let ctx = serde_json::json!({});
    rows.iter()
        .filter_map(|row| {
            let engine = Engine::new();
            let got = engine
                .compile("example", &row.example)
                .and_then(|t| t.render(&ctx));
            match got {
                Ok(out) if out == row.output => None,
                Ok(out) => Some(format!(
                    "line {} `{}`: {}\n    expected: {:?}\n    got:      {:?}",
                    row.line, row.name, row.example, row.output, out
                )),
                Err(e) => Some(format!(
                    "line {} `{}`: {}\n    expected: {:?}\n    error:    {e}",
                    row.line, row.name, row.example, row.output
                )),
            }
        })
        .collect()
}

#[test]
fn readme_catalogue_examples_render_as_documented() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/catalogue.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows = parse_tables(&text).unwrap_or_else(|e| panic!("docs/catalogue.md catalogue: {e}"));
    assert!(
        rows.len() >= MIN_ROWS,
        "docs/catalogue.md must have a catalogue table (`{HEADER}`) with at least {MIN_ROWS} rows, found {}",
        rows.len()
    );
    let failures = check(&rows);
    assert!(
        failures.is_empty(),
        "{} of {} catalogue examples do not render as documented:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[test]
fn table_parser_handles_escaped_pipes_and_rejects_bad_rows() {
    let text = format!(
        "intro\n{HEADER}\n|---|---|---|---|---|\n| `upper` | filter | `upper` | `{{{{ \"a\" \\| upper }}}}` | `A` |\n\nafter\n"
    );
    let rows = parse_tables(&text).unwrap_or_default();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].example, "{{ \"a\" | upper }}");
    assert_eq!(rows[0].output, "A");
    let bad = format!("{HEADER}\n|---|\n| a | b | c |\n");
    assert!(parse_tables(&bad).is_err());
    assert!(parse_tables("no table here").unwrap_or_default().is_empty());
}
