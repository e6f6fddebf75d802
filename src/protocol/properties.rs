//! The content header (spec 4.2.6) and the 14 basic properties. The broker keeps the raw property
//! bytes of a message and forwards them untouched; it decodes them only when it needs a field.

use bytes::{Bytes, BytesMut};

use super::codec::{Field, Reader, Writer};
use super::reply::ConnectionError;
use super::shortstr::ShortStr;
use super::types::FieldTable;

/// Decoding fails only with connection errors: the stream cannot be trusted past garbage.
type Result<T> = std::result::Result<T, ConnectionError>;

/// A decoded content header frame payload.
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Property flags and property list, exactly as the publisher sent them.
    pub properties: Bytes,
}

impl ContentHeader {
    pub fn decode(payload: Bytes) -> Result<Self> {
        let mut r = Reader::new(payload.clone());
        let class_id = r.u16()?;
        let _weight = r.u16()?;
        let body_size = r.u64()?;
        let properties = payload.slice(12..);
        Ok(Self { class_id, body_size, properties })
    }
}

/// The basic class's properties, in flag order (bit 15 first). The short strings are bytes: RabbitMQ
/// does not check them for UTF-8 and passes them on as sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

fn read_opt<T: Field>(flags: u16, bit: u16, r: &mut Reader) -> Result<Option<T>> {
    if flags & (1 << bit) != 0 { T::read(r).map(Some) } else { Ok(None) }
}

/// Where property `bit` starts in raw properties, without decoding them: the checks a queue makes
/// of every message it takes (persistence, priority, expiration) stay cheap. `None` if it is
/// absent or the properties are malformed.
fn offset_of(raw: &[u8], bit: u16) -> Option<usize> {
    let flags = u16::from_be_bytes([*raw.first()?, *raw.get(1)?]);
    if flags & (1 << bit) == 0 {
        return None;
    }
    let mut at = 2;
    let mut more = flags & 1 != 0;
    while more {
        more = raw.get(at + 1)? & 1 != 0;
        at += 2;
    }
    // The properties before it, in flag order: short strings, the headers table, two octets.
    for b in (bit + 1..=15).rev().filter(|b| flags & (1 << b) != 0) {
        at += match b {
            13 => 4 + u32::from_be_bytes(raw.get(at..at + 4)?.try_into().ok()?) as usize,
            12 | 11 => 1,
            6 => 8,
            _ => 1 + *raw.get(at)? as usize,
        };
    }
    Some(at)
}

/// The delivery mode from raw properties without decoding them all: the persistence check runs
/// for every message a durable queue takes. `None` if absent or malformed.
pub fn delivery_mode(raw: &[u8]) -> Option<u8> {
    raw.get(offset_of(raw, 12)?).copied()
}

/// The priority property, for priority queues.
pub fn priority(raw: &[u8]) -> Option<u8> {
    raw.get(offset_of(raw, 11)?).copied()
}

/// Whether the expiration property is set (one look at the flags).
pub fn has_expiration(raw: &[u8]) -> bool {
    raw.first().is_some_and(|f| f & 1 != 0)
}

/// The short string property at `bit`.
fn short_string(raw: &[u8], bit: u16) -> Option<&[u8]> {
    let at = offset_of(raw, bit)?;
    let len = *raw.get(at)? as usize;
    raw.get(at + 1..at + 1 + len)
}

/// The expiration property's bytes.
pub fn expiration(raw: &[u8]) -> Option<&[u8]> {
    short_string(raw, 8)
}

