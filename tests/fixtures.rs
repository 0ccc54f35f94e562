//! The fixture harness: runs every `tests/fixtures/**/*.test` file (sorted by path)
//! through the engine, compares the result with the fixture, and keeps each actual
//! result as an insta snapshot in `tests/snapshots/` (named after the relative path:
//! `language/operators/precedence.test` → `language__operators__precedence`).
//!
//! # Fixture format (the harness below)
//!
//! ```text
//! --TEST--            one-line title (required, first)
//! --CONTEXT--         JSON object: the render context (optional, default `{}`)
//! --OPTIONS--         JSON object (optional), keys below
//! --SNIPPET name--    a named snippet for include/import (optional, repeatable)
//! --FILE name--       a template of the library (a `MapLoader`) for extends, include,
//!                     import, embed, use (optional, repeatable; docs/templates.md)
//! --TEMPLATE--        the template source (required)
//! --EXPECT--          the exact output             } exactly one
//! --ERROR--           the expected error (below)   } of these two
//! ```
//!
//! A section header is a whole line `--NAME--` or `--NAME arg--` (upper-case name).
//! The final newline of TEMPLATE, SNIPPET and EXPECT is not part of them. A malformed
//! fixture (unknown or repeated section, missing TEMPLATE or result, bad JSON, unknown
//! option) is a failure naming the file.
//!
//! OPTIONS keys:
//! - `autoescape`: `"html"` or `"none"` (default `"none"`);
//! - `strict`: bool, strict undefined handling;
//! - `allow_env`: bool, allow `env()` (settings fields);
//! - `timezone`: IANA name, the engine timezone (default UTC);
//! - `records`: the records document inline (a JSON object, as the listener's records
//!   file) or a string path to such a file, relative to the fixture's directory;
//! - `store`: bool, install an empty in-memory shared store;
//! - `limits`: object with any of `fuel`, `max_output`, `max_depth`, `max_range`
//!   overriding the defaults (so limit fixtures stay fast).
//!
//! # How `--ERROR--` compares
//!
//! The error must be exactly the expected one, but only its meaningful parts are compared,
//! not the snippet's spacing (which the snapshot pins anyway). The section's non-empty lines,
//! each trimmed, are:
//! 1. the first line: the error's message, exactly (an optional leading `error: ` is ignored);
//! 2. optionally a line `--> name:line:column`: must equal the error's location exactly
//!    (the template is compiled under the name `test`, snippets under their own name).
//!    The short form `--> name:line:` checks only name and line;
//! 3. optionally a line `kind: K`: must equal the error's kind (`ErrorKind::as_str`:
//!    `syntax error`, `unknown name`, `type error`, `invalid argument`, `undefined`,
//!    `division by zero`, `limit exceeded`, `host error`, `runtime error`, `io error`);
//! 4. optionally one more line: must equal the error's hint exactly (the text printed after
//!    the caret, e.g. ``did you mean `upper`?``).
//!
//! Rendering that succeeds where an error was expected, or fails where output was expected,
//! is a failure showing what happened instead.
//!
//! # Known failures
//!
//! Fixtures under `tests/fixtures/known-failures/` state what the spec asks for but the engine
//! does not do yet. They run and are reported, but do not fail the test, and keep no snapshot.
//! One that passes is reported so that it can be moved to its topic.
//!
//! # Environment
//!
//! - `FIXTURE_FILTER=substring`: run only fixtures whose relative path contains it;
//! - `INSTA_UPDATE=always cargo test --test fixtures`: (re)write the snapshots.

use flexscript::host::{JsonRecords, MemoryStore};
use flexscript::{Engine, Error, Escape, Limits, RenderOptions, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const KNOWN_FAILURES: &str = "known-failures/";

/// One parsed fixture file.
#[derive(Debug, Default)]
struct Fixture {
    title: String,
    context: Option<serde_json::Value>,
    options: Options,
    snippets: Vec<(String, String)>,
    files: Vec<(String, String)>,
    template: String,
    expected: Expected,
}

#[derive(Debug, Default)]
enum Expected {
    #[default]
    Missing,
    Output(String),
    Error(Vec<String>),
}

#[derive(Debug, Default)]
struct Options {
    autoescape_html: bool,
    strict: bool,
    allow_env: bool,
    timezone: Option<chrono_tz::Tz>,
    records: Option<JsonRecords>,
    store: bool,
    limits: Option<Limits>,
}

/// Removes one final newline (`\n` or `\r\n`).
fn chop(mut s: String) -> String {
    if s.ends_with('\n') {
        s.pop();
        if s.ends_with('\r') {
            s.pop();
        }
    }
    s
}

/// `--NAME--` or `--NAME arg--` → (NAME, arg).
fn header(line: &str) -> Option<(&str, Option<&str>)> {
    let inner = line.strip_prefix("--")?.strip_suffix("--")?;
    let (name, arg) = match inner.split_once(' ') {
        Some((n, a)) => (n, Some(a.trim())),
        None => (inner, None),
    };
    let upper = !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase());
    upper.then_some((name, arg))
}

