//! Definitions in RabbitMQ's JSON format (what `rabbitmqctl export_definitions` writes and the
//! `load_definitions` setting reads): users, vhosts, permissions, exchanges, queues, bindings.
//! Warren loads a file at start, as RabbitMQ does; each shard applies the same file, so all agree.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::protocol::shortstr::ShortStr;
use crate::protocol::types::{FieldTable, FieldValue};

use super::access::{Access, PasswordHash, Permission, User};
use super::limits::{Limits, USER_LIMITS, VHOST_LIMITS};
use super::policy::PolicyDef;
use super::queue::QueueFlags;
use super::routing::{Dest, MetaOp};

#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Definitions {
    #[serde(default)]
    pub users: Vec<UserDef>,
    #[serde(default)]
    pub vhosts: Vec<VhostDef>,
    #[serde(default)]
    pub permissions: Vec<PermissionDef>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeDef>,
    #[serde(default)]
    pub queues: Vec<QueueDef>,
    #[serde(default)]
    pub bindings: Vec<BindingDef>,
    #[serde(default)]
    pub policies: Vec<PolicyDef>,
    /// Runtime parameters: Warren keeps the "vhost-limits" ones (others are left out).
    #[serde(default)]
    pub parameters: Vec<ParameterDef>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct UserDef {
    pub name: String,
    pub password_hash: String,
    #[serde(default)]
    pub hashing_algorithm: String,
    /// "administrator,monitoring" (RabbitMQ 3.x) or a list (newer exports).
    #[serde(default)]
    pub tags: Value,
    /// max-connections, max-channels (RabbitMQ exports `{}` for none). Absent (a management API
    /// PUT of the user) keeps an existing user's limits on import.
    #[serde(default)]
    pub limits: Option<Value>,
}

/// A runtime parameter; vhost limits are `{"component": "vhost-limits", "name": "limits",
/// "value": {"max-connections": 10, "max-queues": 5}}` in the vhost.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ParameterDef {
    pub vhost: String,
    pub component: String,
    pub name: String,
    pub value: Value,
}

/// The component of vhost limits among runtime parameters.
pub const VHOST_LIMITS_COMPONENT: &str = "vhost-limits";

