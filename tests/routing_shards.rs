//! Routing across shards: the routing table is applied on every shard before -ok, and a message
//! routed to many queues shares one body.

mod common;

use std::time::Duration;

use common::lapin_on_shard::connect_on_shard;
use common::start_broker;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_made_on_one_shard_routes_a_publish_from_the_other_right_after_the_ok() {
    let b = start_broker(2);
    let on0 = connect_on_shard(&b, 0).await;
    let on1 = connect_on_shard(&b, 1).await;
    let admin = on0.create_channel().await.unwrap();
    let publisher = on1.create_channel().await.unwrap();
    publisher.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    for i in 0..50 {
        let (x, q) = (format!("fresh-x-{i}"), format!("fresh-q-{i}"));
        admin
            .exchange_declare(
                x.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        admin.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
        admin
            .queue_bind(
                q.as_str().into(),
                x.as_str().into(),
                "a.#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        // Straight after bind-ok, from the other shard: must route (mandatory would return it).
        let confirm = publisher
            .basic_publish(
                x.as_str().into(),
                "a.b".into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                b"m",
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack(), "round {i}: {confirm:?}");
        assert!(confirm.take_message().is_none(), "round {i}: message was returned as unroutable");
        assert_eq!(message_count(&admin, &q).await, 1, "round {i}");
    }
}

/// Ready messages in a queue, by passive declare.
async fn message_count(ch: &lapin::Channel, q: &str) -> u32 {
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(q.into(), passive, FieldTable::default()).await.unwrap().message_count()
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_to_queues_on_both_shards_shares_one_body() {
    const QUEUES: usize = 32;
    const BODY: usize = 8 << 20;
    let b = start_broker(2);
    let conn = connect_on_shard(&b, 0).await;
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    ch.exchange_declare("wide".into(), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    for i in 0..QUEUES {
        let q = format!("wide-{i}");
        ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
        ch.queue_bind(q.as_str().into(), "wide".into(), "".into(), QueueBindOptions::default(), FieldTable::default())
            .await
            .unwrap();
    }
    let lines = b.log_lines();
    for shard in 0..2 {
        assert!(lines.iter().any(|l| l.contains("queue 'wide-") && l.ends_with(&format!("on shard {shard}"))));
    }
    let before = rss_kib(b.pid());
    let body = vec![7u8; BODY];
    let confirm = ch
        .basic_publish("wide".into(), "".into(), BasicPublishOptions::default(), &body, BasicProperties::default())
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    for i in 0..QUEUES {
        let q = format!("wide-{i}");
        assert_eq!(message_count(&ch, &q).await, 1, "{q}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let grown = rss_kib(b.pid()).saturating_sub(before) as usize * 1024;
    eprintln!("broker RSS grew by {} KiB", grown >> 10);
    // One copy per queue would be QUEUES × 8 MiB = 256 MiB. The read buffer and the joined body
    // account for a few copies at most.
    assert!(
        grown < 10 * BODY,
        "broker RSS grew by {} MiB for one {} MiB message in {QUEUES} queues",
        grown >> 20,
        BODY >> 20
    );
}
