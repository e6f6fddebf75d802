//! HTTP basic auth against Warren's users, with RabbitMQ's management tags: `administrator` sees
//! and changes everything, `monitoring` sees everything, `management` (and `policymaker`) sees the
//! vhosts it has permissions in and its own connections; a user with none of them gets 401, as
//! RabbitMQ answers "Not management user". The password is checked by the broker itself
//! (`authenticate` on the admin socket), as an AMQP login is, loopback-only users included.
//!
//! Changes follow RabbitMQ's rule table (`Caller::may_change`): users, vhosts, permissions and
//! definitions are for administrators; policies for policymakers (and administrators) in vhosts
//! they have permissions in; queues, exchanges, bindings, purge, get and publish for any
//! management user, in a vhost it has permissions in, when its configure / write / read
//! expressions there allow the operation as they would over AMQP (401 "Access refused." if not).
//! Administrators are not held to AMQP permissions here (RabbitMQ's are, through the direct
//! connection it opens as them).

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use serde_json::Value;

use super::admin_client::{Admin, AdminError};
use super::server::{Resp, admin_failed, error};
use crate::broker::access::{Perm, Permission};

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
    /// Its configure, write and read expressions in each of them, as text: compiled only when a
    /// change is checked (compiling them for every request cost more than the rest of it).
    pub permissions: Vec<(String, [String; 3])>,
}

/// What a change needs: an operation on a resource in a vhost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    Administrator,
    /// A policymaker (or administrator) with permissions in the vhost.
    Policymaker(&'a str),
    /// `perm` on the queue (or exchange) named, in the vhost.
    Queue(&'a str, Perm, &'a str),
    Exchange(&'a str, Perm, &'a str),
    /// Its own connection (administrators: any).
    OwnConnection,
}

