//! The records of a shard's message log, and their framing on disk:
//!
//! ```text
//! u32 length of what follows the header (little endian) | u32 CRC-32 of it | kind u8 | fields
//! ```
//!
//! A record whose length runs past the end of the file or whose CRC does not match ends the
//! readable part of a segment: it is where a crash tore the tail.
//!
//! A short field is a u8 length and that many bytes. Names (vhost, queue) are UTF-8 text; a message's
//! exchange and routing key are bytes as published (`ShortStr`, at most 255 by its type), read back
//! whatever they hold, so no record this module writes is one it refuses to read.

use bytes::{BufMut, Bytes};

use crate::broker::message::Message;
use crate::protocol::codec::put_prefixed;
use crate::protocol::shortstr::{self, ShortStr};

pub const HEADER: usize = 8;

const MESSAGE: u8 = 1;
const ACK: u8 = 2;
const DROP: u8 = 3;
const ACK_RANGE: u8 = 4;

/// A record read back from a segment.
#[derive(Debug, PartialEq)]
pub enum Record {
    /// A persistent message entered the durable queue `queue` of `vhost` with the queue's id `id`.
    Message {
        vhost: String,
        queue: String,
        id: u64,
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: Bytes,
        body: Bytes,
    },
    /// These messages of the queue left it (acked, rejected without requeue, purged).
    Ack { vhost: String, queue: String, ids: Vec<u64> },
    /// Every message of the queue with an id in `first..=last` left it (a purged run of paged
    /// messages, whose ids are consecutive: ids in the range it does not hold were gone already).
    AckRange { vhost: String, queue: String, first: u64, last: u64 },
    /// The queue was deleted: every message of it written before this record is gone.
    Drop { vhost: String, queue: String },
}

pub(crate) fn put_short(out: &mut Vec<u8>, s: &str) {
    // Names are AMQP short strings (at most 255 bytes) everywhere they come from; were one longer,
    // cutting it on a char boundary still leaves text `Fields::short` reads.
    let s = shortstr::cut_text(s);
    out.put_u8(s.len() as u8);
    out.put_slice(s.as_bytes());
}

pub(crate) fn put_shortstr(out: &mut Vec<u8>, s: &ShortStr) {
    out.put_u8(s.len() as u8);
    out.put_slice(s);
}

fn framed(out: &mut Vec<u8>, kind: u8, fields: impl FnOnce(&mut Vec<u8>)) {
    let body = |out: &mut Vec<u8>| {
        out.put_u8(kind);
        fields(out);
    };
    put_prefixed(out, body, |written| -> [u8; HEADER] {
        let [l0, l1, l2, l3] = (written.len() as u32).to_le_bytes();
        let [c0, c1, c2, c3] = crc32fast::hash(written).to_le_bytes();
        [l0, l1, l2, l3, c0, c1, c2, c3]
    });
}

pub fn put_message(out: &mut Vec<u8>, vhost: &str, queue: &str, id: u64, msg: &Message) {
    framed(out, MESSAGE, |out| {
        put_short(out, vhost);
        put_short(out, queue);
        out.put_u64_le(id);
        put_shortstr(out, &msg.exchange);
        put_shortstr(out, &msg.routing_key);
        out.put_u32_le(msg.properties.len() as u32);
        out.put_slice(&msg.properties);
        out.put_u32_le(msg.body.len() as u32);
        out.put_slice(&msg.body);
    });
}

pub fn put_ack(out: &mut Vec<u8>, vhost: &str, queue: &str, ids: &[u64]) {
    framed(out, ACK, |out| {
        put_short(out, vhost);
        put_short(out, queue);
        out.put_u32_le(ids.len() as u32);
        for &id in ids {
            out.put_u64_le(id);
        }
    });
}

pub fn put_ack_range(out: &mut Vec<u8>, vhost: &str, queue: &str, first: u64, last: u64) {
    framed(out, ACK_RANGE, |out| {
        put_short(out, vhost);
        put_short(out, queue);
        out.put_u64_le(first);
        out.put_u64_le(last);
    });
}

pub fn put_drop(out: &mut Vec<u8>, vhost: &str, queue: &str) {
    framed(out, DROP, |out| {
        put_short(out, vhost);
        put_short(out, queue);
    });
}

/// Reads fields of one record's payload; any shortfall is `None` (a corrupt record).
pub(crate) struct Fields<'a>(pub &'a [u8]);

