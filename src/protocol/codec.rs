//! Byte-level reading and writing of AMQP domains (spec 4.2.5): octets, shorts, longs, long-longs,
//! packed bits, short and long strings. Reads never panic: a short buffer is a 501 FRAME_ERROR, as
//! RabbitMQ answers arguments it "cannot decode" (e.g. a short-string length that runs past the end).
//!
//! Short strings come two ways, as in RabbitMQ: a `ShortStr` field (routing keys and exchange of
//! the content methods, basic properties, table keys) is the peer's bytes; a `String` field (every
//! other method argument: names, binding keys, consumer tags) must be UTF-8, else 501
//! "Malformed UTF-8 in shortstr", a connection error.

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::{AmqpError, Result};
use super::shortstr::ShortStr;

/// A cursor over one frame payload. Consecutive `bit` fields share octets, as the spec packs them.
pub struct Reader {
    buf: Bytes,
    pos: usize,
    bits: Option<(u8, u8)>,
}

impl Reader {
    pub fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0, bits: None }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        self.bits = None;
        if self.remaining() < n {
            return Err(AmqpError::frame("cannot decode the frame payload: it ends inside a field"));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    pub fn bit(&mut self) -> Result<bool> {
        let (byte, next) = match self.bits {
            Some((byte, next)) if next < 8 => (byte, next),
            _ => (self.u8()?, 0),
        };
        self.bits = Some((byte, next + 1));
        Ok(byte & (1 << next) != 0)
    }

    /// A slice of the payload that shares its memory (bodies and long strings are never copied).
    pub fn bytes(&mut self, n: usize) -> Result<Bytes> {
        self.take(n)?;
        Ok(self.buf.slice(self.pos - n..self.pos))
    }

    /// A short string as sent, sharing the payload's memory.
    pub fn shortstr(&mut self) -> Result<ShortStr> {
        let n = self.u8()? as usize;
        ShortStr::from_bytes(self.bytes(n)?).map_err(AmqpError::frame)
    }

    /// A short string that must be text (a name, a binding key, a consumer tag).
    pub fn shortstr_utf8(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        match std::str::from_utf8(self.take(n)?) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(AmqpError::frame("Malformed UTF-8 in shortstr")),
        }
    }

    pub fn longstr(&mut self) -> Result<Bytes> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
}

