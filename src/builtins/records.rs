//! Host-backed builtins: the record look-ups (`findOne`, `findMany`, `findCount`, `findSum`,
//! `findMin`, `findMax`, `findByPhoneNumber`, `getSmartListRecords`, `getOrganization`,
//! `getUserById`, `query`) and the shared store (`incrementAndGet`, `memoryGet`).
//!
//! Field/value pairs combine with AND and compare with loose `==`. `findOne`, `findCount` and
//! the aggregates take one or more pairs; `findMany` takes exactly one pair followed by its
//! optional `orderBy`, `dir`, `limit` (use `query` for several conditions). Lists are capped
//! at 1000 records. Without a record source (or store) every call is an
//! [`ErrorKind::Host`] error naming the function.

use super::args::{arg, expect_string, opt_i64, opt_string};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::host::{RecordSource, SharedStore};
use crate::value::{compare, loose_eq, Number, Value};
use std::sync::Arc;

/// Hard cap on the records a look-up returns.
pub const MAX_RECORDS: usize = 1000;

fn source(name: &str, state: &dyn State) -> Result<Arc<dyn RecordSource>, Error> {
    state.host().records.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::Host,
            format!("{name}: no record source is configured (records are only available where the host provides them)"),
        )
    })
}

fn store(name: &str, state: &dyn State) -> Result<Arc<dyn SharedStore>, Error> {
    state.host().store.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::Host,
            format!("{name}: no shared store is configured"),
        )
    })
}

/// A non-empty string argument naming a record type, field or key.
fn name_arg(name: &str, what: &str, v: &Value) -> Result<String, Error> {
    let s = expect_string(name, what, v)?;
    if s.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: {what} must not be empty"),
        ));
    }
    Ok(s)
}

/// All records of the type in `args[0]`, charging one unit of fuel per record.
fn load(name: &str, state: &mut dyn State, type_arg: &Value) -> Result<Vec<Value>, Error> {
    let src = source(name, state)?;
    let rtype = name_arg(name, "type", type_arg)?;
    let records = src.records(&rtype)?;
    state.fuel(records.len() as u64)?;
    Ok(records)
}

type Conditions = Vec<(Value, Value)>;

/// Field/value pairs from a flat argument list.
fn pairs(name: &str, rest: &[Value]) -> Result<Conditions, Error> {
    if rest.is_empty() || rest.len() % 2 != 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{name}: field/value arguments must come in pairs, got {}",
                rest.len()
            ),
        ));
    }
    rest.chunks(2)
        .map(|c| {
            let field = name_arg(name, "field", c.first().unwrap_or(&Value::Undefined))?;
            Ok((Value::from(field), c.get(1).cloned().unwrap_or_default()))
        })
        .collect()
}

fn matches(record: &Value, conds: &Conditions) -> bool {
    conds
        .iter()
        .all(|(field, value)| loose_eq(&record.get_item(field), value))
}

/// Sorts by `order_by` (`ASC`/`DESC`, stable) and truncates to `limit` (capped at 1000).
fn order_and_limit(
    name: &str,
    mut records: Vec<Value>,
    order_by: &Value,
    dir: &Value,
    limit: &Value,
) -> Result<Value, Error> {
    let order_by = opt_string(name, "orderBy", order_by)?.unwrap_or_else(|| "id".into());
    let desc = match opt_string(name, "dir", dir)?
        .as_deref()
        .map(str::to_ascii_uppercase)
    {
        None => false,
        Some(d) if d == "ASC" => false,
        Some(d) if d == "DESC" => true,
        Some(d) => {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("{name}: dir must be \"ASC\" or \"DESC\", got \"{d}\""),
            ))
        }
    };
    let limit = opt_i64(name, "limit", limit)?.unwrap_or(MAX_RECORDS as i64);
    if limit < 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: limit must not be negative, got {limit}"),
        ));
    }
    let limit = usize::try_from(limit)
        .unwrap_or(MAX_RECORDS)
        .min(MAX_RECORDS);
    let key = Value::from(order_by);
    records.sort_by(|a, b| {
        let o = compare(&a.get_item(&key), &b.get_item(&key));
        if desc {
            o.reverse()
        } else {
            o
        }
    });
    records.truncate(limit);
    Ok(Value::list(records))
}

/// `findOne(type, field, value, …)`.
fn find_one(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let conds = pairs("findOne", args.get(1..).unwrap_or_default())?;
    let records = load("findOne", state, arg(args, 0))?;
    Ok(records
        .into_iter()
        .find(|r| matches(r, &conds))
        .unwrap_or(Value::Null))
}