impl<'a> Fields<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    pub fn u8(&mut self) -> Option<u8> {
        self.array().map(|[b]| b)
    }
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    pub fn short_str(&mut self) -> Option<&'a str> {
        let n = self.u8()? as usize;
        std::str::from_utf8(self.take(n)?).ok()
    }
    pub fn short_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    pub fn long_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    /// Any bytes: a u8 length cannot exceed what a `ShortStr` holds.
    pub fn shortstr(&mut self) -> Option<ShortStr> {
        let n = self.u8()? as usize;
        ShortStr::copy_from_slice(self.take(n)?).ok()
    }
    pub fn long(&mut self) -> Option<Bytes> {
        let n = self.u32()? as usize;
        Some(Bytes::copy_from_slice(self.take(n)?))
    }
}

/// A record as it lies in a segment, borrowing its fields: what recovery reads every record as,
/// copying out only what it keeps.
#[derive(Debug)]
pub enum RecordRef<'a> {
    Message(MessageRef<'a>),
    /// `ids` holds the acked ids, 8 bytes (little endian) each: see `ack_ids`.
    Ack {
        vhost: &'a str,
        queue: &'a str,
        ids: &'a [u8],
    },
    AckRange {
        vhost: &'a str,
        queue: &'a str,
        first: u64,
        last: u64,
    },
    Drop {
        vhost: &'a str,
        queue: &'a str,
    },
}

/// A message record's fields, borrowed.
#[derive(Debug)]
pub struct MessageRef<'a> {
    pub vhost: &'a str,
    pub queue: &'a str,
    pub id: u64,
    /// At most 255 bytes each (a u8 length on disk).
    exchange: &'a [u8],
    routing_key: &'a [u8],
    properties: &'a [u8],
    pub body: &'a [u8],
}

/// The ids of an `Ack` record's `ids` field.
pub fn ack_ids(ids: &[u8]) -> impl Iterator<Item = u64> + '_ {
    ids.chunks_exact(8).filter_map(|b| b.try_into().ok()).map(u64::from_le_bytes)
}

impl MessageRef<'_> {
    /// The message, owning copies of its fields (a kept message owns an allocation of its own size).
    pub fn to_message(&self) -> Message {
        // A u8 length on disk: always fits a ShortStr.
        let short = |b: &[u8]| ShortStr::copy_from_slice(b).unwrap_or_default();
        Message {
            exchange: short(self.exchange),
            routing_key: short(self.routing_key),
            properties: Bytes::copy_from_slice(self.properties),
            body: Bytes::copy_from_slice(self.body),
        }
    }
}

impl RecordRef<'_> {
    fn to_record(&self) -> Record {
        match self {
            RecordRef::Message(m) => {
                let Message { exchange, routing_key, properties, body } = m.to_message();
                Record::Message {
                    vhost: m.vhost.into(),
                    queue: m.queue.into(),
                    id: m.id,
                    exchange,
                    routing_key,
                    properties,
                    body,
                }
            }
            RecordRef::Ack { vhost, queue, ids } => {
                Record::Ack { vhost: (*vhost).into(), queue: (*queue).into(), ids: ack_ids(ids).collect() }
            }
            RecordRef::AckRange { vhost, queue, first, last } => {
                Record::AckRange { vhost: (*vhost).into(), queue: (*queue).into(), first: *first, last: *last }
            }
            RecordRef::Drop { vhost, queue } => Record::Drop { vhost: (*vhost).into(), queue: (*queue).into() },
        }
    }
}

/// Decodes one record's payload (after its header); `None` if it is not a whole, valid record.
pub fn decode_ref(payload: &[u8]) -> Option<RecordRef<'_>> {
    let mut f = Fields(payload);
    let rec = match f.u8()? {
        MESSAGE => RecordRef::Message(MessageRef {
            vhost: f.short_str()?,
            queue: f.short_str()?,
            id: f.u64()?,
            exchange: f.short_bytes()?,
            routing_key: f.short_bytes()?,
            properties: f.long_bytes()?,
            body: f.long_bytes()?,
        }),
        ACK => {
            let (vhost, queue) = (f.short_str()?, f.short_str()?);
            let n = f.u32()? as usize;
            RecordRef::Ack { vhost, queue, ids: f.take(n.checked_mul(8)?)? }
        }
        ACK_RANGE => {
            RecordRef::AckRange { vhost: f.short_str()?, queue: f.short_str()?, first: f.u64()?, last: f.u64()? }
        }
        DROP => RecordRef::Drop { vhost: f.short_str()?, queue: f.short_str()? },
        _ => return None,
    };
    f.0.is_empty().then_some(rec)
}

