//! Policies (RabbitMQ's `rabbitmqctl set_policy`): per vhost, a name, a regex over queue and/or
//! exchange names, a priority and a definition of queue and exchange settings. The matching
//! policy with the highest priority applies to a queue or exchange, to existing ones at once and
//! to new ones as they are declared. Where a queue's own `x-` argument says otherwise, the lower
//! of the two limits wins (TTLs, lengths, expiry, delivery limit) and the argument wins for the
//! rest (dead-lettering, overflow, alternate exchange), as in RabbitMQ. `x-max-priority` is an
//! argument only. Policies are metadata: ordered by the coordinator, kept in the definitions.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::shortstr::ShortStr;

use super::queue::{Overflow, QueueArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyTo {
    Queues,
    Exchanges,
    All,
}

impl ApplyTo {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "queues" => Ok(ApplyTo::Queues),
            "exchanges" => Ok(ApplyTo::Exchanges),
            "all" => Ok(ApplyTo::All),
            other => {
                Err(format!("Validation failed\n\n'{other}' is not a valid apply-to value (queues, exchanges, all)"))
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// A policy as the definitions file and `list_policies` give it (RabbitMQ's export format).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default = "all")]
    pub apply_to: String,
    pub definition: Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

fn all() -> String {
    "all".into()
}

/// The settings a policy definition may hold: those Warren applies, and RabbitMQ's others
/// (accepted and kept, without effect here: mirroring, federation, streams, lazy mode).
const APPLIED: &[&str] = &[
    "message-ttl",
    "expires",
    "max-length",
    "max-length-bytes",
    "overflow",
    "dead-letter-exchange",
    "dead-letter-routing-key",
    "delivery-limit",
    "alternate-exchange",
];
const ACCEPTED: &[&str] = &[
    "queue-mode",
    "queue-version",
    "ha-mode",
    "ha-params",
    "ha-sync-mode",
    "ha-promote-on-shutdown",
    "ha-promote-on-failure",
    "queue-master-locator",
    "queue-leader-locator",
    "federation-upstream",
    "federation-upstream-set",
    "max-age",
    "stream-max-segment-size-bytes",
    "consumer-timeout",
    "dead-letter-strategy",
    "max-in-memory-length",
    "max-in-memory-bytes",
];

/// A policy ready to match: its regex compiled, its settings checked.
#[derive(Clone, Debug)]
pub struct Policy {
    pub def: PolicyDef,
    regex: regex::Regex,
    apply_to: ApplyTo,
    settings: Settings,
}

/// What a policy sets, typed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Option<Overflow>,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub delivery_limit: Option<u64>,
    pub alternate_exchange: Option<String>,
}

impl Policy {
    /// Checks a definition as `rabbitmqctl set_policy` does: known keys, values of the right type.
    pub fn new(def: PolicyDef) -> Result<Self, String> {
        let regex = regex::Regex::new(&def.pattern).map_err(|e| format!("Validation failed\n\n{e}"))?;
        let apply_to = ApplyTo::parse(&def.apply_to)?;
        if def.definition.is_empty() {
            return Err("Validation failed\n\nno policy settings given".into());
        }
        let unknown: Vec<&str> = def
            .definition
            .keys()
            .map(String::as_str)
            .filter(|k| !APPLIED.contains(k) && !ACCEPTED.contains(k))
            .collect();
        if !unknown.is_empty() {
            return Err(format!("Validation failed\n\n{unknown:?} are not recognised policy settings"));
        }
        let mut s = Settings::default();
        let bad = |key: &str, want: &str, v: &Value| {
            format!("Validation failed\n\n<<\"{key}\">> should be {want}, actually was {v}")
        };
        for (key, v) in &def.definition {
            let non_negative = || v.as_u64().ok_or_else(|| bad(key, "a non-negative integer", v));
            let text = || v.as_str().map(str::to_owned).ok_or_else(|| bad(key, "binary", v));
            match key.as_str() {
                "message-ttl" => s.message_ttl = Some(non_negative()?),
                "expires" => {
                    s.expires = Some(non_negative()?.max(1));
                    if v.as_u64() == Some(0) {
                        return Err(bad(key, "a positive integer", v));
                    }
                }
                "max-length" => s.max_length = Some(non_negative()?),
                "max-length-bytes" => s.max_length_bytes = Some(non_negative()?),
                "delivery-limit" => s.delivery_limit = Some(non_negative()?),
                "overflow" => {
                    s.overflow = Some(match text()?.as_str() {
                        "drop-head" => Overflow::DropHead,
                        "reject-publish" => Overflow::RejectPublish,
                        "reject-publish-dlx" => Overflow::RejectPublishDlx,
                        _ => return Err(bad(key, "one of drop-head, reject-publish, reject-publish-dlx", v)),
                    })
                }
                "dead-letter-exchange" => s.dead_letter_exchange = Some(text()?),
                "dead-letter-routing-key" => s.dead_letter_routing_key = Some(text()?),
                "alternate-exchange" => s.alternate_exchange = Some(text()?),
                _ => {}
            }
        }
        Ok(Policy { def, regex, apply_to, settings: s })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn matches(&self, name: &str, queue: bool) -> bool {
        let kind_ok = match self.apply_to {
            ApplyTo::All => true,
            ApplyTo::Queues => queue,
            ApplyTo::Exchanges => !queue,
        };
        kind_ok && self.regex.is_match(name)
    }
}

/// The policies of every vhost.
#[derive(Default, Clone)]
pub struct Policies {
    list: Vec<Policy>,
}

impl Policies {
    /// Adds or replaces (by vhost and name) a policy.
    pub fn set(&mut self, p: Policy) {
        self.list.retain(|q| !(q.def.vhost == p.def.vhost && q.def.name == p.def.name));
        self.list.push(p);
    }

    /// Removes a policy; false if there was none.
    pub fn clear(&mut self, vhost: &str, name: &str) -> bool {
        let before = self.list.len();
        self.list.retain(|q| !(q.def.vhost == vhost && q.def.name == name));
        self.list.len() != before
    }

    pub fn drop_vhost(&mut self, vhost: &str) {
        self.list.retain(|q| q.def.vhost != vhost);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.list.iter()
    }

    /// The policy that applies to a queue (`queue`) or exchange: the highest priority among
    /// those matching; of equal ones, the first by name.
    pub fn find(&self, vhost: &str, name: &str, queue: bool) -> Option<&Policy> {
        self.list
            .iter()
            .filter(|p| p.def.vhost == vhost && p.matches(name, queue))
            .min_by(|a, b| b.def.priority.cmp(&a.def.priority).then_with(|| a.def.name.cmp(&b.def.name)))
    }
}

/// A queue's settings once a policy is combined with its own arguments.
pub fn effective(declared: &QueueArgs, policy: Option<&Settings>) -> QueueArgs {
    let Some(p) = policy else { return declared.clone() };
    let lower = |arg: Option<u64>, pol: Option<u64>| match (arg, pol) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut a = declared.clone();
    a.message_ttl = lower(declared.message_ttl, p.message_ttl);
    a.expires = lower(declared.expires, p.expires);
    a.max_length = lower(declared.max_length, p.max_length);
    a.max_length_bytes = lower(declared.max_length_bytes, p.max_length_bytes);
    // Only quorum queues read a delivery limit.
    if declared.kind == super::queue::QueueType::Quorum {
        a.delivery_limit = lower(declared.delivery_limit, p.delivery_limit);
    }
    if !declared.overflow_given {
        a.overflow = p.overflow.unwrap_or(declared.overflow);
    }
    // Each setting on its own: the argument if given, else the policy's.
    if declared.dead_letter_exchange.is_none() {
        a.dead_letter_exchange = p.dead_letter_exchange.clone();
    }
    if declared.dead_letter_routing_key.is_none() {
        a.dead_letter_routing_key =
            p.dead_letter_routing_key.as_deref().and_then(|k| ShortStr::copy_from_slice(k.as_bytes()).ok());
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(name: &str, pattern: &str, priority: i64, definition: Value) -> Result<Policy, String> {
        let Value::Object(definition) = definition else { panic!() };
        Policy::new(PolicyDef {
            vhost: "/".into(),
            name: name.into(),
            pattern: pattern.into(),
            apply_to: "queues".into(),
            definition,
            priority,
        })
    }

    #[test]
    fn the_highest_priority_match_applies_and_arguments_win_where_rabbitmq_says() {
        let mut ps = Policies::default();
        ps.set(policy("low", "^work", 0, json!({"max-length": 10, "dead-letter-exchange": "pol-dlx"})).unwrap());
        ps.set(
            policy(
                "high",
                "^work\\.",
                5,
                json!({"max-length": 100, "message-ttl": 5000, "dead-letter-exchange": "pol-dlx"}),
            )
            .unwrap(),
        );
        assert_eq!(ps.find("/", "work.a", true).unwrap().def.name, "high");
        assert_eq!(ps.find("/", "workers", true).unwrap().def.name, "low");
        assert!(ps.find("/", "work.a", false).is_none(), "queues only");
        assert!(ps.find("/other", "work.a", true).is_none());
        let declared =
            QueueArgs { max_length: Some(50), dead_letter_exchange: Some("own".into()), ..Default::default() };
        let e = effective(&declared, Some(ps.find("/", "work.a", true).unwrap().settings()));
        assert_eq!((e.max_length, e.message_ttl), (Some(50), Some(5000)), "the lower limit");
        assert_eq!(e.dead_letter_exchange.as_deref(), Some("own"), "the argument");
        let e = effective(&QueueArgs::default(), Some(ps.find("/", "work.a", true).unwrap().settings()));
        assert_eq!((e.max_length, e.dead_letter_exchange.as_deref()), (Some(100), Some("pol-dlx")));
        assert!(ps.clear("/", "high") && !ps.clear("/", "high"));
        assert_eq!(ps.find("/", "work.a", true).unwrap().def.name, "low");
    }

    // Review finding: a delivery-limit policy meant for quorum queues dropped classic queues'
    // redelivered messages.
    #[test]
    fn a_delivery_limit_applies_to_quorum_queues_only() {
        let p = policy("dl", ".*", 0, json!({"delivery-limit": 2})).unwrap();
        assert_eq!(effective(&QueueArgs::default(), Some(p.settings())).delivery_limit, None);
        let quorum = QueueArgs { kind: crate::broker::queue::QueueType::Quorum, ..Default::default() };
        assert_eq!(effective(&quorum, Some(p.settings())).delivery_limit, Some(2));
    }

    #[test]
    fn definitions_are_checked() {
        assert!(policy("p", "(", 0, json!({"max-length": 1})).is_err());
        assert!(policy("p", ".*", 0, json!({"max-lenght": 1})).unwrap_err().contains("not recognised"));
        assert!(policy("p", ".*", 0, json!({"max-length": -1})).unwrap_err().contains("non-negative"));
        assert!(policy("p", ".*", 0, json!({"overflow": "sideways"})).is_err());
        assert!(policy("p", ".*", 0, json!({"ha-mode": "all"})).is_ok(), "RabbitMQ's other keys are accepted");
    }
}
