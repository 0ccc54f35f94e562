//! One `[[endpoint]]` table → [`Endpoint`], with its scripts compiled and its steps read.

use super::fields::{Fields, Source};
use super::{
    script_error, steps, Answer, Diagnostic, Endpoint, ReturnType, RunMode, SignatureSpec,
};
use crate::listener::signature::{Encoding, Scheme, DEFAULT_TOLERANCE_S};
use hyper::header::HeaderName;

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

/// Longest accepted `tolerance_s` (one day).
pub const MAX_TOLERANCE_S: u64 = 86_400;

/// Reads `[endpoint.signature]` (errors go to the endpoint's list).
fn signature(f: &mut Fields<'_>, engine: &Engine) -> Option<SignatureSpec> {
    let item = f.item("signature")?;
    let Some(table) = item.as_table() else {
        f.error("signature", "must be a table ([endpoint.signature])");
        return None;
    };
    let mut s = Fields::new(f.src, table, f.path("signature"));
    let name = s.required("scheme").unwrap_or_default();
    let header = s.string("header");
    let encoding = s.string("encoding");
    let scheme = match name.as_str() {
        "standard-webhooks" => Some(Scheme::StandardWebhooks),
        "github" => Some(Scheme::Github),
        "stripe" => Some(Scheme::Stripe),
        "hmac-sha256" => {
            let h = header.clone().unwrap_or_else(|| "X-Signature".into());
            let header = HeaderName::from_bytes(h.as_bytes());
            if header.is_err() {
                s.error("header", "must be a valid header name");
            }
            let encoding = match encoding.as_deref() {
                None | Some("hex") => Some(Encoding::Hex),
                Some("base64") => Some(Encoding::Base64),
                Some(_) => {
                    s.error("encoding", "must be \"hex\" or \"base64\"");
                    None
                }
            };
            header
                .ok()
                .zip(encoding)
                .map(|(header, encoding)| Scheme::HmacSha256 { header, encoding })
        }
        "" => None,
        other => {
            s.error(
                "scheme",
                format!("unknown scheme `{other}` (one of {})", Scheme::NAMES),
            );
            None
        }
    };
    if name != "hmac-sha256" {
        for k in ["header", "encoding"] {
            if s.table.contains_key(k) {
                s.error(k, "only for scheme = \"hmac-sha256\"");
            }
        }
    }
    let raw_secret = s.required("secret");
    if raw_secret.as_deref().is_some_and(|r| r.trim().is_empty()) {
        s.error("secret", "must not be empty");
    }
    let secret = template(&mut s, engine, "secret");
    // A secret without template syntax is checked now (a `whsec_` value must be base64).
    if let (Some(sc), Some(raw)) = (&scheme, &raw_secret) {
        if !raw.contains("{{") && !raw.contains("{%") && !raw.trim().is_empty() {
            if let Err(e) = sc.key(raw) {
                s.error("secret", e);
            }
        }
    }
    let timestamped = scheme.as_ref().is_some_and(Scheme::timestamped);
    if !timestamped && s.table.contains_key("tolerance_s") && scheme.is_some() {
        s.error(
            "tolerance_s",
            "only for the timestamped schemes (standard-webhooks, stripe)",
        );
    }
    let tolerance_s = s.uint_in("tolerance_s", DEFAULT_TOLERANCE_S, 1, MAX_TOLERANCE_S);
    let errs = s.finish(&[]);
    let ok = errs.is_empty();
    f.errors.extend(errs);
    match (ok, scheme, secret) {
        (true, Some(scheme), Some(secret)) => Some(SignatureSpec {
            scheme,
            secret,
            tolerance_s,
        }),
        _ => None,
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
    let signature = signature(&mut f, engine);
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
            signature,
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
