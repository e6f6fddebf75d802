//! HTTP basic auth against Warren's users, with RabbitMQ's management tags: `administrator` sees
//! and changes everything, `monitoring` sees everything, `management` (and `policymaker`) sees the
//! vhosts it has permissions in and its own connections; a user with none of them gets 401, as
//! RabbitMQ answers "Not management user". The password is checked by the broker itself
//! (`authenticate` on the admin socket), as an AMQP login is, loopback-only users included.

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde_json::Value;

use super::admin_client::{Admin, AdminError};
use super::server::{Resp, admin_failed, error};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Management,
    Monitoring,
    Administrator,
}

impl Level {
    /// The highest level these tags give, if any.
    fn of(tags: &[String]) -> Option<Self> {
        tags.iter()
            .filter_map(|t| match t.as_str() {
                "administrator" => Some(Self::Administrator),
                "monitoring" => Some(Self::Monitoring),
                "management" | "policymaker" => Some(Self::Management),
                _ => None,
            })
            .max()
    }
}

/// The authenticated user of one request.
pub struct Caller {
    pub name: String,
    pub tags: Vec<String>,
    pub level: Level,
    /// Vhosts the user has permissions in.
    pub vhosts: Vec<String>,
}

impl Caller {
    /// Whether objects in this vhost are shown to the caller.
    pub fn sees_vhost(&self, vhost: &str) -> bool {
        self.level >= Level::Monitoring || self.vhosts.iter().any(|v| v == vhost)
    }

    /// Whether a connection (channel, consumer) of this user is shown to the caller.
    pub fn sees_user(&self, user: &str) -> bool {
        self.level >= Level::Monitoring || self.name == user
    }

    /// The 403 for a caller who is not an administrator.
    pub fn not_administrator(&self) -> Option<Resp> {
        (self.level != Level::Administrator)
            .then(|| error(StatusCode::FORBIDDEN, "not_authorised", "Not administrator user"))
    }
}

pub fn unauthorized(reason: &str) -> Resp {
    let mut r = error(StatusCode::UNAUTHORIZED, "not_authorised", reason);
    r.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"RabbitMQ Management\""));
    r
}

/// `user:password` from an `Authorization: Basic ...` header.
fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(BASE64.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.into(), password.into()))
}

/// The caller, or the response that refuses it.
pub async fn authenticate(admin: &Admin, headers: &HeaderMap, peer: SocketAddr) -> Result<Caller, Resp> {
    let Some((user, password)) = credentials(headers) else {
        return Err(unauthorized("Login failed"));
    };
    let loopback = peer.ip().is_loopback().to_string();
    let rows = match admin.rows("authenticate", vec![user, password, loopback], "/").await {
        Ok(rows) => rows,
        Err(AdminError::Refused(_)) => return Err(unauthorized("Login failed")),
        Err(e) => return Err(admin_failed(e)),
    };
    let row = rows.into_iter().next().ok_or_else(|| unauthorized("Login failed"))?;
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
            .unwrap_or_default()
    };
    let tags = strings(row.get("tags"));
    let Some(level) = Level::of(&tags) else {
        return Err(unauthorized("Not management user"));
    };
    let name = row.get("user").and_then(Value::as_str).unwrap_or_default().to_string();
    Ok(Caller { name, tags, level, vhosts: strings(row.get("vhosts")) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_management_tag_decides() {
        let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(Level::of(&tags(&[])), None);
        assert_eq!(Level::of(&tags(&["impersonator"])), None);
        assert_eq!(Level::of(&tags(&["policymaker"])), Some(Level::Management));
        assert_eq!(Level::of(&tags(&["management", "monitoring"])), Some(Level::Monitoring));
        assert_eq!(Level::of(&tags(&["monitoring", "administrator"])), Some(Level::Administrator));
    }

    #[test]
    fn basic_credentials_are_decoded() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic Z3Vlc3Q6Z3U6ZXN0"));
        assert_eq!(credentials(&h), Some(("guest".into(), "gu:est".into())));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer xyz"));
        assert_eq!(credentials(&h), None);
    }
}
