//! The journal's JSON texts written straight from their values, byte for byte what serde_json's
//! compact serializer writes for them (so every reader — this version's, an older one's,
//! `sqlite3` — sees the same text): a request's `__data` without its credential headers
//! ([`request_data`], as `Value`'s `Serialize` in src/value/convert.rs writes it), a run's
//! steps ([`steps`], the derived `Serialize` of [`StepRecord`]) and a whole run record with
//! such data ([`record`], Redis's `rec` field). serde_json escapes a string byte by byte and
//! writes every field name through the same path; here a string with nothing to escape —
//! nearly every one — is found so eight bytes at a time (src/swar.rs) and copied, field names
//! are literals, numbers are written by `itoa`. Floats, rare, and any string that needs an
//! escape go through serde_json itself. On the durable benchmark the request data and the
//! steps took ≈8,000 of a run's 75,000 instructions through serde_json (docs/state.md,
//! "Performance"). The tests in src/state/tests.rs compare all three with serde_json's output
//! over generated values.

use super::record::{Checkpoint, RunRecord, RunStatus, StepRecord, SECRET_HEADERS};
use crate::swar::{below, eq, find};
use crate::value::Value;

/// Appends `s` as a JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    let b = s.as_bytes();
    let plain = find(
        b,
        0,
        |x| eq(x, b'"') | eq(x, b'\\') | below(x, 0x20),
        |c| c == b'"' || c == b'\\' || c < 0x20,
    )
    .is_none();
    if plain {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
    } else {
        serde_json_into(out, s);
    }
}

/// Appends what `serde_json::to_string(x)` gives.
fn serde_json_into<T: serde::Serialize + ?Sized>(out: &mut String, x: &T) {
    // (serde_json writes valid UTF-8 and cannot fail on a string, a float or a JSON value.)
    if let Ok(text) = serde_json::to_string(x) {
        out.push_str(&text);
    }
}

fn int(out: &mut String, i: i64) {
    out.push_str(itoa::Buffer::new().format(i));
}

fn opt_int(out: &mut String, i: Option<i64>) {
    match i {
        Some(i) => int(out, i),
        None => out.push_str("null"),
    }
}

/// Appends request data `data` as journaled: the text of `journal_data(data)`
/// (src/state/record.rs), the credential headers ([`SECRET_HEADERS`]) left out of a map named
/// `__headers` directly under a top-level map.
pub(crate) fn request_data(out: &mut String, data: &Value) {
    value(out, data, Some(&|k| !SECRET_HEADERS.contains(&k)));
}

/// Appends `v` as serde_json writes `Value`'s `Serialize`, with `filter` deciding which
/// entries of a map named `__headers` directly under a top-level map are kept (`None`: every
/// entry).
fn value(out: &mut String, v: &Value, filter: Option<&dyn Fn(&str) -> bool>) {
    match v {
        Value::Undefined | Value::Null | Value::Callable(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => int(out, *i),
        Value::Float(f) => serde_json_into(out, f),
        Value::Str(s) | Value::Safe(s) => string(out, s),
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                value(out, item, None);
            }
            out.push(']');
        }
        Value::Map(m) => map(out, &mut m.iter().map(|(k, v)| (&**k, v)), filter),
    }
}

/// Appends a map of `entries`; with `headers`, the entries of a map under `__headers` are
/// those it keeps (see [`value`]).
fn map<'a>(
    out: &mut String,
    entries: &mut dyn Iterator<Item = (&'a str, &'a Value)>,
    headers: Option<&dyn Fn(&str) -> bool>,
) {
    out.push('{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        match (v, headers) {
            (Value::Map(h), Some(keep)) if k == "__headers" => map(
                out,
                &mut h.iter().map(|(k, v)| (&**k, v)).filter(|(k, _)| keep(k)),
                None,
            ),
            _ => value(out, v, None),
        }
    }
    out.push('}');
}

