//! Field tables and arrays (spec 4.2.5.5) with every value type RabbitMQ accepts. Nesting deeper than
//! `MAX_DEPTH` is refused, so a peer cannot drive recursion as deep as it likes.

use bytes::Bytes;

use super::codec::{Field, Reader, Writer};
use super::reply::ConnectionError;
use super::shortstr::ShortStr;

/// Decoding fails only with connection errors: the stream cannot be trusted past garbage.
type Result<T> = std::result::Result<T, ConnectionError>;

/// Tables and arrays nested deeper than this are refused with 502.
pub const MAX_DEPTH: usize = 32;

#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal(u8, u32),
    LongStr(Bytes),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
    ByteArray(Bytes),
}

/// An ordered list of (name, value); order is kept so that encoding round-trips byte for byte.
/// Names are the peer's bytes, as RabbitMQ keeps them (headers matching compares them as such).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&FieldValue> {
        let key = key.as_ref();
        self.0.iter().find(|(k, _)| k.as_bytes() == key).map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: impl Into<ShortStr>, value: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value as a string, for arguments such as `x-match` or `alternate-exchange`.
    pub fn get_str(&self, key: impl AsRef<[u8]>) -> Option<String> {
        match self.get(key)? {
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    pub fn get_bool(&self, key: impl AsRef<[u8]>) -> Option<bool> {
        match self.get(key)? {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn read_at(r: &mut Reader, depth: usize) -> Result<Self> {
        if depth > MAX_DEPTH {
            return Err(ConnectionError::syntax("field table nested too deeply"));
        }
        let mut inner = Reader::new(r.longstr()?);
        let mut entries = Vec::new();
        while inner.remaining() > 0 {
            // Tables are kept (binding, queue and consumer arguments): keys and byte values get
            // allocations of their own rather than slices pinning the whole read buffer.
            let key = inner.shortstr()?;
            let key = ShortStr::copy_from_slice(key.as_bytes()).map_err(ConnectionError::frame)?;
            let value = FieldValue::read_at(&mut inner, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }
}

impl Field for FieldTable {
    fn read(r: &mut Reader) -> Result<Self> {
        Self::read_at(r, 0)
    }

    fn write(&self, w: &mut Writer) {
        w.sized(|w| {
            for (k, v) in &self.0 {
                w.shortstr(k);
                v.write(w);
            }
        });
    }
}

impl FieldValue {
    fn read_at(r: &mut Reader, depth: usize) -> Result<Self> {
        let tag = r.u8()?;
        Ok(match tag {
            b't' => Self::Bool(r.u8()? != 0),
            b'b' => Self::I8(r.u8()? as i8),
            b'B' => Self::U8(r.u8()?),
            b's' => Self::I16(r.u16()? as i16),
            b'u' => Self::U16(r.u16()?),
            b'I' => Self::I32(r.u32()? as i32),
            b'i' => Self::U32(r.u32()?),
            b'l' => Self::I64(r.u64()? as i64),
            b'f' => Self::F32(f32::from_bits(r.u32()?)),
            b'd' => Self::F64(f64::from_bits(r.u64()?)),
            b'D' => Self::Decimal(r.u8()?, r.u32()?),
            b'S' => Self::LongStr(Bytes::copy_from_slice(&r.longstr()?)),
            b'x' => Self::ByteArray(Bytes::copy_from_slice(&r.longstr()?)),
            b'T' => Self::Timestamp(r.u64()?),
            b'V' => Self::Void,
            b'F' => Self::Table(FieldTable::read_at(r, depth + 1)?),
            b'A' => {
                if depth + 1 > MAX_DEPTH {
                    return Err(ConnectionError::syntax("field array nested too deeply"));
                }
                let mut inner = Reader::new(r.longstr()?);
                let mut items = Vec::new();
                while inner.remaining() > 0 {
                    items.push(Self::read_at(&mut inner, depth + 1)?);
                }
                Self::Array(items)
            }
            other => {
                return Err(ConnectionError::syntax(format!("unknown field type tag 0x{other:02x}")));
            }
        })
    }

    fn write(&self, w: &mut Writer) {
        match self {
            Self::Bool(v) => {
                w.u8(b't');
                w.u8(*v as u8)
            }
            Self::I8(v) => {
                w.u8(b'b');
                w.u8(*v as u8)
            }
            Self::U8(v) => {
                w.u8(b'B');
                w.u8(*v)
            }
            Self::I16(v) => {
                w.u8(b's');
                w.u16(*v as u16)
            }
            Self::U16(v) => {
                w.u8(b'u');
                w.u16(*v)
            }
            Self::I32(v) => {
                w.u8(b'I');
                w.u32(*v as u32)
            }
            Self::U32(v) => {
                w.u8(b'i');
                w.u32(*v)
            }
            Self::I64(v) => {
                w.u8(b'l');
                w.u64(*v as u64)
            }
            Self::F32(v) => {
                w.u8(b'f');
                w.u32(v.to_bits())
            }
            Self::F64(v) => {
                w.u8(b'd');
                w.u64(v.to_bits())
            }
            Self::Decimal(scale, v) => {
                w.u8(b'D');
                w.u8(*scale);
                w.u32(*v)
            }
            Self::LongStr(b) => {
                w.u8(b'S');
                w.longstr(b)
            }
            Self::ByteArray(b) => {
                w.u8(b'x');
                w.longstr(b)
            }
            Self::Timestamp(v) => {
                w.u8(b'T');
                w.u64(*v)
            }
            Self::Void => w.u8(b'V'),
            Self::Table(t) => {
                w.u8(b'F');
                t.write(w)
            }
            Self::Array(items) => {
                w.u8(b'A');
                w.sized(|w| {
                    for item in items {
                        item.write(w);
                    }
                });
            }
        }
    }

    /// The value as a signed integer, when it is one of the integer types (headers matching).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match self {
            Self::I8(v) => *v as i128,
            Self::U8(v) => *v as i128,
            Self::I16(v) => *v as i128,
            Self::U16(v) => *v as i128,
            Self::I32(v) => *v as i128,
            Self::U32(v) => *v as i128,
            Self::I64(v) => *v as i128,
            Self::Timestamp(v) => *v as i128,
            _ => return None,
        })
    }

    pub fn str(s: &str) -> Self {
        Self::LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn every_type() -> FieldTable {
        let mut inner = FieldTable::default();
        inner.insert("n", FieldValue::I32(-5));
        FieldTable(vec![
            ("t".into(), FieldValue::Bool(true)),
            ("b".into(), FieldValue::I8(-1)),
            ("B".into(), FieldValue::U8(200)),
            ("s".into(), FieldValue::I16(-300)),
            ("u".into(), FieldValue::U16(60000)),
            ("I".into(), FieldValue::I32(-70000)),
            ("i".into(), FieldValue::U32(4_000_000_000)),
            ("l".into(), FieldValue::I64(-1 << 40)),
            ("f".into(), FieldValue::F32(1.5)),
            ("d".into(), FieldValue::F64(-2.25)),
            ("D".into(), FieldValue::Decimal(2, 12345)),
            ("S".into(), FieldValue::str("hello")),
            ("x".into(), FieldValue::ByteArray(Bytes::from_static(&[0, 1, 2]))),
            ("T".into(), FieldValue::Timestamp(1_700_000_000)),
            ("V".into(), FieldValue::Void),
            ("F".into(), FieldValue::Table(inner)),
            ("A".into(), FieldValue::Array(vec![FieldValue::U8(1), FieldValue::str("a")])),
        ])
    }

    fn encode(t: &FieldTable) -> Bytes {
        let mut buf = BytesMut::new();
        t.write(&mut Writer::new(&mut buf));
        buf.freeze()
    }

    #[test]
    fn every_type_round_trips() {
        let t = every_type();
        let bytes = encode(&t);
        let back = FieldTable::read(&mut Reader::new(bytes.clone())).unwrap();
        assert_eq!(back, t);
        assert_eq!(encode(&back), bytes);
    }

    #[test]
    fn keys_are_bytes_not_text() {
        // Regression: keys were decoded lossily, so b"k\xff" and b"k\xfe" both became "k\u{FFFD}".
        let entries: &[u8] = &[2, b'k', 0xFF, b'V', 2, b'k', 0xFE, b'V', 1, 0xC3, b'V'];
        let mut raw = (entries.len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(entries);
        let bytes = Bytes::from(raw);
        let t = FieldTable::read(&mut Reader::new(bytes.clone())).unwrap();
        assert_eq!(t.0.len(), 3);
        assert_eq!(t.0[0].0.as_bytes(), b"k\xff");
        assert_eq!(t.0[1].0.as_bytes(), b"k\xfe");
        assert!(t.get(b"k\xfe").is_some() && t.get("k").is_none());
        assert_eq!(encode(&t), bytes);
    }

    // Regression (issue 20): decoded tables sliced the frame, so an exchange-to-exchange binding
    // whose arguments held strings kept its connection's whole 64 KiB read buffer alive.
    #[test]
    fn decoded_tables_do_not_share_the_frame() {
        let mut t = FieldTable::default();
        t.insert("k", FieldValue::LongStr(Bytes::from_static(b"value")));
        t.insert("x", FieldValue::ByteArray(Bytes::from_static(&[1, 2, 3])));
        let frame = encode(&t);
        let range = frame.as_ptr() as usize..frame.as_ptr() as usize + frame.len();
        let back = FieldTable::read(&mut Reader::new(frame.clone())).unwrap();
        assert_eq!(back, t);
        for (k, v) in &back.0 {
            assert!(!range.contains(&(k.as_bytes().as_ptr() as usize)), "key {k:?} shares the frame");
            if let FieldValue::LongStr(b) | FieldValue::ByteArray(b) = v {
                assert!(!range.contains(&(b.as_ptr() as usize)), "value {v:?} shares the frame");
            }
        }
    }

    #[test]
    fn unknown_tag_is_502() {
        let bytes = Bytes::from_static(&[0, 0, 0, 3, 1, b'k', b'Z']);
        let err = FieldTable::read(&mut Reader::new(bytes)).unwrap_err();
        assert_eq!(err.reply_code(), 502);
    }

    #[test]
    fn truncated_table_is_501() {
        let bytes = Bytes::from_static(&[0, 0, 0, 9, 1, b'k', b'I', 0]);
        assert_eq!(FieldTable::read(&mut Reader::new(bytes)).unwrap_err().reply_code(), 501);
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_forever() {
        let mut t = FieldTable::default();
        for _ in 0..(MAX_DEPTH + 5) {
            let mut outer = FieldTable::default();
            outer.insert("n", FieldValue::Table(t));
            t = outer;
        }
        let bytes = encode(&t);
        assert_eq!(FieldTable::read(&mut Reader::new(bytes)).unwrap_err().reply_code(), 502);
    }
}
