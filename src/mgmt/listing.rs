//! List answers as RabbitMQ's management plugin gives them (rabbit_mgmt_util): sorted by
//! `sort` (a dotted path, then vhost and name) and `sort_reverse`; with `page` paginated into
//! `{filtered_count, item_count, items, page, page_count, page_size, total_count}`, filtered by
//! `name` (a case-insensitive substring, or with `use_regex=true` a regular expression);
//! `columns=a,b.c` keeps only those fields (of the items, when paginated). Bad values are 400.

use std::cmp::Ordering;

use hyper::StatusCode;
use regex::RegexBuilder;
use serde_json::{Map, Value, json};

use super::server::{Resp, error};

const DEFAULT_PAGE_SIZE: u64 = 100;
const MAX_PAGE_SIZE: u64 = 500;

/// A list request's query string, parsed.
#[derive(Debug, Default, PartialEq)]
pub struct ListQuery {
    /// (page, page size), when a page was asked for.
    pub page: Option<(u64, u64)>,
    pub name: Option<String>,
    pub use_regex: bool,
    pub sort: Option<String>,
    pub reverse: bool,
    /// Wanted fields, each a dotted path split at its dots.
    pub columns: Option<Vec<Vec<String>>>,
}

/// `%XX` escapes and `+` (a space in a query string) decoded; None if not UTF-8 or bad hex.
pub fn query_decode(s: &str) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// Why list parameters were refused: RabbitMQ's error kind and reason, answered with 400.
#[derive(Debug)]
pub struct Refused {
    kind: &'static str,
    reason: String,
}

impl Refused {
    pub fn resp(&self) -> Resp {
        error(StatusCode::BAD_REQUEST, self.kind, &self.reason)
    }
}

fn bad(kind: &'static str, reason: &str) -> Refused {
    Refused { kind, reason: reason.into() }
}

/// The parameters of a query string (`a=1&b=2`), decoded.
pub fn params(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((query_decode(k)?, query_decode(v)?))
        })
        .collect()
}

impl ListQuery {
    pub fn parse(query: Option<&str>) -> Result<Self, Refused> {
        let ps = params(query);
        let get = |k: &str| ps.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let int = |k: &str| -> Result<Option<i64>, Refused> {
            match get(k) {
                None => Ok(None),
                Some(v) => {
                    v.parse::<i64>().map(Some).map_err(|_| bad("bad_request", "Pagination parameters are invalid"))
                }
            }
        };
        let (page, size) = (int("page")?, int("page_size")?);
        let page = match (page, size) {
            (None, _) => None,
            (Some(p), None) if p > 0 => Some((p as u64, DEFAULT_PAGE_SIZE)),
            (Some(p), Some(s)) if p > 0 && s > 0 && s as u64 <= MAX_PAGE_SIZE => Some((p as u64, s as u64)),
            (p, s) => {
                let show = |v: Option<i64>| v.map_or("undefined".to_string(), |v| v.to_string());
                let reason = format!("Invalid pagination parameters: page number {}, page size {}", show(p), show(s));
                return Err(bad("invalid_pagination_parameters", &reason));
            }
        };
        let columns = get("columns").map(|c| {
            c.split(',').filter(|c| !c.is_empty()).map(|c| c.split('.').map(String::from).collect()).collect()
        });
        Ok(Self {
            page,
            name: get("name").filter(|n| !n.is_empty()).map(String::from),
            use_regex: get("use_regex") == Some("true"),
            sort: get("sort").filter(|s| !s.is_empty()).map(String::from),
            reverse: get("sort_reverse") == Some("true"),
            columns,
        })
    }

    /// The answer for `items`: sorted, paginated and filtered when a page was asked for, cut
    /// down to the wanted columns.
    pub fn reply(&self, mut items: Vec<Value>) -> Result<Value, Refused> {
        let mut keys: Vec<&str> = self.sort.as_deref().into_iter().collect();
        keys.extend(["vhost", "name"].iter().filter(|k| Some(**k) != self.sort.as_deref()));
        items.sort_by(|a, b| {
            keys.iter().map(|k| compare(dotted(a, k), dotted(b, k))).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
        });
        if self.reverse {
            items.reverse();
        }
        let Some((page, size)) = self.page else {
            return Ok(Value::Array(items.iter().map(|i| self.keep_columns(i)).collect()));
        };
        let total = items.len();
        if let Some(name) = &self.name {
            let matches: Box<dyn Fn(&str) -> bool> = if self.use_regex {
                let re = RegexBuilder::new(name)
                    .case_insensitive(true)
                    .build()
                    .map_err(|e| bad("bad_request", &format!("bad regular expression '{name}': {e}")))?;
                Box::new(move |s: &str| re.is_match(s))
            } else {
                let lower = name.to_lowercase();
                Box::new(move |s: &str| s.to_lowercase().contains(&lower))
            };
            items.retain(|i| matches(i.get("name").and_then(Value::as_str).unwrap_or_default()));
        }
        let filtered = items.len() as u64;
        let offset = (page - 1).saturating_mul(size);
        if offset > filtered {
            let reason = format!("Page out of range, page: {page} page size: {size}, len: {filtered}");
            return Err(bad("page_out_of_range", &reason));
        }
        let shown: Vec<Value> =
            items.iter().skip(offset as usize).take(size as usize).map(|i| self.keep_columns(i)).collect();
        Ok(json!({
            "total_count": total,
            "item_count": shown.len(),
            "filtered_count": filtered,
            "page": page,
            "page_size": size,
            "page_count": filtered.div_ceil(size),
            "items": shown,
        }))
    }

