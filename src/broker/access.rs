//! Users, password hashes and per-vhost permissions, checked as RabbitMQ checks them: three regular
//! expressions (configure, write, read) matched against the resource name, `''` meaning `^$`, the
//! default exchange named `amq.default`. Every shard holds the same copy, built at start.

use ahash::AHashMap as HashMap;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Md5;
use regex::Regex;
use sha2::{Digest, Sha256, Sha512};

use crate::protocol::reply::{ChannelError, ConnectionError};

/// RabbitMQ's password hash: base64(salt(4) ++ H(salt ++ password)). MD5 is RabbitMQ's oldest
/// format, still found in definitions exported from old brokers.
#[derive(Clone, Debug)]
pub enum PasswordHash {
    Md5(Vec<u8>),
    Sha256(Vec<u8>),
    Sha512(Vec<u8>),
}

impl PasswordHash {
    /// Parses `password_hash` with RabbitMQ's `hashing_algorithm` name.
    pub fn parse(hash: &str, algorithm: &str) -> Result<Self, String> {
        let raw = BASE64.decode(hash).map_err(|e| format!("password_hash is not base64: {e}"))?;
        let (len, make): (usize, fn(Vec<u8>) -> Self) = match algorithm {
            "" | "rabbit_password_hashing_sha256" => (36, Self::Sha256),
            "rabbit_password_hashing_sha512" => (68, Self::Sha512),
            "rabbit_password_hashing_md5" => (20, Self::Md5),
            other => return Err(format!("unsupported hashing_algorithm '{other}'")),
        };
        if raw.len() != len {
            return Err(format!("password_hash has {} bytes, expected {len}", raw.len()));
        }
        Ok(make(raw))
    }

    /// A new SHA-256 hash with this salt (the form RabbitMQ writes by default).
    pub fn sha256(salt: [u8; 4], password: &str) -> Self {
        let mut raw = salt.to_vec();
        raw.extend_from_slice(&Sha256::new().chain_update(salt).chain_update(password).finalize());
        Self::Sha256(raw)
    }

    /// RabbitMQ's `hashing_algorithm` name for this hash.
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Sha256(_) => "rabbit_password_hashing_sha256",
            Self::Sha512(_) => "rabbit_password_hashing_sha512",
            Self::Md5(_) => "rabbit_password_hashing_md5",
        }
    }

    pub fn to_base64(&self) -> String {
        match self {
            Self::Md5(raw) | Self::Sha256(raw) | Self::Sha512(raw) => BASE64.encode(raw),
        }
    }

    pub fn matches(&self, password: &str) -> bool {
        fn salted<D: Digest>(raw: &[u8], password: &str) -> bool {
            let Some((salt, hash)) = raw.split_first_chunk::<4>() else { return false };
            *hash == *D::new().chain_update(salt).chain_update(password).finalize()
        }
        match self {
            Self::Md5(raw) => salted::<Md5>(raw, password),
            Self::Sha256(raw) => salted::<Sha256>(raw, password),
            Self::Sha512(raw) => salted::<Sha512>(raw, password),
        }
    }
}

#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    pub tags: Vec<String>,
    /// max-connections, max-channels (rabbitmqctl set_user_limits).
    pub limits: super::limits::Limits,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Perm {
    Configure,
    Write,
    Read,
}

#[derive(Clone, Debug)]
pub struct Permission {
    pub configure: Regex,
    pub write: Regex,
    pub read: Regex,
}

impl Permission {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Self, String> {
        // RabbitMQ: the empty string is a synonym for '^$'.
        let re = |s: &str| {
            Regex::new(if s.is_empty() { "^$" } else { s }).map_err(|e| format!("bad permission regex '{s}': {e}"))
        };
        Ok(Self { configure: re(configure)?, write: re(write)?, read: re(read)? })
    }
}

/// A change to users or permissions while the broker runs.
#[derive(Clone, Debug)]
pub enum AccessOp {
    PutUser(User),
    DeleteUser(String),
    SetPermissions { user: String, vhost: String, configure: String, write: String, read: String },
    ClearPermissions { user: String, vhost: String },
    DeleteVhost(String),
}