/// A record header's fields: the length of the payload that follows it, and the payload's CRC.
pub fn header(h: &[u8; HEADER]) -> (usize, u32) {
    (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize, u32::from_le_bytes([h[4], h[5], h[6], h[7]]))
}

/// Reads the records of a segment in order. Returns them with the length of the good prefix: if
/// it is shorter than `data`, the rest is a torn or corrupt tail.
pub fn read_all(data: &[u8]) -> (Vec<Record>, usize) {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((len, after)) = rest.split_first_chunk::<4>()
        && let Some((crc, after)) = after.split_first_chunk::<4>()
        && let Some((payload, after)) = after.split_at_checked(u32::from_le_bytes(*len) as usize)
        && crc32fast::hash(payload) == u32::from_le_bytes(*crc)
        && let Some(rec) = decode_ref(payload)
    {
        out.push(rec.to_record());
        rest = after;
    }
    (out, data.len() - rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &'static [u8]) -> Message {
        Message {
            exchange: "x".into(),
            routing_key: "k".into(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from_static(body),
        }
    }

    fn sample() -> Vec<u8> {
        let mut out = Vec::new();
        put_message(&mut out, "/", "q", 1, &msg(b"one"));
        put_message(&mut out, "/", "q", 2, &msg(b"two"));
        put_ack(&mut out, "/", "q", &[1]);
        put_drop(&mut out, "v", "r");
        put_ack_range(&mut out, "/", "q", 5, 9);
        out
    }

    #[test]
    fn records_round_trip() {
        let data = sample();
        let (recs, good) = read_all(&data);
        assert_eq!(good, data.len());
        assert_eq!(recs.len(), 5);
        assert!(matches!(&recs[1], Record::Message { id: 2, body, .. } if body.as_ref() == b"two"));
        assert_eq!(recs[2], Record::Ack { vhost: "/".into(), queue: "q".into(), ids: vec![1] });
        assert_eq!(recs[3], Record::Drop { vhost: "v".into(), queue: "r".into() });
        assert_eq!(recs[4], Record::AckRange { vhost: "/".into(), queue: "q".into(), first: 5, last: 9 });
    }

    #[test]
    fn every_torn_tail_keeps_the_whole_records_before_it() {
        let data = sample();
        let (full, _) = read_all(&data);
        let mut ends = vec![0];
        let mut at = 0;
        while at < data.len() {
            let len = u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
            at += HEADER + len;
            ends.push(at);
        }
        for cut in 0..data.len() {
            let (recs, good) = read_all(&data[..cut]);
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(recs.len(), whole, "cut at {cut}");
            assert_eq!(good, ends[whole]);
            assert_eq!(recs[..], full[..whole]);
        }
    }

    #[test]
    fn a_message_with_a_255_byte_key_that_is_not_utf8_round_trips() {
        // Regression (issue 14): the key was a lossily decoded String (each 0xFF became a 3-byte
        // U+FFFD), cut here at byte 255 inside a character; the decoder refused the record, and
        // recovery took it for a torn tail and truncated the segment, confirmed messages with it.
        let mut key = vec![b'a'; 253];
        key.extend([0xFF, 0xFF]);
        let key = ShortStr::copy_from_slice(&key).unwrap();
        let exchange = ShortStr::copy_from_slice(&[0xC3; 255]).unwrap();
        let m = Message {
            exchange: exchange.clone(),
            routing_key: key.clone(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from_static(b"body"),
        };
        let mut data = Vec::new();
        put_message(&mut data, "/", "q", 7, &m);
        put_ack(&mut data, "/", "q", &[7]);
        let (recs, good) = read_all(&data);
        assert_eq!(good, data.len());
        assert_eq!(recs.len(), 2);
        let Record::Message { exchange: e, routing_key: k, id: 7, .. } = &recs[0] else { panic!("{:?}", recs[0]) };
        assert_eq!((e, k), (&exchange, &key));
    }

    #[test]
    fn a_name_longer_than_255_bytes_is_cut_on_a_char_boundary() {
        let mut data = Vec::new();
        let long = "é".repeat(200);
        put_drop(&mut data, "/", &long);
        let (recs, good) = read_all(&data);
        assert_eq!(good, data.len());
        assert_eq!(recs, vec![Record::Drop { vhost: "/".into(), queue: "é".repeat(127) }]);
    }

    #[test]
    fn a_flipped_bit_ends_the_readable_part() {
        let mut data = sample();
        let second = HEADER + u32::from_le_bytes(data[0..4].try_into().unwrap()) as usize;
        data[second + HEADER + 3] ^= 0x40;
        let (recs, good) = read_all(&data);
        assert_eq!((recs.len(), good), (1, second));
    }
}
