//! The headers exchange's match (RabbitMQ): `x-match` = all (default), any, all-with-x, any-with-x.
//! Binding keys starting `x-` are ignored by all/any; a void binding value matches on presence;
//! values compare as RabbitMQ's Erlang `==` does (numbers by value, strings by bytes).

use crate::protocol::types::{FieldTable, FieldValue};

fn number(v: &FieldValue) -> Option<f64> {
    match v {
        FieldValue::F32(f) => Some(*f as f64),
        FieldValue::F64(f) => Some(*f),
        v => v.as_i128().map(|n| n as f64),
    }
}

fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::LongStr(x) | FieldValue::ByteArray(x), FieldValue::LongStr(y) | FieldValue::ByteArray(y)) => {
            x == y
        }
        _ => match (a.as_i128(), b.as_i128()) {
            (Some(x), Some(y)) => x == y,
            _ => match (number(a), number(b)) {
                (Some(x), Some(y)) => x == y,
                _ => a == b,
            },
        },
    }
}

pub fn headers_match(binding: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let mode = binding.get_str("x-match").unwrap_or_else(|| "all".into());
    let (any, with_x) = match mode.as_str() {
        "any" => (true, false),
        "any-with-x" => (true, true),
        "all-with-x" => (false, true),
        _ => (false, false),
    };
    let empty = FieldTable::default();
    let headers = headers.unwrap_or(&empty);
    let mut considered = binding.0.iter().filter(|(k, _)| k != "x-match" && (with_x || !k.starts_with("x-")));
    let one = |(k, v): &(String, FieldValue)| match headers.get(k) {
        None => false,
        Some(_) if matches!(v, FieldValue::Void) => true,
        Some(h) => values_equal(v, h),
    };
    if any { considered.any(one) } else { considered.all(one) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        FieldTable(entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn rabbitmq_headers_cases() {
        let msg = table(&[("a", FieldValue::str("1")), ("n", FieldValue::I32(5)), ("x-k", FieldValue::str("v"))]);
        let s = FieldValue::str;
        let cases: Vec<(FieldTable, bool)> = vec![
            (table(&[("a", s("1"))]), true),
            (table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]), false),
            (table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]), true),
            (table(&[("x-match", s("any")), ("b", s("2"))]), false),
            (table(&[("n", FieldValue::I64(5))]), true),
            (table(&[("n", FieldValue::U8(5))]), true),
            (table(&[("n", FieldValue::F64(5.0))]), true),
            (table(&[("n", s("5"))]), false),
            (table(&[("a", FieldValue::Void)]), true),
            (table(&[("zz", FieldValue::Void)]), false),
            (table(&[("x-k", s("other"))]), true),
            (table(&[("x-match", s("all-with-x")), ("x-k", s("other"))]), false),
            (table(&[("x-match", s("all-with-x")), ("x-k", s("v")), ("a", s("1"))]), true),
            (table(&[("x-match", s("any-with-x")), ("x-k", s("v"))]), true),
            (table(&[("x-match", s("any")), ("x-k", s("v"))]), false),
            (table(&[]), true),
            (table(&[("x-match", s("any"))]), false),
        ];
        for (binding, want) in cases {
            assert_eq!(headers_match(&binding, Some(&msg)), want, "{binding:?}");
        }
        assert!(!headers_match(&table(&[("a", s("1"))]), None));
    }
}