    /// One object, cut down to the wanted columns.
    pub fn one(&self, item: &Value) -> Value {
        self.keep_columns(item)
    }

    fn keep_columns(&self, item: &Value) -> Value {
        match &self.columns {
            None => item.clone(),
            Some(cols) => {
                let paths: Vec<&[String]> = cols.iter().map(Vec::as_slice).collect();
                keep(item, &paths)
            }
        }
    }
}

/// The fields of `v` the paths name (a path that ends at a field keeps all of it).
fn keep(v: &Value, paths: &[&[String]]) -> Value {
    let Value::Object(o) = v else { return v.clone() };
    let mut out = Map::new();
    for (k, field) in o {
        let deeper: Vec<&[String]> =
            paths.iter().filter(|p| p.first() == Some(k)).map(|p| p.get(1..).unwrap_or_default()).collect();
        if deeper.is_empty() {
            continue;
        }
        let value = if deeper.iter().any(|p| p.is_empty()) { field.clone() } else { keep(field, &deeper) };
        out.insert(k.clone(), value);
    }
    Value::Object(out)
}

/// The value at a dotted path, if any.
fn dotted<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// RabbitMQ's sort order: a missing value counts as 0; numbers before text, as in Erlang's term
/// order.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    let zero = json!(0);
    let (a, b) = (a.unwrap_or(&zero), b.unwrap_or(&zero));
    let rank = |v: &Value| match v {
        Value::Number(_) => 0,
        Value::Bool(_) | Value::Null => 1,
        Value::Object(_) => 2,
        Value::Array(_) => 3,
        Value::String(_) => 4,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x.as_f64().unwrap_or(0.0).partial_cmp(&y.as_f64().unwrap_or(0.0)).unwrap_or(Ordering::Equal)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> ListQuery {
        ListQuery::parse(Some(s)).unwrap_or_else(|_| panic!("refused {s}"))
    }

    fn items() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({ "vhost": "/", "name": format!("q{i}"), "messages": 10 - i, "message_stats": { "publish": i } }))
            .collect()
    }

    #[test]
    fn pages_count_and_cut_as_rabbitmq() {
        let r = q("page=2&page_size=2").reply(items()).unwrap();
        assert_eq!(r["total_count"], 5);
        assert_eq!(r["filtered_count"], 5);
        assert_eq!(r["page_count"], 3);
        assert_eq!(r["item_count"], 2);
        assert_eq!(r["items"][0]["name"], "q3");
        let r = q("page=1&name=Q4").reply(items()).unwrap();
        assert_eq!((r["filtered_count"].as_u64(), r["page_size"].as_u64()), (Some(1), Some(100)));
        let r = q("page=1&name=%5Eq%5B12%5D%24&use_regex=true").reply(items()).unwrap();
        assert_eq!(r["filtered_count"], 2);
        assert!(q("page=4&page_size=2").reply(items()).is_err());
        assert!(q("page=3&page_size=2").reply(items()).is_ok());
    }

    #[test]
    fn bad_pagination_values_are_refused() {
        for bad in ["page=0", "page=1&page_size=501", "page=1&page_size=0", "page=x", "page=-1"] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
        assert!(ListQuery::parse(Some("page_size=7")).unwrap().page.is_none());
    }

    #[test]
    fn sorts_by_dotted_paths_and_keeps_columns() {
        let r = q("sort=messages").reply(items()).unwrap();
        assert_eq!(r[0]["name"], "q5");
        let r = q("sort=message_stats.publish&sort_reverse=true&columns=name,message_stats.publish")
            .reply(items())
            .unwrap();
        assert_eq!(r[0], json!({ "name": "q5", "message_stats": { "publish": 5 } }));
        let r = q("page=1&page_size=1&columns=name").reply(items()).unwrap();
        assert_eq!(r["items"], json!([{ "name": "q1" }]));
    }
}
