//! A published message as queues hold it: shared (`Arc`) by every queue it was routed to, on any
//! shard, with its body and raw properties as `Bytes` slices of what the publisher sent.

use bytes::Bytes;

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
}