/// Whether the headers table of raw properties has one of `keys`, found without decoding the
/// table (a look at its keys, skipping values by their type tag): sender-selected distribution
/// (CC, BCC) is looked for on every publish that has headers.
pub fn headers_have(raw: &[u8], keys: &[&[u8]]) -> bool {
    let Some(at) = offset_of(raw, 13) else { return false };
    let Some(len) = raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) else { return false };
    let Some(mut t) = raw.get(at + 4..at + 4 + len as usize) else { return false };
    while let Some((&klen, rest)) = t.split_first() {
        let Some((key, rest)) = rest.split_at_checked(klen as usize) else { return false };
        if keys.contains(&key) {
            return true;
        }
        let Some((&tag, rest)) = rest.split_first() else { return false };
        let size = match tag {
            b't' | b'b' | b'B' => 1,
            b's' | b'u' => 2,
            b'I' | b'i' | b'f' => 4,
            b'l' | b'd' | b'T' => 8,
            b'D' => 5,
            b'V' => 0,
            b'S' | b'x' | b'A' | b'F' => {
                let Some(n) = rest.get(..4).and_then(|b| b.try_into().ok()).map(u32::from_be_bytes) else {
                    return false;
                };
                4 + n as usize
            }
            _ => return false,
        };
        let Some(rest) = rest.get(size..) else { return false };
        t = rest;
    }
    false
}

/// The reply-to property's bytes.
pub fn reply_to(raw: &[u8]) -> Option<&[u8]> {
    short_string(raw, 9)
}

/// The user-id property's bytes.
pub fn user_id(raw: &[u8]) -> Option<&[u8]> {
    short_string(raw, 4)
}

impl BasicProperties {
    pub fn decode(raw: &Bytes) -> Result<Self> {
        let mut r = Reader::new(raw.clone());
        let flags = r.u16()?;
        // Bit 0 says more flag words follow; basic has 14 properties, so any extra word must be empty.
        let mut more = flags & 1 != 0;
        while more {
            let extra = r.u16()?;
            if extra & !1 != 0 {
                return Err(ConnectionError::syntax("unknown basic property flags"));
            }
            more = extra & 1 != 0;
        }
        Ok(Self {
            content_type: read_opt(flags, 15, &mut r)?,
            content_encoding: read_opt(flags, 14, &mut r)?,
            headers: read_opt(flags, 13, &mut r)?,
            delivery_mode: read_opt(flags, 12, &mut r)?,
            priority: read_opt(flags, 11, &mut r)?,
            correlation_id: read_opt(flags, 10, &mut r)?,
            reply_to: read_opt(flags, 9, &mut r)?,
            expiration: read_opt(flags, 8, &mut r)?,
            message_id: read_opt(flags, 7, &mut r)?,
            timestamp: read_opt(flags, 6, &mut r)?,
            kind: read_opt(flags, 5, &mut r)?,
            user_id: read_opt(flags, 4, &mut r)?,
            app_id: read_opt(flags, 3, &mut r)?,
            cluster_id: read_opt(flags, 2, &mut r)?,
        })
    }

    /// Property flags and list, as carried in a content header after the body size.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        let mut flags = 0u16;
        let set = |present: bool, bit: u16, flags: &mut u16| {
            if present {
                *flags |= 1 << bit
            }
        };
        set(self.content_type.is_some(), 15, &mut flags);
        set(self.content_encoding.is_some(), 14, &mut flags);
        set(self.headers.is_some(), 13, &mut flags);
        set(self.delivery_mode.is_some(), 12, &mut flags);
        set(self.priority.is_some(), 11, &mut flags);
        set(self.correlation_id.is_some(), 10, &mut flags);
        set(self.reply_to.is_some(), 9, &mut flags);
        set(self.expiration.is_some(), 8, &mut flags);
        set(self.message_id.is_some(), 7, &mut flags);
        set(self.timestamp.is_some(), 6, &mut flags);
        set(self.kind.is_some(), 5, &mut flags);
        set(self.user_id.is_some(), 4, &mut flags);
        set(self.app_id.is_some(), 3, &mut flags);
        set(self.cluster_id.is_some(), 2, &mut flags);
        w.u16(flags);
        fn put<T: Field>(v: &Option<T>, w: &mut Writer) {
            if let Some(v) = v {
                v.write(w)
            }
        }
        put(&self.content_type, &mut w);
        put(&self.content_encoding, &mut w);
        put(&self.headers, &mut w);
        put(&self.delivery_mode, &mut w);
        put(&self.priority, &mut w);
        put(&self.correlation_id, &mut w);
        put(&self.reply_to, &mut w);
        put(&self.expiration, &mut w);
        put(&self.message_id, &mut w);
        put(&self.timestamp, &mut w);
        put(&self.kind, &mut w);
        put(&self.user_id, &mut w);
        put(&self.app_id, &mut w);
        put(&self.cluster_id, &mut w);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::FieldValue;

