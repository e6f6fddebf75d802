//! Messages got and published by the management API (POST /api/queues/V/Q/get and
//! /api/exchanges/V/X/publish), as RabbitMQ's plugin does them on a channel of the caller's own:
//! the caller's permissions are checked (read on the queue, write on the exchange), a get is
//! basic.get with the ack mode's settlement after all the gets, a publish is routed on this
//! shard's table copy and sent to the owning shards like a client's. Bodies cross the admin
//! socket in base64.

use std::rc::Rc;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};

use super::message_json;
use super::table;
use crate::broker::access::{Perm, Resource};
use crate::broker::delivery::Settle;
use crate::broker::message::Message;
use crate::broker::queue::args::parse_expiration;
use crate::protocol::properties::BasicProperties;
use crate::protocol::shortstr::ShortStr;
use crate::shard::Shard;
use crate::shard::msg::{ShardMsg, Targets};
use crate::shard::placement::{by_shard, shard_of};
use crate::shard::queue_ops::{QueueOp, QueueRef};

/// RabbitMQ's `ackmode`: what becomes of the messages a get took.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AckMode {
    /// Taken, then back in the queue (as a channel closing with them unacked), redelivered.
    AckRequeueTrue,
    /// Taken for good (basic.get with no_ack).
    AckRequeueFalse,
    /// Rejected with requeue: back in the queue, redelivered.
    RejectRequeueTrue,
    /// Rejected without requeue: dropped, or dead-lettered.
    RejectRequeueFalse,
}

impl AckMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "ack_requeue_true" => Self::AckRequeueTrue,
            "ack_requeue_false" => Self::AckRequeueFalse,
            "reject_requeue_true" => Self::RejectRequeueTrue,
            "reject_requeue_false" => Self::RejectRequeueFalse,
            other => return Err(format!("Unsupported ackmode '{other}'")),
        })
    }

    fn no_ack(self) -> bool {
        self == Self::AckRequeueFalse
    }

    /// How the taken messages are settled once every get is done (none when no_ack).
    fn settle(self) -> Option<Settle> {
        match self {
            Self::AckRequeueTrue | Self::RejectRequeueTrue => Some(Settle::Requeue),
            Self::RejectRequeueFalse => Some(Settle::Discard),
            Self::AckRequeueFalse => None,
        }
    }
}

/// What a get asks for.
#[derive(Debug, PartialEq)]
pub struct GetRequest {
    pub user: String,
    pub queue: String,
    pub count: u32,
    pub ackmode: AckMode,
    /// Bytes of each payload sent back at most (`payload_bytes` is still the whole size).
    pub truncate: Option<usize>,
}

/// What a publish asks for.
#[derive(Debug, PartialEq)]
pub struct PublishRequest {
    pub user: String,
    pub exchange: String,
    pub routing_key: String,
    /// The properties as the API's JSON object.
    pub properties: String,
    pub payload_base64: String,
}

fn text(e: impl Into<crate::protocol::reply::AmqpError>) -> String {
    e.into().into_text()
}

/// The caller may use the vhost, and has `perm` on the resource.
fn permit(shard: &Shard, user: &str, vhost: &str, perm: Perm, resource: Resource<'_>) -> Result<(), String> {
    if !shard.routes.borrow().has_vhost(vhost) {
        return Err(format!("NOT_FOUND - no vhost '{vhost}'"));
    }
    let access = shard.access.borrow();
    access.check_vhost(user, vhost).map_err(text)?;
    access.check(user, vhost, perm, resource).map_err(text)
}

