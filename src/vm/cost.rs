//! Fuel for the size of the data an operation touches (docs/language.md §5).
//!
//! Every step costs one unit of fuel; on top of that, operations pay for the data
//! they read or build, so that repeating an operation on a large value (appending to
//! a long string, sorting or comparing a long list, filtering a big text) runs out of
//! fuel instead of running for minutes. Rates, rounded down per operation (the
//! step's own unit covers small values):
//! - 1 unit per [`BYTES_PER_UNIT`] bytes of a string,
//! - 1 unit per [`ITEMS_PER_UNIT`] entries of a list or map.
//!
//! Operations that only look at the top level (a filter's arguments and result, a
//! concatenation) pay the [`shallow`] weight; comparisons and membership tests, which
//! walk nested values, pay the [`deep`] weight.

use crate::value::Value;

/// String bytes one unit of fuel pays for.
pub(crate) const BYTES_PER_UNIT: u64 = 256;
/// List or map entries one unit of fuel pays for.
pub(crate) const ITEMS_PER_UNIT: u64 = 8;

/// Weight of a value's top level: its string bytes or its number of entries.
pub(crate) fn shallow(v: &Value) -> u64 {
    match v {
        Value::Str(s) | Value::Safe(s) => s.len() as u64 / BYTES_PER_UNIT,
        Value::List(l) => l.len() as u64 / ITEMS_PER_UNIT,
        Value::Map(m) => m.len() as u64 / ITEMS_PER_UNIT,
        _ => 0,
    }
}

/// Weight of a whole value, nested entries and strings (and map keys) included.
/// The walk stops once the weight exceeds `budget` (the caller cannot pay more),
/// so it never costs more time than the fuel it checks.
pub(crate) fn deep(v: &Value, budget: u64) -> u64 {
    if !matches!(v, Value::List(_) | Value::Map(_)) {
        return shallow(v);
    }
    let limit = budget.saturating_add(1);
    let (mut bytes, mut items) = (0u64, 0u64);
    let mut stack: Vec<&Value> = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Str(s) | Value::Safe(s) => bytes += s.len() as u64,
            Value::List(l) => {
                items += l.len() as u64;
                stack.extend(l.iter());
            }
            Value::Map(m) => {
                items += m.len() as u64;
                for (k, v) in m.iter() {
                    bytes += k.len() as u64;
                    stack.push(v);
                }
            }
            _ => {}
        }
        let w = bytes / BYTES_PER_UNIT + items / ITEMS_PER_UNIT;
        if w > limit {
            return w;
        }
    }
    bytes / BYTES_PER_UNIT + items / ITEMS_PER_UNIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights() {
        assert_eq!(shallow(&Value::str("x".repeat(4096))), 16);
        assert_eq!(shallow(&Value::Int(7)), 0);
        let inner = Value::list(vec![Value::Int(1); 80]);
        let outer = Value::list(vec![inner.clone(); 8]);
        assert_eq!(shallow(&outer), 1);
        assert_eq!(deep(&outer, u64::MAX), (8 + 640) / 8);
        // the walk stops once the budget is exceeded
        assert!(deep(&outer, 3) > 3);
        assert!(deep(&outer, 3) < 81);
    }
}