/// `findMany(type, field, value, orderBy = "id", dir = "ASC", limit = 1000)`.
fn find_many(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let conds = pairs("findMany", args.get(1..3).unwrap_or_default())?;
    let records = load("findMany", state, arg(args, 0))?;
    let found = records.into_iter().filter(|r| matches(r, &conds)).collect();
    order_and_limit("findMany", found, arg(args, 3), arg(args, 4), arg(args, 5))
}

/// `findCount(type, field, value, …)`.
fn find_count(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let conds = pairs("findCount", args.get(1..).unwrap_or_default())?;
    let records = load("findCount", state, arg(args, 0))?;
    Ok(Value::from(
        records.iter().filter(|r| matches(r, &conds)).count(),
    ))
}

/// The `column` values (neither null nor undefined) of the matching records.
fn column_values(name: &str, state: &mut dyn State, args: &[Value]) -> Result<Vec<Value>, Error> {
    let column = Value::from(name_arg(name, "column", arg(args, 1))?);
    let conds = pairs(name, args.get(2..).unwrap_or_default())?;
    let records = load(name, state, arg(args, 0))?;
    Ok(records
        .iter()
        .filter(|r| matches(r, &conds))
        .map(|r| r.get_item(&column))
        .filter(|v| !v.is_null())
        .collect())
}

/// `findSum(type, column, field, value, …)`: non-numeric values are skipped; 0 for no match.
fn find_sum(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let mut total = Number::Int(0);
    for v in column_values("findSum", state, args)? {
        let Some(n) = (match v {
            Value::List(_) | Value::Map(_) | Value::Bool(_) => None,
            other => other.as_number(),
        }) else {
            continue;
        };
        total = match (total, n) {
            (Number::Int(a), Number::Int(b)) => a
                .checked_add(b)
                .map_or(Number::Float(a as f64 + b as f64), Number::Int),
            (a, b) => Number::Float(a.as_f64() + b.as_f64()),
        };
    }
    Ok(match total {
        Number::Int(i) => Value::Int(i),
        Number::Float(f) => Value::Float(f),
    })
}

fn extreme(
    name: &str,
    state: &mut dyn State,
    args: &[Value],
    want: std::cmp::Ordering,
) -> Result<Value, Error> {
    let mut best: Option<Value> = None;
    for v in column_values(name, state, args)? {
        best = match best {
            Some(b) if compare(&v, &b) != want => Some(b),
            _ => Some(v),
        };
    }
    Ok(best.unwrap_or(Value::Null))
}

/// `findMin(type, column, field, value, …)`: `null` for no match.
fn find_min(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    extreme("findMin", state, args, std::cmp::Ordering::Less)
}

/// `findMax(type, column, field, value, …)`: `null` for no match.
fn find_max(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    extreme("findMax", state, args, std::cmp::Ordering::Greater)
}

