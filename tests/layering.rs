//! The engine's layering (docs/architecture.md): reads every `crate::` path in the engine's
//! sources (comments excluded) and fails on a forbidden edge or an import cycle between the
//! engine's top-level modules. A module is a folder under `src/` or a file directly in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The engine's modules; the listener and the CLI sit above them and are not checked here.
const ENGINE: &[&str] = &[
    "syntax", "compile", "vm", "value", "builtins", "host", "engine", "error", "limits", "escape",
    "options", "pcre", "stack", "swar",
];

/// `(from, to)`: `from` must never name `to`.
const FORBIDDEN: &[(&str, &str)] = &[
    ("compile", "vm"),
    ("builtins", "compile"),
    ("builtins", "vm"),
    ("syntax", "compile"),
    ("syntax", "vm"),
    ("syntax", "builtins"),
];

/// Leaves: may use only these engine modules.
const LEAVES: &[(&str, &[&str])] = &[
    ("value", &["error"]),
    ("error", &[]),
    ("limits", &[]),
    ("escape", &[]),
    ("pcre", &["error"]),
    ("options", &["escape"]),
    ("stack", &[]),
    ("swar", &[]),
];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The engine module a source file belongs to, if any.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    ENGINE.contains(&name).then(|| name.to_string())
}

/// Every engine module named as `crate::name` in code (not in `//` comments).
fn uses(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.insert(name);
        }
    }
    out
}

/// module → the engine modules it uses.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in all {
        let Some(from) = module_of(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("readable source");
        let edges = g.entry(from.clone()).or_default();
        for to in uses(&text) {
            if to != from {
                edges.insert(to);
            }
        }
    }
    g
}

#[test]
fn the_engine_never_reaches_for_the_listener_or_the_cli() {
    for (from, tos) in graph() {
        for bad in ["listener", "detect"] {
            assert!(
                !tos.contains(bad),
                "engine module `{from}` uses crate::{bad}"
            );
        }
    }
}

#[test]
fn no_forbidden_edge() {
    let g = graph();
    for (from, to) in FORBIDDEN {
        assert!(
            !g.get(*from).is_some_and(|t| t.contains(*to)),
            "`src/{from}` must not use `crate::{to}` (docs/architecture.md)"
        );
    }
    for (leaf, allowed) in LEAVES {
        let extra: Vec<_> = g
            .get(*leaf)
            .into_iter()
            .flatten()
            .filter(|t| ENGINE.contains(&t.as_str()) && !allowed.contains(&t.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "`{leaf}` is a leaf and may use only {allowed:?}, but uses {extra:?}"
        );
    }
    assert!(
        g.values().all(|t| !t.contains("engine")),
        "nothing in the engine may use `crate::engine` (only the crate root re-exports it)"
    );
}

#[test]
fn no_import_cycle() {
    let g = graph();
    // Depth-first search for a back edge; report the cycle's path.
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in g.get(node).into_iter().flatten() {
            if ENGINE.contains(&next.as_str()) {
                if let Some(c) = visit(g, next, path, done) {
                    return Some(c);
                }
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in g.keys() {
        if let Some(cycle) = visit(&g, node, &mut Vec::new(), &mut done) {
            panic!("import cycle in the engine: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_scanner_sees_paths_in_code_only() {
    let found = uses("use crate::vm::x; // crate::listener\nlet y = crate::pcre::compile(z);");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        ["pcre".to_string(), "vm".to_string()]
    );
}
