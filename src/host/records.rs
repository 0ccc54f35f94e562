//! Record look-ups behind `findOne`, `findMany`, `query`… (docs/catalogue.md "Host-backed functions").
//!
//! [`RecordSource`] is the host trait; [`JsonRecords`] is the read-only in-process source the
//! listener loads from its records file (docs/catalogue.md "Host-backed functions").

use crate::error::{Error, ErrorKind};
use crate::value::Value;
use std::collections::HashMap;
use std::path::Path;

/// A read-only source of CRM records.
pub trait RecordSource: Send + Sync {
    /// All records of `record_type`, in stored order (empty for an unknown type).
    fn records(&self, record_type: &str) -> Result<Vec<Value>, Error>;
    /// The record ids of smart list `list` of `record_type` (empty when unknown).
    fn smart_list(&self, record_type: &str, list: &str) -> Result<Vec<Value>, Error>;
}

/// Records loaded from a JSON document:
/// `{"contact": [{…}], "deal": […], "smart_lists": {"lead": {"high_value": [ids]}}}`.
/// Every key but `smart_lists` must hold a list of objects; `smart_lists` maps record types
/// to maps of list names to id lists. Records are converted to [`Value`]s once, at load.
#[derive(Debug, Default)]
pub struct JsonRecords {
    types: HashMap<String, Vec<Value>>,
    smart_lists: HashMap<String, HashMap<String, Vec<Value>>>,
}

fn invalid(msg: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
}

impl JsonRecords {
    /// Parses and checks the records document.
    pub fn from_json_str(text: &str) -> Result<JsonRecords, Error> {
        let doc = match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(data)) => data,
            Ok(_) => return Err(invalid("records file must hold a JSON object".into())),
            Err(e) => return Err(invalid(format!("records file is not valid JSON: {e}"))),
        };
        let mut out = JsonRecords::default();
        for (key, value) in doc {
            if key == "smart_lists" {
                out.smart_lists = smart_lists(&value)?;
                continue;
            }
            let serde_json::Value::Array(items) = value else {
                return Err(invalid(format!(
                    "records file: `{key}` must be a list of records"
                )));
            };
            let mut records = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                if !item.is_object() {
                    return Err(invalid(format!(
                        "records file: `{key}[{i}]` must be an object"
                    )));
                }
                records.push(Value::from(item));
            }
            out.types.insert(key, records);
        }
        Ok(out)
    }

    /// Reads and parses a records file; I/O failures are [`ErrorKind::Io`] errors naming it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<JsonRecords, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read records file {}: {e}", path.display()),
            )
            .with_source(e)
        })?;
        JsonRecords::from_json_str(&text)
            .map_err(|e| invalid(format!("{}: {}", path.display(), e.message())))
    }

    /// Names of the record types present, sorted.
    pub fn types(&self) -> Vec<&str> {
        let mut t: Vec<&str> = self.types.keys().map(String::as_str).collect();
        t.sort_unstable();
        t
    }
}

fn smart_lists(
    v: &serde_json::Value,
) -> Result<HashMap<String, HashMap<String, Vec<Value>>>, Error> {
    let bad = || invalid("records file: `smart_lists` must map types to {list: [ids]}".into());
    let mut out = HashMap::new();
    for (rtype, lists) in v.as_object().ok_or_else(bad)? {
        let mut by_name = HashMap::new();
        for (name, ids) in lists.as_object().ok_or_else(bad)? {
            let ids = ids.as_array().ok_or_else(bad)?;
            by_name.insert(name.clone(), ids.iter().map(Value::from).collect());
        }
        out.insert(rtype.clone(), by_name);
    }
    Ok(out)
}

impl RecordSource for JsonRecords {
    fn records(&self, record_type: &str) -> Result<Vec<Value>, Error> {
        Ok(self.types.get(record_type).cloned().unwrap_or_default())
    }

    fn smart_list(&self, record_type: &str, list: &str) -> Result<Vec<Value>, Error> {
        Ok(self
            .smart_lists
            .get(record_type)
            .and_then(|l| l.get(list))
            .cloned()
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_and_checks() {
        let r = JsonRecords::from_json_str(
            r#"{"contact": [{"id": 1}], "smart_lists": {"contact": {"vip": [1]}}}"#,
        )
        .unwrap();
        assert_eq!(r.records("contact").unwrap().len(), 1);
        assert!(r.records("deal").unwrap().is_empty());
        assert_eq!(r.smart_list("contact", "vip").unwrap().len(), 1);
        assert!(r.smart_list("contact", "nope").unwrap().is_empty());
        assert_eq!(r.types(), vec!["contact"]);
        for bad in [
            "[]",
            "{",
            r#"{"contact": {}}"#,
            r#"{"contact": [1]}"#,
            r#"{"smart_lists": {"contact": []}}"#,
        ] {
            assert!(JsonRecords::from_json_str(bad).is_err(), "{bad}");
        }
        let err = JsonRecords::from_file("/nonexistent/records.json").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        // The I/O error is kept as the cause.
        let cause = std::error::Error::source(&err).expect("a cause");
        let io = cause
            .downcast_ref::<std::io::Error>()
            .expect("an io::Error");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }
}
