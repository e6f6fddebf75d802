//! A message's basic properties as the management API writes and reads them
//! (rabbit_mgmt_format:basic_properties / to_basic_properties): an object with one key per
//! property present, `type` for the type property, `headers` as a JSON object.

use serde_json::{Map, Value, json};

use crate::broker::definitions::{field_table, json_table};
use crate::protocol::properties::BasicProperties;
use crate::protocol::shortstr::ShortStr;

/// The properties present, as JSON. Short strings that are not UTF-8 are shown with U+FFFD for
/// their other bytes (JSON strings are text); this is for display only.
pub fn to_json(p: &BasicProperties) -> Value {
    let mut o = Map::new();
    let mut text = |k: &str, v: &Option<ShortStr>| {
        if let Some(v) = v {
            o.insert(k.into(), json!(String::from_utf8_lossy(v.as_bytes())));
        }
    };
    text("content_type", &p.content_type);
    text("content_encoding", &p.content_encoding);
    text("correlation_id", &p.correlation_id);
    text("reply_to", &p.reply_to);
    text("expiration", &p.expiration);
    text("message_id", &p.message_id);
    text("type", &p.kind);
    text("user_id", &p.user_id);
    text("app_id", &p.app_id);
    text("cluster_id", &p.cluster_id);
    if let Some(h) = &p.headers {
        o.insert("headers".into(), Value::Object(json_table(h)));
    }
    if let Some(d) = p.delivery_mode {
        o.insert("delivery_mode".into(), json!(d));
    }
    if let Some(pr) = p.priority {
        o.insert("priority".into(), json!(pr));
    }
    if let Some(t) = p.timestamp {
        o.insert("timestamp".into(), json!(t));
    }
    Value::Object(o)
}

/// Properties from the JSON a publish request carries; an unknown key or a value of the wrong
/// type is refused with RabbitMQ's reason.
pub fn from_json(v: &Value) -> Result<BasicProperties, String> {
    let Some(o) = v.as_object() else { return Err("properties must be an object".into()) };
    let mut p = BasicProperties::default();
    for (k, v) in o {
        let text = || -> Result<Option<ShortStr>, String> {
            let s = v.as_str().ok_or_else(|| format!("property '{k}' must be a string"))?;
            ShortStr::try_from(s.to_string()).map(Some).map_err(|_| format!("property '{k}' is too long"))
        };
        let octet = || -> Result<Option<u8>, String> {
            // The UI's form sends numbers as text; RabbitMQ takes both.
            let n = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            n.and_then(|n| u8::try_from(n).ok()).map(Some).ok_or_else(|| format!("property '{k}' must be 0-255"))
        };
        match k.as_str() {
            "content_type" => p.content_type = text()?,
            "content_encoding" => p.content_encoding = text()?,
            "correlation_id" => p.correlation_id = text()?,
            "reply_to" => p.reply_to = text()?,
            "expiration" => p.expiration = text()?,
            "message_id" => p.message_id = text()?,
            "type" => p.kind = text()?,
            "user_id" => p.user_id = text()?,
            "app_id" => p.app_id = text()?,
            "cluster_id" => p.cluster_id = text()?,
            "delivery_mode" => p.delivery_mode = octet()?,
            "priority" => p.priority = octet()?,
            "timestamp" => {
                let n = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                p.timestamp = Some(n.ok_or("property 'timestamp' must be an integer")?);
            }
            "headers" => {
                let h = v.as_object().ok_or("property 'headers' must be an object")?;
                p.headers = Some(field_table(h));
            }
            other => return Err(format!("Unknown message property: {other}")),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_round_trip_through_json() {
        let v = json!({
            "content_type": "text/plain", "delivery_mode": 2, "priority": 5, "timestamp": 1700000000,
            "type": "order", "headers": {"x-n": 7, "x-s": "s"}, "message_id": "m1",
        });
        let p = from_json(&v).unwrap();
        assert_eq!(p.kind.as_ref().map(|k| k.as_bytes()), Some(&b"order"[..]));
        let decoded = BasicProperties::decode(&p.encode()).unwrap();
        assert_eq!(to_json(&decoded), v);
    }

    #[test]
    fn bad_properties_are_refused_by_name() {
        assert_eq!(from_json(&json!({"colour": "red"})).unwrap_err(), "Unknown message property: colour");
        assert!(from_json(&json!({"delivery_mode": 300})).unwrap_err().contains("delivery_mode"));
        assert_eq!(from_json(&json!({"delivery_mode": "2"})).unwrap().delivery_mode, Some(2));
        assert!(from_json(&json!([])).is_err());
    }
}
