//! Queue extensions (issue 17) through lapin, a second client library next to pika's tests:
//! dead-lettering across shards with x-death, reject-publish nacks, and a durable priority
//! queue that keeps its order through kill -9 and recovery.

mod common;

use std::time::Duration;

use common::lapin_on_shard::queue_on_shard;
use common::start_broker;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

async fn channel(url: &str) -> (Connection, Channel) {
    let c = Connection::connect(url, ConnectionProperties::default()).await.unwrap();
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

async fn depth(ch: &Channel, q: &str) -> u32 {
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    ch.queue_declare(q.into(), passive, FieldTable::default()).await.unwrap().message_count()
}

async fn get_body(ch: &Channel, q: &str) -> Option<(Vec<u8>, BasicProperties)> {
    let m = ch.basic_get(q.into(), BasicGetOptions { no_ack: true }).await.unwrap()?;
    Some((m.delivery.data.clone(), m.delivery.properties.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_cross_to_a_dead_letter_queue_on_the_other_shard_with_x_death() {
    let b = start_broker(2);
    let (_c, ch) = channel(&b.url()).await;
    let (src, dst) = (queue_on_shard("ttl-src", 0, 2), queue_on_shard("ttl-dst", 1, 2));
    ch.exchange_declare("dlx".into(), ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default())
        .await
        .unwrap();
    ch.queue_declare(dst.as_str().into(), QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    ch.queue_bind(dst.as_str().into(), "dlx".into(), "".into(), QueueBindOptions::default(), FieldTable::default())
        .await
        .unwrap();
    let a = args(&[("x-dead-letter-exchange", AMQPValue::LongString("dlx".into()))]);
    ch.queue_declare(src.as_str().into(), QueueDeclareOptions::default(), a).await.unwrap();
    let props = BasicProperties::default().with_expiration("50".into());
    ch.basic_publish("".into(), src.as_str().into(), BasicPublishOptions::default(), b"late", props).await.unwrap();
    let mut waited = 0;
    while depth(&ch, &dst).await == 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    let (body, props) = get_body(&ch, &dst).await.expect("dead-lettered");
    assert_eq!(body, b"late");
    assert!(props.expiration().is_none(), "the expiration goes");
    let headers = props.headers().clone().unwrap();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else { panic!("{headers:?}") };
    let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first() else { panic!() };
    let field = |k: &str| first.inner().get(k).cloned();
    assert_eq!(field("reason"), Some(AMQPValue::LongString("expired".into())));
    assert_eq!(field("queue"), Some(AMQPValue::LongString(src.as_str().into())));
    assert_eq!(field("count"), Some(AMQPValue::LongLongInt(1)));
    assert_eq!(field("original-expiration"), Some(AMQPValue::LongString("50".into())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_publish_is_a_nack_and_the_next_confirm_an_ack() {
    let b = start_broker(2);
    let (_c, ch) = channel(&b.url()).await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    let a = args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ]);
    ch.queue_declare("one".into(), QueueDeclareOptions::default(), a).await.unwrap();
    let mut outcomes = Vec::new();
    for body in [&b"a"[..], b"b", b"c"] {
        let confirm = ch
            .basic_publish("".into(), "one".into(), BasicPublishOptions::default(), body, BasicProperties::default())
            .await
            .unwrap()
            .await
            .unwrap();
        outcomes.push(confirm.is_ack());
        if body == b"b" {
            get_body(&ch, "one").await.unwrap();
        }
    }
    assert_eq!(outcomes, [true, false, true]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_priority_queue_keeps_its_order_through_kill_and_recovery() {
    let mut b = start_broker(2);
    {
        let (_c, ch) = channel(&b.url()).await;
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare("prio".into(), durable, args(&[("x-max-priority", AMQPValue::ShortShortUInt(9))]))
            .await
            .unwrap();
        for (i, p) in [1u8, 9, 5, 9, 0, 5].into_iter().enumerate() {
            let props = BasicProperties::default().with_delivery_mode(2).with_priority(p);
            let body = format!("{p}-{i}");
            ch.basic_publish("".into(), "prio".into(), BasicPublishOptions::default(), body.as_bytes(), props)
                .await
                .unwrap()
                .await
                .unwrap();
        }
    }
    b.kill();
    b.restart();
    let (_c, ch) = channel(&b.url()).await;
    let mut got = Vec::new();
    while let Some((body, _)) = get_body(&ch, "prio").await {
        got.push(String::from_utf8(body).unwrap());
    }
    assert_eq!(got, ["9-1", "9-3", "5-2", "5-5", "1-0", "0-4"]);
}