/// `get_messages USER QUEUE COUNT ACKMODE [TRUNCATE]`: up to COUNT messages, each a row.
pub async fn get(shard: &Rc<Shard>, vhost: String, r: GetRequest) -> Result<Value, String> {
    permit(shard, &r.user, &vhost, Perm::Read, Resource::Queue(&r.queue))?;
    let owner = shard_of(&vhost, &r.queue, shard.shards());
    let vhost: Arc<str> = vhost.into();
    let at = || QueueRef { vhost: vhost.clone(), name: r.queue.clone(), conn: 0 };
    let no_ack = r.ackmode.no_ack();
    let mut rows = Vec::new();
    let mut taken = Vec::new();
    let mut failed = None;
    while rows.len() < r.count as usize {
        let answer = shard.ask_queue(owner, |done| QueueOp::Get { at: at(), no_ack, done }).await;
        let (queue, got) = match answer.map_err(text).and_then(|r| r.map_err(text)) {
            Ok(a) => a,
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        let Some(got) = got else {
            // The head of the queue is on disk: wait until it is read back, then ask again.
            if let Err(e) = shard.paged_in(owner, queue).await {
                failed = Some(text(e));
                break;
            }
            continue;
        };
        let Some((msg_id, msg, redelivered, left)) = got else { break };
        if !no_ack {
            taken.push((queue, msg_id));
        }
        rows.push(row(&msg, redelivered, left, r.truncate));
    }
    // Settled after every get, or each get would take the message just put back (RabbitMQ).
    if let Some(action) = r.ackmode.settle()
        && !taken.is_empty()
    {
        shard.settle(taken, action);
        // The mesh keeps order between two shards: once the owner answers this, it has
        // settled them, and whoever asks next sees the queue as it now is.
        let _ = shard.ask_queue(owner, |done| QueueOp::Check { at: at(), done }).await;
    }
    if let Some(e) = failed
        && rows.is_empty()
    {
        return Err(e);
    }
    let cols = ["payload_bytes", "redelivered", "exchange", "routing_key", "message_count", "properties", "payload"];
    Ok(table(&cols, rows))
}

fn row(msg: &Message, redelivered: bool, left: u32, truncate: Option<usize>) -> [Value; 7] {
    let properties = msg.decode_properties().map(|p| message_json::to_json(&p)).unwrap_or_else(|| json!({}));
    let body = truncate.and_then(|n| msg.body.get(..n)).unwrap_or(&msg.body);
    [
        json!(msg.body.len()),
        json!(redelivered),
        json!(String::from_utf8_lossy(msg.exchange.as_bytes())),
        json!(String::from_utf8_lossy(msg.routing_key.as_bytes())),
        json!(left),
        properties,
        json!(BASE64.encode(body)),
    ]
}

/// `publish_message USER EXCHANGE ROUTING_KEY PROPERTIES PAYLOAD_BASE64`: answers whether the
/// message reached a queue.
pub async fn publish(shard: &Rc<Shard>, vhost: String, r: PublishRequest) -> Result<Value, String> {
    let exchange = if r.exchange == "amq.default" { "" } else { r.exchange.as_str() };
    permit(shard, &r.user, &vhost, Perm::Write, Resource::Exchange(exchange))?;
    let props: Value = serde_json::from_str(&r.properties).map_err(|e| format!("bad properties: {e}"))?;
    let props = message_json::from_json(&props)?;
    check_properties(shard, &r.user, &props)?;
    let body = BASE64.decode(r.payload_base64.as_bytes()).map_err(|_| "payload is not valid base64".to_string())?;
    if body.len() as u64 > shard.config.max_message_size {
        return Err(format!(
            "PRECONDITION_FAILED - message size {} is larger than configured max size {}",
            body.len(),
            shard.config.max_message_size
        ));
    }
    let key = ShortStr::try_from(r.routing_key.clone()).map_err(|_| "routing_key is too long".to_string())?;
    let headers = props.headers.clone();
    let mut queues = Vec::new();
    shard.routes.borrow().route(&vhost, exchange, key.as_bytes(), &|| headers.clone(), &mut queues).map_err(text)?;
    let msg = Arc::new(Message {
        exchange: ShortStr::try_from(exchange.to_string()).map_err(|_| "exchange name is too long".to_string())?,
        routing_key: key,
        properties: props.encode(),
        body: Bytes::from(body),
    });
    let vhost: Arc<str> = vhost.into();
    let groups = by_shard(queues, |q| shard_of(&vhost, q, shard.shards()));
    for (dest, named) in &groups {
        let publish = ShardMsg::Publish {
            vhost: vhost.clone(),
            queues: Targets::Named(named.clone()),
            msg: msg.clone(),
            from: 0,
            reply: None,
        };
        shard.send(*dest, publish);
    }
    // Routed if a target queue exists. Asked after the publish over the same ordered path, so
    // the answer also means the owners have taken the message.
    let mut routed = false;
    for (dest, named) in groups {
        for name in named {
            let at = QueueRef { vhost: vhost.clone(), name: name.to_string(), conn: 0 };
            let found = shard.ask_queue(dest, |done| QueueOp::Check { at, done }).await.map_err(text)?;
            // Another connection's exclusive queue (405) exists too.
            if found.as_ref().map_err(|e| e.reply_code()) != Err(404) {
                routed = true;
                break;
            }
        }
    }
    Ok(table(&["routed"], vec![[json!(routed)]]))
}

/// The checks a client's publish gets: a valid expiration, a user_id naming the caller
/// (impersonators excepted).
fn check_properties(shard: &Shard, user: &str, p: &BasicProperties) -> Result<(), String> {
    if let Some(e) = &p.expiration {
        parse_expiration(e.as_bytes()).map_err(text)?;
    }
    if let Some(id) = &p.user_id {
        let impersonator = shard.access.borrow().user(user).is_some_and(|u| u.tags.iter().any(|t| t == "impersonator"));
        if id.as_bytes() != user.as_bytes() && !impersonator {
            return Err(format!(
                "PRECONDITION_FAILED - user_id property set to '{}' but authenticated user was '{user}'",
                String::from_utf8_lossy(id.as_bytes())
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_modes_settle_as_rabbitmq() {
        let m = |s| AckMode::parse(s).unwrap();
        assert!(m("ack_requeue_false").no_ack() && m("ack_requeue_false").settle().is_none());
        assert_eq!(m("ack_requeue_true").settle(), Some(Settle::Requeue));
        assert_eq!(m("reject_requeue_true").settle(), Some(Settle::Requeue));
        assert_eq!(m("reject_requeue_false").settle(), Some(Settle::Discard));
        assert!(AckMode::parse("peek").is_err());
    }
}
