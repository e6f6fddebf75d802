//! Fuzzing the connection state machine, not only the frame parser (issue 14): the real broker
//! (2 shards) gets generated AMQP sessions (handshake, channels, every client method with field
//! tables, properties and bodies) and mutations of them (bit flips, lying lengths and sizes,
//! truncation, splicing, duplicated, reordered and re-channelled frames) over real sockets, one to
//! three connections at a time. After each case:
//! - the broker process is alive and has not logged a panic;
//! - every frame it sent parses and decodes, a connection.close carries a hard reply code (403
//!   only during the handshake), a channel.close a soft one, and nothing follows connection.close
//!   but close-ok, nor a channel.close on its channel but close-ok / open-ok;
//! - a connection whose bytes end on a frame boundary is still served: a channel.open and a
//!   connection.close sent after the case are answered (or the broker had closed it with a
//!   connection.close) and the socket ends within 5 s;
//! - a fresh connection completes a handshake and queue declares within 5 s.
//!
//! Every 50 cases the fuzzed queues and exchanges are deleted, the broker must let go of every
//! closed connection, and its RSS must stay within 200 MiB of where it was after the first 50.
//!
//! Bounded: 20 s by default. `WARREN_FUZZ_SECS` runs longer (scripts/fuzz-connections.sh runs an
//! hour), `WARREN_FUZZ_SEED` fixes the run's seed, `WARREN_FUZZ_CASES` caps the case count, and
//! `WARREN_FUZZ_CASE=<seed>` replays one failing case (its seed is printed, its bytes saved).

mod common;
#[path = "fuzz/mutate.rs"]
mod mutate;
#[path = "fuzz/session.rs"]
mod session;
#[path = "fuzz/wire.rs"]
mod wire;

use std::collections::{BTreeMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{TestBroker, start_broker};
use warren::protocol::Method;
use wire::{Args, FRAME_END, HEARTBEAT, METHOD, PROTOCOL_HEADER, Rng};

/// Reply codes a connection.close may carry (spec: connection exceptions).
const HARD: &[u16] = &[320, 402, 501, 502, 503, 504, 505, 506, 530, 540, 541];
/// Reply codes a channel.close may carry (spec: channel exceptions).
const SOFT: &[u16] = &[311, 312, 313, 403, 404, 405, 406];
/// The channel the probe opens after a case (sessions rarely pick it).
const PROBE_CHANNEL: u16 = 64_999;
const ANSWER_WITHIN: Duration = Duration::from_secs(5);
const MAINTAIN_EVERY: u64 = 50;
const RSS_GROWTH_LIMIT_KB: u64 = 200 * 1024;

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    }
}

