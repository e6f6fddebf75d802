//! RabbitMQ's management JSON objects (queue, exchange, binding, connection, channel, consumer,
//! vhost) built from the admin endpoint's rows; field names as RabbitMQ's HTTP API writes them.

use serde_json::{Value, json};

use super::admin_client::{Admin, AdminError, Object, objects};
use super::auth::Caller;

/// Name and version RabbitMQ's clients check before using an API (e.g. the `rabbitmq_version`
/// gate in rabbitmqadmin and Terraform's provider): the management API level Warren follows.
pub const COMPAT_VERSION: &str = "3.13.7";

fn s<'a>(o: &'a Object, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or_default()
}

fn n(o: &Object, k: &str) -> u64 {
    o.get(k).and_then(Value::as_u64).unwrap_or(0)
}

fn field(o: &Object, k: &str) -> Value {
    o.get(k).cloned().unwrap_or(Value::Null)
}

/// What most endpoints and the metrics need: the broker's objects, fetched once per request.
pub struct Snapshot {
    pub vhosts: Vec<String>,
    pub queues: Vec<Object>,
    pub connections: Vec<Object>,
    pub channels: Vec<Object>,
    /// Mesh messages each shard handled, by kind (`list_shard_messages`).
    pub mesh: Vec<Object>,
}

impl Snapshot {
    /// One admin round trip (`snapshot`) for all of it.
    pub async fn fetch(admin: &Admin) -> Result<Self, AdminError> {
        let all = admin.ask("snapshot", vec![], "/").await?;
        let part = |k: &str| all.get(k).map(objects).unwrap_or_default();
        Ok(Self {
            vhosts: part("vhosts").iter().map(|r| s(r, "name").to_string()).collect(),
            queues: part("queues"),
            connections: part("connections"),
            channels: part("channels"),
            mesh: part("mesh"),
        })
    }

    /// Keeps what the caller may see.
    pub fn visible_to(mut self, caller: &Caller) -> Self {
        self.vhosts.retain(|v| caller.sees_vhost(v));
        self.queues.retain(|q| caller.sees_vhost(s(q, "vhost")));
        self.connections.retain(|c| caller.sees_user(s(c, "user")));
        self.channels.retain(|c| caller.sees_user(s(c, "user")));
        self
    }

    pub fn consumers(&self) -> u64 {
        self.queues.iter().map(|q| n(q, "consumers")).sum()
    }

    /// (messages, ready, unacknowledged) over the queues of `vhost`, or of all.
    pub fn messages(&self, vhost: Option<&str>) -> (u64, u64, u64) {
        let (ready, unacked) = self
            .queues
            .iter()
            .filter(|q| vhost.is_none_or(|v| s(q, "vhost") == v))
            .fold((0, 0), |(r, u), q| (r + n(q, "messages_ready"), u + n(q, "messages_unacknowledged")));
        (ready + unacked, ready, unacked)
    }
}

pub fn queue(q: &Object, node: &str) -> Value {
    let (ready, unacked) = (n(q, "messages_ready"), n(q, "messages_unacknowledged"));
    json!({
        "name": s(q, "name"),
        "vhost": s(q, "vhost"),
        "durable": field(q, "durable"),
        "auto_delete": field(q, "auto_delete"),
        "exclusive": field(q, "exclusive"),
        "arguments": field(q, "arguments"),
        "node": node,
        "state": "running",
        "type": "classic",
        "policy": null,
        "exclusive_consumer_tag": null,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "consumers": n(q, "consumers"),
    })
}

pub fn exchange(x: &Object) -> Value {
    json!({
        "name": s(x, "name"),
        "vhost": s(x, "vhost"),
        "type": s(x, "type"),
        "durable": field(x, "durable"),
        "auto_delete": field(x, "auto_delete"),
        "internal": field(x, "internal"),
        "arguments": field(x, "arguments"),
        "user_who_performed_action": "",
        "policy": null,
    })
}

/// RabbitMQ's `properties_key`: the routing key (percent-encoded), `~` when empty, with a hash
/// of the arguments after a `~` when there are any (Warren's hash, not RabbitMQ's).
pub fn properties_key(key: &str, args: &Value) -> String {
    let quoted: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    match args.as_object() {
        Some(a) if !a.is_empty() => {
            let h = crc32fast::hash(args.to_string().as_bytes());
            format!("{quoted}~{h:08x}")
        }
        _ if key.is_empty() => "~".into(),
        _ => quoted,
    }
}

pub fn binding(vhost: &str, b: &Object) -> Value {
    let args = field(b, "arguments");
    json!({
        "source": s(b, "source_name"),
        "vhost": vhost,
        "destination": s(b, "destination_name"),
        "destination_type": s(b, "destination_kind"),
        "routing_key": s(b, "routing_key"),
        "arguments": args,
        "properties_key": properties_key(s(b, "routing_key"), &args),
    })
}

