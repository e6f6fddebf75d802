//! The `shortstr` domain (spec 4.2.5.3) as bytes: at most 255 octets, not necessarily UTF-8.
//! RabbitMQ checks UTF-8 only in the arguments of methods without content; routing keys, the
//! short-string basic properties and field-table keys are whatever bytes the peer sent, and are
//! delivered, stored and compared as those bytes. The length bound is part of the type, so every
//! encoder (wire, message log, page files) can write a `ShortStr` whole.

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// At most [`ShortStr::MAX_LEN`] bytes, shared (`Bytes`), compared byte for byte.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortStr(Bytes);

/// A byte string longer than a short string can hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLong(pub usize);

impl fmt::Display for TooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes is longer than a short string's {}", self.0, ShortStr::MAX_LEN)
    }
}

impl std::error::Error for TooLong {}

/// The longest start of `s` a short string holds, cut on a char boundary so it stays text: only
/// the broker's own texts can be longer (a reply text naming a long queue).
pub fn cut_text(s: &str) -> &str {
    let mut n = s.len().min(ShortStr::MAX_LEN);
    // `get` is None off a char boundary; 0 is always one.
    loop {
        if let Some(cut) = s.get(..n) {
            return cut;
        }
        n -= 1;
    }
}

impl ShortStr {
    pub const MAX_LEN: usize = 255;

    /// A literal; longer than 255 bytes is a bug in the program (a compile error in a const).
    pub const fn from_static(s: &'static str) -> Self {
        assert!(s.len() <= Self::MAX_LEN, "a short string holds at most 255 bytes");
        Self(Bytes::from_static(s.as_bytes()))
    }

    /// Takes `b` as it is (sharing its memory) when it fits.
    pub fn from_bytes(b: Bytes) -> Result<Self, TooLong> {
        if b.len() > Self::MAX_LEN { Err(TooLong(b.len())) } else { Ok(Self(b)) }
    }

    /// A copy of `b` in an allocation of its own, when it fits.
    pub fn copy_from_slice(b: &[u8]) -> Result<Self, TooLong> {
        Self::from_bytes(Bytes::copy_from_slice(b))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text when they are UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Its length, which a short string's bound makes a `u8`.
    pub fn len_u8(&self) -> u8 {
        self.0.len() as u8
    }

    /// Splits the first `len` bytes off `b` (fewer if `b` is shorter) as a short string.
    pub fn split_off_front(b: &mut Bytes, len: u8) -> Self {
        Self(b.split_to(usize::from(len).min(b.len())))
    }
}

impl Deref for ShortStr {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ShortStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&'static str> for ShortStr {
    fn from(s: &'static str) -> Self {
        Self::from_static(s)
    }
}

impl TryFrom<String> for ShortStr {
    type Error = TooLong;
    fn try_from(s: String) -> Result<Self, TooLong> {
        Self::from_bytes(Bytes::from(s))
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.0 == other.as_bytes()
    }
}

impl PartialEq<[u8]> for ShortStr {
    fn eq(&self, other: &[u8]) -> bool {
        self.0 == other
    }
}

/// Shows the bytes as a string literal would, escaping what is not printable ASCII.
impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// For reply texts and logs only: bytes that are not UTF-8 show as U+FFFD. Never store or
/// compare what this prints.
impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_any_bytes_up_to_255() {
        let mut raw = vec![b'a'; 253];
        raw.extend([0xFF, 0xFF]);
        let s = ShortStr::copy_from_slice(&raw).unwrap();
        assert_eq!(s.as_bytes(), &raw[..]);
        assert_eq!(s.as_str(), None);
        assert_eq!(ShortStr::copy_from_slice(&[0; 256]), Err(TooLong(256)));
        assert_eq!(ShortStr::try_from("k".repeat(256)), Err(TooLong(256)));
    }

    #[test]
    fn text_is_cut_to_255_bytes_on_a_char_boundary() {
        assert_eq!(cut_text("queue"), "queue");
        assert_eq!(cut_text(&"q".repeat(300)).len(), 255);
        // 'é' is two bytes: 255 would split the 128th.
        assert_eq!(cut_text(&"é".repeat(200)), "é".repeat(127));
    }

    #[test]
    fn different_bytes_are_different_strings() {
        // Both would print as "a\u{FFFD}": a lossy decode made them one key.
        let (a, b) = (ShortStr::copy_from_slice(b"a\xFF").unwrap(), ShortStr::copy_from_slice(b"a\xFE").unwrap());
        assert_ne!(a, b);
        assert_eq!(a.to_string(), b.to_string());
        assert_eq!(format!("{a:?}"), "\"a\\xff\"");
    }
}