fn digits(v: &Value) -> String {
    v.to_cow_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// `findByPhoneNumber(type, field, number)`: first record whose `field` has the same digits.
fn find_by_phone(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let field = Value::from(name_arg("findByPhoneNumber", "field", arg(args, 1))?);
    let number = expect_string("findByPhoneNumber", "number", arg(args, 2))?;
    let wanted: String = number.chars().filter(char::is_ascii_digit).collect();
    let records = load("findByPhoneNumber", state, arg(args, 0))?;
    if wanted.is_empty() {
        return Ok(Value::Null);
    }
    Ok(records
        .into_iter()
        .find(|r| {
            let v = r.get_item(&field);
            (v.is_string() || v.is_number()) && digits(&v) == wanted
        })
        .unwrap_or(Value::Null))
}

/// `getSmartListRecords(type, list)`: the records of the list's ids, in list order.
fn smart_list_records(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let name = "getSmartListRecords";
    let src = source(name, state)?;
    let rtype = name_arg(name, "type", arg(args, 0))?;
    let list = name_arg(name, "list", arg(args, 1))?;
    let ids = src.smart_list(&rtype, &list)?;
    let records = load(name, state, arg(args, 0))?;
    state.fuel(ids.len() as u64)?;
    let id_key = Value::from("id");
    let found = ids
        .iter()
        .filter_map(|id| {
            records
                .iter()
                .find(|r| loose_eq(&r.get_item(&id_key), id) && !id.is_null())
                .cloned()
        })
        .take(MAX_RECORDS)
        .collect();
    Ok(Value::list(found))
}

/// First record of `rtype` whose one of `fields` loosely equals `wanted` (fields in priority order).
fn by_key(
    name: &str,
    state: &mut dyn State,
    rtype: &str,
    fields: &[&str],
    wanted: &Value,
) -> Result<Value, Error> {
    let records = load(name, state, &Value::from(rtype))?;
    match wanted {
        Value::List(_) | Value::Map(_) | Value::Callable(_) => {
            return Err(Error::new(
                ErrorKind::Type,
                format!(
                    "{name}: the id must be a string or a number, got {}",
                    wanted.type_with_article()
                ),
            ))
        }
        v if v.is_null() || v.as_str() == Some("") => return Ok(Value::Null),
        _ => {}
    }
    for field in fields {
        let key = Value::from(*field);
        if let Some(r) = records.iter().find(|r| {
            let v = r.get_item(&key);
            !v.is_null() && loose_eq(&v, wanted)
        }) {
            return Ok(r.clone());
        }
    }
    Ok(Value::Null)
}

/// `getOrganization(idOrVat)`: type `organization`, by `id`, else by `vat`.
fn get_organization(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    by_key(
        "getOrganization",
        state,
        "organization",
        &["id", "vat"],
        arg(args, 0),
    )
}

/// `getUserById(id)`: type `user`.
fn get_user_by_id(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    by_key("getUserById", state, "user", &["id"], arg(args, 0))
}

/// `query(type, filters = {}, orderBy = "id", dir = "ASC", limit = 1000)`.
fn query(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let conds: Conditions = match arg(args, 1) {
        v if v.is_null() => Vec::new(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
            .collect(),
        other => {
            return Err(Error::new(
                ErrorKind::Type,
                format!(
                    "query: filters must be a map of field: value, got {}",
                    other.type_with_article()
                ),
            ))
        }
    };
    let records = load("query", state, arg(args, 0))?;
    let found = records.into_iter().filter(|r| matches(r, &conds)).collect();
    order_and_limit("query", found, arg(args, 2), arg(args, 3), arg(args, 4))
}

/// `incrementAndGet(name, by = 1)`.
fn increment_and_get(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let st = store("incrementAndGet", state)?;
    let key = name_arg("incrementAndGet", "name", arg(args, 0))?;
    let by = opt_i64("incrementAndGet", "by", arg(args, 1))?.unwrap_or(1);
    st.increment(&key, by).map(Value::Int)
}

/// `memoryGet(name, default = null)`.
fn memory_get(state: &mut dyn State, args: &[Value]) -> Result<Value, Error> {
    let st = store("memoryGet", state)?;
    let key = name_arg("memoryGet", "name", arg(args, 0))?;
    Ok(st.try_get(&key)?.unwrap_or_else(|| match arg(args, 1) {
        Value::Undefined => Value::Null,
        d => d.clone(),
    }))
}

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.function("findOne", &["type", "field", "value", "..."], find_one);
    r.function(
        "findMany",
        &["type", "field", "value", "orderBy?", "dir?", "limit?"],
        find_many,
    );
    r.function("findCount", &["type", "field", "value", "..."], find_count);
    r.function(
        "findSum",
        &["type", "column", "field", "value", "..."],
        find_sum,
    );
    r.function(
        "findMin",
        &["type", "column", "field", "value", "..."],
        find_min,
    );
    r.function(
        "findMax",
        &["type", "column", "field", "value", "..."],
        find_max,
    );
    r.function(
        "findByPhoneNumber",
        &["type", "field", "number"],
        find_by_phone,
    );
    r.function("getSmartListRecords", &["type", "list"], smart_list_records);
    r.function("getOrganization", &["idOrVat"], get_organization);
    r.function("getUserById", &["id"], get_user_by_id);
    r.function(
        "query",
        &["type", "filters?", "orderBy?", "dir?", "limit?"],
        query,
    );
    r.function("incrementAndGet", &["name", "by?"], increment_and_get);
    r.mark_non_deterministic("incrementAndGet");
    r.function("memoryGet", &["name", "default?"], memory_get);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::teststate::TestState;
    use crate::host::{JsonRecords, MemoryStore};

    const DATA: &str = r#"{
        "contact": [
            {"id": 3, "name": "Zoë", "city": "Paris", "phone": "+33 (1) 23-45", "score": 10},
            {"id": 1, "name": "Ann", "city": "Oslo", "phone": "12345", "score": "5"},
            {"id": 2, "name": "Bob", "city": "Paris", "score": 7.5}
        ],
        "organization": [{"id": 10, "vat": "FR123"}],
        "user": [{"id": 7, "email": "u@x.test"}],
        "smart_lists": {"contact": {"vip": [2, 3, 99]}}
    }"#;

    fn state() -> TestState {
        let mut st = TestState::default();
        st.host.records = Some(Arc::new(JsonRecords::from_json_str(DATA).unwrap()));
        st.host.store = Some(Arc::new(MemoryStore::new()));
        st
    }
    fn s(x: &str) -> Value {
        Value::from(x)
    }
    type F = fn(&mut dyn State, &[Value]) -> Result<Value, Error>;
    fn run(f: F, args: &[Value]) -> String {
        match f(&mut state(), args) {
            Ok(v) => v.to_output(),
            Err(e) => format!("ERR {}", e.message()),
        }
    }
    fn ids(out: &str) -> Vec<i64> {
        let v: serde_json::Value = serde_json::from_str(out).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    #[test]
    fn look_ups() {
        assert!(run(find_one, &[s("contact"), s("city"), s("Paris")]).contains("\"id\":3"));
        assert!(run(
            find_one,
            &[s("contact"), s("city"), s("Paris"), s("id"), s("2")]
        )
        .contains("Bob"));
        assert_eq!(run(find_one, &[s("contact"), s("city"), s("Rome")]), "");
        assert!(run(find_one, &[s("contact"), s("city")])
            .starts_with("ERR findOne: field/value arguments must come in pairs"));
        assert_eq!(
            ids(&run(find_many, &[s("contact"), s("city"), s("Paris")])),
            vec![2, 3]
        );
        assert_eq!(
            ids(&run(
                find_many,
                &[
                    s("contact"),
                    s("city"),
                    s("Paris"),
                    s("score"),
                    s("desc"),
                    Value::Int(1)
                ]
            )),
            vec![3]
        );
        assert!(run(
            find_many,
            &[s("contact"), s("city"), s("Paris"), s("id"), s("up")]
        )
        .starts_with("ERR findMany: dir"));
        assert_eq!(run(find_count, &[s("contact"), s("city"), s("Paris")]), "2");
        assert_eq!(run(find_count, &[s("deal"), s("city"), s("Paris")]), "0");
        assert_eq!(
            run(find_sum, &[s("contact"), s("score"), s("city"), s("Paris")]),
            "17.5"
        );
        assert_eq!(
            run(find_sum, &[s("contact"), s("score"), s("id"), s("1")]),
            "5"
        );
        assert_eq!(
            run(find_sum, &[s("contact"), s("score"), s("city"), s("Rome")]),
            "0"
        );
        assert_eq!(
            run(find_min, &[s("contact"), s("score"), s("city"), s("Paris")]),
            "7.5"
        );
        assert_eq!(
            run(find_max, &[s("contact"), s("name"), s("city"), s("Paris")]),
            "Zoë"
        );
        assert_eq!(
            run(find_max, &[s("contact"), s("score"), s("city"), s("Rome")]),
            ""
        );
        assert!(run(find_by_phone, &[s("contact"), s("phone"), s("0033 1 2345")]).is_empty());
        assert!(run(find_by_phone, &[s("contact"), s("phone"), s("33-1-2345")]).contains("Zoë"));
        assert_eq!(
            run(find_by_phone, &[s("contact"), s("phone"), s("n/a")]),
            ""
        );
        assert_eq!(
            ids(&run(smart_list_records, &[s("contact"), s("vip")])),
            vec![2, 3]
        );
        assert!(run(get_organization, &[s("FR123")]).contains("\"id\":10"));
        assert!(run(get_organization, &[Value::Int(10)]).contains("FR123"));
        assert_eq!(run(get_organization, &[Value::Null]), "");
        assert!(run(get_user_by_id, &[s("7")]).contains("u@x.test"));
        let filters = Value::from(serde_json::json!({"city": "Paris", "score": 10}));
        assert_eq!(ids(&run(query, &[s("contact"), filters])), vec![3]);
        assert_eq!(ids(&run(query, &[s("contact")])), vec![1, 2, 3]);
        assert!(run(query, &[s("contact"), s("x")]).starts_with("ERR query: filters must be a map"));
        assert!(run(
            query,
            &[s("contact"), Value::Null, s("id"), s("ASC"), Value::Int(-1)]
        )
        .starts_with("ERR"));
    }

    #[test]
    fn without_host() {
        let mut st = TestState::default();
        let err = find_one(&mut st, &[s("contact"), s("id"), Value::Int(1)]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Host);
        assert!(err.message().starts_with("findOne:"));
        let err = memory_get(&mut st, &[s("x")]).unwrap_err();
        assert!(err.message().starts_with("memoryGet:"));
    }

    #[test]
    fn store_functions() {
        let mut st = state();
        assert_eq!(
            increment_and_get(&mut st, &[s("c")]).unwrap().to_output(),
            "1"
        );
        assert_eq!(
            increment_and_get(&mut st, &[s("c"), Value::Int(5)])
                .unwrap()
                .to_output(),
            "6"
        );
        assert_eq!(memory_get(&mut st, &[s("c")]).unwrap().to_output(), "6");
        assert_eq!(
            memory_get(&mut st, &[s("nope"), s("dflt")])
                .unwrap()
                .to_output(),
            "dflt"
        );
        assert!(memory_get(&mut st, &[s("nope")]).unwrap().is_null());
        assert!(increment_and_get(&mut st, &[s("c"), s("x")]).is_err());
    }
}
