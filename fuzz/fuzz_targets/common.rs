//! Shared pieces of the fuzz targets: a small-limit engine and an arbitrary JSON-like context.
#![allow(dead_code)]

use arbitrary::Arbitrary;
use flexscript::{Engine, Limits};

/// An engine with small limits, so every input finishes fast.
pub fn small_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_limits(
        Limits::default()
            .with_fuel(20_000)
            .with_max_output(64 * 1024)
            .with_max_depth(64)
            .with_max_range(1_000),
    );
    let _ = engine.add_snippet("snip", "[{{ x }}]");
    engine
}

/// A JSON-like value built by the fuzzer.
#[derive(Arbitrary, Debug)]
pub enum ArbValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<ArbValue>),
    Map(Vec<(String, ArbValue)>),
}

impl ArbValue {
    /// Converts to JSON, bounding depth so conversion itself stays cheap.
    pub fn to_json(&self, depth: usize) -> serde_json::Value {
        if depth > 16 {
            return serde_json::Value::Null;
        }
        match self {
            ArbValue::Null => serde_json::Value::Null,
            ArbValue::Bool(b) => (*b).into(),
            ArbValue::Int(i) => (*i).into(),
            ArbValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
            }
            ArbValue::Str(s) => s.as_str().into(),
            ArbValue::List(l) => l.iter().map(|v| v.to_json(depth + 1)).collect(),
            ArbValue::Map(m) => serde_json::Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), v.to_json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// A render input, in a byte format a seed script can write:
/// `FLAGS TEMPLATE [0x00 CONTEXT]`.
/// - `FLAGS`: one byte; bit 0 set = render with HTML autoescaping.
/// - `TEMPLATE`: UTF-8 up to the first NUL byte (the whole rest when there is none).
/// - `CONTEXT`: a JSON object (the variables); when it is not valid JSON, its bytes
///   build an arbitrary JSON-like context instead, so mutated contexts still vary.
#[derive(Debug)]
pub struct RenderInput {
    pub html: bool,
    pub template: String,
    pub context: serde_json::Value,
}

impl RenderInput {
    /// Splits fuzzer bytes; `None` when the template is not UTF-8.
    pub fn parse(data: &[u8]) -> Option<RenderInput> {
        let (&flags, rest) = data.split_first()?;
        let (tpl, ctx) = match rest.iter().position(|&b| b == 0) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let template = std::str::from_utf8(tpl).ok()?.to_string();
        let context = match serde_json::from_slice::<serde_json::Value>(ctx) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            _ => arbitrary_context(ctx),
        };
        Some(RenderInput {
            html: flags & 1 == 1,
            template,
            context,
        })
    }
}

/// A context map from raw bytes; the first three keys are renamed to names the
/// dictionary and seeds use (`x`, `items`, `user`), so templates find data.
fn arbitrary_context(bytes: &[u8]) -> serde_json::Value {
    let mut u = arbitrary::Unstructured::new(bytes);
    let pairs: Vec<(String, ArbValue)> = u.arbitrary().unwrap_or_default();
    let mut map = serde_json::Map::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        let key = match i {
            0 => "x".to_string(),
            1 => "items".to_string(),
            2 => "user".to_string(),
            _ => k.clone(),
        };
        map.insert(key, v.to_json(0));
    }
    serde_json::Value::Object(map)
}
