//! Dead-lettering as RabbitMQ 3.x does it: the message a queue dropped (rejected, expired, over
//! its length limit, past its delivery limit) is published again to the queue's dead-letter
//! exchange with the `x-death` header telling its story, and without its `expiration`.

use bytes::Bytes;

use crate::protocol::properties::BasicProperties;
use crate::protocol::shortstr::ShortStr;
use crate::protocol::types::{FieldTable, FieldValue};

use super::message::Message;
use super::queue::DeathReason;

/// The same message with one header set (quorum queues' `x-delivery-count`). Malformed
/// properties (the message could not have been published with them) are left as they are.
pub fn with_header(msg: &Message, key: &'static str, value: FieldValue) -> Message {
    let Some(mut p) = msg.decode_properties() else { return msg.compacted() };
    p.headers.get_or_insert_with(FieldTable::default).insert(key, value);
    Message {
        exchange: msg.exchange.clone(),
        routing_key: msg.routing_key.clone(),
        properties: p.encode(),
        body: msg.body.clone(),
    }
}

/// Where a dead-lettered message goes and what it carries.
pub struct DeadLettered {
    pub msg: Message,
    /// The queues of its `x-death` history, most recent first, with whether that death was a
    /// rejection: a queue met again with no rejection on the way is a cycle.
    pub history: Vec<(String, bool)>,
    /// The routing keys it goes by: the dead-letter routing key, or the ones it was published
    /// with (its routing key and its CC header's).
    pub keys: Vec<Vec<u8>>,
}

impl DeadLettered {
    /// Whether sending it to `queue` would close a cycle of automatic dead-lettering (expiry,
    /// length limit) with no client rejection in it: RabbitMQ drops it for that queue.
    pub fn is_cycle(&self, reason: DeathReason, queue: &str) -> bool {
        if reason == DeathReason::Rejected {
            return false;
        }
        for (q, rejected) in &self.history {
            if *rejected {
                return false;
            }
            if q == queue {
                return true;
            }
        }
        false
    }
}

fn text(v: Option<&FieldValue>) -> Option<&[u8]> {
    match v? {
        FieldValue::LongStr(b) => Some(b),
        _ => None,
    }
}

