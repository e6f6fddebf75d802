//! Messages crossing shards through a real Rust client (lapin): a publisher's connection on one
//! shard, the queue on the other, consumers on both.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::lapin_on_shard::{connect_on_shard, queue_on_shard};
use common::start_broker;
use futures_lite::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

const MESSAGES: u64 = 100_000;

/// What the consumers received between them.
#[derive(Default)]
struct Seen {
    ids: HashSet<u64>,
    total: u64,
    /// Messages each consumer received: the one connected to shard 0, then the one on shard 1.
    per_consumer: [u64; 2],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_messages_cross_shards_in_order_once_each() {
    let b = start_broker(2);
    let publisher = connect_on_shard(&b, 0).await;
    let consumer_conns = [connect_on_shard(&b, 0).await, connect_on_shard(&b, 1).await];
    let queue = queue_on_shard("cross", 1, 2);

    let pch = publisher.create_channel().await.unwrap();
    pch.queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    assert!(b.wait_log(0, &format!("queue '{queue}' in vhost '/' created on shard 1")).is_some());

    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = Vec::new();
    for (i, conn) in consumer_conns.iter().enumerate() {
        let ch = conn.create_channel().await.unwrap();
        ch.basic_qos(200, BasicQosOptions::default()).await.unwrap();
        let mut consumer = ch
            .basic_consume(
                queue.as_str().into(),
                format!("c{i}").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let seen = seen.clone();
        tasks.push(tokio::spawn(async move {
            let mut last: Option<u64> = None;
            while let Some(d) = consumer.next().await {
                let d = d.expect("delivery");
                let n = u64::from_be_bytes(d.data[..8].try_into().unwrap());
                assert!(last.is_none_or(|l| n > l), "consumer {i} got {n} after {last:?}");
                last = Some(n);
                d.ack(BasicAckOptions::default()).await.unwrap();
                let mut s = seen.lock().unwrap();
                assert!(s.ids.insert(n), "message {n} delivered twice");
                s.total += 1;
                s.per_consumer[i] += 1;
                if s.total == MESSAGES {
                    break;
                }
            }
        }));
    }

    // Bounded: a broker that stopped reading the publisher would otherwise hang the test forever.
    tokio::time::timeout(Duration::from_secs(120), async {
        for n in 0..MESSAGES {
            let props = BasicProperties::default();
            pch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &n.to_be_bytes(),
                props,
            )
            .await
            .unwrap();
        }
    })
    .await
    .expect("publishing 100k messages stalled for 120 s");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let arrived = seen.lock().unwrap().total;
        if arrived == MESSAGES {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "only {arrived} of {MESSAGES} arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The consumer that saw the last message has stopped; the other waits for more.
    for t in tasks {
        if t.is_finished() {
            t.await.expect("consumer task");
        } else {
            t.abort();
        }
    }
    let s = seen.lock().unwrap();
    assert_eq!((s.total, s.ids.len() as u64), (MESSAGES, MESSAGES));
    // Both consumers (one per shard) took part. This used to be checked only for the consumers
    // whose task had finished, which is just the one that took the last message: it could not fail.
    assert!(s.per_consumer.iter().all(|&n| n > 0), "messages per consumer (shard 0, shard 1): {:?}", s.per_consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_queues_live_on_both_shards() {
    let b = start_broker(2);
    let c0 = connect_on_shard(&b, 0).await;
    let _c1 = connect_on_shard(&b, 1).await;
    let ch = c0.create_channel().await.unwrap();
    for i in 0..16 {
        ch.queue_declare(format!("spread-{i}").into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
    }
    let lines = b.log_lines();
    for shard in 0..2 {
        let suffix = format!("created on shard {shard}");
        assert!(
            lines.iter().any(|l| l.contains("queue 'spread-") && l.ends_with(&suffix)),
            "no queue on shard {shard}"
        );
    }
}