fn parse(text: &str, dir: &Path) -> Result<Fixture, String> {
    // split into (name, arg, body) sections
    let mut sections: Vec<(String, Option<String>, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\n', '\r']);
        if let Some((name, arg)) = header(bare) {
            sections.push((name.to_string(), arg.map(str::to_string), String::new()));
        } else if let Some(last) = sections.last_mut() {
            last.2.push_str(line);
        } else if !bare.trim().is_empty() {
            return Err("text before the first section (expected --TEST--)".into());
        }
    }
    if sections.first().map(|s| s.0.as_str()) != Some("TEST") {
        return Err("the first section must be --TEST--".into());
    }
    let mut fx = Fixture::default();
    let mut seen: Vec<String> = Vec::new();
    for (name, arg, body) in sections {
        if name != "SNIPPET" && name != "FILE" {
            if seen.contains(&name) {
                return Err(format!("section --{name}-- appears twice"));
            }
            seen.push(name.clone());
            if arg.is_some() {
                return Err(format!("section --{name}-- takes no argument"));
            }
        }
        match name.as_str() {
            "TEST" => fx.title = body.trim().to_string(),
            "CONTEXT" => {
                let v: serde_json::Value = serde_json::from_str(&body)
                    .map_err(|e| format!("--CONTEXT-- is not valid JSON: {e}"))?;
                if !v.is_object() {
                    return Err("--CONTEXT-- must be a JSON object".into());
                }
                fx.context = Some(v);
            }
            "OPTIONS" => fx.options = options(&body, dir)?,
            "SNIPPET" => {
                let Some(n) = arg.filter(|a| !a.is_empty()) else {
                    return Err("--SNIPPET-- needs a name: --SNIPPET name--".into());
                };
                if fx.snippets.iter().any(|(s, _)| *s == n) {
                    return Err(format!("snippet `{n}` is defined twice"));
                }
                fx.snippets.push((n, chop(body)));
            }
            "FILE" => {
                let Some(n) = arg.filter(|a| !a.is_empty()) else {
                    return Err("--FILE-- needs a name: --FILE name--".into());
                };
                if fx.files.iter().any(|(s, _)| *s == n) {
                    return Err(format!("file `{n}` is defined twice"));
                }
                fx.files.push((n, chop(body)));
            }
            "TEMPLATE" => fx.template = chop(body),
            "EXPECT" | "ERROR" => {
                if !matches!(fx.expected, Expected::Missing) {
                    return Err("a fixture has either --EXPECT-- or --ERROR--, not both".into());
                }
                fx.expected = if name == "EXPECT" {
                    Expected::Output(chop(body))
                } else {
                    let lines: Vec<String> = body
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect();
                    if lines.is_empty() {
                        return Err("--ERROR-- is empty".into());
                    }
                    Expected::Error(lines)
                };
            }
            other => return Err(format!("unknown section --{other}--")),
        }
    }
    if fx.title.is_empty() {
        return Err("--TEST-- title is empty".into());
    }
    if !seen.iter().any(|s| s == "TEMPLATE") {
        return Err("missing --TEMPLATE--".into());
    }
    if matches!(fx.expected, Expected::Missing) {
        return Err("missing --EXPECT-- or --ERROR--".into());
    }
    Ok(fx)
}