/// The default exchange's implicit binding to a queue, which RabbitMQ lists first.
pub fn default_binding(q: &Object) -> Value {
    let name = s(q, "name");
    json!({
        "source": "",
        "vhost": s(q, "vhost"),
        "destination": name,
        "destination_type": "queue",
        "routing_key": name,
        "arguments": {},
        "properties_key": properties_key(name, &json!({})),
    })
}

/// `peer -> local` (Warren's connection name, as RabbitMQ's) split into host and port pairs.
fn endpoints(name: &str) -> (Value, Value, Value, Value) {
    let split = |a: &str| -> (Value, Value) {
        match a.trim().rsplit_once(':') {
            Some((h, p)) => (json!(h.trim_matches(['[', ']'])), p.parse::<u16>().map_or(Value::Null, |p| json!(p))),
            None => (Value::Null, Value::Null),
        }
    };
    let (peer, local) = name.split_once(" -> ").unwrap_or((name, ""));
    let ((ph, pp), (h, p)) = (split(peer), split(local));
    (ph, pp, h, p)
}

pub fn connection(c: &Object, node: &str) -> Value {
    let (peer_host, peer_port, host, port) = endpoints(s(c, "name"));
    json!({
        "name": s(c, "name"),
        "node": node,
        "user": s(c, "user"),
        "vhost": s(c, "vhost"),
        "channels": n(c, "channels"),
        "state": s(c, "state"),
        "type": "network",
        "protocol": "AMQP 0-9-1",
        "auth_mechanism": "PLAIN",
        "ssl": false,
        "peer_host": peer_host,
        "peer_port": peer_port,
        "host": host,
        "port": port,
        "send_pend": n(c, "buffer_bytes"),
    })
}

fn connection_details(conn_name: &str) -> Value {
    let (peer_host, peer_port, _, _) = endpoints(conn_name);
    json!({ "name": conn_name, "peer_host": peer_host, "peer_port": peer_port })
}

/// A channel; `conn_name` is its connection's name.
pub fn channel(ch: &Object, conn_name: &str, node: &str) -> Value {
    json!({
        "name": s(ch, "name"),
        "node": node,
        "number": n(ch, "number"),
        "user": s(ch, "user"),
        "vhost": s(ch, "vhost"),
        "state": "running",
        "consumer_count": n(ch, "consumer_count"),
        "messages_unacknowledged": n(ch, "messages_unacknowledged"),
        "prefetch_count": n(ch, "prefetch_count"),
        "confirm": field(ch, "confirm"),
        "transactional": false,
        "connection_details": connection_details(conn_name),
    })
}

/// A consumer; `conn` is its connection's row, when it is still there.
pub fn consumer(vhost: &str, c: &Object, conn: Option<&Object>, node: &str) -> Value {
    let conn_name = conn.map(|c| s(c, "name")).unwrap_or_default();
    let (peer_host, peer_port, _, _) = endpoints(conn_name);
    json!({
        "consumer_tag": s(c, "consumer_tag"),
        "queue": { "name": s(c, "queue_name"), "vhost": vhost },
        "ack_required": field(c, "ack_required"),
        "exclusive": field(c, "exclusive"),
        "prefetch_count": n(c, "prefetch_count"),
        "active": true,
        "activity_status": "up",
        "arguments": {},
        "channel_details": {
            "name": format!("{conn_name} ({})", n(c, "channel")),
            "number": n(c, "channel"),
            "connection_name": conn_name,
            "user": conn.map(|c| s(c, "user")).unwrap_or_default(),
            "node": node,
            "peer_host": peer_host,
            "peer_port": peer_port,
        },
    })
}

pub fn vhost(name: &str, snap: &Snapshot, node: &str) -> Value {
    let (messages, ready, unacked) = snap.messages(Some(name));
    json!({
        "name": name,
        "description": "",
        "tags": [],
        "default_queue_type": "classic",
        "tracing": false,
        "messages": messages,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "cluster_state": { node: "running" },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys_as_rabbitmq_writes_them() {
        assert_eq!(properties_key("", &json!({})), "~");
        assert_eq!(properties_key("a.b", &json!({})), "a.b");
        assert_eq!(properties_key("a/b#", &json!({})), "a%2Fb%23");
        assert!(properties_key("k", &json!({"x-match": "all"})).starts_with("k~"));
    }

    #[test]
    fn connection_names_split_into_endpoints() {
        let (ph, pp, h, p) = endpoints("127.0.0.1:5000 -> 127.0.0.1:5672");
        assert_eq!((ph, pp, h, p), (json!("127.0.0.1"), json!(5000), json!("127.0.0.1"), json!(5672)));
        let (ph, pp, _, _) = endpoints("[::1]:5000 -> [::1]:5672");
        assert_eq!((ph, pp), (json!("::1"), json!(5000)));
    }
}
