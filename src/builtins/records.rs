//! Host-backed builtins: the record look-ups (`findOne`, `findMany`, `findCount`, `findSum`,
//! `findMin`, `findMax`, `findByPhoneNumber`, `getSmartListRecords`, `getOrganization`,
//! `getUserById`, `query`) and the shared store (`incrementAndGet`, `memoryGet`).
//!
//! Field/value pairs combine with AND and compare with loose `==`. `findOne`, `findCount` and
//! the aggregates take one or more pairs; `findMany` takes exactly one pair followed by its
//! optional `orderBy`, `dir`, `limit` (use `query` for several conditions). Lists are capped
//! at 1000 records. Without a record source (or store) every call is an
//! [`ErrorKind::Host`] error naming the function.

use super::typed::{convert_value, type_error, ArgType, Rest};
use super::{Registry, State};
use crate::error::{Error, ErrorKind};
use crate::host::{RecordSource, SharedStore};
use crate::value::{compare, loose_eq, Map, Number, Value};
use std::borrow::Cow;
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
fn name_arg<'a>(name: &str, what: &str, s: Cow<'a, str>) -> Result<Cow<'a, str>, Error> {
    if s.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: {what} must not be empty"),
        ));
    }
    Ok(s)
}

/// All records of type `rtype`, charging one unit of fuel per record.
fn load(name: &str, state: &mut dyn State, rtype: &str) -> Result<Vec<Value>, Error> {
    let src = source(name, state)?;
    let rtype = name_arg(name, "type", Cow::Borrowed(rtype))?;
    let records = src.records(&rtype)?;
    state.fuel(records.len() as u64)?;
    Ok(records)
}

type Conditions = Vec<(Value, Value)>;

/// `orderBy`, `dir` and `limit` of `findMany` and `query`.
type Order<'a> = (Option<Cow<'a, str>>, Option<Cow<'a, str>>, Option<i64>);

/// The parameters of `findSum`, `findMin`, `findMax`: type, column, field, value, more pairs.
type Aggregate<'a> = (
    Cow<'a, str>,
    Cow<'a, str>,
    Cow<'a, str>,
    &'a Value,
    Rest<'a>,
);

/// Field/value pairs: the declared first pair, then the further arguments two by two.
fn pairs(name: &str, field: Cow<str>, value: &Value, rest: &[Value]) -> Result<Conditions, Error> {
    if rest.len() % 2 != 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "{name}: field/value arguments must come in pairs, got {}",
                rest.len() + 2
            ),
        ));
    }
    let first = (
        Value::from(name_arg(name, "field", field)?.into_owned()),
        value.clone(),
    );
    std::iter::once(Ok(first))
        .chain(rest.chunks(2).map(|c| {
            let field = c.first().unwrap_or(&Value::Undefined);
            let field = name_arg(
                name,
                "field",
                convert_value::<Cow<str>>(name, "field", field)?,
            )?;
            Ok((
                Value::from(field.into_owned()),
                c.get(1).cloned().unwrap_or_default(),
            ))
        }))
        .collect()
}

fn matches(record: &Value, conds: &Conditions) -> bool {
    conds
        .iter()
        .all(|(field, value)| loose_eq(&record.get_item(field), value))
}

/// Sorts by `order_by` (`ASC`/`DESC`, stable) and truncates to `limit` (capped at 1000).
fn order_and_limit(name: &str, mut records: Vec<Value>, order: Order) -> Result<Value, Error> {
    let (order_by, dir, limit) = order;
    let order_by = order_by.unwrap_or(Cow::Borrowed("id"));
    let desc = match dir.as_deref().map(str::to_ascii_uppercase) {
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
    let limit = limit.unwrap_or(MAX_RECORDS as i64);
    if limit < 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{name}: limit must not be negative, got {limit}"),
        ));
    }
    let limit = usize::try_from(limit)
        .unwrap_or(MAX_RECORDS)
        .min(MAX_RECORDS);
    let key = Value::from(order_by.into_owned());
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
fn find_one(
    state: &mut dyn State,
    rtype: Cow<str>,
    field: Cow<str>,
    value: &Value,
    Rest(rest): Rest,
) -> Result<Value, Error> {
    let conds = pairs("findOne", field, value, rest)?;
    let records = load("findOne", state, &rtype)?;
    Ok(records
        .into_iter()
        .find(|r| matches(r, &conds))
        .unwrap_or(Value::Null))
}

