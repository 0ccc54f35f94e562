//! Miscellaneous catalogue functions: `jsonPath`, `qrCode`, `uuid`, `uniqueId`, `env`.

use super::typed::type_error;
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::value::Value;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::borrow::Cow;

/// `jsonPath(value, path)`: RFC 9535 matches as a list. A string value is parsed as JSON;
/// a string that is not valid JSON has no matches. An invalid path is an error.
fn json_path(state: &mut dyn State, value: &Value, path_text: Cow<str>) -> Result<Value, Error> {
    let path = serde_json_path::JsonPath::parse(&path_text).map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("jsonPath: invalid path \"{path_text}\": {e}"),
        )
    })?;
    let doc = match value {
        Value::Str(s) | Value::Safe(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => v,
            Err(_) => return Ok(Value::list(Vec::new())),
        },
        Value::Callable(_) => {
            return Err(type_error(
                "jsonPath",
                "value",
                "JSON data or a JSON string",
                value,
            ))
        }
        other => other.to_json(),
    };
    let matches = path.query(&doc).all();
    state.fuel(matches.len() as u64)?;
    Ok(Value::list(matches.into_iter().map(Value::from).collect()))
}

/// Bytes a QR code can hold at the lowest error-correction level (version 40-L, byte mode).
const QR_MAX_BYTES: usize = 2953;

/// `qrCode(text, size = 200)`: `data:image/svg+xml;base64,…` of a `size`×`size` SVG.
fn qr_code(state: &mut dyn State, text: Cow<str>, size: Option<i64>) -> Result<Value, Error> {
    let size = size.unwrap_or(200);
    if !(16..=2000).contains(&size) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("qrCode: size must be between 16 and 2000 pixels, got {size}"),
        ));
    }
    let too_long = || {
        Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "qrCode: text of {} bytes is too long for a QR code (at most {QR_MAX_BYTES})",
                text.len()
            ),
        )
    };
    if text.len() > QR_MAX_BYTES {
        return Err(too_long());
    }
    let code = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .or_else(|_| {
            qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::L)
        })
        .map_err(|_| too_long())?;
    let svg = code
        .render::<qrcode::render::svg::Color>()
        .module_dimensions(1, 1)
        .build();
    // Scale the drawing (one unit per module) to the requested size through its viewBox.
    let svg = match svg.find(" viewBox=") {
        Some(end) => {
            let head = svg.get(..end).unwrap_or("");
            let start = head.find(" width=").unwrap_or(end);
            format!(
                "{} width=\"{size}\" height=\"{size}\"{}",
                svg.get(..start).unwrap_or(""),
                svg.get(end..).unwrap_or("")
            )
        }
        None => svg,
    };
    let uri = format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg));
    state.check_size(uri.len())?;
    Ok(Value::from(uri))
}

/// `uuid()`: a random UUID v4, lower-case hyphenated.
fn uuid(_state: &mut dyn State) -> Value {
    Value::from(crate::clock::uuid_v4().to_string())
}

/// `uniqueId(prefix = "")`: prefix + 13 hex characters like PHP `uniqid` (8 for the seconds,
/// 5 for the microseconds), unique within the process (within a case under `flexscript test`:
/// src/clock.rs).
fn unique_id(_state: &mut dyn State, prefix: Cow<str>) -> Value {
    let micros = crate::clock::unique_micros();
    Value::from(format!(
        "{prefix}{:08x}{:05x}",
        micros / 1_000_000,
        micros % 1_000_000
    ))
}

/// `env(name)`: an environment variable (settings fields only); `null` when unset.
fn env(state: &mut dyn State, name: Cow<str>) -> Result<Value, Error> {
    if !state.env_allowed() {
        return Err(Error::new(
            ErrorKind::Runtime,
            "env() is only available in settings fields",
        ));
    }
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("env: invalid variable name \"{name}\""),
        ));
    }
    Ok(std::env::var_os(&*name).map_or(Value::Null, |v| {
        Value::from(v.to_string_lossy().into_owned())
    }))
}

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_function("jsonPath", &["value", "path"], json_path);
    r.declare_function("qrCode", &["text", "size?"], qr_code);
    r.declare_function("uuid", &[], uuid);
    r.declare_function("uniqueId", &["prefix?"], unique_id);
    r.mark_non_deterministic("uuid");
    r.mark_non_deterministic("uniqueId");
    r.declare_function("env", &["name"], env);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::teststate::TestState;

    crate::builtins::teststate::shims!(
        json_path => function "jsonPath",
        qr_code => function "qrCode",
        uuid => function "uuid",
        unique_id => function "uniqueId",
        env => function "env",
    );

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn json_paths() {
        let mut st = TestState::default();
        let doc = s(r#"{"items":[{"sku":"A","n":1},{"sku":"B","n":3}]}"#);
        let out = json_path(&mut st, &[doc.clone(), s("$.items[?@.n > 2].sku")]).unwrap();
        assert_eq!(out.to_output(), r#"["B"]"#);
        let out = json_path(&mut st, &[doc.clone(), s("$..sku")]).unwrap();
        assert_eq!(out.to_output(), r#"["A","B"]"#);
        let map = Value::from(serde_json::json!({"a": {"b": "é"}}));
        assert_eq!(
            json_path(&mut st, &[map, s("$.a.b")]).unwrap().to_output(),
            r#"["é"]"#
        );
        assert_eq!(
            json_path(&mut st, &[s("{oops"), s("$")])
                .unwrap()
                .to_output(),
            "[]"
        );
        let err = json_path(&mut st, &[doc, s("$[")]).unwrap_err();
        assert!(err.message().starts_with("jsonPath: invalid path"));
    }

    #[test]
    fn qr_codes() {
        let mut st = TestState::default();
        let out = qr_code(&mut st, &[s("https://example.com")])
            .unwrap()
            .to_output();
        let b64 = out.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert!(
            svg.contains(r#"width="200" height="200" viewBox="0 0 "#),
            "{svg}"
        );
        assert!(qr_code(&mut st, &[s("x"), Value::Int(8)]).is_err());
        assert!(qr_code(&mut st, &[s(&"x".repeat(2954))]).is_err());
        assert!(qr_code(&mut st, &[s(&"x".repeat(2900))]).is_ok());
        assert_eq!(
            qr_code(&mut st, &[Value::Null]).unwrap().to_output(),
            qr_code(&mut st, &[s("")]).unwrap().to_output()
        );
    }

    #[test]
    fn ids() {
        let mut st = TestState::default();
        let u = uuid(&mut st, &[]).unwrap().to_output();
        assert_eq!(u.len(), 36);
        assert_eq!(u.chars().nth(14), Some('4'));
        let a = unique_id(&mut st, &[]).unwrap().to_output();
        let b = unique_id(&mut st, &[s("x_")]).unwrap().to_output();
        assert_eq!(a.len(), 13);
        assert!(b.starts_with("x_") && b.len() == 15);
        assert!(b[2..] > a[..]);
    }

    #[test]
    fn env_gate() {
        let mut st = TestState::default();
        let err = env(&mut st, &[s("PATH")]).unwrap_err();
        assert_eq!(err.message(), "env() is only available in settings fields");
        st.env_allowed = true;
        assert!(env(&mut st, &[s("PATH")]).unwrap().is_string());
        assert!(env(&mut st, &[s("FLEXSCRIPT_SURELY_UNSET_VAR")])
            .unwrap()
            .is_null());
        assert!(env(&mut st, &[s("A=B")]).is_err());
    }
}