/// What a resource is, for permission checks and their error texts.
#[derive(Clone, Copy, Debug)]
pub enum Resource<'a> {
    Queue(&'a str),
    Exchange(&'a str),
}

#[derive(Clone, Debug, Default)]
pub struct Access {
    users: HashMap<String, User>,
    permissions: HashMap<(String, String), Permission>,
    loopback_users: Vec<String>,
}

impl Access {
    pub fn new(loopback_users: Vec<String>) -> Self {
        Self { loopback_users, ..Default::default() }
    }

    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// (user, vhost) → permission.
    pub fn permissions(&self) -> impl Iterator<Item = (&(String, String), &Permission)> {
        self.permissions.iter()
    }

    /// Applies a change made while the broker runs (every shard applies the same ones in order).
    pub fn apply(&mut self, op: &AccessOp) -> Result<(), ChannelError> {
        let no_user = |u: &str| ChannelError::not_found(format!("no such user '{u}'"));
        match op {
            AccessOp::PutUser(u) => self.add_user(u.clone()),
            AccessOp::DeleteUser(name) => {
                self.users.remove(name).ok_or_else(|| no_user(name))?;
                self.permissions.retain(|(u, _), _| u != name);
            }
            AccessOp::SetPermissions { user, vhost, configure, write, read } => {
                if !self.users.contains_key(user) {
                    return Err(no_user(user));
                }
                let p = Permission::new(configure, write, read).map_err(ChannelError::precondition)?;
                self.set_permissions(user, vhost, p);
            }
            AccessOp::ClearPermissions { user, vhost } => {
                self.permissions.remove(&(user.clone(), vhost.clone()));
            }
            AccessOp::DeleteVhost(vhost) => self.permissions.retain(|(_, v), _| v != vhost),
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    pub fn add_user(&mut self, user: User) {
        self.users.insert(user.name.clone(), user);
    }

    pub fn set_permissions(&mut self, user: &str, vhost: &str, p: Permission) {
        self.permissions.insert((user.to_string(), vhost.to_string()), p);
    }

    /// Checks a login: connection.close 403 ACCESS_REFUSED unless the password matches (and, for
    /// loopback-only users such as guest, the peer is local).
    pub fn login(
        &self,
        user: &str,
        password: &str,
        mechanism: &str,
        peer_is_loopback: bool,
    ) -> Result<&User, ConnectionError> {
        let refused = || {
            ConnectionError::access_refused(format!(
                "Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."
            ))
        };
        let u = self.users.get(user).ok_or_else(refused)?;
        if !u.hash.matches(password) {
            return Err(refused());
        }
        if !peer_is_loopback && self.loopback_users.iter().any(|l| l == user) {
            return Err(ConnectionError::access_refused(format!("User '{user}' can only connect via localhost")));
        }
        Ok(u)
    }

    /// An EXTERNAL login: the user named by a verified client certificate must exist; no
    /// password is checked (rabbitmq_auth_mechanism_ssl), the loopback rule still applies.
    pub fn login_external(&self, user: &str, peer_is_loopback: bool) -> Result<&User, ConnectionError> {
        let u = self.users.get(user).ok_or_else(|| {
            log::info!("EXTERNAL login refused: user '{user}' - invalid credentials");
            ConnectionError::access_refused(
                "Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.",
            )
        })?;
        if !peer_is_loopback && self.loopback_users.iter().any(|l| l == user) {
            return Err(ConnectionError::access_refused(format!("User '{user}' can only connect via localhost")));
        }
        Ok(u)
    }

    /// connection.open's check: 530 unless the user has permissions in the vhost.
    pub fn check_vhost(&self, user: &str, vhost: &str) -> Result<(), ConnectionError> {
        if self.permissions.contains_key(&(user.to_string(), vhost.to_string())) {
            Ok(())
        } else {
            Err(ConnectionError::not_allowed(format!("access to vhost '{vhost}' refused for user '{user}'")))
        }
    }

    /// 403 ACCESS_REFUSED unless the user's `perm` regex in `vhost` matches the resource's name.
    pub fn check(&self, user: &str, vhost: &str, perm: Perm, resource: Resource<'_>) -> Result<(), ChannelError> {
        let (kind, name) = match resource {
            Resource::Queue(n) => ("queue", n),
            Resource::Exchange(n) => ("exchange", if n.is_empty() { "amq.default" } else { n }),
        };
        let allowed = self.permissions.get(&(user.to_string(), vhost.to_string())).is_some_and(|p| {
            let re = match perm {
                Perm::Configure => &p.configure,
                Perm::Write => &p.write,
                Perm::Read => &p.read,
            };
            re.is_match(name)
        });
        if allowed {
            Ok(())
        } else {
            Err(ChannelError::access_refused(format!(
                "access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_sha256_hash_round_trips() {
        let h = PasswordHash::sha256([1, 2, 3, 4], "secret");
        let parsed = PasswordHash::parse(&h.to_base64(), "rabbit_password_hashing_sha256").unwrap();
        assert!(parsed.matches("secret"));
        assert!(!parsed.matches("Secret"));
        assert!(PasswordHash::parse("not base64!", "").is_err());
        assert!(PasswordHash::parse(&h.to_base64(), "rabbit_password_hashing_md5").is_err());
    }

    #[test]
    fn hashes_exported_by_rabbitmq_verify() {
        // The example in RabbitMQ's passwords guide (salt 908DC60A, password "test12").
        let sha = PasswordHash::parse("kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "").unwrap();
        assert!(sha.matches("test12") && !sha.matches("test13"));
        // MD5 of salt CAD5089B ++ "simon", computed with Python's hashlib.
        let md5 = PasswordHash::parse("ytUIm8s3AnKsXQjptplKFytfVxI=", "rabbit_password_hashing_md5").unwrap();
        assert!(md5.matches("simon") && !md5.matches("simon "));
        assert_eq!(md5.algorithm(), "rabbit_password_hashing_md5");
        assert_eq!(md5.to_base64(), "ytUIm8s3AnKsXQjptplKFytfVxI=");
    }

    #[test]
    fn permissions_match_as_rabbitmq() {
        let mut a = Access::new(vec!["guest".into()]);
        a.add_user(User {
            name: "bob".into(),
            hash: PasswordHash::sha256([0; 4], "pw"),
            tags: vec![],
            limits: Default::default(),
        });
        a.set_permissions("bob", "/", Permission::new("^bob-", "", "^bob-|^amq\\.default$").unwrap());
        assert!(a.check("bob", "/", Perm::Configure, Resource::Queue("bob-q")).is_ok());
        assert_eq!(a.check("bob", "/", Perm::Configure, Resource::Queue("q")).unwrap_err().reply_code(), 403);
        assert!(a.check("bob", "/", Perm::Write, Resource::Queue("bob-q")).is_err(), "'' means ^$");
        assert!(a.check("bob", "/", Perm::Read, Resource::Exchange("")).is_ok());
        assert!(a.check("bob", "other", Perm::Read, Resource::Queue("bob-q")).is_err());
        assert_eq!(a.check_vhost("bob", "other").unwrap_err().reply_code(), 530);
        assert!(a.login("bob", "pw", "PLAIN", true).is_ok());
        assert!(a.login("bob", "nope", "PLAIN", true).is_err());
    }
}
