//! A connection whose socket is always readable must not starve the rest of its shard.

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::start_broker;
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{put_content, put_method};
use warren::protocol::methods::{basic, queue};

// Regression: the reader loop never yielded while its socket had data, so a publisher flooding one
// shard kept that shard's consumers (and its mesh) from running: ~0.1% of messages got through.
// It shows against the release build (scripts/test.sh sets WARREN_BIN to it); a debug broker is
// too slow to keep its socket always readable.
#[test]
fn a_flooding_publisher_does_not_starve_a_consumer_on_the_same_shard() {
    let b = start_broker(1);
    let mut setup = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    setup.open_channel(1).unwrap();
    setup.call(1, &Method::QueueDeclare(queue::Declare { queue: "flood".into(), ..Default::default() })).unwrap();

    let mut consumer = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    consumer.open_channel(1).unwrap();
    let consume = basic::Consume { queue: "flood".into(), no_ack: true, ..Default::default() };
    consumer.call(1, &Method::BasicConsume(consume)).unwrap();
    consumer.stream.set_read_timeout(Some(Duration::from_millis(50))).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut publisher = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    publisher.open_channel(1).unwrap();
    let flood = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut out = BytesMut::new();
            for _ in 0..500 {
                let p = basic::Publish { routing_key: "flood".into(), ..Default::default() };
                put_method(&mut out, 1, &Method::BasicPublish(p));
                put_content(&mut out, 1, &[0, 0], b"0123456789abcdef", 131072);
            }
            while !stop.load(Ordering::Relaxed) {
                if publisher.stream.write_all(&out).is_err() {
                    break;
                }
                sent.fetch_add(500, Ordering::Relaxed);
            }
        })
    };
    // Count content headers (one per delivery) that reach the consumer during the flood.
    let (mut headers, mut buf) = (0u64, BytesMut::new());
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut chunk = vec![0u8; 1 << 16];
    while Instant::now() < deadline {
        if let Ok(n) = consumer.stream.read(&mut chunk) {
            buf.extend_from_slice(&chunk[..n]);
            while let Ok(Some(f)) = warren::protocol::frame::parse(&mut buf, 0) {
                if f.kind == warren::protocol::frame::FrameKind::Header {
                    headers += 1;
                }
            }
        }
    }
    let published = sent.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    assert!(published > 10_000, "the flood itself was too slow to mean anything: {published}");
    assert!(headers * 5 > published, "consumer got {headers} of {published} published during the flood");
}