/// Appends AMQP domains to a buffer, packing consecutive bits into octets.
pub struct Writer<'a> {
    buf: &'a mut BytesMut,
    bits: Option<(usize, u8)>,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut BytesMut) -> Self {
        Self { buf, bits: None }
    }

    fn end_bits(&mut self) {
        self.bits = None;
    }

    pub fn u8(&mut self, v: u8) {
        self.end_bits();
        self.buf.put_u8(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.end_bits();
        self.buf.put_u16(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.end_bits();
        self.buf.put_u32(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.end_bits();
        self.buf.put_u64(v);
    }

    pub fn bit(&mut self, v: bool) {
        let (at, next) = match self.bits {
            Some((at, next)) if next < 8 => (at, next),
            _ => {
                self.buf.put_u8(0);
                (self.buf.len() - 1, 0)
            }
        };
        if v {
            self.buf[at] |= 1 << next;
        }
        self.bits = Some((at, next + 1));
    }

    /// Writes a short string's bytes; the type guarantees they fit.
    pub fn shortstr(&mut self, s: &ShortStr) {
        self.u8(s.len() as u8);
        self.buf.put_slice(s);
    }

    /// Writes text as a short string, cut at 255 bytes on a char boundary (the domain allows no
    /// more): only the broker's own texts can be longer, such as a reply text naming a long queue.
    pub fn shortstr_utf8(&mut self, s: &str) {
        let mut n = s.len().min(255);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.u8(n as u8);
        self.buf.put_slice(&s.as_bytes()[..n]);
    }

    pub fn longstr(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.put_slice(b);
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.end_bits();
        self.buf.put_slice(b);
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Overwrites a big-endian u32 written earlier at `at` (frame and table sizes).
    pub fn patch_u32(&mut self, at: usize, v: u32) {
        self.buf[at..at + 4].copy_from_slice(&v.to_be_bytes());
    }
}

/// One argument of a method: how it is read and written.
pub trait Field: Sized {
    fn read(r: &mut Reader) -> Result<Self>;
    fn write(&self, w: &mut Writer);
}

impl Field for u8 {
    fn read(r: &mut Reader) -> Result<Self> {
        r.u8()
    }
    fn write(&self, w: &mut Writer) {
        w.u8(*self)
    }
}
impl Field for u16 {
    fn read(r: &mut Reader) -> Result<Self> {
        r.u16()
    }
    fn write(&self, w: &mut Writer) {
        w.u16(*self)
    }
}
impl Field for u32 {
    fn read(r: &mut Reader) -> Result<Self> {
        r.u32()
    }
    fn write(&self, w: &mut Writer) {
        w.u32(*self)
    }
}
impl Field for u64 {
    fn read(r: &mut Reader) -> Result<Self> {
        r.u64()
    }
    fn write(&self, w: &mut Writer) {
        w.u64(*self)
    }
}
impl Field for bool {
    fn read(r: &mut Reader) -> Result<Self> {
        r.bit()
    }
    fn write(&self, w: &mut Writer) {
        w.bit(*self)
    }
}
impl Field for String {
    fn read(r: &mut Reader) -> Result<Self> {
        r.shortstr_utf8()
    }
    fn write(&self, w: &mut Writer) {
        w.shortstr_utf8(self)
    }
}
impl Field for ShortStr {
    fn read(r: &mut Reader) -> Result<Self> {
        r.shortstr()
    }
    fn write(&self, w: &mut Writer) {
        w.shortstr(self)
    }
}

/// The `longstr` domain: arbitrary bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LongStr(pub Bytes);

impl Field for LongStr {
    fn read(r: &mut Reader) -> Result<Self> {
        r.longstr().map(LongStr)
    }
    fn write(&self, w: &mut Writer) {
        w.longstr(&self.0)
    }
}

impl From<&str> for LongStr {
    fn from(s: &str) -> Self {
        LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_into_one_octet_and_reset_after_other_fields() {
        let mut buf = BytesMut::new();
        let mut w = Writer::new(&mut buf);
        w.bit(true);
        w.bit(false);
        w.bit(true);
        w.u8(7);
        w.bit(true);
        assert_eq!(&buf[..], &[0b101, 7, 1]);
        let mut r = Reader::new(buf.freeze());
        assert!(r.bit().unwrap());
        assert!(!r.bit().unwrap());
        assert!(r.bit().unwrap());
        assert_eq!(r.u8().unwrap(), 7);
        assert!(r.bit().unwrap());
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn short_strings_keep_their_bytes_and_text_must_be_utf8() {
        let mut raw = vec![b'a'; 253];
        raw.extend([0xFF, 0xFF]);
        let mut buf = BytesMut::new();
        buf.put_u8(255);
        buf.put_slice(&raw);
        let buf = buf.freeze();
        let key = Reader::new(buf.clone()).shortstr().unwrap();
        assert_eq!(key.as_bytes(), &raw[..]);
        let mut out = BytesMut::new();
        Writer::new(&mut out).shortstr(&key);
        assert_eq!(out, buf);
        let err = Reader::new(buf).shortstr_utf8().unwrap_err();
        assert_eq!(err.code.code(), 501);
        assert_eq!(err.text, "FRAME_ERROR - Malformed UTF-8 in shortstr");
        assert_eq!(Reader::new(Bytes::from_static(b"\x02\xc3\xa9")).shortstr_utf8().unwrap(), "\u{e9}");
    }

    #[test]
    fn truncated_input_is_a_frame_error() {
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 9, 1]));
        assert_eq!(r.longstr().unwrap_err().code.code(), 501);
        let mut r = Reader::new(Bytes::from_static(&[1]));
        assert!(r.u16().is_err());
    }
}
