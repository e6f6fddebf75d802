//! Byte-level reading and writing of AMQP domains (spec 4.2.5): octets, shorts, longs, long-longs,
//! packed bits, short and long strings. Reads never panic: a short buffer is a 501 FRAME_ERROR, as
//! RabbitMQ answers arguments it "cannot decode" (e.g. a short-string length that runs past the end).
//!
//! Short strings come two ways, as in RabbitMQ: a `ShortStr` field (routing keys and exchange of
//! the content methods, basic properties, table keys) is the peer's bytes; a `String` field (every
//! other method argument: names, binding keys, consumer tags) must be UTF-8, else 501
//! "Malformed UTF-8 in shortstr", a connection error.

use bytes::{BufMut, Bytes, BytesMut};

use super::reply::ConnectionError;
use super::shortstr::{self, ShortStr};

/// Decoding fails only with connection errors: the stream cannot be trusted past garbage.
type Result<T> = std::result::Result<T, ConnectionError>;

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
        let taken = self.buf.get(self.pos..self.pos + n).ok_or_else(ends_inside_a_field)?;
        self.pos += n;
        Ok(taken)
    }

    /// The next `N` bytes, by value (the integer domains).
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        self.bits = None;
        let taken = self.buf.get(self.pos..).and_then(<[u8]>::first_chunk::<N>).ok_or_else(ends_inside_a_field)?;
        self.pos += N;
        Ok(*taken)
    }

    pub fn u8(&mut self) -> Result<u8> {
        let [b] = self.array()?;
        Ok(b)
    }
    pub fn u16(&mut self) -> Result<u16> {
        self.array().map(u16::from_be_bytes)
    }
    pub fn u32(&mut self) -> Result<u32> {
        self.array().map(u32::from_be_bytes)
    }
    pub fn u64(&mut self) -> Result<u64> {
        self.array().map(u64::from_be_bytes)
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
        ShortStr::from_bytes(self.bytes(n)?).map_err(ConnectionError::frame)
    }

    /// A short string that must be text (a name, a binding key, a consumer tag).
    pub fn shortstr_utf8(&mut self) -> Result<String> {
        let n = self.u8()? as usize;
        match std::str::from_utf8(self.take(n)?) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(ConnectionError::frame("Malformed UTF-8 in shortstr")),
        }
    }

    pub fn longstr(&mut self) -> Result<Bytes> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
}

fn ends_inside_a_field() -> ConnectionError {
    ConnectionError::frame("cannot decode the frame payload: it ends inside a field")
}

/// Appends room for an `N`-byte prefix, then what `body` appends, then fills the room with
/// `prefix(what body appended)`: a size (and a checksum) known only once the rest is written, as
/// frames, tables, and the records of the message log and page files have. `body` only appends.
pub fn put_prefixed<B, const N: usize>(out: &mut B, body: impl FnOnce(&mut B), prefix: impl FnOnce(&[u8]) -> [u8; N])
where
    B: BufMut + std::ops::DerefMut<Target = [u8]>,
{
    let start = out.len();
    out.put_bytes(0, N);
    body(out);
    #[allow(clippy::indexing_slicing)] // `out` grew by N bytes at `start` just above, and `body` only appends
    let (room, written) = out[start..].split_at_mut(N);
    room.copy_from_slice(&prefix(written));
}

/// Appends AMQP domains to a buffer, packing consecutive bits into octets.
pub struct Writer<'a> {
    buf: &'a mut BytesMut,
    /// After a `bit`: how many bits of the buffer's last octet are taken.
    bits: Option<u8>,
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
        // Every other field ends a run of bits, so the run's octet is the buffer's last.
        match (self.bits, self.buf.last_mut()) {
            (Some(next), Some(octet)) if next < 8 => {
                *octet |= u8::from(v) << next;
                self.bits = Some(next + 1);
            }
            _ => {
                self.buf.put_u8(u8::from(v));
                self.bits = Some(1);
            }
        }
    }

    /// Writes a short string's bytes; the type guarantees they fit.
    pub fn shortstr(&mut self, s: &ShortStr) {
        self.u8(s.len() as u8);
        self.buf.put_slice(s);
    }

    /// Writes text as a short string, cut at 255 bytes on a char boundary (the domain allows no
    /// more): only the broker's own texts can be longer, such as a reply text naming a long queue.
    pub fn shortstr_utf8(&mut self, s: &str) {
        let s = shortstr::cut_text(s);
        self.u8(s.len() as u8);
        self.buf.put_slice(s.as_bytes());
    }

    pub fn longstr(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.buf.put_slice(b);
    }

    pub fn raw(&mut self, b: &[u8]) {
        self.end_bits();
        self.buf.put_slice(b);
    }

    /// Writes a u32 size, then what `body` writes; the size is that of what `body` wrote (field
    /// tables and arrays).
    pub fn sized(&mut self, body: impl FnOnce(&mut Writer)) {
        self.end_bits();
        put_prefixed(&mut *self.buf, |buf| body(&mut Writer::new(buf)), |written| (written.len() as u32).to_be_bytes());
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
        assert_eq!(err.reply_code(), 501);
        assert_eq!(err.text(), "FRAME_ERROR - Malformed UTF-8 in shortstr");
        assert_eq!(Reader::new(Bytes::from_static(b"\x02\xc3\xa9")).shortstr_utf8().unwrap(), "\u{e9}");
    }

    #[test]
    fn truncated_input_is_a_frame_error() {
        let mut r = Reader::new(Bytes::from_static(&[0, 0, 0, 9, 1]));
        assert_eq!(r.longstr().unwrap_err().reply_code(), 501);
        let mut r = Reader::new(Bytes::from_static(&[1]));
        assert!(r.u16().is_err());
    }
}