#[test]
fn mutated_sessions_never_crash_hang_or_leak() {
    let secs = env_u64("WARREN_FUZZ_SECS").unwrap_or(20);
    let max_cases = env_u64("WARREN_FUZZ_CASES").unwrap_or(u64::MAX);
    let replay = env_u64("WARREN_FUZZ_CASE");
    let seed = env_u64("WARREN_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    eprintln!("fuzz_connection: run seed {seed:#x} (WARREN_FUZZ_SEED), {secs} s");
    let b = start_broker(2);
    let mut h = Harness::new(&b);
    let started = Instant::now();
    let mut i = 0u64;
    while i < max_cases && (replay.is_some() || started.elapsed() < Duration::from_secs(secs)) {
        let case_seed = replay.unwrap_or_else(|| Rng::new(seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next());
        if let Err(e) = h.case(case_seed) {
            // A dead broker explains the rest: say so first (its last log lines take a moment).
            std::thread::sleep(Duration::from_millis(300));
            let e = match h.check_broker() {
                Err(dead) => format!("{dead}\n  (the case saw: {e})"),
                Ok(()) => e,
            };
            let saved = h.save_case(case_seed);
            panic!(
                "fuzz case {i} failed: {e}\n  replay: WARREN_FUZZ_CASE={case_seed:#x} (run seed {seed:#x}); \
                 bytes sent: {saved}\n  {}",
                h.stats.summary()
            );
        }
        i += 1;
        if replay.is_some() {
            break;
        }
        if i.is_multiple_of(MAINTAIN_EVERY)
            && let Err(e) = h.maintain()
        {
            panic!("after fuzz case {i} (run seed {seed:#x}): {e}\n  {}", h.stats.summary());
        }
    }
    if let Err(e) = h.maintain() {
        panic!("at the end of the run (seed {seed:#x}): {e}\n  {}", h.stats.summary());
    }
    eprintln!(
        "fuzz_connection: {i} cases in {:.1} s, run seed {seed:#x}: {}",
        started.elapsed().as_secs_f64(),
        h.stats.summary()
    );
}

#[derive(Default)]
struct Stats {
    cases: u64,
    connections: u64,
    mutated: u64,
    probed: u64,
    probe_answered: u64,
    bytes_sent: u64,
    connection_closes: BTreeMap<u16, u64>,
    channel_closes: BTreeMap<u16, u64>,
    silent_closes: u64,
    /// Methods the broker sent, by (class, method id): how deep the cases got.
    methods: BTreeMap<(u16, u16), u64>,
    rss_first_kb: u64,
    rss_max_kb: u64,
    rss_last_kb: u64,
    slowest_fresh: Duration,
}

impl Stats {
    fn summary(&self) -> String {
        format!(
            "{} cases, {} connections ({} mutated, {} probed, {} answered the probe), {} KiB sent; \
             connection.close codes {:?}; channel.close codes {:?}; {} closed silently during the handshake; \
             RSS first/max/last {}/{}/{} MiB; slowest fresh declare {:?}; methods received {:?}",
            self.cases,
            self.connections,
            self.mutated,
            self.probed,
            self.probe_answered,
            self.bytes_sent / 1024,
            self.connection_closes,
            self.channel_closes,
            self.silent_closes,
            self.rss_first_kb / 1024,
            self.rss_max_kb / 1024,
            self.rss_last_kb / 1024,
            self.slowest_fresh,
            self.methods
        )
    }
}

struct Harness<'a> {
    b: &'a TestBroker,
    stats: Stats,
    log_seen: usize,
    last_case: Vec<Vec<u8>>,
}

impl<'a> Harness<'a> {
    fn new(b: &'a TestBroker) -> Self {
        Harness { b, stats: Stats::default(), log_seen: 0, last_case: Vec::new() }
    }

    /// Writes the last case's streams to a file (for a minimal reproducer) and names it.
    fn save_case(&self, seed: u64) -> String {
        let path = std::env::temp_dir().join(format!("warren-fuzz-case-{seed:#x}.txt"));
        let text: String = self
            .last_case
            .iter()
            .enumerate()
            .map(|(n, s)| format!("connection {n}: {}\n", s.iter().map(|b| format!("{b:02x}")).collect::<String>()))
            .collect();
        match std::fs::write(&path, text) {
            Ok(()) => path.display().to_string(),
            Err(e) => format!("(not saved: {e})"),
        }
    }

    /// One case: one to three connections, each sent a session (usually mutated), then checked.
    fn case(&mut self, seed: u64) -> Result<(), String> {
        let mut rng = Rng::new(seed);
        let conns = if rng.one_in(4) { rng.range(2, 3) } else { 1 };
        let mut peers = Vec::new();
        self.last_case.clear();
        for _ in 0..conns {
            let s = session::Session::generate(&mut rng);
            let bytes = if rng.one_in(6) {
                mutate::encode(&s)
            } else {
                self.stats.mutated += 1;
                let other = session::Session::generate(&mut rng);
                mutate::mutate(&mut rng, s, &other)
            };
            // Small writes (frames split across TCP segments) for streams small enough to take it.
            let chunk = match rng.below(12) {
                0 if bytes.len() <= 8 << 10 => 1,
                1 if bytes.len() <= 256 << 10 => rng.range(2, 100) as usize,
                _ => 1 << 16,
            };
            let abrupt = rng.one_in(8);
            self.stats.bytes_sent += bytes.len() as u64;
            self.last_case.push(bytes.clone());
            peers.push(Peer::connect(self.b.addr, bytes, chunk, abrupt)?);
        }
        self.stats.cases += 1;
        self.stats.connections += conns;
        // Send everything (reading what comes back meanwhile), as long as the broker keeps reading.
        let sent = |p: &Peer| p.sent == p.out.len() || p.write_dead || p.eof;
        loop {
            let before: usize = peers.iter().map(|p| p.sent).sum();
            drive(&mut peers, Instant::now() + Duration::from_secs(10), sent)?;
            if peers.iter().all(sent) {
                break;
            }
            if peers.iter().map(|p| p.sent).sum::<usize>() == before {
                let p = peers.iter().find(|p| !sent(p)).unwrap();
                return Err(format!("the broker read {} of {} bytes and then nothing for 10 s", p.sent, p.out.len()));
            }
        }
        // Probe the connections that may be expected to answer; read the others a little.
        for p in &mut peers {
            if !p.abrupt && !p.write_dead && !p.eof && wire::ends_on_frame_boundary(&p.out) {
                p.probe();
                self.stats.probed += 1;
            }
        }
        let deadline = Instant::now() + ANSWER_WITHIN;
        let quiet = Instant::now() + Duration::from_millis(100);
        drive(&mut peers, deadline, |p| p.eof || (!p.probing && Instant::now() > quiet))?;
        for p in &peers {
            for (&id, &n) in &p.methods {
                *self.stats.methods.entry(id).or_default() += n;
            }
            if let Some(code) = p.conn_close {
                *self.stats.connection_closes.entry(code).or_default() += 1;
            }
            for &code in &p.channel_close_codes {
                *self.stats.channel_closes.entry(code).or_default() += 1;
            }
            if !p.probing {
                continue;
            }
            if !p.eof {
                return Err(format!(
                    "a connection sent a channel.open and connection.close after the case got no end within {:?} \
                     (open-ok {}, probe answered {}, connection.close {:?}, close-ok {})",
                    ANSWER_WITHIN, p.open_ok, p.probe_answered, p.conn_close, p.close_ok
                ));
            }
            if p.probe_answered {
                self.stats.probe_answered += 1;
            }
            if !p.close_ok && p.conn_close.is_none() && !p.header_reply {
                if p.open_ok {
                    let how = if p.reset { "reset" } else { "closed" };
                    return Err(format!("the broker {how} an open connection's socket without connection.close"));
                }
                self.stats.silent_closes += 1;
            }
        }
        drop(peers);
        self.check_broker()?;
        let took = fresh_declare(self.b.addr)?;
        self.stats.slowest_fresh = self.stats.slowest_fresh.max(took);
        Ok(())
    }

    /// The process is alive and has logged no panic.
    fn check_broker(&mut self) -> Result<(), String> {
        let lines = self.b.log_lines_from(self.log_seen);
        self.log_seen += lines.len();
        if let Some(l) = lines.iter().find(|l| l.contains("panicked")) {
            return Err(format!("the broker panicked: {l}"));
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.b.pid()))
            .map_err(|e| format!("the broker process is gone: {e}"))?;
        if status.lines().any(|l| l.starts_with("State:") && (l.contains('Z') || l.contains('X'))) {
            return Err("the broker process exited".into());
        }
        Ok(())
    }

    /// Deletes what the cases left, then checks that no connection is held and RSS is bounded.
    fn maintain(&mut self) -> Result<(), String> {
        self.check_broker()?;
        let dir = self.b.data_dir();
        let queues = admin(dir, "list_queues", &[])?;
        for row in rows(&queues) {
            if let Some(name) = row.first().and_then(|v| v.as_str()) {
                admin(dir, "delete_queue", &[name])?;
            }
        }
        delete_exchanges(self.b.addr)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let conns = admin(dir, "list_connections", &[])?;
            let held = rows(&conns);
            if held.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("10 s after their sockets closed the broker still holds connections: {held:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let rss = rss_kb(self.b.pid())?;
        if self.stats.rss_first_kb == 0 {
            self.stats.rss_first_kb = rss;
        }
        self.stats.rss_max_kb = self.stats.rss_max_kb.max(rss);
        self.stats.rss_last_kb = rss;
        if rss > self.stats.rss_first_kb + RSS_GROWTH_LIMIT_KB {
            return Err(format!(
                "broker RSS grew from {} MiB to {} MiB with its queues deleted and no connection open",
                self.stats.rss_first_kb / 1024,
                rss / 1024
            ));
        }
        self.check_broker()
    }
}

fn rss_kb(pid: i32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("broker gone: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/PID/status".into())
}

/// One request to the broker's admin socket (what warrenctl does).
fn admin(data_dir: &Path, verb: &str, args: &[&str]) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(data_dir.join("warren.sock")).map_err(|e| format!("admin socket: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut line = serde_json::json!({ "verb": verb, "args": args }).to_string().into_bytes();
    line.push(b'\n');
    s.write_all(&line).map_err(|e| format!("admin {verb}: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("admin {verb} got no answer within 10 s: {e}"))?;
    let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| format!("admin {verb}: {e}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("admin {verb} {args:?}: {e}"));
    }
    Ok(v)
}

fn rows(v: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    v.get("rows")
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|row| row.as_array().cloned()).collect())
        .unwrap_or_default()
}

/// The handshake a well-behaved client sends (PLAIN guest/guest, the broker's limits, vhost "/").
fn handshake_bytes(out: &mut Vec<u8>) {
    out.extend_from_slice(PROTOCOL_HEADER);
    let props = Args::bare().table(|_| {});
    let mut start_ok = Args::method(10, 11);
    start_ok.buf.extend_from_slice(&props.buf);
    start_ok.short(b"PLAIN").long(b"\0guest\0guest").short(b"en_US").frame(0).encode(out);
    Args::method(10, 31).u16(0).u32(0).u16(0).frame(0).encode(out);
    Args::method(10, 40).short(b"/").short(b"").bit(false).frame(0).encode(out);
    Args::method(20, 10).short(b"").frame(1).encode(out);
}

/// A new connection completes the handshake, declares a queue on each shard (most likely) and
/// closes, within ANSWER_WITHIN; returns how long it took.
fn fresh_declare(addr: SocketAddr) -> Result<Duration, String> {
    let started = Instant::now();
    let mut out = Vec::new();
    handshake_bytes(&mut out);
    let names: [&[u8]; 4] = [b"fuzz-alive-a", b"fuzz-alive-b", b"fuzz-alive-c", b"fuzz-alive-d"];
    for q in names {
        let a = Args::method(50, 10).u16(0).short(q).bit(false).bit(false).bit(false).bit(true).bit(false);
        a.table(|_| {}).frame(1).encode(&mut out);
    }
    Args::method(10, 50).u16(200).short(b"").u16(0).u16(0).frame(0).encode(&mut out);
    let mut p = Peer::connect(addr, out, 1 << 16, false)?;
    p.probing = true;
    drive(std::slice::from_mut(&mut p), started + ANSWER_WITHIN, |p| p.eof)?;
    if !(p.close_ok && p.declare_oks == names.len()) {
        return Err(format!(
            "a fresh connection did not get its handshake, {} queue.declare-oks and close-ok within {:?} \
             (open-ok {}, declare-oks {}, connection.close {:?}, close-ok {}, socket closed {})",
            names.len(),
            ANSWER_WITHIN,
            p.open_ok,
            p.declare_oks,
            p.conn_close,
            p.close_ok,
            p.eof
        ));
    }
    Ok(started.elapsed())
}

/// Deletes the exchanges the sessions declare (their bindings go with them).
fn delete_exchanges(addr: SocketAddr) -> Result<(), String> {
    let mut out = Vec::new();
    handshake_bytes(&mut out);
    for x in session::OWN_EXCHANGES {
        Args::method(40, 20).u16(0).short(x.as_bytes()).bit(false).bit(false).frame(1).encode(&mut out);
    }
    Args::method(10, 50).u16(200).short(b"").u16(0).u16(0).frame(0).encode(&mut out);
    let mut p = Peer::connect(addr, out, 1 << 16, false)?;
    p.probing = true;
    drive(std::slice::from_mut(&mut p), Instant::now() + Duration::from_secs(10), |p| p.eof)?;
    if !p.close_ok {
        return Err(format!("deleting the fuzzed exchanges failed: connection.close {:?}", p.conn_close));
    }
    Ok(())
}

/// One client connection of a case, and what the broker has said on it so far.
struct Peer {
    stream: TcpStream,
    out: Vec<u8>,
    sent: usize,
    chunk: usize,
    abrupt: bool,
    write_dead: bool,
    input: Vec<u8>,
    eof: bool,
    /// The socket ended with an error (a reset) rather than a FIN.
    reset: bool,
    /// The broker answered a bad protocol header with its own.
    header_reply: bool,
    open_ok: bool,
    conn_close: Option<u16>,
    close_ok: bool,
    probing: bool,
    probe_answered: bool,
    declare_oks: usize,
    channel_close_codes: Vec<u16>,
    methods: BTreeMap<(u16, u16), u64>,
    /// Channels the broker closed, until close-ok or open-ok on them.
    closed: HashSet<u16>,
}

impl Peer {
    fn connect(addr: SocketAddr, out: Vec<u8>, chunk: usize, abrupt: bool) -> Result<Self, String> {
        let stream = TcpStream::connect_timeout(&addr, ANSWER_WITHIN).map_err(|e| format!("connect: {e}"))?;
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        Ok(Peer {
            stream,
            out,
            sent: 0,
            chunk,
            abrupt,
            write_dead: false,
            input: Vec::new(),
            eof: false,
            reset: false,
            header_reply: false,
            open_ok: false,
            conn_close: None,
            close_ok: false,
            probing: false,
            probe_answered: false,
            declare_oks: 0,
            channel_close_codes: Vec::new(),
            methods: BTreeMap::new(),
            closed: HashSet::new(),
        })
    }

    /// Appends channel.open on the probe channel and connection.close.
    fn probe(&mut self) {
        Args::method(20, 10).short(b"").frame(PROBE_CHANNEL).encode(&mut self.out);
        Args::method(10, 50).u16(200).short(b"").u16(0).u16(0).frame(0).encode(&mut self.out);
        self.probing = true;
    }

    /// Writes and reads what the socket allows now; whether anything moved.
    fn step(&mut self) -> Result<bool, String> {
        let mut moved = false;
        while !self.write_dead && self.sent < self.out.len() {
            let end = self.out.len().min(self.sent + self.chunk);
            match self.stream.write(&self.out[self.sent..end]) {
                Ok(n) => {
                    self.sent += n;
                    moved = true;
                    if self.chunk < 1 << 16 {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.write_dead = true,
            }
        }
        let mut buf = [0u8; 64 * 1024];
        while !self.eof {
            match self.stream.read(&mut buf) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.input.extend_from_slice(&buf[..n]);
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.eof = true;
                    self.reset = true;
                }
            }
        }
        self.check_input()?;
        Ok(moved)
    }

    /// Parses and checks every whole frame the broker sent.
    fn check_input(&mut self) -> Result<(), String> {
        let mut at = 0;
        if !self.header_reply && self.input.len() >= 4 && &self.input[..4] == b"AMQP" {
            if self.input.len() < 8 {
                return Ok(());
            }
            if &self.input[..8] != PROTOCOL_HEADER {
                return Err(format!("the broker sent a protocol header {:?}", &self.input[..8]));
            }
            if &self.out[..8.min(self.out.len())] == PROTOCOL_HEADER {
                return Err("the broker answered a good protocol header with its own".into());
            }
            self.header_reply = true;
            at = 8;
        }
        loop {
            let rest = &self.input[at..];
            if rest.len() < 7 {
                break;
            }
            let kind = rest[0];
            let channel = u16::from_be_bytes([rest[1], rest[2]]);
            let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]) as usize;
            if !matches!(kind, METHOD | 2 | 3 | HEARTBEAT) || size > 131_072 {
                return Err(format!("the broker sent a frame of type {kind} and size {size}"));
            }
            if rest.len() < size + 8 {
                break;
            }
            if rest[7 + size] != FRAME_END {
                return Err("the broker sent a frame without its end octet".into());
            }
            let payload = bytes::Bytes::copy_from_slice(&rest[7..7 + size]);
            at += size + 8;
            self.on_frame(kind, channel, payload)?;
        }
        self.input.drain(..at);
        Ok(())
    }

    fn on_frame(&mut self, kind: u8, channel: u16, payload: bytes::Bytes) -> Result<(), String> {
        let method = if kind == METHOD {
            Some(
                Method::decode(payload.clone())
                    .map_err(|e| format!("the broker sent a method that does not decode: {e:?}"))?,
            )
        } else {
            None
        };
        if self.conn_close.is_some() && !matches!(method, Some(Method::ConnectionCloseOk(_))) {
            return Err(format!("the broker sent {method:?} (frame type {kind}) after its connection.close"));
        }
        if kind == HEARTBEAT && channel != 0 {
            return Err(format!("the broker sent a heartbeat on channel {channel}"));
        }
        if channel == 0 && kind != HEARTBEAT && method.as_ref().is_none_or(|m| m.id().0 != 10) {
            return Err(format!("the broker sent {method:?} (frame type {kind}) on channel 0"));
        }
        if channel != 0 && method.as_ref().is_some_and(|m| m.id().0 == 10) {
            return Err(format!("the broker sent {method:?} on channel {channel}"));
        }
        if let Some(m) = &method {
            *self.methods.entry(m.id()).or_default() += 1;
        }
        let Some(m) = method else {
            if self.closed.contains(&channel) {
                return Err(format!(
                    "the broker sent content (frame type {kind}) on channel {channel} after closing it"
                ));
            }
            return Ok(());
        };
        match m {
            Method::ConnectionOpenOk(_) => self.open_ok = true,
            Method::ConnectionClose(c) => {
                let ok = HARD.contains(&c.reply_code) || (c.reply_code == 403 && !self.open_ok);
                if !ok {
                    return Err(format!("connection.close with reply code {}: {c:?}", c.reply_code));
                }
                self.conn_close = Some(c.reply_code);
            }
            Method::ConnectionCloseOk(_) => self.close_ok = true,
            Method::ChannelClose(c) => {
                if !SOFT.contains(&c.reply_code) {
                    return Err(format!("channel.close on channel {channel} with reply code {}: {c:?}", c.reply_code));
                }
                if !self.closed.insert(channel) {
                    return Err(format!("a second channel.close on channel {channel}: {c:?}"));
                }
                self.channel_close_codes.push(c.reply_code);
            }
            Method::ChannelCloseOk(_) => {
                self.closed.remove(&channel);
            }
            Method::ChannelOpenOk(_) => {
                self.closed.remove(&channel);
                if channel == PROBE_CHANNEL && self.probing {
                    self.probe_answered = true;
                }
            }
            Method::QueueDeclareOk(_) => self.declare_oks += 1,
            m if self.closed.contains(&channel) => {
                return Err(format!("the broker sent {m:?} on channel {channel} after closing it"));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Steps every peer until each satisfies `done` or the deadline passes.
fn drive(peers: &mut [Peer], deadline: Instant, done: impl Fn(&Peer) -> bool) -> Result<(), String> {
    loop {
        let mut moved = false;
        for p in peers.iter_mut() {
            moved |= p.step()?;
        }
        if peers.iter().all(&done) || Instant::now() > deadline {
            return Ok(());
        }
        if !moved {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
