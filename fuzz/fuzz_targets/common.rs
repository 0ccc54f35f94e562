//! Shared pieces of the fuzz targets: a small-limit engine and an arbitrary JSON-like context.
#![allow(dead_code)]

use arbitrary::Arbitrary;
use flexscript::{Engine, Limits};

/// An engine with small limits, so every input finishes fast.
pub fn small_engine() -> Engine {
    let mut engine = Engine::new();
    engine.set_limits(Limits {
        fuel: 20_000,
        max_output: 64 * 1024,
        max_depth: 64,
        max_range: 1_000,
    });
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

/// A render input: template source plus a context whose top level is a map.
#[derive(Arbitrary, Debug)]
pub struct RenderInput {
    pub template: String,
    pub context: Vec<(String, ArbValue)>,
    pub html: bool,
}

impl RenderInput {
    pub fn context_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        // fixed names the dictionary mentions, so templates find data
        for (i, (k, v)) in self.context.iter().enumerate() {
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
}
