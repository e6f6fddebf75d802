//! A bounded soak test (~30 s): 2 shards, 4 publishers with confirms, 4 consumers that ack, nack
//! and reject at random and whose connections are dropped at random. At the end every confirmed
//! message was acked exactly once, and every repeated delivery carried redelivered=true.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::start_broker;
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{self, FrameKind, put_content, put_method};
use warren::protocol::methods::{basic, confirm, queue};

const QUEUES: u64 = 4;
const PUBLISH_FOR: Duration = Duration::from_secs(20);
const DRAIN_WITHIN: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Ledger {
    confirmed: HashSet<u64>,
    seen: HashSet<u64>,
    acked: HashMap<u64, u32>,
    violations: Vec<String>,
    redeliveries: u64,
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn publisher(addr: SocketAddr, p: u64, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) {
    let mut c = SyncClient::connect(addr, "guest", "guest", "/").unwrap();
    c.open_channel(1).unwrap();
    c.call(1, &Method::ConfirmSelect(confirm::Select { nowait: false })).unwrap();
    let confirmed_upto = Arc::new(AtomicU64::new(0));
    let mut reader = c.reader().unwrap();
    let upto = confirmed_upto.clone();
    let acks = std::thread::spawn(move || {
        while let Ok((_, m)) = reader.recv_method() {
            match m {
                Method::BasicAck(a) => upto.store(a.delivery_tag, Ordering::SeqCst),
                Method::BasicNack(n) => panic!("broker nacked {n:?}"),
                _ => {}
            }
        }
    });
    let mut sent = 0u64;
    let mut recorded = 0u64;
    let record = |upto: u64, recorded: &mut u64| {
        let mut l = ledger.lock().unwrap();
        for seq in *recorded + 1..=upto {
            l.confirmed.insert((p << 32) | seq);
        }
        *recorded = upto;
    };
    while !stop.load(Ordering::Relaxed) {
        if sent - confirmed_upto.load(Ordering::SeqCst) > 200 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let mut out = BytesMut::new();
        for _ in 0..50 {
            sent += 1;
            let id = (p << 32) | sent;
            let q = format!("soak-{}", id % QUEUES);
            put_method(
                &mut out,
                1,
                &Method::BasicPublish(basic::Publish { routing_key: q.try_into().unwrap(), ..Default::default() }),
            );
            put_content(&mut out, 1, &[0x10, 0, 2], &id.to_be_bytes(), 131072);
        }
        c.stream.write_all(&out).unwrap();
        record(confirmed_upto.load(Ordering::SeqCst), &mut recorded);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while confirmed_upto.load(Ordering::SeqCst) < sent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    record(confirmed_upto.load(Ordering::SeqCst), &mut recorded);
    c.stream.shutdown(Shutdown::Both).ok();
    acks.join().unwrap();
}

/// One consumer connection's life: consume all queues, settle at random, and (unless the drain
/// phase has begun) drop the connection after a random number of deliveries. Returns whether it
/// was dropped.
fn consumer_session(addr: SocketAddr, rng: &mut Rng, ledger: &Mutex<Ledger>, done: &AtomicBool, draining: &AtomicBool) {
    let mut c = SyncClient::connect(addr, "guest", "guest", "/").unwrap();
    c.open_channel(1).unwrap();
    c.call(1, &Method::BasicQos(basic::Qos { prefetch_count: 20, ..Default::default() })).unwrap();
    // nowait: deliveries from the first queue may arrive before the next consume's reply.
    let mut out = BytesMut::new();
    for q in 0..QUEUES {
        let consume = basic::Consume {
            queue: format!("soak-{q}"),
            consumer_tag: format!("c{q}"),
            nowait: true,
            ..Default::default()
        };
        put_method(&mut out, 1, &Method::BasicConsume(consume));
    }
    c.stream.write_all(&out).unwrap();
    c.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let lifetime = 200 + rng.next() % 2000;
    let (mut handled, mut buf, mut chunk) = (0u64, std::mem::take(&mut c.buf), vec![0u8; 1 << 16]);
    let mut current: Option<basic::Deliver> = None;
    while !done.load(Ordering::Relaxed) {
        if handled >= lifetime && !draining.load(Ordering::Relaxed) {
            // Dropped without connection.close: FIN after our last acks, then read to EOF so the
            // broker has seen every byte we wrote before it notices we are gone.
            c.stream.shutdown(Shutdown::Write).unwrap();
            c.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            while matches!(c.stream.read(&mut chunk), Ok(n) if n > 0) {}
            return;
        }
        match c.stream.read(&mut chunk) {
            Ok(0) => panic!("broker closed a consumer connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => continue,
        }
        let mut out = BytesMut::new();
        while let Some(f) = frame::parse(&mut buf, 0).unwrap() {
            match f.kind {
                FrameKind::Method => match Method::decode(f.payload).unwrap() {
                    Method::BasicDeliver(d) => current = Some(d),
                    m => panic!("unexpected {m:?}"),
                },
                FrameKind::Body => {
                    let d = current.take().expect("body after deliver");
                    let id = u64::from_be_bytes(f.payload[..8].try_into().unwrap());
                    {
                        let mut l = ledger.lock().unwrap();
                        if !l.seen.insert(id) {
                            l.redeliveries += 1;
                            if !d.redelivered {
                                l.violations.push(format!("message {id} delivered again without redelivered"));
                            }
                        }
                        if l.acked.contains_key(&id) {
                            l.violations.push(format!("message {id} delivered after it was acked"));
                        }
                    }
                    let roll = rng.next() % 100;
                    let m = if roll < 75 {
                        *ledger.lock().unwrap().acked.entry(id).or_default() += 1;
                        Method::BasicAck(basic::Ack { delivery_tag: d.delivery_tag, multiple: false })
                    } else if roll < 90 {
                        Method::BasicNack(basic::Nack { delivery_tag: d.delivery_tag, multiple: false, requeue: true })
                    } else {
                        Method::BasicReject(basic::Reject { delivery_tag: d.delivery_tag, requeue: true })
                    };
                    put_method(&mut out, 1, &m);
                    handled += 1;
                }
                FrameKind::Header | FrameKind::Heartbeat => {}
            }
        }
        if !out.is_empty() {
            c.stream.write_all(&out).unwrap();
        }
    }
}

#[test]
fn confirmed_messages_are_acked_exactly_once_through_random_settles_and_dropped_connections() {
    let b = start_broker(2);
    let addr = b.addr;
    let mut admin = SyncClient::connect(addr, "guest", "guest", "/").unwrap();
    admin.open_channel(1).unwrap();
    for q in 0..QUEUES {
        admin
            .call(1, &Method::QueueDeclare(queue::Declare { queue: format!("soak-{q}"), ..Default::default() }))
            .unwrap();
    }
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let draining = Arc::new(AtomicBool::new(false));
    let sessions = Arc::new(AtomicU64::new(0));
    let consumers: Vec<_> = (0..4u64)
        .map(|i| {
            let (ledger, done, draining, sessions) = (ledger.clone(), done.clone(), draining.clone(), sessions.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (i + 1).wrapping_mul(0x1234_5678_9ABC_DEF1));
                while !done.load(Ordering::Relaxed) {
                    consumer_session(addr, &mut rng, &ledger, &done, &draining);
                    sessions.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let publishers: Vec<_> = (0..4u64)
        .map(|p| {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            std::thread::spawn(move || publisher(addr, p, ledger, stop))
        })
        .collect();

    std::thread::sleep(PUBLISH_FOR);
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.join().unwrap();
    }
    // Stop dropping connections and let the consumers ack everything that is left.
    draining.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + DRAIN_WITHIN;
    loop {
        let all_acked = {
            let l = ledger.lock().unwrap();
            l.confirmed.iter().all(|id| l.acked.contains_key(id))
        };
        if all_acked || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(300));
    done.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().unwrap();
    }

    let l = ledger.lock().unwrap();
    assert!(
        l.violations.is_empty(),
        "{} violations, first: {:?}",
        l.violations.len(),
        &l.violations[..l.violations.len().min(5)]
    );
    assert!(l.confirmed.len() > 1000, "only {} messages confirmed", l.confirmed.len());
    let missing: Vec<_> = l.confirmed.iter().filter(|id| !l.acked.contains_key(id)).take(5).collect();
    assert!(missing.is_empty(), "confirmed but never acked, e.g. {missing:?}");
    let twice: Vec<_> = l.acked.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "acked more than once: {twice:?}");
    assert!(sessions.load(Ordering::Relaxed) > 8, "too few dropped connections to mean anything");
    assert!(l.redeliveries > 0, "nothing was redelivered");
    eprintln!(
        "soak: {} confirmed, {} redeliveries, {} consumer sessions",
        l.confirmed.len(),
        l.redeliveries,
        sessions.load(Ordering::Relaxed)
    );
}