/// RabbitMQ's rule table: what a change (method and path under /api/) needs; several needs must
/// all be met. None for a path no rule covers.
pub fn needs<'a>(method: &hyper::Method, segs: &[&'a str]) -> Option<Vec<Need<'a>>> {
    use hyper::Method as M;
    let dest = |v: &'a str, kind: &str, d: &'a str| {
        if kind == "q" { Need::Queue(v, Perm::Write, d) } else { Need::Exchange(v, Perm::Write, d) }
    };
    Some(match (method, segs) {
        (&M::PUT | &M::DELETE, ["queues", v, q]) => vec![Need::Queue(v, Perm::Configure, q)],
        (&M::DELETE, ["queues", v, q, "contents"]) | (&M::POST, ["queues", v, q, "get"]) => {
            vec![Need::Queue(v, Perm::Read, q)]
        }
        (&M::PUT | &M::DELETE, ["exchanges", v, x]) => vec![Need::Exchange(v, Perm::Configure, x)],
        (&M::POST, ["exchanges", v, x, "publish"]) => vec![Need::Exchange(v, Perm::Write, x)],
        (&M::POST, ["bindings", v, "e", src, kind @ ("q" | "e"), d])
        | (&M::DELETE, ["bindings", v, "e", src, kind @ ("q" | "e"), d, _]) => {
            vec![dest(v, kind, d), Need::Exchange(v, Perm::Read, src)]
        }
        (&M::PUT | &M::DELETE, ["policies", v, _]) => vec![Need::Policymaker(v)],
        (&M::DELETE, ["connections", _]) => vec![Need::OwnConnection],
        (&M::PUT | &M::DELETE, ["vhosts" | "users" | "permissions", ..]) | (&M::POST, ["definitions"]) => {
            vec![Need::Administrator]
        }
        _ => return None,
    })
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

    pub fn is_policymaker(&self) -> bool {
        self.level == Level::Administrator || self.tags.iter().any(|t| t == "policymaker")
    }

    /// Whether its `perm` expression in `vhost` matches a resource name (the default exchange is
    /// `amq.default`, as in AMQP's checks).
    fn permits(&self, vhost: &str, perm: Perm, name: &str) -> bool {
        self.permissions.iter().find(|(v, _)| v == vhost).is_some_and(|(_, [c, w, r])| {
            let Ok(p) = Permission::new(c, w, r) else { return false };
            let re = match perm {
                Perm::Configure => &p.configure,
                Perm::Write => &p.write,
                Perm::Read => &p.read,
            };
            re.is_match(name)
        })
    }

    /// Checks one need; `conn_user` is the user of the connection a change names, if it does.
    /// The answer refusing it, or None.
    pub fn refuses(&self, need: Need<'_>, conn_user: Option<&str>) -> Option<Resp> {
        let admin = self.level == Level::Administrator;
        let access_refused = || error(StatusCode::UNAUTHORIZED, "not_authorised", "Access refused.");
        let in_vhost = |v: &str| self.vhosts.iter().any(|x| x == v);
        let vhost_denied =
            || error(StatusCode::UNAUTHORIZED, "not_authorised", "User not authorised to access virtual host");
        match need {
            Need::Administrator => self.not_administrator(),
            _ if admin => None,
            Need::Policymaker(v) if !self.is_policymaker() || !in_vhost(v) => {
                Some(error(StatusCode::UNAUTHORIZED, "not_authorised", "User not authorised to access object"))
            }
            Need::Policymaker(_) => None,
            Need::Queue(v, ..) | Need::Exchange(v, ..) if !in_vhost(v) => Some(vhost_denied()),
            Need::Queue(v, perm, q) => (!self.permits(v, perm, q)).then(access_refused),
            Need::Exchange(v, perm, x) => {
                let x = if x.is_empty() || x == "amq.default" { "amq.default" } else { x };
                (!self.permits(v, perm, x)).then(access_refused)
            }
            Need::OwnConnection => (conn_user.is_some_and(|u| u != self.name))
                .then(|| error(StatusCode::UNAUTHORIZED, "not_authorised", "User not authorised to access object")),
        }
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
    let permissions = row
        .get("permissions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let [v, c, w, r] = [0, 1, 2, 3].map(|i| p.get(i).and_then(Value::as_str).map(String::from));
            Some((v?, [c?, w?, r?]))
        })
        .collect();
    Ok(Caller { name, tags, level, vhosts: strings(row.get("vhosts")), permissions })
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

    fn caller(tags: &[&str], perms: &[(&str, &str, &str, &str)]) -> Caller {
        let tags: Vec<String> = tags.iter().map(|s| s.to_string()).collect();
        Caller {
            name: "bob".into(),
            level: Level::of(&tags).unwrap(),
            tags,
            vhosts: perms.iter().map(|p| p.0.to_string()).collect(),
            permissions: perms.iter().map(|(v, c, w, r)| (v.to_string(), [c, w, r].map(|s| s.to_string()))).collect(),
        }
    }

    /// `path` with `|` between segments (a vhost may be "/").
    fn allowed(c: &Caller, method: hyper::Method, path: &str, conn_user: Option<&str>) -> bool {
        let segs: Vec<&str> = path.split('|').collect();
        needs(&method, &segs).unwrap().into_iter().all(|n| c.refuses(n, conn_user).is_none())
    }

    #[test]
    fn management_users_change_what_their_permissions_allow() {
        use hyper::Method as M;
        let bob = caller(&["management"], &[("/", "^bob-", "^bob-|amq.default", "^bob-")]);
        assert!(allowed(&bob, M::PUT, "queues|/|bob-q", None));
        assert!(!allowed(&bob, M::PUT, "queues|/|other", None));
        assert!(!allowed(&bob, M::PUT, "queues|elsewhere|bob-q", None));
        assert!(allowed(&bob, M::DELETE, "queues|/|bob-q|contents", None));
        assert!(allowed(&bob, M::POST, "exchanges|/|amq.default|publish", None));
        assert!(!allowed(&bob, M::POST, "exchanges|/|amq.direct|publish", None));
        assert!(allowed(&bob, M::POST, "bindings|/|e|bob-x|q|bob-q", None));
        assert!(!allowed(&bob, M::POST, "bindings|/|e|amq.direct|q|bob-q", None));
        assert!(!allowed(&bob, M::PUT, "policies|/|p", None));
        assert!(!allowed(&bob, M::PUT, "vhosts|v", None));
        assert!(allowed(&bob, M::DELETE, "connections|c", Some("bob")));
        assert!(!allowed(&bob, M::DELETE, "connections|c", Some("alice")));
        let pm = caller(&["policymaker"], &[("/", "", "", "")]);
        assert!(allowed(&pm, M::PUT, "policies|/|p", None));
        assert!(!allowed(&pm, M::PUT, "policies|other|p", None));
        assert!(!allowed(&pm, M::PUT, "queues|/|q", None));
        let admin = caller(&["administrator"], &[]);
        assert!(allowed(&admin, M::PUT, "users|x", None) && allowed(&admin, M::PUT, "queues|v|q", None));
        assert!(!allowed(&caller(&["monitoring"], &[("/", ".*", ".*", ".*")]), M::PUT, "users|x", None));
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