fn options(body: &str, dir: &Path) -> Result<Options, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("--OPTIONS-- is not valid JSON: {e}"))?;
    let serde_json::Value::Object(map) = v else {
        return Err("--OPTIONS-- must be a JSON object".into());
    };
    let flag = |k: &str, v: &serde_json::Value| {
        v.as_bool()
            .ok_or_else(|| format!("option `{k}` must be a boolean"))
    };
    let mut o = Options::default();
    for (k, v) in &map {
        match k.as_str() {
            "autoescape" => {
                o.autoescape_html = match v.as_str() {
                    Some("html") => true,
                    Some("none") => false,
                    _ => return Err("option `autoescape` must be \"html\" or \"none\"".into()),
                }
            }
            "strict" => o.strict = flag(k, v)?,
            "allow_env" => o.allow_env = flag(k, v)?,
            "store" => o.store = flag(k, v)?,
            "timezone" => {
                let name = v.as_str().ok_or("option `timezone` must be a string")?;
                o.timezone = Some(
                    name.parse()
                        .map_err(|_| format!("unknown timezone `{name}`"))?,
                );
            }
            "records" => {
                let recs = match v {
                    serde_json::Value::String(path) => JsonRecords::from_file(dir.join(path)),
                    serde_json::Value::Object(_) => JsonRecords::from_json_str(&v.to_string()),
                    _ => return Err("option `records` must be an object or a file path".into()),
                };
                o.records = Some(recs.map_err(|e| format!("option `records`: {e}"))?);
            }
            "limits" => {
                let serde_json::Value::Object(l) = v else {
                    return Err("option `limits` must be an object".into());
                };
                let mut limits = Limits::default();
                for (lk, lv) in l {
                    let n = lv
                        .as_u64()
                        .ok_or_else(|| format!("limit `{lk}` must be a non-negative integer"))?;
                    let size = usize::try_from(n).map_err(|_| format!("limit `{lk}` too large"))?;
                    match lk.as_str() {
                        "fuel" => limits.fuel = n,
                        "max_output" => limits.max_output = size,
                        "max_depth" => limits.max_depth = size,
                        "max_range" => limits.max_range = size,
                        other => return Err(format!("unknown limit `{other}`")),
                    }
                }
                o.limits = Some(limits);
            }
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    Ok(o)
}

/// Builds the engine, registers snippets, compiles and renders.
fn run(fx: Fixture) -> (Result<String, Error>, Expected) {
    let Fixture {
        context,
        options: o,
        snippets,
        files,
        template,
        expected,
        ..
    } = fx;
    let mut engine = Engine::new();
    if !files.is_empty() {
        let pairs = files.iter().map(|(n, s)| (n.as_str(), s.as_str()));
        match flexscript::MapLoader::from_pairs(pairs) {
            Ok(l) => engine.set_loader(l),
            Err(e) => return (Err(e), expected),
        }
    }
    engine.set_strict(o.strict);
    if let Some(tz) = o.timezone {
        engine.set_timezone(tz);
    }
    if let Some(limits) = o.limits {
        engine.set_limits(limits);
    }
    if let Some(records) = o.records {
        engine.set_records(Arc::new(records));
    }
    if o.store {
        engine.set_store(Arc::new(MemoryStore::new()));
    }
    let opts = RenderOptions::default()
        .with_escape(if o.autoescape_html {
            Escape::Html
        } else {
            Escape::None
        })
        .with_env(o.allow_env);
    let ctx = Value::from(&context.unwrap_or_else(|| serde_json::json!({})));
    let result = (|| {
        for (name, src) in &snippets {
            engine.add_snippet(name, src)?;
        }
        engine.compile("test", &template)?.render_value(&ctx, opts)
    })();
    (result, expected)
}

/// Compares an error with the `--ERROR--` lines (see the module docs); `Err` explains.
fn check_error(err: &Error, lines: &[String]) -> Result<(), String> {
    let mut problems = Vec::new();
    let first = lines[0].strip_prefix("error: ").unwrap_or(&lines[0]);
    if first != err.message() {
        problems.push(format!(
            "message: expected `{first}`, got `{}`",
            err.message()
        ));
    }
    let mut hint_seen = false;
    let mut loc_seen = false;
    let mut kind_seen = false;
    for line in &lines[1..] {
        if let Some(kind) = line.strip_prefix("kind:") {
            let kind = kind.trim();
            if kind_seen {
                problems.push("more than one `kind:` line".into());
            }
            kind_seen = true;
            if kind != err.kind().as_str() {
                problems.push(format!(
                    "kind: expected `{kind}`, got `{}`",
                    err.kind().as_str()
                ));
            }
        } else if let Some(loc) = line.strip_prefix("-->") {
            let loc = loc.trim();
            if loc_seen {
                problems.push("more than one `-->` line".into());
            }
            loc_seen = true;
            let actual = err
                .location()
                .map(|l| format!("{}:{}:{}", l.name, l.line, l.column));
            let ok = match (&actual, err.location()) {
                (Some(a), _) if a == loc => true,
                (_, Some(l)) => loc == format!("{}:{}:", l.name, l.line),
                _ => false,
            };
            if !ok {
                problems.push(format!(
                    "location: expected `{loc}`, got `{}`",
                    actual.as_deref().unwrap_or("(none)")
                ));
            }
        } else {
            if hint_seen {
                problems.push(format!("unexpected extra line `{line}`"));
                continue;
            }
            hint_seen = true;
            if err.hint() != Some(line.as_str()) {
                problems.push(format!(
                    "hint: expected `{line}`, got `{}`",
                    err.hint().unwrap_or("(none)")
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Fixture files below `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "test") {
            out.push(path);
        }
    }
    Ok(())
}

/// `language/operators/precedence.test` → `language__operators__precedence`.
fn snapshot_name(rel: &str) -> String {
    rel.trim_end_matches(".test").replace('/', "__")
}

/// Runs one fixture; `Err` is the failure report.
fn check(path: &Path, rel: &str, known: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let fx = parse(&text, dir).map_err(|e| format!("malformed fixture: {e}"))?;
    let title = fx.title.clone();
    let (result, expected) = run(fx);
    let verdict = match (&result, &expected) {
        (Ok(out), Expected::Output(want)) if out == want => Ok(()),
        (Ok(out), Expected::Output(want)) => Err(format!(
            "output differs\n  expected: {want:?}\n  actual:   {out:?}"
        )),
        (Err(e), Expected::Error(lines)) => check_error(e, lines).map_err(|p| {
            format!(
                "{p}\n  expected error:\n    {}\n  actual error:\n{e}",
                lines.join("\n    ")
            )
        }),
        (Err(e), Expected::Output(want)) => {
            Err(format!("expected output {want:?}, got an error:\n{e}"))
        }
        (Ok(out), _) => Err(format!("expected an error, got output {out:?}")),
        (Err(e), Expected::Missing) => Err(format!("no expectation; error:\n{e}")),
    };
    if known {
        return verdict;
    }
    let snap = match &result {
        Ok(out) => out.clone(),
        Err(e) => format!("[error]\n{e}"),
    };
    let name = snapshot_name(rel);
    let input = format!("tests/fixtures/{rel}");
    // insta prints its own diff; silence the panic message and backtrace that follow it
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let snapshot = std::panic::catch_unwind(|| {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_description(title);
        settings.set_input_file(input);
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(name, snap));
    });
    std::panic::set_hook(hook);
    match (verdict, snapshot) {
        (Ok(()), Ok(())) => Ok(()),
        (Ok(()), Err(_)) => Err("snapshot differs (see above)".into()),
        (Err(v), Ok(())) => Err(v),
        (Err(v), Err(_)) => Err(format!("{v}\n  (and the snapshot differs)")),
    }
}

#[test]
fn fixtures() {
    let mut files = Vec::new();
    if let Err(e) = walk(Path::new(ROOT), &mut files) {
        panic!("cannot list {ROOT}: {e}");
    }
    files.sort();
    let filter = std::env::var("FIXTURE_FILTER").unwrap_or_default();
    let (mut ran, mut failures, mut known_failed, mut known_passed) =
        (0, Vec::new(), Vec::new(), Vec::new());
    for path in &files {
        let rel = path
            .strip_prefix(ROOT)
            .unwrap_or(path)
            .to_string_lossy()
            .replace('\\', "/");
        if !rel.contains(&filter) {
            continue;
        }
        ran += 1;
        let known = rel.starts_with(KNOWN_FAILURES);
        match (check(path, &rel, known), known) {
            (Ok(()), false) => {}
            (Ok(()), true) => known_passed.push(rel),
            (Err(e), false) => failures.push((rel, e)),
            (Err(e), true) => known_failed.push((rel, e)),
        }
    }
    let mut report = String::new();
    for (rel, e) in &known_failed {
        let _ = writeln!(report, "known failure: tests/fixtures/{rel}\n  {e}\n");
    }
    for rel in &known_passed {
        let _ = writeln!(
            report,
            "known failure now passes, move it to its topic: tests/fixtures/{rel}\n"
        );
    }
    for (rel, e) in &failures {
        let _ = writeln!(report, "FAILED: tests/fixtures/{rel}\n  {e}\n");
    }
    eprintln!(
        "{report}{ran} fixtures run, {} failed, {} known failures ({} now pass)",
        failures.len(),
        known_failed.len(),
        known_passed.len()
    );
    assert!(ran > 0, "no fixture matched FIXTURE_FILTER={filter:?}");
    if !failures.is_empty() {
        let names: Vec<&str> = failures.iter().map(|(r, _)| r.as_str()).collect();
        panic!(
            "{} of {ran} fixtures failed:\n  {}",
            failures.len(),
            names.join("\n  ")
        );
    }
}
