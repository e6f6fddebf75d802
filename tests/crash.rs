//! Crash safety: a confirming publisher and an acking consumer run while the broker is SIGKILLed
//! at random moments and restarted on the same data dir; at the end every confirmed message is in
//! the queue (or was acked by the consumer), once, in publish order. Rounds: WARREN_CRASH_ROUNDS
//! (default 4; scripts/crash-test.sh runs many more). Every third message goes through a durable
//! fanout exchange with a 255-byte routing key that is not UTF-8; it must come back with exactly
//! that exchange and key.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use common::{TempDir, start_broker_with};
use std::io::Write;
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{FrameKind, put_content, put_method};
use warren::protocol::methods::{basic, confirm, exchange, queue};
use warren::protocol::shortstr::ShortStr;

const PERSISTENT: [u8; 3] = [0x10, 0x00, 2];
const QUEUE: &str = "crash";
const FANOUT: &str = "crash-fanout";

/// Message `n`'s exchange and routing key: every third one through the fanout exchange with 255
/// bytes of key holding 0xFF, 0xFE and 0x80 (not UTF-8); the others to the queue by name.
fn route(n: u64) -> (&'static str, Vec<u8>) {
    if !n.is_multiple_of(3) {
        return ("", QUEUE.as_bytes().to_vec());
    }
    let digits = n.to_string();
    let mut key = vec![b'a'; 255 - 3 - digits.len()];
    key.extend_from_slice(&[0xFF, 0xFE]);
    key.extend_from_slice(digits.as_bytes());
    key.push(0x80);
    (FANOUT, key)
}

/// A client with the queue, the exchange and its binding declared. It fails if the broker is
/// killed meanwhile: a round's kill can come before a slow (loaded) machine finished this.
fn client(addr: std::net::SocketAddr) -> std::io::Result<SyncClient> {
    let mut c = SyncClient::connect(addr, "guest", "guest", "/")?;
    c.open_channel(1)?;
    let declare = queue::Declare { queue: QUEUE.into(), durable: true, ..Default::default() };
    c.call(1, &Method::QueueDeclare(declare))?;
    let fanout =
        exchange::Declare { exchange: FANOUT.into(), kind: "fanout".into(), durable: true, ..Default::default() };
    c.call(1, &Method::ExchangeDeclare(fanout))?;
    let bind = queue::Bind { queue: QUEUE.into(), exchange: FANOUT.into(), ..Default::default() };
    c.call(1, &Method::QueueBind(bind))?;
    Ok(c)
}

/// Publishes numbered persistent messages from `next` on until the socket fails; returns the
/// numbers the broker confirmed.
fn publish_until_broken(addr: std::net::SocketAddr, mut next: u64) -> (Vec<u64>, u64) {
    // Killed before it could publish: nothing was confirmed.
    let Ok(mut c) = client(addr) else { return (Vec::new(), next) };
    if c.call(1, &Method::ConfirmSelect(confirm::Select { nowait: false })).is_err() {
        return (Vec::new(), next);
    }
    let mut reader = c.reader().expect("reader");
    let first = next;
    let acks = std::thread::spawn(move || {
        // Delivery tag t is message first + t - 1.
        let mut acked = BTreeSet::new();
        let mut covered = 0u64;
        while let Ok((_, m)) = reader.recv_method() {
            if let Method::BasicAck(a) = m {
                if a.multiple {
                    acked.extend(covered + 1..=a.delivery_tag);
                } else {
                    acked.insert(a.delivery_tag);
                }
                covered = covered.max(a.delivery_tag);
            }
        }
        acked.into_iter().map(|t| first + t - 1).collect::<Vec<_>>()
    });
    loop {
        let mut out = BytesMut::new();
        for _ in 0..50 {
            let (exchange, key) = route(next);
            let p = basic::Publish {
                exchange: exchange.into(),
                routing_key: ShortStr::copy_from_slice(&key).expect("255 bytes at most"),
                ..Default::default()
            };
            put_method(&mut out, 1, &Method::BasicPublish(p));
            put_content(&mut out, 1, &PERSISTENT, next.to_string().as_bytes(), 131072);
            next += 1;
        }
        if c.stream.write_all(&out).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (acks.join().expect("ack reader"), next)
}

/// Consumes and acks until the socket fails; returns the numbers it acked.
fn consume_until_broken(addr: std::net::SocketAddr, stop: Arc<AtomicBool>, acked: Arc<Mutex<Vec<u64>>>) {
    let Ok(mut c) = client(addr) else { return };
    let qos = basic::Qos { prefetch_count: 50, ..Default::default() };
    let consume = basic::Consume { queue: QUEUE.into(), ..Default::default() };
    if c.call(1, &Method::BasicQos(qos)).is_err() || c.call(1, &Method::BasicConsume(consume)).is_err() {
        return;
    }
    let mut tag = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(f) = c.recv() else { return };
        match f.kind {
            FrameKind::Method => {
                if let Ok(Method::BasicDeliver(d)) = Method::decode(f.payload) {
                    tag = d.delivery_tag;
                }
            }
            FrameKind::Body => {
                let n: u64 = std::str::from_utf8(&f.payload).expect("utf8").parse().expect("number");
                let ack = basic::Ack { delivery_tag: tag, multiple: false };
                if c.send(1, &Method::BasicAck(ack)).is_err() {
                    return;
                }
                // Counted as acked only once the ack is written; it may still be lost in the crash.
                acked.lock().expect("lock").push(n);
            }
            _ => {}
        }
    }
}

