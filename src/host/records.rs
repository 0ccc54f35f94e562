//! Record look-ups behind `findOne`, `findMany`, `query`… (catalogue.md "Record look-ups").
//! OWNER: catalogue helper (issue 3). The trait shape below is the contract.

use crate::error::Error;
use crate::value::Value;

/// A read-only source of CRM records.
pub trait RecordSource: Send + Sync {
    /// All records of `record_type`, in stored order (empty for an unknown type).
    fn records(&self, record_type: &str) -> Result<Vec<Value>, Error>;
    /// The record ids of smart list `list` of `record_type` (empty when unknown).
    fn smart_list(&self, record_type: &str, list: &str) -> Result<Vec<Value>, Error>;
}

/// Records loaded from a JSON file:
/// `{"contact": [{…}], "deal": […], "smart_lists": {"lead": {"high_value": [ids]}}}`.
#[derive(Debug, Default)]
pub struct JsonRecords {
    data: serde_json::Map<String, serde_json::Value>,
}

impl JsonRecords {
    /// Parses the records document; anything but a JSON object is an error.
    pub fn from_json_str(text: &str) -> Result<JsonRecords, Error> {
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(data)) => Ok(JsonRecords { data }),
            Ok(_) => Err(Error::new(
                crate::ErrorKind::InvalidArgument,
                "records file must hold a JSON object",
            )),
            Err(e) => Err(Error::new(
                crate::ErrorKind::InvalidArgument,
                format!("records file is not valid JSON: {e}"),
            )),
        }
    }
}

impl RecordSource for JsonRecords {
    fn records(&self, record_type: &str) -> Result<Vec<Value>, Error> {
        Ok(match self.data.get(record_type) {
            Some(serde_json::Value::Array(items)) => items.iter().map(Value::from).collect(),
            _ => Vec::new(),
        })
    }

    fn smart_list(&self, record_type: &str, list: &str) -> Result<Vec<Value>, Error> {
        Ok(
            match self
                .data
                .get("smart_lists")
                .and_then(|s| s.get(record_type))
                .and_then(|t| t.get(list))
            {
                Some(serde_json::Value::Array(ids)) => ids.iter().map(Value::from).collect(),
                _ => Vec::new(),
            },
        )
    }
}
