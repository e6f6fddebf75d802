//! Mutations of a session: of its frames (duplicated, dropped, reordered, moved to other channels,
//! spliced from another session, given lying sizes and body sizes) and of their bytes (bit flips,
//! length prefixes changed, payloads cut or extended), then of the whole byte stream.

use super::session::Session;
use super::wire::{Args, BODY, FRAME_END, Frame, HEADER, HEARTBEAT, METHOD, PROTOCOL_HEADER, Rng};

/// (class, method) ids a client may send, and some it may not.
const METHOD_IDS: &[(u16, u16)] = &[
    (10, 11),
    (10, 31),
    (10, 40),
    (10, 50),
    (10, 51),
    (10, 70),
    (10, 10),
    (10, 60),
    (20, 10),
    (20, 20),
    (20, 21),
    (20, 40),
    (20, 41),
    (30, 10),
    (40, 10),
    (40, 20),
    (40, 30),
    (40, 40),
    (50, 10),
    (50, 20),
    (50, 30),
    (50, 40),
    (50, 50),
    (60, 10),
    (60, 20),
    (60, 30),
    (60, 40),
    (60, 60),
    (60, 70),
    (60, 80),
    (60, 90),
    (60, 100),
    (60, 110),
    (60, 120),
    (85, 10),
    (90, 10),
    (90, 20),
    (90, 30),
    (60, 999),
    (0, 0),
    (65535, 65535),
];

fn interesting_u32(rng: &mut Rng, actual: u32) -> u32 {
    *rng.pick(&[
        0,
        1,
        actual.wrapping_add(1),
        actual.wrapping_sub(1),
        actual.wrapping_mul(2),
        255,
        256,
        4096,
        131_072,
        131_073,
        0x7FFF_FFFF,
        0x8000_0000,
        u32::MAX,
    ])
}

fn interesting_u64(rng: &mut Rng, actual: u64) -> u64 {
    *rng.pick(&[
        0,
        1,
        actual.wrapping_add(1),
        actual.wrapping_sub(1),
        128 << 20,
        (128 << 20) + 1,
        1 << 32,
        1 << 63,
        u64::MAX,
        u64::MAX - 1,
    ])
}

/// A frame of random shape: a known method with garbage arguments, or a random kind and payload.
fn random_frame(rng: &mut Rng, channels: &[u16]) -> Frame {
    let ch = if rng.coin() && !channels.is_empty() { *rng.pick(channels) } else { rng.below(4) as u16 };
    match rng.below(4) {
        0 => Frame::heartbeat(ch),
        1 => {
            let payload = {
                let n = rng.below(40) as usize;
                rng.bytes(n)
            };
            Frame::new(*rng.pick(&[METHOD, HEADER, BODY, 4, 0, 255]), ch, payload, Vec::new())
        }
        _ => {
            let (class, id) = *rng.pick(METHOD_IDS);
            let mut a = Args::method(class, id);
            let extra = {
                let n = rng.below(24) as usize;
                rng.bytes(n)
            };
            a.buf.extend_from_slice(&extra);
            a.frame(ch)
        }
    }
}