/// Every message left in the queue: (number, redelivered), via basic.get with acks.
fn drain(addr: std::net::SocketAddr) -> Vec<(u64, bool)> {
    let mut c = client(addr).expect("client");
    let mut out = Vec::new();
    loop {
        match c.call(1, &Method::BasicGet(basic::Get { queue: QUEUE.into(), no_ack: false, ..Default::default() })) {
            Ok(Method::BasicGetOk(ok)) => {
                let body = loop {
                    let f = c.recv().expect("body");
                    if f.kind == FrameKind::Body {
                        break f.payload;
                    }
                };
                let n: u64 = std::str::from_utf8(&body).expect("utf8").parse().expect("number");
                let (exchange, key) = route(n);
                assert_eq!(ok.exchange, exchange, "message {n}");
                assert_eq!(ok.routing_key.as_bytes(), &key[..], "message {n}: routing key changed");
                out.push((n, ok.redelivered));
                let mut buf = BytesMut::new();
                put_method(
                    &mut buf,
                    1,
                    &Method::BasicAck(basic::Ack { delivery_tag: ok.delivery_tag, multiple: false }),
                );
                c.stream.write_all(&buf).expect("ack");
            }
            Ok(Method::BasicGetEmpty(_)) => return out,
            other => panic!("basic.get: {other:?}"),
        }
    }
}

#[test]
fn confirmed_messages_survive_sigkill_at_random_moments() {
    let rounds: usize = std::env::var("WARREN_CRASH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    // Small segments, so rotation and deletion of settled segments happen between the crashes; a
    // small memory limit, so the backlog pages to disk and recovery pages it again.
    let config = TempDir::new("crash-config");
    let config_file = config.0.join("warren.toml");
    std::fs::write(&config_file, "segment_bytes = 65536\nmemory_limit = 524288\n").expect("config");
    let mut b = start_broker_with(2, &["--config", config_file.to_str().expect("path")]);
    let (mut confirmed, mut consumed) = (Vec::new(), Vec::new());
    let (mut next, mut paged_rounds) = (0u64, 0);
    let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ std::process::id() as u64;
    for round in 0..rounds {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let addr = b.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let consumer = (round % 2 == 1).then(|| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || consume_until_broken(addr, stop, acked))
        });
        let publisher = std::thread::spawn(move || publish_until_broken(addr, next));
        std::thread::sleep(Duration::from_millis(150 + rng % 600));
        let paged = |b: &common::TestBroker| b.log_lines().iter().any(|l| l.contains("paging new messages to disk"));
        if round == 0 {
            // No consumer in this round: the backlog grows until it pages. Crash only once it has,
            // so a paged backlog is always recovered (a short random sleep alone left it to timing:
            // 5 of 20 loaded runs never paged).
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while !paged(&b) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        paged_rounds += paged(&b) as usize;
        b.kill();
        stop.store(true, Ordering::Relaxed);
        let (c, n) = publisher.join().expect("publisher");
        if let Some(t) = consumer {
            t.join().expect("consumer");
        }
        eprintln!(
            "round {round}: {} published, {} confirmed, {} acked by the consumer",
            n - next,
            c.len(),
            acked.lock().unwrap().len()
        );
        next = n;
        confirmed.extend(c);
        consumed.extend(acked.lock().expect("lock").iter().copied());
        b.restart();
    }
    let left = drain(b.addr);
    let numbers: Vec<u64> = left.iter().map(|&(n, _)| n).collect();
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "messages out of order or repeated: {numbers:?}");
    let present: BTreeSet<u64> = numbers.iter().copied().chain(consumed.iter().copied()).collect();
    let lost: Vec<u64> = confirmed.iter().copied().filter(|n| !present.contains(n)).collect();
    assert!(lost.is_empty(), "{} confirmed messages lost, e.g. {:?}", lost.len(), &lost[..lost.len().min(10)]);
    // Whatever comes back after a crash may have been delivered before it: redelivered is set.
    assert!(left.iter().all(|&(_, r)| r));
    assert!(confirmed.len() > 100, "too little was confirmed to mean anything: {}", confirmed.len());
    eprintln!("{} confirmed over {rounds} crashes; {} left in the queue, none lost", confirmed.len(), left.len());
    assert!(paged_rounds > 0, "the backlog never paged: the test lost part of its point");
}