/// Appends `run` as `serde_json::to_string(run)` writes it, with [`request_data`] of `data`
/// as its `data` (`run.data` is not read); `accepted`: as the record was accepted — status
/// `queued`, `started`, `finished` and `error` null, no steps.
pub(crate) fn record(out: &mut String, run: &RunRecord, data: &Value, accepted: bool) {
    // Every field by name (no `..`): a field added to `RunRecord` must be written here.
    let RunRecord {
        id,
        endpoint,
        first_hash,
        second_hash,
        config_fingerprint,
        resumable,
        status,
        attempt,
        created,
        started,
        finished,
        error,
        data: _,
        steps: all_steps,
        owner,
    } = run;
    let (status, started, finished, error, all_steps) = if accepted {
        (RunStatus::Queued, None, None, None, &[][..])
    } else {
        (
            *status,
            *started,
            *finished,
            error.as_deref(),
            &all_steps[..],
        )
    };
    out.push_str("{\"id\":");
    string(out, id);
    out.push_str(",\"endpoint\":");
    string(out, endpoint);
    out.push_str(",\"first_hash\":");
    string(out, first_hash);
    out.push_str(",\"second_hash\":");
    string(out, second_hash);
    out.push_str(",\"config_fingerprint\":");
    string(out, config_fingerprint);
    out.push_str(if *resumable {
        ",\"resumable\":true,\"status\":\""
    } else {
        ",\"resumable\":false,\"status\":\""
    });
    out.push_str(status.as_str());
    out.push_str("\",\"attempt\":");
    int(out, i64::from(*attempt));
    out.push_str(",\"created\":");
    int(out, *created);
    out.push_str(",\"started\":");
    opt_int(out, started);
    out.push_str(",\"finished\":");
    opt_int(out, finished);
    out.push_str(",\"error\":");
    opt_string(out, error);
    out.push_str(",\"data\":");
    request_data(out, data);
    out.push_str(",\"steps\":");
    steps(out, all_steps);
    if let Some(o) = owner {
        out.push_str(",\"owner\":");
        string(out, o);
    }
    out.push('}');
}

fn opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.push_str("null"),
    }
}

/// Appends `steps` as `serde_json::to_string(steps)` writes them.
pub(crate) fn steps(out: &mut String, steps: &[StepRecord]) {
    out.push('[');
    for (i, s) in steps.iter().enumerate() {
        // Every field by name (no `..`): a field added to `StepRecord` must be written here.
        let StepRecord {
            id,
            kind,
            status,
            started,
            finished,
            due,
            error,
            checkpoint,
        } = s;
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"id\":");
        string(out, id);
        out.push_str(",\"kind\":");
        string(out, kind);
        out.push_str(",\"status\":\"");
        out.push_str(status.as_str());
        out.push_str("\",\"started\":");
        opt_int(out, *started);
        out.push_str(",\"finished\":");
        opt_int(out, *finished);
        out.push_str(",\"due\":");
        opt_int(out, *due);
        out.push_str(",\"error\":");
        opt_string(out, error.as_deref());
        out.push_str(",\"checkpoint\":");
        match checkpoint {
            Some(c) => write_checkpoint(out, c),
            None => out.push_str("null"),
        }
        out.push('}');
    }
    out.push(']');
}

fn write_checkpoint(out: &mut String, c: &Checkpoint) {
    // Every field by name, as `steps` does.
    let Checkpoint { set, branch } = c;
    out.push('{');
    if !set.is_empty() {
        out.push_str("\"set\":[");
        for (i, (path, v)) in set.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('[');
            string(out, path);
            out.push(',');
            serde_json_into(out, v);
            out.push(']');
        }
        out.push(']');
    }
    if let Some(b) = branch {
        if !set.is_empty() {
            out.push(',');
        }
        out.push_str(if *b {
            "\"branch\":true"
        } else {
            "\"branch\":false"
        });
    }
    out.push('}');
}
