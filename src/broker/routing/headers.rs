//! The headers exchange's match (RabbitMQ): `x-match` = all (default), any, all-with-x, any-with-x.
//! Binding keys starting `x-` are ignored by all/any; a void binding value matches on presence;
//! values compare as RabbitMQ's Erlang `==` does (numbers by value, strings by bytes). Keys are
//! bytes too: a header matches a binding argument only with the very same key bytes.

use crate::protocol::shortstr::ShortStr;
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
    let mut considered = binding.0.iter().filter(|(k, _)| *k != "x-match" && (with_x || !k.starts_with(b"x-")));
    let one = |(k, v): &(ShortStr, FieldValue)| match headers.get(k) {
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
        FieldTable(entries.iter().map(|(k, v)| (ShortStr::copy_from_slice(k.as_bytes()).unwrap(), v.clone())).collect())
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

    #[test]
    fn keys_compare_as_bytes() {
        // Regression: keys were decoded lossily, so b"k\xff" and b"k\xfe" were both "k\u{FFFD}".
        let key = |b: &[u8]| ShortStr::copy_from_slice(b).unwrap();
        let msg = FieldTable(vec![(key(b"k\xff"), FieldValue::str("1"))]);
        let binding = |k: &[u8]| FieldTable(vec![(key(k), FieldValue::str("1"))]);
        assert!(headers_match(&binding(b"k\xff"), Some(&msg)));
        assert!(!headers_match(&binding(b"k\xfe"), Some(&msg)));
        assert!(!headers_match(&binding("k\u{FFFD}".as_bytes()), Some(&msg)));
    }
}