    #[test]
    fn all_fourteen_round_trip() {
        let mut headers = FieldTable::default();
        headers.insert("k", FieldValue::str("v"));
        let p = BasicProperties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("60000".into()),
            message_id: Some("m".into()),
            timestamp: Some(1234),
            kind: Some("t".into()),
            user_id: Some("guest".into()),
            app_id: Some("a".into()),
            cluster_id: Some("cl".into()),
        };
        let raw = p.encode();
        assert_eq!(BasicProperties::decode(&raw).unwrap(), p);
        assert_eq!(BasicProperties::decode(&BasicProperties::default().encode()).unwrap(), BasicProperties::default());
        assert_eq!(delivery_mode(&raw), Some(2));
    }

    #[test]
    fn delivery_mode_fast_path_agrees_with_decode() {
        let mut headers = FieldTable::default();
        headers.insert("x", FieldValue::I32(1));
        let mut cc = FieldTable::default();
        cc.insert("n", FieldValue::Table(headers.clone()));
        cc.insert("a", FieldValue::Array(vec![FieldValue::str("k")]));
        cc.insert("t", FieldValue::Timestamp(1));
        cc.insert("CC", FieldValue::Array(vec![FieldValue::str("k2")]));
        let cases = [
            BasicProperties::default(),
            BasicProperties { delivery_mode: Some(1), ..Default::default() },
            BasicProperties { content_type: Some("a/b".into()), delivery_mode: Some(2), ..Default::default() },
            BasicProperties { headers: Some(headers), delivery_mode: Some(2), priority: Some(1), ..Default::default() },
            BasicProperties { headers: Some(cc), ..Default::default() },
        ];
        let full = BasicProperties {
            content_type: Some("a".into()),
            content_encoding: Some("b".into()),
            delivery_mode: Some(2),
            priority: Some(7),
            correlation_id: Some("cid".into()),
            reply_to: Some("rt".into()),
            expiration: Some("1500".into()),
            message_id: Some("mid".into()),
            timestamp: Some(7),
            kind: Some("k".into()),
            user_id: Some("bob".into()),
            ..Default::default()
        };
        let only = BasicProperties { expiration: Some("0".into()), ..Default::default() };
        for p in cases.into_iter().chain([full, only]) {
            let raw = p.encode();
            assert_eq!(delivery_mode(&raw), p.delivery_mode, "{p:?}");
            assert_eq!(priority(&raw), p.priority, "{p:?}");
            assert_eq!(expiration(&raw), p.expiration.as_ref().map(|e| e.as_bytes()), "{p:?}");
            assert_eq!(has_expiration(&raw), p.expiration.is_some(), "{p:?}");
            assert_eq!(user_id(&raw), p.user_id.as_ref().map(|e| e.as_bytes()), "{p:?}");
            assert_eq!(reply_to(&raw), p.reply_to.as_ref().map(|e| e.as_bytes()), "{p:?}");
            let has_cc = p.headers.as_ref().is_some_and(|h| h.get("CC").is_some());
            assert_eq!(headers_have(&raw, &[b"CC"]), has_cc, "{p:?}");
        }
        assert_eq!(delivery_mode(&[0x10]), None);
        assert_eq!(delivery_mode(&[0x90, 0, 9]), None);
    }

    #[test]
    fn truncated_properties_are_501() {
        let raw = Bytes::from_static(&[0x80, 0, 5, b'a']);
        assert_eq!(BasicProperties::decode(&raw).unwrap_err().reply_code(), 501);
    }
}
