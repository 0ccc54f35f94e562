//! docs/templates.md's table of builtin parameter names is generated from the registry:
//! this test fails when they drift (`UPDATE_DOCS=1 cargo test --test templates_doc`
//! rewrites the table between its markers).
use flexscript::Engine;

const BEGIN: &str = "<!-- parameters:begin -->";
const END: &str = "<!-- parameters:end -->";

fn table() -> String {
    let mut engine = Engine::new();
    let reg = engine.registry_mut();
    let mut rows = Vec::new();
    {
        for (kind, n) in reg.names() {
            let builtin = match kind {
                "filter" => reg.get_filter(n),
                "function" => reg.get_function(n),
                _ => reg.get_test(n),
            }
            .expect("a listed name is registered");
            let sig = &builtin.signature;
            let mut params: Vec<String> = sig
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let mut s = format!("`{p}`");
                    if let Some(t) = sig.types.get(i).filter(|t| **t != "any") {
                        s.push_str(&format!(" {t}"));
                    }
                    let aliases: Vec<&str> = sig
                        .aliases
                        .iter()
                        .filter(|(_, at)| *at == i)
                        .map(|(a, _)| *a)
                        .collect();
                    if !aliases.is_empty() {
                        s.push_str(&format!(" (also `{}`)", aliases.join("`, `")));
                    }
                    if i >= sig.required {
                        s.push('?');
                    }
                    s
                })
                .collect();
            if sig.variadic {
                params.push("…".to_string());
            }
            let params = if params.is_empty() {
                "—".to_string()
            } else {
                params.join(", ")
            };
            rows.push(format!("| `{n}` | {kind} | {params} |"));
        }
    }
    let extra = [
        "| `include` | function | `template`, `variables`?, `with_context`?, `ignore_missing`?, `sandboxed`? |",
        "| `source` | function | `name`, `ignore_missing`? |",
        "| `block` | function | `name`, `template`? |",
        "| `parent` | function | — |",
    ];
    rows.extend(extra.iter().map(|s| s.to_string()));
    format!(
        "{BEGIN}\n| name | kind | parameters (type when not any; `?` optional, `…` more positional) |\n|---|---|---|\n{}\n{END}",
        rows.join("\n")
    )
}

/// Every builtin of the engine is declared with typed parameters: a type per name.
#[test]
fn every_builtin_declares_typed_parameters() {
    let mut engine = Engine::new();
    let reg = engine.registry_mut();
    let mut untyped = Vec::new();
    for (kind, n) in reg.names() {
        let b = match kind {
            "filter" => reg.get_filter(n),
            "function" => reg.get_function(n),
            _ => reg.get_test(n),
        }
        .expect("a listed name is registered");
        if b.signature.types.len() != b.signature.params.len() {
            untyped.push(format!("{kind} {n}"));
        }
    }
    assert!(
        untyped.is_empty(),
        "builtins without typed declarations: {untyped:?}"
    );
}

#[test]
fn parameter_table_matches_the_registry() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/templates.md");
    let doc = std::fs::read_to_string(path).expect("docs/templates.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/templates.md has no {BEGIN} … {END} markers");
    };
    let current = &doc[b..e + END.len()];
    let want = table();
    if current != want {
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let new = format!("{}{}{}", &doc[..b], want, &doc[e + END.len()..]);
            std::fs::write(path, new).expect("write docs/templates.md");
        } else {
            panic!("docs/templates.md's parameter table is out of date: run UPDATE_DOCS=1 cargo test --test templates_doc");
        }
    }
}
