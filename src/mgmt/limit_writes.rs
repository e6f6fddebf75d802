//! PUT and DELETE of /api/vhost-limits/VHOST/NAME and /api/user-limits/USER/NAME, as RabbitMQ's
//! management plugin has them: one limit at a time, the body `{"value": N}`; through warrenctl's
//! limit verbs.

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::admin_client::{Admin, AdminError};
use super::server::{Resp, error, no_content, not_found};

fn no_value() -> Resp {
    error(StatusCode::BAD_REQUEST, "bad_request", "the body needs an integer \"value\"")
}

/// The vhost's limits now (empty if it has none).
async fn vhost_limits(admin: &Admin, vhost: &str) -> Result<Map<String, Value>, AdminError> {
    let rows = admin.rows("list_vhost_limits", vec![], "/").await?;
    let mine = rows.into_iter().find(|r| r["vhost"] == vhost);
    Ok(mine.and_then(|r| r.get("limits").and_then(Value::as_object).cloned()).unwrap_or_default())
}

/// PUT (`body` Some) or DELETE of one limit of `vhost`.
pub async fn vhost_limit(admin: &Admin, vhost: &str, name: &str, body: Option<&Value>) -> Result<Resp, AdminError> {
    let mut limits = vhost_limits(admin, vhost).await?;
    match body {
        Some(body) => match body.get("value").and_then(Value::as_i64) {
            Some(v) => {
                limits.insert(name.into(), json!(v));
            }
            None => return Ok(no_value()),
        },
        None => {
            if limits.remove(name).is_none() {
                return Ok(not_found());
            }
        }
    }
    admin.ask("set_vhost_limits", vec![Value::Object(limits).to_string()], vhost).await?;
    Ok(no_content())
}

/// PUT (`body` Some) or DELETE of one limit of `user`.
pub async fn user_limit(admin: &Admin, user: &str, name: &str, body: Option<&Value>) -> Result<Resp, AdminError> {
    let args = match body {
        Some(body) => match body.get("value").and_then(Value::as_i64) {
            Some(v) => vec![user.to_string(), json!({ name: v }).to_string()],
            None => return Ok(no_value()),
        },
        None => vec![user.to_string(), name.to_string()],
    };
    let verb = if body.is_some() { "set_user_limits" } else { "clear_user_limits" };
    match admin.ask(verb, args, "/").await {
        Err(AdminError::Refused(e)) if e.starts_with("no such user") => Ok(not_found()),
        r => r.map(|_| no_content()),
    }
}
