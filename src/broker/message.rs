//! A published message as queues hold it: shared (`Arc`) by every queue it was routed to, on any
//! shard, with its body and raw properties as `Bytes` slices of what the publisher sent.

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::properties::{BasicProperties, delivery_mode};
use crate::protocol::shortstr::ShortStr;

#[derive(Debug)]
pub struct Message {
    /// Exchange and routing key as published: bytes, delivered and stored as they came.
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Property flags and list exactly as published; forwarded to consumers untouched.
    pub properties: Bytes,
    pub body: Bytes,
}

impl Message {
    /// Decodes the properties; `None` if the publisher sent malformed ones.
    pub fn decode_properties(&self) -> Option<BasicProperties> {
        BasicProperties::decode(&self.properties).ok()
    }

    pub fn is_persistent(&self) -> bool {
        delivery_mode(&self.properties) == Some(2)
    }

    /// What it costs in memory, roughly: its bytes and their bookkeeping.
    pub fn footprint(&self) -> u64 {
        (self.body.len() + self.properties.len() + self.exchange.len() + self.routing_key.len() + 96) as u64
    }

    /// The same message in one allocation of its own. As received, its fields are slices of the
    /// publisher's read buffer, and any one of them keeps that whole buffer (64 KiB) alive: a
    /// 16-byte message that stays queued would hold 64 KiB no gauge sees. Queues copy the
    /// messages they keep (see `Queue::compact_new`).
    pub fn compacted(&self) -> Message {
        let (e, k) = (self.exchange.len_u8(), self.routing_key.len_u8());
        let mut buf =
            BytesMut::with_capacity(usize::from(e) + usize::from(k) + self.properties.len() + self.body.len());
        buf.put_slice(&self.exchange);
        buf.put_slice(&self.routing_key);
        buf.put_slice(&self.properties);
        buf.put_slice(&self.body);
        let mut all = buf.freeze();
        let exchange = ShortStr::split_off_front(&mut all, e);
        let routing_key = ShortStr::split_off_front(&mut all, k);
        let properties = all.split_to(self.properties.len());
        Message { exchange, routing_key, properties, body: all }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compacted_message_has_the_same_bytes_and_none_of_the_buffer() {
        let frame = Bytes::from(vec![7u8; 64 << 10]);
        let raw_key = ShortStr::copy_from_slice(b"k\xFF").unwrap();
        let m = Message {
            exchange: ShortStr::from_static("amq.direct"),
            routing_key: raw_key.clone(),
            properties: frame.slice(0..3),
            body: frame.slice(100..116),
        };
        let c = m.compacted();
        assert_eq!((c.exchange.as_bytes(), c.routing_key.as_bytes()), (&b"amq.direct"[..], raw_key.as_bytes()));
        assert_eq!((&c.properties[..], &c.body[..]), (&m.properties[..], &m.body[..]));
        drop(m);
        // Only `frame` itself still refers to the 64 KiB: it is unique again.
        assert!(frame.is_unique());
        assert_eq!(c.footprint(), 10 + 2 + 3 + 16 + 96);
    }
}
