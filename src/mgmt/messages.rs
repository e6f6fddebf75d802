//! POST /api/queues/VHOST/NAME/get and POST /api/exchanges/VHOST/NAME/publish, with RabbitMQ's
//! bodies and answers (rabbit_mgmt_wm_queue_get, rabbit_mgmt_wm_exchange_publish). Any management
//! user may call them in a vhost it may see; the broker checks the permission a channel would
//! need (read on the queue, write on the exchange) and its refusal becomes RabbitMQ's status: 404
//! for NOT_FOUND, 401 for ACCESS_REFUSED and NOT_ALLOWED, 400 otherwise.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::admin_client::{AdminError, objects};
use super::auth::Caller;
use super::server::{Node, Resp, error, json_reply};

fn bad_request(reason: &str) -> Resp {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

/// The broker's refusal as RabbitMQ's management plugin answers a channel closed with it.
fn refused(e: AdminError) -> Result<Resp, AdminError> {
    match e {
        AdminError::Refused(t) if t.starts_with("NOT_FOUND") => Ok(error(StatusCode::NOT_FOUND, "not_found", &t)),
        AdminError::Refused(t) if t.starts_with("ACCESS_REFUSED") || t.starts_with("NOT_ALLOWED") => {
            Ok(error(StatusCode::UNAUTHORIZED, "not_authorised", &t))
        }
        AdminError::Refused(t) => Ok(bad_request(&t)),
        e => Err(e),
    }
}

/// A number given as a JSON number or as text (RabbitMQ's parse_int takes both).
fn int(body: &Value, key: &str) -> Option<Result<u64, Resp>> {
    let v = body.get(key)?;
    let n = v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
    Some(n.ok_or_else(|| bad_request(&format!("{key} must be a non-negative integer"))))
}

/// The answer for `segs` (after /api/), or None if they name neither endpoint.
pub async fn handle(node: &Node, caller: &Caller, segs: &[&str], body: &Value) -> Option<Result<Resp, AdminError>> {
    let (["queues", vhost, _, "get"] | ["exchanges", vhost, _, "publish"]) = segs else { return None };
    if !caller.sees_vhost(vhost) {
        return Some(Ok(error(
            StatusCode::UNAUTHORIZED,
            "not_authorised",
            "User not authorised to access virtual host",
        )));
    }
    let reply = match segs {
        ["queues", v, q, "get"] => get(node, caller, v, q, body).await,
        ["exchanges", v, x, _] => publish(node, caller, v, x, body).await,
        _ => return None,
    };
    Some(reply.or_else(refused))
}

async fn get(node: &Node, caller: &Caller, vhost: &str, queue: &str, body: &Value) -> Result<Resp, AdminError> {
    let count = match int(body, "count") {
        Some(Ok(n)) => n,
        Some(Err(r)) => return Ok(r),
        None => return Ok(bad_request("count is required")),
    };
    let Some(ackmode) = body.get("ackmode").and_then(Value::as_str) else {
        return Ok(bad_request("ackmode is required"));
    };
    let base64_only = match body.get("encoding").and_then(Value::as_str) {
        Some("auto") => false,
        Some("base64") => true,
        _ => return Ok(bad_request("Unsupported encoding. Please use auto or base64.")),
    };
    let mut args = vec![caller.name.clone(), queue.to_string(), count.min(u32::MAX.into()).to_string(), ackmode.into()];
    match int(body, "truncate") {
        Some(Ok(n)) => args.push(n.to_string()),
        Some(Err(r)) => return Ok(r),
        None => {}
    }
    let reply = node.admin.ask("get_messages", args, vhost).await?;
    let messages: Vec<Value> = objects(&reply).into_iter().map(|m| Value::Object(message(m, base64_only))).collect();
    Ok(json_reply(StatusCode::OK, &Value::Array(messages)))
}

/// One got message as RabbitMQ shows it: the payload as text when it is UTF-8 and `auto` was
/// asked, else base64.
fn message(mut m: Map<String, Value>, base64_only: bool) -> Map<String, Value> {
    let encoded = m.remove("payload").and_then(|p| p.as_str().map(String::from)).unwrap_or_default();
    let text = if base64_only { None } else { BASE64.decode(&encoded).ok().and_then(|b| String::from_utf8(b).ok()) };
    let (payload, encoding) = match text {
        Some(t) => (t, "string"),
        None => (encoded, "base64"),
    };
    m.insert("payload".into(), json!(payload));
    m.insert("payload_encoding".into(), json!(encoding));
    m
}

async fn publish(node: &Node, caller: &Caller, vhost: &str, exchange: &str, body: &Value) -> Result<Resp, AdminError> {
    let field = |k: &str| body.get(k).and_then(Value::as_str);
    let (Some(key), Some(payload)) = (field("routing_key"), field("payload")) else {
        return Ok(bad_request("routing_key and payload (a string) are required"));
    };
    let payload = match field("payload_encoding").unwrap_or("string") {
        "string" => BASE64.encode(payload),
        "base64" => {
            if BASE64.decode(payload).is_err() {
                return Ok(bad_request("not_base64"));
            }
            payload.to_string()
        }
        other => return Ok(bad_request(&format!("unsupported_encoding: {other}"))),
    };
    let properties = body.get("properties").cloned().unwrap_or_else(|| json!({}));
    let args = vec![caller.name.clone(), exchange.to_string(), key.to_string(), properties.to_string(), payload];
    let reply = node.admin.ask("publish_message", args, vhost).await?;
    let routed = objects(&reply).first().and_then(|r| r.get("routed")).and_then(Value::as_bool).unwrap_or(false);
    Ok(json_reply(StatusCode::OK, &json!({ "routed": routed })))
}
