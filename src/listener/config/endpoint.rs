//! One `[[endpoint]]` table → [`Endpoint`], with its scripts compiled and its steps read.

use super::fields::{Fields, Source};
use super::{script_error, steps, Answer, Diagnostic, Endpoint, ReturnType, RunMode};

/// Most steps one endpoint may have.
pub const MAX_STEPS: usize = 1000;
use crate::{Engine, Template};
use toml_edit::Table;

/// Default `response_timeout_ms`.
pub const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 30_000;

/// Compiles the string field `key` (if present) as a template.
pub fn template(f: &mut Fields<'_>, engine: &Engine, key: &str) -> Option<Template> {
    let src = f.string(key)?;
    let name = f.path(key);
    match engine.compile(&name, &src) {
        Ok(t) => Some(t),
        Err(e) => {
            f.error(key, script_error(&e));
            None
        }
    }
}

fn is_hash(s: &str) -> bool {
    s.len() >= 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Reads endpoint number `i`; `None` when it has errors.
pub fn read(
    src: &Source<'_>,
    engine: &Engine,
    table: &Table,
    i: usize,
) -> (Option<Endpoint>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut f = Fields::new(src, table, format!("endpoint[{i}]"));
    let mut warnings = Vec::new();
    let name = f.required("name").unwrap_or_default();
    let mut hashes = Vec::new();
    for key in ["first_hash", "second_hash"] {
        let h = f.required(key).unwrap_or_default();
        if f.table.contains_key(key) && !is_hash(&h) {
            f.error(key, "must be 32+ hex chars (0-9, a-f)");
        }
        hashes.push(h);
    }
    let published = f.boolean("published", true);
    let run_mode = match f.string("run_mode").as_deref() {
        None | Some("async") => RunMode::Async,
        Some("sync") => RunMode::Sync,
        Some(_) => {
            f.error("run_mode", "must be \"sync\" or \"async\"");
            RunMode::Async
        }
    };
    let kind = f.required("return_type").unwrap_or_default();
    let body_field = |f: &mut Fields<'_>, key: &str| {
        if !f.table.contains_key(key) {
            let d = src.diag(
                f.line_of("return_type"),
                &f.path(key),
                format!("is required with return_type = \"{kind}\""),
            );
            f.errors.push(d);
        }
        template(f, engine, key)
    };
    let return_type = match kind.as_str() {
        "data" => body_field(&mut f, "return_data").map(|t| ReturnType::Answer(Answer::Data(t))),
        "html" => body_field(&mut f, "return_html").map(|t| ReturnType::Answer(Answer::Html(t))),
        "redirect" => {
            body_field(&mut f, "return_redirect").map(|t| ReturnType::Answer(Answer::Redirect(t)))
        }
        "continue" => Some(ReturnType::Continue),
        "sse" => Some(ReturnType::Sse),
        "" => None,
        _ => {
            f.error(
                "return_type",
                "must be one of data, html, redirect, continue, sse",
            );
            None
        }
    };
    for key in ["return_data", "return_html", "return_redirect"] {
        if f.table.contains_key(key) && key != format!("return_{kind}") {
            let _ = template(&mut f, engine, key);
            warnings.push(src.diag(
                f.line_of(key),
                &f.path(key),
                format!("ignored with return_type = \"{kind}\""),
            ));
        }
    }
    if kind == "sse" && run_mode != RunMode::Sync {
        f.error("return_type", "sse requires run_mode = \"sync\"");
    }
    let add_auth = f.boolean("add_authentication", false);
    let key = template(&mut f, engine, "endpoint_key");
    let secret = template(&mut f, engine, "endpoint_secret");
    let require_exp = f.boolean("require_exp", true);
    let auth = if add_auth {
        for k in ["endpoint_key", "endpoint_secret"] {
            if !f.table.contains_key(k) {
                f.error(
                    "add_authentication",
                    format!("{k} is required with add_authentication = true"),
                );
            }
        }
        key.zip(secret)
    } else {
        None
    };
    let allow_cors = f.boolean("allow_cors", false);
    let domains = template(&mut f, engine, "cors_domains");
    if allow_cors && !f.table.contains_key("cors_domains") {
        f.error(
            "allow_cors",
            "cors_domains is required with allow_cors = true",
        );
    }
    let cors = if allow_cors { domains } else { None };
    let response_timeout_ms = f.uint(
        "response_timeout_ms",
        DEFAULT_RESPONSE_TIMEOUT_MS,
        24 * 3600 * 1000,
    );
    let step_item = f.item("step");
    let (steps, mut step_errors, mut step_warnings) =
        steps::read(src, engine, step_item, &f.prefix, f.line, &kind);
    warnings.append(&mut step_warnings);
    let mut errors = f.finish(&[]);
    errors.append(&mut step_errors);
    let ep = match (errors.is_empty(), return_type) {
        (true, Some(return_type)) => Some(Endpoint {
            name,
            second_hash: hashes.pop().unwrap_or_default(),
            first_hash: hashes.pop().unwrap_or_default(),
            published,
            run_mode,
            return_type,
            auth,
            require_exp,
            cors,
            response_timeout_ms,
            tree: super::build_tree(&steps),
            settings: Default::default(),
            metrics: Default::default(),
            steps,
        }),
        _ => None,
    };
    (ep, errors, warnings)
}