/// `findMany(type, field, value, orderBy = "id", dir = "ASC", limit = 1000)`.
fn find_many(
    state: &mut dyn State,
    rtype: Cow<str>,
    field: Cow<str>,
    value: &Value,
    order_by: Option<Cow<str>>,
    dir: Option<Cow<str>>,
    limit: Option<i64>,
) -> Result<Value, Error> {
    let conds = pairs("findMany", field, value, &[])?;
    let records = load("findMany", state, &rtype)?;
    let found = records.into_iter().filter(|r| matches(r, &conds)).collect();
    order_and_limit("findMany", found, (order_by, dir, limit))
}

/// `findCount(type, field, value, …)`.
fn find_count(
    state: &mut dyn State,
    rtype: Cow<str>,
    field: Cow<str>,
    value: &Value,
    Rest(rest): Rest,
) -> Result<Value, Error> {
    let conds = pairs("findCount", field, value, rest)?;
    let records = load("findCount", state, &rtype)?;
    Ok(Value::from(
        records.iter().filter(|r| matches(r, &conds)).count(),
    ))
}

/// The `column` values (neither null nor undefined) of the matching records.
fn column_values(name: &str, state: &mut dyn State, q: Aggregate) -> Result<Vec<Value>, Error> {
    let (rtype, column, field, value, Rest(rest)) = q;
    let column = Value::from(name_arg(name, "column", column)?.into_owned());
    let conds = pairs(name, field, value, rest)?;
    let records = load(name, state, &rtype)?;
    Ok(records
        .iter()
        .filter(|r| matches(r, &conds))
        .map(|r| r.get_item(&column))
        .filter(|v| !v.is_null())
        .collect())
}