/// The message `queue` (in `vhost`'s terms, by name) dead-letters to exchange `dlx`, routed by
/// `dlrk` or its own routing key; `now` is the Unix time in seconds. `None` if its properties
/// are malformed (it is dropped).
pub fn dead_lettered(
    msg: &Message,
    queue: &str,
    reason: DeathReason,
    dlx: &str,
    dlrk: Option<&ShortStr>,
    now: u64,
) -> Option<DeadLettered> {
    let mut p: BasicProperties = msg.decode_properties()?;
    let mut headers = p.headers.take().unwrap_or_default();
    let mut published_keys = vec![msg.routing_key.to_vec()];
    if let Some(FieldValue::Array(cc)) = headers.get("CC") {
        published_keys.extend(cc.iter().filter_map(|k| text(Some(k))).map(<[u8]>::to_vec));
    }
    let mut deaths = match headers.get("x-death") {
        Some(FieldValue::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        text(t.get("queue")) == Some(queue.as_bytes()) && text(t.get("reason")) == Some(reason.as_str().as_bytes())
    };
    let found = deaths.iter().position(|d| matches!(d, FieldValue::Table(t) if same(t)));
    let entry = match found {
        Some(i) => {
            // The same queue and reason again: its count goes up and it moves to the front.
            let mut t = match deaths.remove(i) {
                FieldValue::Table(t) => t,
                _ => FieldTable::default(),
            };
            let count = t.get("count").and_then(FieldValue::as_i128).unwrap_or(0) as i64;
            // RabbitMQ 3.10 changes only the count of a repeated death.
            t.insert("count", FieldValue::I64(count + 1));
            t
        }
        None => {
            let mut t = FieldTable::default();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", FieldValue::str(reason.as_str()));
            t.insert("queue", FieldValue::str(queue));
            t.insert("time", FieldValue::Timestamp(now));
            t.insert("exchange", FieldValue::LongStr(Bytes::copy_from_slice(&msg.exchange)));
            let keys = published_keys.iter().map(|k| FieldValue::LongStr(Bytes::copy_from_slice(k))).collect();
            t.insert("routing-keys", FieldValue::Array(keys));
            if let Some(e) = &p.expiration {
                t.insert("original-expiration", FieldValue::LongStr(Bytes::copy_from_slice(e)));
            }
            t
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    let history = deaths
        .iter()
        .filter_map(|d| match d {
            FieldValue::Table(t) => Some((
                String::from_utf8_lossy(text(t.get("queue"))?).into_owned(),
                text(t.get("reason")) == Some(b"rejected"),
            )),
            _ => None,
        })
        .collect();
    if headers.get("x-first-death-reason").is_none() {
        headers.insert("x-first-death-reason", FieldValue::str(reason.as_str()));
        headers.insert("x-first-death-queue", FieldValue::str(queue));
        headers.insert("x-first-death-exchange", FieldValue::LongStr(Bytes::copy_from_slice(&msg.exchange)));
    }
    headers.insert("x-death", FieldValue::Array(deaths));
    // Routed by its own key, the CC header goes (RabbitMQ).
    if dlrk.is_some() {
        headers.0.retain(|(k, _)| k.as_bytes() != b"CC");
    }
    p.headers = Some(headers);
    p.expiration = None;
    let exchange = ShortStr::copy_from_slice(dlx.as_bytes()).ok()?;
    let routing_key = dlrk.cloned().unwrap_or_else(|| msg.routing_key.clone());
    let keys = match dlrk {
        Some(k) => vec![k.to_vec()],
        None => published_keys,
    };
    let msg = Message { exchange, routing_key, properties: p.encode(), body: msg.body.clone() };
    Some(DeadLettered { msg, history, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(p: BasicProperties) -> Message {
        Message {
            exchange: ShortStr::from_static("ex"),
            routing_key: ShortStr::from_static("rk"),
            properties: p.encode(),
            body: Bytes::from_static(b"body"),
        }
    }

    fn deaths(m: &Message) -> Vec<FieldTable> {
        let h = m.decode_properties().unwrap().headers.unwrap();
        match h.get("x-death") {
            Some(FieldValue::Array(a)) => {
                a.iter().map(|d| if let FieldValue::Table(t) = d { t.clone() } else { panic!() }).collect()
            }
            _ => panic!("no x-death"),
        }
    }

    #[test]
    fn x_death_tells_the_story_and_counts_repeats() {
        let first = msg(BasicProperties { expiration: Some("500".into()), ..Default::default() });
        let d1 = dead_lettered(&first, "work", DeathReason::Expired, "dlx", None, 1000).unwrap();
        let p = d1.msg.decode_properties().unwrap();
        assert_eq!(p.expiration, None);
        assert_eq!((d1.msg.exchange.as_bytes(), d1.msg.routing_key.as_bytes()), (&b"dlx"[..], &b"rk"[..]));
        let e = &deaths(&d1.msg)[0];
        assert_eq!(e.get("count"), Some(&FieldValue::I64(1)));
        assert_eq!(e.get("reason"), Some(&FieldValue::str("expired")));
        assert_eq!(e.get("queue"), Some(&FieldValue::str("work")));
        assert_eq!(e.get("exchange"), Some(&FieldValue::str("ex")));
        assert_eq!(e.get("routing-keys"), Some(&FieldValue::Array(vec![FieldValue::str("rk")])));
        assert_eq!(e.get("original-expiration"), Some(&FieldValue::str("500")));
        assert_eq!(e.get("time"), Some(&FieldValue::Timestamp(1000)));
        let h = p.headers.unwrap();
        assert_eq!(h.get("x-first-death-reason"), Some(&FieldValue::str("expired")));

        // Rejected from the dead-letter queue, then expired in "work" again: two entries, the
        // repeated one counted twice and first.
        let dlrk = ShortStr::from_static("retry");
        let d2 = dead_lettered(&d1.msg, "dead", DeathReason::Rejected, "back", Some(&dlrk), 1001).unwrap();
        assert_eq!(d2.msg.routing_key.as_bytes(), b"retry");
        let d3 = dead_lettered(&d2.msg, "work", DeathReason::Expired, "dlx", None, 1002).unwrap();
        let all = deaths(&d3.msg);
        assert_eq!(all.len(), 2);
        assert_eq!(
            (all[0].get("queue"), all[0].get("count")),
            (Some(&FieldValue::str("work")), Some(&FieldValue::I64(2)))
        );
        assert_eq!(all[1].get("reason"), Some(&FieldValue::str("rejected")));
        let h = d3.msg.decode_properties().unwrap().headers.unwrap();
        assert_eq!(h.get("x-first-death-queue"), Some(&FieldValue::str("work")));
    }

    #[test]
    fn automatic_cycles_are_found_and_rejections_break_them() {
        let m = msg(BasicProperties::default());
        let a = dead_lettered(&m, "a", DeathReason::Expired, "dlx", None, 1).unwrap();
        assert!(a.is_cycle(DeathReason::Expired, "a"));
        assert!(!a.is_cycle(DeathReason::Expired, "b"));
        assert!(!a.is_cycle(DeathReason::Rejected, "a"));
        let b = dead_lettered(&a.msg, "b", DeathReason::Rejected, "dlx", None, 2).unwrap();
        assert!(!b.is_cycle(DeathReason::Rejected, "a"));
        let c = dead_lettered(&b.msg, "c", DeathReason::Maxlen, "dlx", None, 3).unwrap();
        assert!(!c.is_cycle(DeathReason::Maxlen, "a"), "a rejection lies between: not a cycle");
        assert!(c.is_cycle(DeathReason::Maxlen, "c"));
    }
}
