//! Class `basic` (60), with RabbitMQ's basic.nack.
//!
//! The content methods' exchange and routing key are `ShortStr`: RabbitMQ takes a publish's routing
//! key as bytes (it checks UTF-8 only for methods without content) and hands back exactly those.

use crate::protocol::shortstr::ShortStr;
use crate::protocol::types::FieldTable;

method!(Qos { prefetch_size: u32, prefetch_count: u16, global: bool });
method!(QosOk {});
method!(Consume {
    ticket: u16,
    queue: String,
    consumer_tag: String,
    no_local: bool,
    no_ack: bool,
    exclusive: bool,
    nowait: bool,
    arguments: FieldTable,
});
method!(ConsumeOk { consumer_tag: String });
method!(Cancel { consumer_tag: String, nowait: bool });
method!(CancelOk { consumer_tag: String });
method!(Publish { ticket: u16, exchange: ShortStr, routing_key: ShortStr, mandatory: bool, immediate: bool });
method!(Return { reply_code: u16, reply_text: String, exchange: ShortStr, routing_key: ShortStr });
method!(Deliver {
    consumer_tag: String,
    delivery_tag: u64,
    redelivered: bool,
    exchange: ShortStr,
    routing_key: ShortStr,
});
method!(Get { ticket: u16, queue: String, no_ack: bool });
method!(GetOk { delivery_tag: u64, redelivered: bool, exchange: ShortStr, routing_key: ShortStr, message_count: u32 });
method!(GetEmpty { cluster_id: String });
method!(Ack { delivery_tag: u64, multiple: bool });
method!(Reject { delivery_tag: u64, requeue: bool });
method!(RecoverAsync { requeue: bool });
method!(Recover { requeue: bool });
method!(RecoverOk {});
method!(Nack { delivery_tag: u64, multiple: bool, requeue: bool });

/// basic.deliver written from borrowed fields. This is the per-delivery hot path: building a
/// `Deliver` would cost a string allocation a message.
pub fn encode_deliver(
    buf: &mut bytes::BytesMut,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &ShortStr,
    routing_key: &ShortStr,
) {
    use bytes::BufMut;
    buf.put_u16(60);
    buf.put_u16(60);
    let mut w = crate::protocol::codec::Writer::new(buf);
    w.shortstr_utf8(consumer_tag);
    w.u64(delivery_tag);
    w.bit(redelivered);
    w.shortstr(exchange);
    w.shortstr(routing_key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Method;

    #[test]
    fn encode_deliver_matches_the_generic_encoding() {
        let d = Deliver {
            consumer_tag: "ctag".into(),
            delivery_tag: 77,
            redelivered: true,
            exchange: "x".into(),
            routing_key: "a.b".into(),
        };
        let mut generic = bytes::BytesMut::new();
        Method::BasicDeliver(d.clone()).encode(&mut generic);
        let mut fast = bytes::BytesMut::new();
        encode_deliver(&mut fast, &d.consumer_tag, d.delivery_tag, d.redelivered, &d.exchange, &d.routing_key);
        assert_eq!(generic, fast);
    }
}
