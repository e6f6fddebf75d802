//! Valid AMQP sessions at random: the handshake, then methods of every class a client sends on a
//! few channels (with field tables, properties and bodies), then usually connection.close. They
//! are the corpus the mutator starts from.

use super::wire::{Args, BODY, Frame, HEADER, Len, Rng};

/// A few names of each kind, so that sessions meet each other's queues, exchanges and consumers.
pub const QUEUES: &[&str] = &["fq0", "fq1", "fq2", "fq3", "fq-dlx"];
const EXCHANGES: &[&str] =
    &["fx0", "fx1", "fx-topic", "fx-headers", "amq.direct", "amq.fanout", "amq.topic", "amq.headers"];
pub const OWN_EXCHANGES: &[&str] = &["fx0", "fx1", "fx-topic", "fx-headers"];
const KINDS: &[&str] = &["direct", "fanout", "topic", "headers"];
const TAGS: &[&str] = &["c0", "c1", "c2"];

pub struct Session {
    pub frames: Vec<Frame>,
    /// The frame_max this session's tune-ok asked for: bodies are split by it.
    pub frame_max: u32,
    /// Consumer tags are numbered per session (a reused tag is a connection error).
    next_tag: u32,
}

fn one_of(rng: &mut Rng, items: &[&'static [u8]]) -> &'static [u8] {
    rng.pick::<&'static [u8]>(items)
}

/// A name: mostly from the shared pool, sometimes empty, generated, odd or not UTF-8.
fn name(rng: &mut Rng, pool: &[&str]) -> Vec<u8> {
    match rng.below(40) {
        0 => Vec::new(),
        1 => format!("f-{}", rng.below(1000)).into_bytes(),
        2 => b"amq.gen-fuzz".to_vec(),
        3 => {
            let n = rng.range(1, 255) as usize;
            (0..n).map(|_| rng.range(b'a' as u64, b'z' as u64) as u8).collect()
        }
        4 => {
            let n = rng.range(1, 8) as usize;
            rng.bytes(n)
        }
        _ => rng.pick(pool).as_bytes().to_vec(),
    }
}

fn routing_key(rng: &mut Rng) -> Vec<u8> {
    match rng.below(12) {
        0 => Vec::new(),
        1 => b"#".to_vec(),
        2 => b"*.b.#".to_vec(),
        3 => b"a.*".to_vec(),
        4 => b"a.b.c".to_vec(),
        5 => {
            let n = rng.range(0, 255) as usize;
            rng.bytes(n)
        }
        6 => "#.#.*.#".repeat(30).into_bytes(),
        _ => rng.pick(QUEUES).as_bytes().to_vec(),
    }
}

/// One field value of any type (nested tables and arrays up to `depth`).
fn value(rng: &mut Rng, a: &mut Args, depth: u32) {
    let tags: &[u8] = if depth == 0 { b"tbBsuIilfdDSxTV" } else { b"tbBsuIilfdDSxTVFA" };
    let tag = *rng.pick(tags);
    a.put(|a| a.u8(tag));
    match tag {
        b't' | b'b' | b'B' => a.put(|a| a.u8(rng.next() as u8)),
        b's' | b'u' => a.put(|a| a.u16(rng.next() as u16)),
        b'I' | b'i' | b'f' => a.put(|a| a.u32(rng.next() as u32)),
        b'l' | b'd' | b'T' => a.put(|a| a.u64(rng.next())),
        b'D' => a.put(|a| a.u8(rng.next() as u8).u32(rng.next() as u32)),
        b'S' | b'x' => {
            let n = rng.below(40) as usize;
            let s = rng.bytes(n);
            a.put(|a| a.long(&s))
        }
        b'F' => a.put(|a| a.table(|a| table_entries(rng, a, depth - 1))),
        b'A' => a.put(|a| {
            a.table(|a| {
                for _ in 0..rng.below(4) {
                    value(rng, a, depth - 1)
                }
            })
        }),
        _ => {}
    }
}

fn table_entries(rng: &mut Rng, a: &mut Args, depth: u32) {
    for _ in 0..rng.below(4) {
        let k = name(rng, &["k", "x-match", "x-foo"]);
        a.put(|a| a.short(&k));
        value(rng, a, depth);
    }
}

/// A long-string value from a few choices.
fn long_str(a: &mut Args, s: &[u8]) {
    a.put(|a| a.u8(b'S').long(s));
}

/// A number as one of the integer types RabbitMQ accepts (or, sometimes, one it refuses).
fn number(rng: &mut Rng, a: &mut Args) {
    let v = interesting_number(rng);
    match rng.below(5) {
        0 => a.put(|a| a.u8(b'l').u64(v as u64)),
        1 => a.put(|a| a.u8(b's').u16(v as u16)),
        2 => a.put(|a| a.u8(b'b').u8(v as u8)),
        3 => long_str(a, v.to_string().as_bytes()),
        _ => a.put(|a| a.u8(b'I').u32(v as u32)),
    }
}

fn interesting_number(rng: &mut Rng) -> i64 {
    *rng.pick(&[0, 1, 2, 5, 10, 100, 1000, 60_000, -1, i32::MAX as i64, i64::MAX, 255, 256])
}

/// Queue arguments: RabbitMQ's x- arguments with good, odd and wrong values.
fn queue_args(rng: &mut Rng, a: &mut Args) {
    for _ in 0..rng.below(4) {
        match rng.below(12) {
            0 => {
                a.put(|a| a.short(b"x-message-ttl"));
                number(rng, a);
            }
            1 => {
                a.put(|a| a.short(b"x-expires"));
                number(rng, a);
            }
            2 => {
                a.put(|a| a.short(b"x-max-length"));
                number(rng, a);
            }
            3 => {
                a.put(|a| a.short(b"x-max-length-bytes"));
                number(rng, a);
            }
            4 => {
                a.put(|a| a.short(b"x-overflow"));
                long_str(a, one_of(rng, &[b"drop-head", b"reject-publish", b"reject-publish-dlx", b"nope"]));
            }
            5 => {
                a.put(|a| a.short(b"x-dead-letter-exchange"));
                let x = name(rng, EXCHANGES);
                long_str(a, &x);
            }
            6 => {
                a.put(|a| a.short(b"x-dead-letter-routing-key"));
                let k = routing_key(rng);
                long_str(a, &k);
            }
            7 => {
                a.put(|a| a.short(b"x-max-priority"));
                number(rng, a);
            }
            8 => {
                a.put(|a| a.short(b"x-queue-mode"));
                long_str(a, one_of(rng, &[b"lazy", b"default", b"x"]));
            }
            9 => {
                a.put(|a| a.short(b"x-queue-type"));
                long_str(a, one_of(rng, &[b"classic", b"quorum", b"stream", b"x"]));
            }
            10 => {
                a.put(|a| a.short(b"x-single-active-consumer"));
                a.put(|a| a.u8(b't').u8(rng.below(2) as u8));
            }
            _ => table_entries(rng, a, 2),
        }
    }
}

fn binding_args(rng: &mut Rng, a: &mut Args) {
    if rng.coin() {
        a.put(|a| a.short(b"x-match"));
        long_str(a, one_of(rng, &[b"all", b"any", b"all-with-x", b"bad"]));
    }
    for _ in 0..rng.below(3) {
        let k = name(rng, &["h0", "h1"]);
        a.put(|a| a.short(&k));
        value(rng, a, 1);
    }
}

fn consume_args(rng: &mut Rng, a: &mut Args) {
    if rng.coin() {
        a.put(|a| a.short(b"x-priority"));
        number(rng, a);
    }
    if rng.one_in(3) {
        table_entries(rng, a, 1);
    }
}

/// The basic properties: flags then the values present, each plausible or odd.
fn properties(rng: &mut Rng) -> Args {
    let flags = (rng.next() as u16) & 0xFFFC;
    let mut a = Args::bare().u16(flags);
    let short_of = |rng: &mut Rng| -> Vec<u8> {
        match rng.below(6) {
            0 => b"text/plain".to_vec(),
            1 => b"guest".to_vec(),
            2 => {
                let n = rng.below(30) as usize;
                rng.bytes(n)
            }
            _ => rng.pick(QUEUES).as_bytes().to_vec(),
        }
    };
    for bit in (2..16).rev() {
        if flags & (1 << bit) == 0 {
            continue;
        }
        match bit {
            13 => a = a.table(|a| binding_args(rng, a)),
            12 => a = a.u8(*rng.pick(&[1, 2, 2, 0, 3, 255])),
            11 => a = a.u8(*rng.pick(&[0, 1, 5, 9, 10, 200, 255])),
            8 => {
                let e: &[u8] =
                    one_of(rng, &[b"0", b"1", b"100", b"60000", b"-1", b"abc", b"", b"99999999999999999999"]);
                a = a.short(e)
            }
            6 => a = a.u64(rng.next()),
            4 => a = a.short(one_of(rng, &[b"guest", b"other"])),
            _ => {
                let s = short_of(rng);
                a = a.short(&s)
            }
        }
    }
    a
}

impl Session {
    pub fn generate(rng: &mut Rng) -> Session {
        let mut s = Session { frames: Vec::new(), frame_max: 131_072, next_tag: 0 };
        s.handshake(rng);
        let mut open: Vec<u16> = Vec::new();
        for _ in 0..rng.range(1, 3) {
            let ch = if rng.one_in(4) { rng.range(1, 65535) as u16 } else { rng.range(1, 4) as u16 };
            if !open.contains(&ch) {
                s.method(ch, Args::method(20, 10).short(b""));
                open.push(ch);
            }
        }
        // Usually something to work with first: a queue or two, bound, so that later methods reach
        // past "not found".
        for _ in 0..rng.below(3) {
            let ch = *rng.pick(&open);
            let q = rng.pick(QUEUES).as_bytes();
            let a = Args::method(50, 10).u16(0).short(q).bit(false).bit(rng.one_in(4)).bit(false).bit(false);
            s.method(ch, a.bit(false).table(|a| queue_args(rng, a)));
            let x = one_of(rng, &[b"amq.direct", b"amq.fanout", b"amq.topic"]);
            let k = routing_key(rng);
            s.method(ch, Args::method(50, 20).u16(0).short(q).short(x).short(&k).bit(false).table(|_| {}));
        }
        for _ in 0..rng.range(3, 40) {
            let ch = if rng.one_in(100) { rng.next() as u16 } else { *rng.pick(&open) };
            s.op(rng, ch);
        }
        if rng.one_in(3) {
            s.method(0, Args::method(10, 50).u16(200).short(b"bye").u16(0).u16(0));
        }
        s
    }

    fn method(&mut self, ch: u16, a: Args) {
        self.frames.push(a.frame(ch));
    }

    fn handshake(&mut self, rng: &mut Rng) {
        let mut caps = |a: &mut Args| {
            for cap in ["authentication_failure_close", "consumer_cancel_notify", "connection.blocked", "basic.nack"] {
                if rng.below(4) != 0 {
                    a.put(|a| a.short(cap.as_bytes()).u8(b't').u8(1));
                }
            }
        };
        let props = Args::bare().table(|a| {
            a.put(|a| a.short(b"product").u8(b'S').long(b"warren-fuzz"));
            a.put(|a| a.short(b"capabilities").u8(b'F').table(|a| caps(a)));
        });
        let (mechanism, response): (&[u8], Vec<u8>) = match rng.below(40) {
            0 => {
                let r = Args::bare().short(b"LOGIN").u8(b'S').long(b"guest").short(b"PASSWORD").u8(b'S').long(b"guest");
                (b"AMQPLAIN", r.buf)
            }
            4 => (b"PLAIN", b"\0guest\0wrong".to_vec()),
            5 => (b"EXTERNAL", Vec::new()),
            _ => (b"PLAIN", b"\0guest\0guest".to_vec()),
        };
        let mut start_ok = Args::method(10, 11);
        start_ok.buf.extend_from_slice(&props.buf[..]);
        start_ok.lens.extend(props.lens.iter().map(|l| Len { at: l.at + 4, width: l.width }));
        self.method(0, start_ok.short(mechanism).long(&response).short(b"en_US"));
        let channel_max = *rng.pick(&[0u16, 0, 1, 2, 3, 2047]);
        self.frame_max = *rng.pick(&[0u32, 131_072, 131_072, 4096, 8192, 65_536]);
        let heartbeat = *rng.pick(&[0u16, 0, 0, 0, 60, 5]);
        self.method(0, Args::method(10, 31).u16(channel_max).u32(self.frame_max).u16(heartbeat));
        if self.frame_max == 0 {
            self.frame_max = 131_072;
        }
        let vhost: &[u8] = if rng.one_in(30) { b"/nope" } else { b"/" };
        self.method(0, Args::method(10, 40).short(vhost).short(b"").bit(false));
    }

    fn publish(&mut self, rng: &mut Rng, ch: u16) {
        let x = if rng.coin() { Vec::new() } else { name(rng, EXCHANGES) };
        let key = routing_key(rng);
        let (mandatory, immediate) = (rng.one_in(3), rng.one_in(40));
        self.method(ch, Args::method(60, 40).u16(0).short(&x).short(&key).bit(mandatory).bit(immediate));
        let size = match rng.below(20) {
            0 => 0,
            1 => rng.range(100_000, 400_000) as usize,
            2 => self.frame_max as usize - 8,
            3 => self.frame_max as usize - 7,
            _ => rng.below(300) as usize,
        };
        let props = properties(rng);
        let mut payload = Args::bare().u16(60).u16(0).u64(size as u64);
        payload.buf.extend_from_slice(&props.buf);
        payload.lens.extend(props.lens.iter().map(|l| Len { at: l.at + 12, width: l.width }));
        self.frames.push(Frame::new(HEADER, ch, payload.buf, payload.lens));
        let body = rng.bytes(size);
        for part in body.chunks(self.frame_max as usize - 8) {
            self.frames.push(Frame::new(BODY, ch, part.to_vec(), Vec::new()));
        }
    }

    /// One client method (or a publish with its content) on channel `ch`.
    fn op(&mut self, rng: &mut Rng, ch: u16) {
        let b = |rng: &mut Rng| rng.one_in(4);
        let nowait = |rng: &mut Rng| rng.one_in(6);
        match rng.below(32) {
            0 => {
                let x = name(rng, EXCHANGES);
                let kind: &[u8] = if rng.one_in(20) { b"x-nope" } else { rng.pick(KINDS).as_bytes() };
                let (passive, durable, auto_delete, internal, nw) =
                    (rng.one_in(8), b(rng), b(rng), rng.one_in(10), nowait(rng));
                let a = Args::method(40, 10).u16(0).short(&x).short(kind).bit(passive).bit(durable).bit(auto_delete);
                let a = a.bit(internal).bit(nw).table(|a| {
                    if rng.one_in(3) {
                        a.put(|a| a.short(b"alternate-exchange"));
                        let alt = name(rng, EXCHANGES);
                        long_str(a, &alt);
                    }
                });
                self.method(ch, a);
            }
            1 => {
                let x = name(rng, EXCHANGES);
                self.method(ch, Args::method(40, 20).u16(0).short(&x).bit(b(rng)).bit(nowait(rng)));
            }
            2 | 3 => {
                let id = if rng.coin() { 30 } else { 40 };
                let (d, s, k) = (name(rng, EXCHANGES), name(rng, EXCHANGES), routing_key(rng));
                let a = Args::method(40, id).u16(0).short(&d).short(&s).short(&k).bit(nowait(rng));
                self.method(ch, a.table(|a| binding_args(rng, a)));
            }
            4..=6 => {
                let q = name(rng, QUEUES);
                let (passive, durable, exclusive, auto_delete) = (rng.one_in(8), b(rng), b(rng), b(rng));
                let a = Args::method(50, 10).u16(0).short(&q).bit(passive).bit(durable).bit(exclusive);
                let a = a.bit(auto_delete).bit(nowait(rng)).table(|a| queue_args(rng, a));
                self.method(ch, a);
            }
            7 | 8 => {
                let (q, x, k) = (name(rng, QUEUES), name(rng, EXCHANGES), routing_key(rng));
                let a = Args::method(50, 20).u16(0).short(&q).short(&x).short(&k).bit(nowait(rng));
                self.method(ch, a.table(|a| binding_args(rng, a)));
            }
            9 => {
                let (q, x, k) = (name(rng, QUEUES), name(rng, EXCHANGES), routing_key(rng));
                let a = Args::method(50, 50).u16(0).short(&q).short(&x).short(&k);
                self.method(ch, a.table(|a| binding_args(rng, a)));
            }
            10 => {
                let q = name(rng, QUEUES);
                self.method(ch, Args::method(50, 30).u16(0).short(&q).bit(nowait(rng)));
            }
            11 => {
                let q = name(rng, QUEUES);
                self.method(ch, Args::method(50, 40).u16(0).short(&q).bit(b(rng)).bit(b(rng)).bit(nowait(rng)));
            }
            12 => {
                let size = if rng.one_in(20) { 1 } else { 0 };
                let count = *rng.pick(&[0u16, 1, 2, 10, 65535]);
                self.method(ch, Args::method(60, 10).u32(size).u16(count).bit(b(rng)));
            }
            13 | 14 => {
                let q = name(rng, QUEUES);
                let tag = match rng.below(6) {
                    0 => Vec::new(),
                    1 => rng.pick(TAGS).as_bytes().to_vec(),
                    _ => {
                        self.next_tag += 1;
                        format!("c{}", self.next_tag).into_bytes()
                    }
                };
                let (no_local, no_ack, exclusive, nw) = (rng.one_in(10), rng.coin(), rng.one_in(8), nowait(rng));
                let a = Args::method(60, 20).u16(0).short(&q).short(&tag).bit(no_local).bit(no_ack).bit(exclusive);
                self.method(ch, a.bit(nw).table(|a| consume_args(rng, a)));
            }
            15 => {
                let tag = if rng.coin() {
                    format!("c{}", rng.range(1, self.next_tag.max(1) as u64))
                } else {
                    rng.pick(TAGS).to_string()
                };
                let tag = tag.as_bytes();
                self.method(ch, Args::method(60, 30).short(tag).bit(nowait(rng)));
            }
            16..=20 => self.publish(rng, ch),
            21 | 22 => {
                let q = name(rng, QUEUES);
                self.method(ch, Args::method(60, 70).u16(0).short(&q).bit(rng.coin()));
            }
            23 => {
                let tag = rng.below(8);
                match rng.below(3) {
                    0 => self.method(ch, Args::method(60, 80).u64(tag).bit(b(rng))),
                    1 => self.method(ch, Args::method(60, 90).u64(tag).bit(rng.coin())),
                    _ => self.method(ch, Args::method(60, 120).u64(tag).bit(b(rng)).bit(rng.coin())),
                }
            }
            24 => {
                let id = if rng.coin() { 110 } else { 100 };
                self.method(ch, Args::method(60, id).bit(rng.coin()));
            }
            25 => self.method(ch, Args::method(85, 10).bit(nowait(rng))),
            26 => {
                let id = *rng.pick(&[10u16, 20, 20, 30]);
                self.method(ch, Args::method(90, id));
            }
            27 => self.method(ch, Args::method(20, 20).bit(rng.below(8) != 0)),
            28 => {
                // Close, and sometimes answer a close from the broker / reopen.
                match rng.below(3) {
                    0 => self.method(ch, Args::method(20, 40).u16(200).short(b"").u16(0).u16(0)),
                    1 => self.method(ch, Args::method(20, 41)),
                    _ => {
                        self.method(ch, Args::method(20, 40).u16(200).short(b"").u16(0).u16(0));
                        self.method(ch, Args::method(20, 10).short(b""));
                    }
                }
            }
            29 => self.frames.push(Frame::heartbeat(0)),
            30 => {
                self.method(ch, Args::method(30, 10).short(b"/data").bit(true).bit(true).bit(true).bit(true).bit(true))
            }
            _ => match rng.below(3) {
                0 => self.method(0, Args::method(10, 70).long(b"secret").short(b"fuzz")),
                1 => self.method(rng.range(4, 20) as u16, Args::method(20, 10).short(b"")),
                _ => self.method(0, Args::method(10, 51)),
            },
        }
    }
}
