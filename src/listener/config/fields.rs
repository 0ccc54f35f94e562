//! A checked walk over one TOML table: typed getters that record an error (with the line of the
//! offending key) instead of failing, and a final pass that reports every unknown key.

use super::Diagnostic;
use std::collections::HashSet;
use toml_edit::{Item, Table, Value as TomlValue};

/// The source text and file name, to turn byte offsets into line numbers.
pub struct Source<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    pub fn diag(&self, line: usize, field: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.to_string(),
            line,
            field: field.to_string(),
            message: message.into(),
        }
    }
}

/// One table being read: `prefix` names it in messages (`endpoint[0]`).
pub struct Fields<'a> {
    pub src: &'a Source<'a>,
    pub table: &'a Table,
    pub prefix: String,
    /// Line of the table header (for "missing field" errors).
    pub line: usize,
    used: HashSet<String>,
    pub errors: Vec<Diagnostic>,
}

impl<'a> Fields<'a> {
    pub fn new(src: &'a Source<'a>, table: &'a Table, prefix: String) -> Fields<'a> {
        let line = table.span().map(|s| src.line_of(s.start)).unwrap_or(1);
        Fields {
            src,
            table,
            prefix,
            line,
            used: HashSet::new(),
            errors: Vec::new(),
        }
    }

    /// `prefix.key` for messages.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// The line of `key` (its key token), or of the table.
    pub fn line_of(&self, key: &str) -> usize {
        self.table
            .key(key)
            .and_then(|k| k.span())
            .or_else(|| self.table.get(key).and_then(Item::span))
            .map(|s| self.src.line_of(s.start))
            .unwrap_or(self.line)
    }

    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        let d = self.src.diag(self.line_of(key), &self.path(key), message);
        self.errors.push(d);
    }

    /// The raw item, marking `key` as known.
    pub fn item(&mut self, key: &str) -> Option<&'a Item> {
        self.used.insert(key.to_string());
        self.table.get(key)
    }

    fn value(&mut self, key: &str, want: &str) -> Option<&'a TomlValue> {
        match self.item(key)? {
            Item::Value(v) => Some(v),
            Item::None => None,
            _ => {
                self.error(key, format!("must be {want}"));
                None
            }
        }
    }

    pub fn string(&mut self, key: &str) -> Option<String> {
        let v = self.value(key, "a string")?;
        match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error(key, "must be a string");
                None
            }
        }
    }

    /// A required string.
    pub fn required(&mut self, key: &str) -> Option<String> {
        let s = self.string(key);
        if s.is_none() && self.table.get(key).is_none() {
            let d = self.src.diag(self.line, &self.path(key), "is required");
            self.errors.push(d);
        }
        s
    }

    pub fn boolean(&mut self, key: &str, default: bool) -> bool {
        let Some(v) = self.value(key, "true or false") else {
            return default;
        };
        match v.as_bool() {
            Some(b) => b,
            None => {
                self.error(key, "must be true or false");
                default
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&mut self, key: &str, default: u64, max: u64) -> u64 {
        self.uint_in(key, default, 0, max)
    }

    /// An integer from `min` to `max`, or `default` when absent (an error when out of range).
    pub fn uint_in(&mut self, key: &str, default: u64, min: u64, max: u64) -> u64 {
        let Some(v) = self.value(key, "an integer") else {
            return default;
        };
        match v.as_integer().and_then(|i| u64::try_from(i).ok()) {
            Some(i) if (min..=max).contains(&i) => i,
            _ => {
                self.error(key, format!("must be an integer from {min} to {max}"));
                default
            }
        }
    }

    /// A table of strings (e.g. webhook `headers`), in file order.
    pub fn string_map(&mut self, key: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let Some(item) = self.item(key) else {
            return out;
        };
        let pairs: Vec<(String, Option<String>)> = match item {
            Item::Table(t) => t
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_str().map(str::to_string)))
                .collect(),
            Item::Value(TomlValue::InlineTable(t)) => t
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_str().map(str::to_string)))
                .collect(),
            _ => {
                self.error(key, "must be a table of strings");
                return out;
            }
        };
        for (k, v) in pairs {
            match v {
                Some(v) => out.push((k, v)),
                None => self.error(key, format!("value of `{k}` must be a string")),
            }
        }
        out
    }

    /// Reports every key that no getter asked for; returns all errors.
    pub fn finish(mut self, skip: &[&str]) -> Vec<Diagnostic> {
        let unknown: Vec<String> = self
            .table
            .iter()
            .map(|(k, _)| k.to_string())
            .filter(|k| !self.used.contains(k) && !skip.contains(&k.as_str()))
            .collect();
        for k in unknown {
            self.error(&k, "unknown field");
        }
        self.errors
    }
}
