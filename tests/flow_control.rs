//! Publisher flow control: a consumed queue whose backlog passes `flow_backlog` pauses its
//! publishers until it drains; a queue without consumers takes everything.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{TempDir, start_broker_with};
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{put_content, put_method};
use warren::protocol::methods::{basic, queue};

const MESSAGES: usize = 20_000;

fn broker_with_backlog_limit(limit: u32) -> (common::TestBroker, TempDir) {
    let dir = TempDir::new("flowcfg");
    let cfg = dir.0.join("warren.toml");
    std::fs::write(&cfg, format!("flow_backlog = {limit}\n")).unwrap();
    let b = start_broker_with(1, &["--config", cfg.to_str().unwrap()]);
    (b, dir)
}

fn declare(c: &mut SyncClient, q: &str) -> u32 {
    match c.call(1, &Method::QueueDeclare(queue::Declare { queue: q.into(), ..Default::default() })).unwrap() {
        Method::QueueDeclareOk(ok) => ok.message_count,
        m => panic!("{m:?}"),
    }
}

/// Publishes MESSAGES 1 KiB messages on its own thread (more than socket buffers hold).
fn publish_in_background(addr: std::net::SocketAddr, q: &'static str) -> std::thread::JoinHandle<()> {
    let mut p = SyncClient::connect(addr, "guest", "guest", "/").unwrap();
    p.open_channel(1).unwrap();
    std::thread::spawn(move || {
        let body = vec![1u8; 1024];
        let mut out = BytesMut::new();
        for _ in 0..MESSAGES {
            put_method(
                &mut out,
                1,
                &Method::BasicPublish(basic::Publish { routing_key: q.into(), ..Default::default() }),
            );
            put_content(&mut out, 1, &[0, 0], &body, 131072);
        }
        p.stream.write_all(&out).unwrap();
        p.close().unwrap();
    })
}

#[test]
fn a_consumed_queue_over_its_backlog_limit_pauses_its_publisher() {
    let (b, _cfg) = broker_with_backlog_limit(1000);
    let mut admin = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    admin.open_channel(1).unwrap();
    declare(&mut admin, "slow");
    // A consumer that takes one message and never acks: the backlog can only grow.
    let mut consumer = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    consumer.open_channel(1).unwrap();
    consumer.call(1, &Method::BasicQos(basic::Qos { prefetch_count: 1, ..Default::default() })).unwrap();
    consumer.call(1, &Method::BasicConsume(basic::Consume { queue: "slow".into(), ..Default::default() })).unwrap();

    let from = b.log_len();
    let publisher = publish_in_background(b.addr, "slow");
    assert!(b.wait_log(from, "paused by flow control").is_some(), "publisher was never paused");
    let backlog = declare(&mut admin, "slow");
    assert!(backlog >= 1000, "backlog {backlog} never reached the limit");
    assert!(backlog < 3000, "backlog {backlog} ran far past the limit of 1000");
    assert!(!publisher.is_finished(), "publisher was never paused");

    // Without consumers the queue is no longer limited: the publisher resumes and finishes.
    consumer.call(1, &Method::BasicCancel(basic::Cancel { consumer_tag: String::new(), nowait: false })).ok();
    drop(consumer);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !publisher.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(publisher.is_finished(), "publisher still paused after the consumer left");
    publisher.join().unwrap();
    assert_eq!(declare(&mut admin, "slow") as usize, MESSAGES);
}

#[test]
fn a_queue_without_consumers_takes_every_message() {
    let (b, _cfg) = broker_with_backlog_limit(1000);
    let mut admin = SyncClient::connect(b.addr, "guest", "guest", "/").unwrap();
    admin.open_channel(1).unwrap();
    declare(&mut admin, "backlog");
    publish_in_background(b.addr, "backlog").join().unwrap();
    assert_eq!(declare(&mut admin, "backlog") as usize, MESSAGES);
}