/// Applies one to five mutations to `s`, with `other` (another session) to splice from, and
/// returns the bytes to send.
pub fn mutate(rng: &mut Rng, s: Session, other: &Session) -> Vec<u8> {
    let mut frames = s.frames;
    let channels: Vec<u16> = frames.iter().map(|f| f.channel).collect();
    let mut stream_ops = Vec::new();
    for _ in 0..rng.range(1, 5) {
        let n = frames.len();
        if n == 0 {
            frames.push(random_frame(rng, &channels));
            continue;
        }
        let i = rng.below(n as u64) as usize;
        match rng.below(20) {
            0 | 1 => {
                // Bit flips in one payload.
                let f = &mut frames[i];
                for _ in 0..rng.range(1, 3) {
                    if !f.payload.is_empty() {
                        let at = rng.below(f.payload.len() as u64) as usize;
                        f.payload[at] ^= 1 << rng.below(8);
                    }
                }
            }
            2 | 3 => {
                // A length prefix inside the payload lies.
                let f = &mut frames[i];
                if let Some(l) = (!f.lens.is_empty()).then(|| *rng.pick(&f.lens)) {
                    if l.width == 1 && l.at < f.payload.len() {
                        f.payload[l.at] = *rng.pick(&[0u8, 1, 0x7F, 0x80, 0xFF, f.payload[l.at].wrapping_add(1)]);
                    } else if l.at + 4 <= f.payload.len() {
                        let old = u32::from_be_bytes(f.payload[l.at..l.at + 4].try_into().unwrap());
                        let v = interesting_u32(rng, old);
                        f.payload[l.at..l.at + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            4 => {
                // Payload cut short (its size field agrees).
                let f = &mut frames[i];
                let keep = rng.below(f.payload.len() as u64 + 1) as usize;
                f.payload.truncate(keep);
            }
            5 => {
                let extra = {
                    let n = rng.range(1, 16) as usize;
                    rng.bytes(n)
                };
                frames[i].payload.extend_from_slice(&extra);
            }
            6 => {
                let f = frames[i].clone();
                let at = rng.below(n as u64 + 1) as usize;
                frames.insert(at, f);
            }
            7 => {
                frames.remove(i);
            }
            8 => {
                let j = rng.below(n as u64) as usize;
                frames.swap(i, j);
            }
            9 => {
                frames[i].channel = match rng.below(4) {
                    0 => 0,
                    1 => rng.next() as u16,
                    2 => 65535,
                    _ => *rng.pick(&channels),
                };
            }
            10 => frames[i].kind = *rng.pick(&[METHOD, HEADER, BODY, HEARTBEAT, 0, 7, 9, 255]),
            11 => {
                // Splice: frames of another session inserted here, or replacing the tail.
                let from = rng.below(other.frames.len() as u64) as usize;
                let len = rng.range(1, 12) as usize;
                let part: Vec<Frame> = other.frames.iter().skip(from).take(len).cloned().collect();
                if rng.coin() {
                    frames.truncate(i);
                    frames.extend(part);
                } else {
                    frames.splice(i..i, part);
                }
            }
            12 => {
                let f = &mut frames[i];
                f.size_override = Some(interesting_u32(rng, f.payload.len() as u32));
            }
            13 => frames[i].end = *rng.pick(&[0u8, 0xCD, 0xCF, 0xFF]),
            14 => {
                // A content header whose body size lies (or a huge one).
                let at = frames.iter().position(|f| f.kind == HEADER && f.payload.len() >= 12).unwrap_or(i);
                let f = &mut frames[at];
                if f.payload.len() >= 12 {
                    let old = u64::from_be_bytes(f.payload[4..12].try_into().unwrap());
                    let v = interesting_u64(rng, old);
                    f.payload[4..12].copy_from_slice(&v.to_be_bytes());
                }
            }
            15 => {
                let f = random_frame(rng, &channels);
                frames.insert(i, f);
            }
            16 => {
                // The method id of a frame changed, its arguments kept.
                let f = &mut frames[i];
                if f.payload.len() >= 4 {
                    let (class, id) = *rng.pick(METHOD_IDS);
                    f.payload[..2].copy_from_slice(&class.to_be_bytes());
                    f.payload[2..4].copy_from_slice(&id.to_be_bytes());
                }
            }
            17 => {
                // A run of frames repeated (many publishes, many channel.opens).
                let len = rng.range(1, 4) as usize;
                let run: Vec<Frame> = frames.iter().skip(i).take(len).cloned().collect();
                let run_bytes: usize = run.iter().map(|f| f.payload.len() + 8).sum();
                let most = (2 << 20) / run_bytes.max(1);
                for _ in 0..rng.range(2, 50).min(most as u64) {
                    frames.extend(run.iter().cloned());
                }
            }
            _ => stream_ops.push(rng.below(3)),
        }
    }
    let mut out = PROTOCOL_HEADER.to_vec();
    if rng.one_in(60) {
        let at = rng.below(8) as usize;
        out[at] ^= 1 << rng.below(8);
    }
    for f in &frames {
        f.encode(&mut out);
    }
    for op in stream_ops {
        match op {
            0 => {
                let keep = rng.range(1, out.len() as u64) as usize;
                out.truncate(keep);
            }
            1 => {
                for _ in 0..rng.range(1, 4) {
                    let at = rng.range(8, out.len().max(9) as u64 - 1) as usize;
                    if at < out.len() {
                        out[at] ^= 1 << rng.below(8);
                    }
                }
            }
            _ => {
                // A frame end dropped or a stray byte inserted (after a truncation the stream
                // may be shorter than the protocol header).
                let at = (rng.range(8, out.len() as u64) as usize).min(out.len());
                if rng.coin() {
                    out.insert(at, FRAME_END);
                } else if at < out.len() {
                    out.remove(at);
                }
            }
        }
    }
    out
}

/// A session's bytes without mutation.
pub fn encode(s: &Session) -> Vec<u8> {
    let mut out = PROTOCOL_HEADER.to_vec();
    for f in &s.frames {
        f.encode(&mut out);
    }
    out
}