/// `findSum(type, column, field, value, …)`: non-numeric values are skipped; 0 for no match.
fn find_sum(state: &mut dyn State, q: Aggregate) -> Result<Value, Error> {
    let mut total = Number::Int(0);
    for v in column_values("findSum", state, q)? {
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
    q: Aggregate,
    want: std::cmp::Ordering,
) -> Result<Value, Error> {
    let mut best: Option<Value> = None;
    for v in column_values(name, state, q)? {
        best = match best {
            Some(b) if compare(&v, &b) != want => Some(b),
            _ => Some(v),
        };
    }
    Ok(best.unwrap_or(Value::Null))
}

fn digits(v: &Value) -> String {
    v.to_cow_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// `findByPhoneNumber(type, field, number)`: first record whose `field` has the same digits.
fn find_by_phone(
    state: &mut dyn State,
    rtype: Cow<str>,
    field: Cow<str>,
    number: Cow<str>,
) -> Result<Value, Error> {
    let field = Value::from(name_arg("findByPhoneNumber", "field", field)?.into_owned());
    let wanted: String = number.chars().filter(char::is_ascii_digit).collect();
    let records = load("findByPhoneNumber", state, &rtype)?;
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
fn smart_list_records(
    state: &mut dyn State,
    rtype: Cow<str>,
    list: Cow<str>,
) -> Result<Value, Error> {
    let name = "getSmartListRecords";
    let src = source(name, state)?;
    let rtype = name_arg(name, "type", rtype)?;
    let list = name_arg(name, "list", list)?;
    let ids = src.smart_list(&rtype, &list)?;
    let records = load(name, state, &rtype)?;
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
    (name, what): (&str, &str),
    state: &mut dyn State,
    rtype: &str,
    fields: &[&str],
    wanted: &Value,
) -> Result<Value, Error> {
    let records = load(name, state, rtype)?;
    match wanted {
        Value::List(_) | Value::Map(_) | Value::Callable(_) => {
            return Err(type_error(name, what, "a string or a number", wanted))
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
fn get_organization(state: &mut dyn State, id_or_vat: &Value) -> Result<Value, Error> {
    by_key(
        ("getOrganization", "idOrVat"),
        state,
        "organization",
        &["id", "vat"],
        id_or_vat,
    )
}

/// `getUserById(id)`: type `user`.
fn get_user_by_id(state: &mut dyn State, id: &Value) -> Result<Value, Error> {
    by_key(("getUserById", "id"), state, "user", &["id"], id)
}

/// `query(type, filters = {}, orderBy = "id", dir = "ASC", limit = 1000)`.
fn query(
    state: &mut dyn State,
    rtype: Cow<str>,
    filters: Option<Filters>,
    order_by: Option<Cow<str>>,
    dir: Option<Cow<str>>,
    limit: Option<i64>,
) -> Result<Value, Error> {
    let conds: Conditions = filters.map_or_else(Vec::new, |Filters(m)| {
        m.iter()
            .map(|(k, v)| (Value::Str(k.clone()), v.clone()))
            .collect()
    });
    let records = load("query", state, &rtype)?;
    let found = records.into_iter().filter(|r| matches(r, &conds)).collect();
    order_and_limit("query", found, (order_by, dir, limit))
}

/// The `filters` map of `query` (field: value).
struct Filters<'a>(&'a Map);

impl<'a> ArgType<'a> for Filters<'_> {
    type Output = Filters<'a>;
    fn from_arg(v: &'a Value) -> Result<Filters<'a>, &'static str> {
        v.as_map().map(Filters).ok_or("a map of field: value")
    }
    fn type_name() -> &'static str {
        "map"
    }
}

/// `incrementAndGet(name, by = 1)`.
fn increment_and_get(
    state: &mut dyn State,
    key: Cow<str>,
    by: Option<i64>,
) -> Result<Value, Error> {
    let st = store("incrementAndGet", state)?;
    if state.store_read_only() {
        return Err(Error::new(
            ErrorKind::Host,
            "incrementAndGet: the shared store is read-only in this render",
        ));
    }
    let key = name_arg("incrementAndGet", "name", key)?;
    let by = by.unwrap_or(1);
    st.increment(&key, by).map(Value::Int)
}

/// `memoryGet(name, default = null)`.
fn memory_get(state: &mut dyn State, key: Cow<str>, default: &Value) -> Result<Value, Error> {
    let st = store("memoryGet", state)?;
    let key = name_arg("memoryGet", "name", key)?;
    Ok(st.try_get(&key)?.unwrap_or_else(|| match default {
        Value::Undefined => Value::Null,
        d => d.clone(),
    }))
}

/// Registers this module's builtins.
pub fn register(r: &mut Registry) {
    r.declare_function("findOne", &["type", "field", "value", "..."], find_one);
    r.declare_function(
        "findMany",
        &["type", "field", "value", "orderBy?", "dir?", "limit?"],
        find_many,
    );
    r.declare_function("findCount", &["type", "field", "value", "..."], find_count);
    for name in ["findSum", "findMin", "findMax"] {
        r.declare_function(
            name,
            &["type", "column", "field", "value", "..."],
            move |st: &mut dyn State,
                  rtype: Cow<str>,
                  column: Cow<str>,
                  field: Cow<str>,
                  value: &Value,
                  rest: Rest| {
                let q = (rtype, column, field, value, rest);
                match name {
                    "findSum" => find_sum(st, q),
                    "findMin" => extreme(name, st, q, std::cmp::Ordering::Less),
                    _ => extreme(name, st, q, std::cmp::Ordering::Greater),
                }
            },
        );
    }
    r.declare_function(
        "findByPhoneNumber",
        &["type", "field", "number"],
        find_by_phone,
    );
    r.declare_function("getSmartListRecords", &["type", "list"], smart_list_records);
    r.declare_function("getOrganization", &["idOrVat"], get_organization);
    r.declare_function("getUserById", &["id"], get_user_by_id);
    r.declare_function(
        "query",
        &["type", "filters?", "orderBy?", "dir?", "limit?"],
        query,
    );
    r.declare_function("incrementAndGet", &["name", "by?"], increment_and_get);
    r.mark_non_deterministic("incrementAndGet");
    r.declare_function("memoryGet", &["name", "default?"], memory_get);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::teststate::TestState;
    use crate::host::{JsonRecords, MemoryStore};

    crate::builtins::teststate::shims!(
        find_one => function "findOne",
        find_many => function "findMany",
        find_count => function "findCount",
        find_sum => function "findSum",
        find_min => function "findMin",
        find_max => function "findMax",
        find_by_phone => function "findByPhoneNumber",
        smart_list_records => function "getSmartListRecords",
        get_organization => function "getOrganization",
        get_user_by_id => function "getUserById",
        query => function "query",
        increment_and_get => function "incrementAndGet",
        memory_get => function "memoryGet",
    );

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
        assert!(
            run(find_one, &[s("contact"), s("city"), s("Paris"), s("id")])
                .starts_with("ERR findOne: field/value arguments must come in pairs")
        );
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
