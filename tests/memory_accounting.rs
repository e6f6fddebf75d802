//! Memory the gauge must see: small messages a queue keeps must not pin the publisher's 64 KiB
//! read buffers, and message bytes held outside any queue (a body being assembled, an uncommitted
//! transaction) count toward the memory alarm.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{TempDir, start_broker_with};
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{put_content, put_method};
use warren::protocol::methods::{basic, queue, tx};

fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

fn depth(c: &mut SyncClient, q: &str) -> u32 {
    let passive = queue::Declare { queue: q.into(), passive: true, ..Default::default() };
    match c.call(1, &Method::QueueDeclare(passive)).unwrap() {
        Method::QueueDeclareOk(ok) => ok.message_count,
        m => panic!("{m:?}"),
    }
}

fn publish(out: &mut BytesMut, key: &'static str, body: &[u8]) {
    put_method(out, 1, &Method::BasicPublish(basic::Publish { routing_key: key.into(), ..Default::default() }));
    put_content(out, 1, &[0, 0], body, 131072);
}

#[test]
fn kept_small_messages_do_not_pin_their_read_buffers() {
    // The case: 2,000,000 publishes of 16 bytes, 1 in 100 routed to a queue. Each kept
    // message used to hold the whole read buffer it arrived in: +217 MB of RSS for 20,000
    // messages (2.4 MB by the gauge).
    const BATCHES: usize = 20_000;
    let b = start_broker_with(1, &[]);
    let mut c = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    c.open_channel(1).unwrap();
    c.call(1, &Method::QueueDeclare(queue::Declare { queue: "kept".into(), ..Default::default() })).unwrap();
    let mut batch = BytesMut::new();
    for i in 0..100 {
        publish(&mut batch, if i == 50 { "kept" } else { "nowhere" }, &[7u8; 16]);
    }
    let before = rss_bytes(b.pid());
    let mut p = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    p.open_channel(1).unwrap();
    for _ in 0..BATCHES {
        p.stream.write_all(&batch).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while depth(&mut c, "kept") < BATCHES as u32 {
        assert!(Instant::now() < deadline, "only {} of {BATCHES} arrived", depth(&mut c, "kept"));
        std::thread::sleep(Duration::from_millis(20));
    }
    let grown = rss_bytes(b.pid()).saturating_sub(before);
    eprintln!("RSS grew by {:.1} MB for {BATCHES} kept 16-byte messages", grown as f64 / 1048576.0);
    // 20,000 messages of ~130 bytes with their bookkeeping are a few MB; a pinned read buffer
    // each would be over 100 MB.
    assert!(grown < 48 << 20, "RSS grew by {} MB for {BATCHES} kept 16-byte messages", grown >> 20);
    assert_eq!(depth(&mut c, "kept"), BATCHES as u32);
}

fn broker_with_memory_limit(limit: u64) -> (common::TestBroker, TempDir) {
    let dir = TempDir::new("memcfg");
    let cfg = dir.0.join("warren.toml");
    std::fs::write(&cfg, format!("memory_limit = {limit}\n")).unwrap();
    (start_broker_with(1, &["--config", cfg.to_str().unwrap()]), dir)
}

#[test]
fn an_uncommitted_transaction_counts_toward_the_memory_limit() {
    let (b, _cfg) = broker_with_memory_limit(1 << 20);
    let mut p = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    p.open_channel(1).unwrap();
    p.call(1, &Method::QueueDeclare(queue::Declare { queue: "t".into(), ..Default::default() })).unwrap();
    p.call(1, &Method::TxSelect(tx::Select {})).unwrap();
    let mut out = BytesMut::new();
    for _ in 0..40 {
        publish(&mut out, "t", &[1u8; 64 << 10]);
    }
    let from = b.log_len();
    p.stream.write_all(&out).unwrap();
    // 2.5 MB held by the channel, none of it in a queue yet: the alarm must see it.
    assert!(b.wait_log(from, "low on memory").is_some(), "no memory alarm for 2.5 MB of uncommitted publishes");
}

#[test]
fn a_body_being_assembled_counts_toward_the_memory_limit() {
    let (b, _cfg) = broker_with_memory_limit(1 << 20);
    let mut p = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    p.open_channel(1).unwrap();
    // A 64 MiB message of which 3 MiB arrive, in 64 KiB body frames.
    let mut out = BytesMut::new();
    put_method(&mut out, 1, &Method::BasicPublish(basic::Publish { routing_key: "a".into(), ..Default::default() }));
    let mut whole = BytesMut::new();
    put_content(&mut whole, 1, &[0, 0], &vec![2u8; 64 << 20], 65536 + 8);
    // Header (7 + 14 + 1 bytes) and the first 48 body frames.
    out.extend_from_slice(&whole[..22 + 48 * (65536 + 8)]);
    let from = b.log_len();
    p.stream.write_all(&out).unwrap();
    assert!(b.wait_log(from, "low on memory").is_some(), "no memory alarm for 3 MB of a body being assembled");
}