impl ParameterDef {
    pub fn vhost_limits(vhost: &str, limits: &Limits) -> Self {
        Self {
            vhost: vhost.into(),
            component: VHOST_LIMITS_COMPONENT.into(),
            name: "limits".into(),
            value: Value::Object(limits.to_json()),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct VhostDef {
    pub name: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExchangeDef {
    pub name: String,
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct QueueDef {
    pub name: String,
    pub vhost: String,
    #[serde(default)]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct BindingDef {
    pub source: String,
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: serde_json::Map<String, Value>,
}

impl QueueDef {
    pub fn flags(&self) -> QueueFlags {
        QueueFlags {
            durable: self.durable,
            exclusive: false,
            auto_delete: self.auto_delete,
            arguments: field_table(&self.arguments),
        }
    }
}

impl Definitions {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("definitions: {e}"))
    }

    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Adds `other`'s definitions after this one's (applied later, so its users and permissions win).
    pub fn merge(&mut self, other: Definitions) {
        self.users.extend(other.users);
        self.vhosts.extend(other.vhosts);
        self.permissions.extend(other.permissions);
        self.exchanges.extend(other.exchanges);
        self.queues.extend(other.queues);
        self.bindings.extend(other.bindings);
        self.policies.extend(other.policies);
        self.parameters.extend(other.parameters);
    }

    /// The vhost limits among the parameters, checked.
    pub fn vhost_limits(&self) -> Result<Vec<(String, Limits)>, String> {
        let of_vhosts = self.parameters.iter().filter(|p| p.component == VHOST_LIMITS_COMPONENT);
        of_vhosts
            .map(|p| match &p.value {
                Value::Object(map) => Limits::from_json(map, &VHOST_LIMITS)
                    .map(|l| (p.vhost.clone(), l))
                    .map_err(|e| format!("limits of vhost '{}': {e}", p.vhost)),
                other => Err(format!("limits of vhost '{}': {other} is not a JSON object", p.vhost)),
            })
            .collect()
    }

    /// The vhosts, exchanges and bindings as routing-table changes, in the order to apply them
    /// (vhost limits that do not parse are left out: `vhost_limits` says why, checked at start).
    pub fn routing_ops(&self) -> Vec<MetaOp> {
        let vhosts = self.vhosts.iter().map(|v| MetaOp::AddVhost { vhost: v.name.clone() });
        let exchanges = self.exchanges.iter().filter(|x| !x.name.is_empty() && !x.name.starts_with("amq.")).map(|x| {
            MetaOp::DeclareExchange {
                vhost: x.vhost.clone(),
                name: x.name.clone(),
                kind: x.kind.clone(),
                passive: false,
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: field_table(&x.arguments),
            }
        });
        let bindings = self.bindings.iter().map(|b| MetaOp::Bind {
            vhost: b.vhost.clone(),
            source: b.source.clone(),
            dest: match b.destination_type.as_str() {
                "exchange" => Dest::Exchange(b.destination.as_str().into()),
                _ => Dest::Queue(b.destination.as_str().into()),
            },
            key: b.routing_key.clone(),
            args: field_table(&b.arguments),
        });
        let policies = self.policies.iter().map(|p| MetaOp::SetPolicy(Box::new(p.clone())));
        let limits = self
            .vhost_limits()
            .unwrap_or_default()
            .into_iter()
            .map(|(vhost, limits)| MetaOp::SetVhostLimits { vhost, limits });
        vhosts.chain(limits).chain(policies).chain(exchanges).chain(bindings).collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Users and permissions as an `Access`; bad hashes or regexes are errors, not silent skips.
    pub fn access(&self, loopback_users: Vec<String>) -> Result<Access, String> {
        let mut access = Access::new(loopback_users);
        for u in &self.users {
            let hash = PasswordHash::parse(&u.password_hash, &u.hashing_algorithm)
                .map_err(|e| format!("user '{}': {e}", u.name))?;
            let tags = match &u.tags {
                Value::String(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
                Value::Array(a) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
                _ => Vec::new(),
            };
            let limits = match &u.limits {
                Some(Value::Object(map)) => Limits::from_json(map, &USER_LIMITS),
                None | Some(Value::Null) => Ok(Limits::default()),
                Some(other) => Err(format!("{other} is not a JSON object")),
            }
            .map_err(|e| format!("limits of user '{}': {e}", u.name))?;
            access.add_user(User { name: u.name.clone(), hash, tags, limits });
        }
        for p in &self.permissions {
            let perm =
                Permission::new(&p.configure, &p.write, &p.read).map_err(|e| format!("user '{}': {e}", p.user))?;
            access.set_permissions(&p.user, &p.vhost, perm);
        }
        Ok(access)
    }

    /// What RabbitMQ creates on first start without definitions: the default user, with every
    /// permission on the default vhost.
    pub fn default_user(user: &str, password: &str, vhost: &str, salt: [u8; 4]) -> Self {
        Self {
            users: vec![UserDef {
                name: user.into(),
                password_hash: PasswordHash::sha256(salt, password).to_base64(),
                hashing_algorithm: "rabbit_password_hashing_sha256".into(),
                tags: Value::String("administrator".into()),
                limits: Some(Value::Object(Default::default())),
            }],
            vhosts: vec![VhostDef { name: vhost.into() }],
            permissions: vec![PermissionDef {
                user: user.into(),
                vhost: vhost.into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            }],
            ..Default::default()
        }
    }
}

/// A JSON argument value as the field-table value RabbitMQ would use.
pub fn field_value(v: &Value) -> FieldValue {
    match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::str(s),
        Value::Array(a) => FieldValue::Array(a.iter().map(field_value).collect()),
        Value::Object(o) => FieldValue::Table(field_table(o)),
    }
}

/// A JSON object as a field table; a name longer than a short string can hold has no place in it
/// (AMQP cannot declare one) and is left out.
pub fn field_table(o: &serde_json::Map<String, Value>) -> FieldTable {
    FieldTable(o.iter().filter_map(|(k, v)| Some((ShortStr::try_from(k.clone()).ok()?, field_value(v)))).collect())
}

/// A field-table value as JSON, the way RabbitMQ exports arguments.
pub fn json_value(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::F32(f) => serde_json::Number::from_f64(*f as f64).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Decimal(scale, n) => {
            serde_json::Number::from_f64(*n as f64 / 10f64.powi(*scale as i32)).map_or(Value::Null, Value::Number)
        }
        FieldValue::LongStr(b) | FieldValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        FieldValue::Array(a) => Value::Array(a.iter().map(json_value).collect()),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::Table(t) => Value::Object(json_table(t)),
        FieldValue::Void => Value::Null,
        other => other.as_i128().and_then(|n| i64::try_from(n).ok()).map_or(Value::Null, Value::from),
    }
}

/// JSON names are text: a table name that is not UTF-8 comes out with U+FFFD for its other bytes,
/// as long strings do in `json_value`.
pub fn json_table(t: &FieldTable) -> serde_json::Map<String, Value> {
    t.0.iter().map(|(k, v)| (k.to_string(), json_value(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape `rabbitmqctl export_definitions` writes (RabbitMQ 3.10), trimmed.
    const EXPORTED: &str = r#"{
      "rabbit_version": "3.10.8", "rabbitmq_version": "3.10.8", "product_name": "RabbitMQ",
      "users": [{"name": "guest", "password_hash": "AAECA9IGrBMCWO2KUq5sZVx6CC6Pf+FGoNfqRCK9hIFD8WXi",
                 "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}}],
      "vhosts": [{"name": "/"}],
      "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
      "topic_permissions": [], "parameters": [], "global_parameters": [], "policies": [],
      "queues": [{"name": "q", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {"x-max-length": 10}}],
      "exchanges": [{"name": "x", "vhost": "/", "type": "topic", "durable": true, "auto_delete": false, "internal": false, "arguments": {}}],
      "bindings": [{"source": "x", "vhost": "/", "destination": "q", "destination_type": "queue", "routing_key": "a.#", "arguments": {}}]
    }"#;

    #[test]
    fn a_rabbitmq_export_parses() {
        let d = Definitions::parse(EXPORTED).unwrap();
        assert_eq!((d.users.len(), d.queues.len(), d.exchanges.len(), d.bindings.len()), (1, 1, 1, 1));
        assert_eq!(field_table(&d.queues[0].arguments).get("x-max-length").and_then(FieldValue::as_i128), Some(10));
        let access = d.access(vec![]).unwrap();
        assert!(access.check_vhost("guest", "/").is_ok());
    }

    #[test]
    fn arguments_survive_json_and_back() {
        let d = Definitions::parse(EXPORTED).unwrap();
        let again = Definitions::parse(&d.to_json()).unwrap();
        assert_eq!(field_table(&again.queues[0].arguments), field_table(&d.queues[0].arguments));
        assert_eq!(again.bindings[0].routing_key, "a.#");
        let mut t = FieldTable::default();
        t.insert("x-max-length", FieldValue::I32(5));
        t.insert("alternate-exchange", FieldValue::str("ae"));
        assert_eq!(field_table(&json_table(&t)).get_str("alternate-exchange").as_deref(), Some("ae"));
        assert_eq!(field_table(&json_table(&t)).get("x-max-length").and_then(FieldValue::as_i128), Some(5));
    }

    #[test]
    fn vhost_and_user_limits_come_from_rabbitmqs_shapes() {
        let text = EXPORTED
            .replace(r#""parameters": [],"#, r#""parameters": [{"value": {"max-connections": 10, "max-queues": -1}, "vhost": "/", "component": "vhost-limits", "name": "limits"}, {"value": {}, "vhost": "/", "component": "federation-upstream", "name": "up"}],"#)
            .replace(r#""limits": {}"#, r#""limits": {"max-channels": 3}"#);
        let d = Definitions::parse(&text).unwrap();
        let limits = d.vhost_limits().unwrap();
        assert_eq!(limits.len(), 1);
        assert_eq!((limits[0].1.get("max-connections"), limits[0].1.get("max-queues")), (Some(10), None));
        let access = d.access(vec![]).unwrap();
        assert_eq!(access.user("guest").unwrap().limits.get("max-channels"), Some(3));
        let bad = EXPORTED.replace(r#""limits": {}"#, r#""limits": {"max-queues": 3}"#);
        assert!(Definitions::parse(&bad).unwrap().access(vec![]).unwrap_err().contains("limits of user 'guest'"));
    }

    #[test]
    fn default_user_logs_in() {
        let d = Definitions::default_user("guest", "guest", "/", [9, 8, 7, 6]);
        let a = d.access(vec!["guest".into()]).unwrap();
        assert!(a.login("guest", "guest", "PLAIN", true).is_ok());
        assert_eq!(a.login("guest", "guest", "PLAIN", false).unwrap_err().reply_code(), 403);
    }
}
