//! The fuzzer's own AMQP encoder, independent of Warren's codec so that it can write what Warren's
//! types cannot hold (non-UTF-8 short strings, wrong lengths), plus the seeded PRNG.

/// xorshift64*: deterministic from its seed, so a failing case is replayed from the seed it prints.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so that neighbouring seeds give unrelated streams (and never 0).
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `lo..=hi`; `lo` if the range is empty.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
pub const METHOD: u8 = 1;
pub const HEADER: u8 = 2;
pub const BODY: u8 = 3;
pub const HEARTBEAT: u8 = 8;
pub const FRAME_END: u8 = 0xCE;

/// Where a length prefix sits in a payload (so a mutation can lie about it).
#[derive(Clone, Copy, Debug)]
pub struct Len {
    pub at: usize,
    /// 1 (short string) or 4 (long string, table, array).
    pub width: u8,
}

#[derive(Clone, Debug)]
pub struct Frame {
    pub kind: u8,
    pub channel: u16,
    pub payload: Vec<u8>,
    pub lens: Vec<Len>,
    /// A size field that disagrees with the payload, when a mutation set one.
    pub size_override: Option<u32>,
    pub end: u8,
}

impl Frame {
    pub fn new(kind: u8, channel: u16, payload: Vec<u8>, lens: Vec<Len>) -> Self {
        Frame { kind, channel, payload, lens, size_override: None, end: FRAME_END }
    }

    pub fn heartbeat(channel: u16) -> Self {
        Frame::new(HEARTBEAT, channel, Vec::new(), Vec::new())
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind);
        out.extend_from_slice(&self.channel.to_be_bytes());
        let size = self.size_override.unwrap_or(self.payload.len() as u32);
        out.extend_from_slice(&size.to_be_bytes());
        out.extend_from_slice(&self.payload);
        out.push(self.end);
    }
}

/// Method arguments in spec order; consecutive bits share an octet as the spec packs them.
pub struct Args {
    pub buf: Vec<u8>,
    pub lens: Vec<Len>,
    bits: Option<(usize, u8)>,
}

impl Args {
    pub fn method(class: u16, id: u16) -> Self {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&class.to_be_bytes());
        buf.extend_from_slice(&id.to_be_bytes());
        Args { buf, lens: Vec::new(), bits: None }
    }

    /// A buffer with no class/method prefix (content header properties, AMQPLAIN responses).
    pub fn bare() -> Self {
        Args { buf: Vec::new(), lens: Vec::new(), bits: None }
    }

    pub fn u8(mut self, v: u8) -> Self {
        self.bits = None;
        self.buf.push(v);
        self
    }
    pub fn u16(mut self, v: u16) -> Self {
        self.bits = None;
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.bits = None;
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.bits = None;
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bit(mut self, v: bool) -> Self {
        match self.bits {
            Some((at, n)) if n < 8 => {
                if v {
                    self.buf[at] |= 1 << n;
                }
                self.bits = Some((at, n + 1));
            }
            _ => {
                self.buf.push(v as u8);
                self.bits = Some((self.buf.len() - 1, 1));
            }
        }
        self
    }
    /// A short string of at most 255 bytes (longer input is cut).
    pub fn short(mut self, s: &[u8]) -> Self {
        self.bits = None;
        let s = &s[..s.len().min(255)];
        self.lens.push(Len { at: self.buf.len(), width: 1 });
        self.buf.push(s.len() as u8);
        self.buf.extend_from_slice(s);
        self
    }
    pub fn long(mut self, s: &[u8]) -> Self {
        self.bits = None;
        self.lens.push(Len { at: self.buf.len(), width: 4 });
        self.buf.extend_from_slice(&(s.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(s);
        self
    }
    /// A field table (or array) whose encoded body `write` appends; its length is patched after.
    pub fn table(mut self, write: impl FnOnce(&mut Args)) -> Self {
        self.bits = None;
        let at = self.buf.len();
        self.lens.push(Len { at, width: 4 });
        self.buf.extend_from_slice(&[0; 4]);
        write(&mut self);
        let size = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&size.to_be_bytes());
        self.bits = None;
        self
    }

    /// In-place variants for building tables entry by entry.
    pub fn put(&mut self, f: impl FnOnce(Args) -> Args) {
        let me = std::mem::replace(self, Args::bare());
        *self = f(me);
    }

    pub fn frame(self, channel: u16) -> Frame {
        Frame::new(METHOD, channel, self.buf, self.lens)
    }
}

/// How a byte stream ends for a broker that reads it: whether every frame in it is complete (the
/// broker has read all of it, or stopped at an error it must answer), or it stops mid-frame (the
/// broker may rightly wait for more bytes, so nothing can be expected of it).
pub fn ends_on_frame_boundary(stream: &[u8]) -> bool {
    if stream.len() < 8 {
        // A prefix of the protocol header leaves the broker waiting; anything else is answered.
        return !PROTOCOL_HEADER.starts_with(stream);
    }
    if &stream[..8] != PROTOCOL_HEADER {
        return true;
    }
    let mut at = 8;
    loop {
        let rest = &stream[at..];
        if rest.is_empty() {
            return true;
        }
        if !matches!(rest[0], METHOD | HEADER | BODY | HEARTBEAT) {
            return true;
        }
        if rest.len() < 7 {
            return false;
        }
        let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]) as usize;
        // Beyond the largest frame_max the broker offers: answered from the frame header alone.
        if size > 131_072 {
            return true;
        }
        if rest.len() < size + 8 {
            return false;
        }
        if rest[7 + size] != FRAME_END {
            return true;
        }
        at += size + 8;
    }
}
