//! The queue as a state machine, without an executor: order, paging, requeues, consumers and the
//! extensions (TTL, limits, priorities, dead-lettering, single active consumer).

use super::*;
use crate::broker::paging::{PagedMessage, RunFile};
use crate::protocol::properties::BasicProperties;
use crate::protocol::types::FieldValue;
use bytes::Bytes;

fn msg(body: &'static str) -> Arc<Message> {
    Arc::new(Message {
        exchange: "".into(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from_static(body.as_bytes()),
    })
}

/// A plain queue (not durable, exclusive or auto-delete), for tests here and in store/.
pub(crate) fn queue() -> Queue {
    with_args(&[])
}

/// A plain queue with these arguments.
fn with_args(args: &[(&'static str, FieldValue)]) -> Queue {
    let mut arguments = FieldTable::default();
    for (k, v) in args {
        arguments.insert(*k, v.clone());
    }
    let flags = QueueFlags { durable: false, exclusive: false, auto_delete: false, arguments };
    let parsed = QueueArgs::parse(&flags, "queue 'q' in vhost '/'").unwrap();
    Queue::new(1, "/".into(), "q".into(), flags, parsed, None)
}

fn drain(q: &mut Queue) -> Vec<Delivery> {
    let mut out = Vec::new();
    q.dispatch(100, |d| out.push(d));
    out
}

/// Message `i`: 1 KiB of its number.
pub(crate) fn big(i: u64) -> Arc<Message> {
    Arc::new(Message {
        exchange: "".into(),
        routing_key: "q".into(),
        properties: Bytes::from_static(&[0, 0]),
        body: Bytes::from(i.to_le_bytes().repeat(128)),
    })
}

/// A run file that keeps what it is given in memory and hands it back at once: queue logic
/// with paging, tested without files or an executor (store/page.rs tests the real one).
struct MemRun {
    keep: u64,
    msgs: std::cell::RefCell<std::collections::VecDeque<PagedMessage>>,
}

struct MemSpace(u64);

impl PageSpace for MemSpace {
    fn keep(&self) -> u64 {
        self.0
    }
    fn run_file(&self) -> RunFile {
        std::rc::Rc::new(MemRun { keep: self.0, msgs: Default::default() })
    }
}

impl crate::broker::paging::PagedRun for MemRun {
    fn append(&self, id: u64, seg: u32, redelivered: bool, msg: &Message) {
        self.msgs.borrow_mut().push_back(PagedMessage { id, seg, redelivered, msg: msg.compacted() });
    }
    fn keep(&self) -> u64 {
        self.keep
    }
    fn in_memory(&self) -> u64 {
        self.msgs.borrow().iter().map(|p| p.msg.footprint()).sum()
    }
    fn read(&self) -> crate::broker::paging::LocalFuture<Vec<PagedMessage>> {
        let batch: Vec<_> = {
            let mut msgs = self.msgs.borrow_mut();
            let n = msgs.len().min(100);
            msgs.drain(..n).collect()
        };
        Box::pin(std::future::ready(batch))
    }
    fn flushed(&self) -> crate::broker::paging::LocalFuture<()> {
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn a_paged_queue_keeps_order_through_page_ins_and_requeues() {
    let pages = MemSpace(1 << 20);
    let mut q = queue();
    for i in 1..=3000u64 {
        q.push(big(i), |id| (id % 2) as u32 * 7, Some(&pages));
    }
    assert_eq!(q.message_count(), 3000);
    assert!(q.paged_count() > 1500 && q.ready_bytes() < 2 << 20, "{} {}", q.paged_count(), q.ready_bytes());
    // What the run holds in memory counts (here: all of it, the fake never writes).
    assert!(q.bytes() > 3 << 20, "{}", q.bytes());
    q.push(big(3001), |_| 0, None);
    let (mut seen, mut requeued) = (Vec::new(), false);
    while seen.len() < 3001 {
        if let Some((file, serial)) = q.page_in_due() {
            q.paged_in(serial, futures_lite::future::block_on(file.read()));
        }
        let (id, m, _) = q.get(false).unwrap();
        seen.push((id, m.body[..8].to_vec()));
        if id == 1990 && !requeued {
            q.settle(id, Settle::Requeue);
            (requeued, _) = (true, seen.pop());
        }
    }
    let expect: Vec<_> = (1..=3001u64).map(|i| (i, i.to_le_bytes().to_vec())).collect();
    assert_eq!(seen, expect);
    assert_eq!((q.message_count(), q.paged_count()), (0, 0));
}

#[test]
fn sparse_kept_messages_are_copied_once_dense_ones_and_requeued_ones_as_due() {
    // One received buffer: messages cut from it 40 bytes apart arrived side by side; 4000
    // apart, with what lay between dropped or delivered.
    let buffer = Bytes::from(vec![7u8; 64 << 10]);
    let at = |offset: usize| {
        Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: buffer.slice(offset..offset + 2),
            body: buffer.slice(offset + 10..offset + 26),
        })
    };
    let mut q = queue();
    let copies = std::cell::Cell::new(0);
    let copy = |m: &Arc<Message>| {
        copies.set(copies.get() + 1);
        Arc::new(m.compacted())
    };
    for i in 0..3 {
        q.push(at(i * 40), |_| 0, None);
    }
    assert_eq!(q.compact_new(copy), 0, "a backlog of neighbours stays in its buffer");
    let sparse = [at(8000), at(12000)];
    for m in &sparse {
        q.push(m.clone(), |_| 0, None);
    }
    assert_eq!(q.compact_new(copy), 2);
    // Nothing new: nothing looked at or copied again.
    assert_eq!(q.compact_new(copy), 0);
    assert_eq!(copies.get(), 2);
    let got: Vec<_> = (0..5).map(|_| q.get(false).unwrap().1).collect();
    for (m, kept) in got[3..].iter().zip(&sparse) {
        assert!(!Arc::ptr_eq(m, kept) && m.body == kept.body);
    }
    // Taken before any look and requeued: copied on its way back.
    let fresh = at(20000);
    q.push(fresh.clone(), |_| 0, None);
    let (id, got, _) = q.get(false).unwrap();
    assert!(Arc::ptr_eq(&got, &fresh));
    q.settle(id, Settle::Requeue);
    let (_, again, redelivered) = q.get(false).unwrap();
    assert!(redelivered && !Arc::ptr_eq(&again, &fresh) && again.body == fresh.body);
}

#[test]
fn round_robin_within_prefetch() {
    let mut q = queue();
    q.add_consumer(Consumer::new(1, "a".into(), 1, 1, false, false, 1));
    q.add_consumer(Consumer::new(2, "b".into(), 1, 1, false, false, 1));
    for b in ["1", "2", "3"] {
        q.push(msg(b), |_| 0, None);
    }
    let d = drain(&mut q);
    assert_eq!(d.iter().map(|d| d.consumer).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(q.message_count(), 1);
    q.settle(d[1].msg_id, Settle::Ack);
    let d2 = drain(&mut q);
    assert_eq!(d2[0].consumer, 2);
}

#[test]
fn requeued_messages_return_to_their_place_marked_redelivered() {
    let mut q = queue();
    for b in ["1", "2", "3"] {
        q.push(msg(b), |_| 0, None);
    }
    let (id1, _, _) = q.get(false).unwrap();
    let (id2, _, _) = q.get(false).unwrap();
    q.settle(id2, Settle::Requeue);
    q.settle(id1, Settle::Return);
    let order: Vec<_> = std::iter::from_fn(|| q.get(true)).map(|(_, m, r)| (m.body.clone(), r)).collect();
    assert_eq!(
        order,
        [(Bytes::from_static(b"1"), false), (Bytes::from_static(b"2"), true), (Bytes::from_static(b"3"), false)]
    );
}

fn with_props(body: &'static str, p: BasicProperties) -> Arc<Message> {
    Arc::new(Message {
        exchange: "".into(),
        routing_key: "q".into(),
        properties: p.encode(),
        body: Bytes::from_static(body.as_bytes()),
    })
}

fn prio(body: &'static str, priority: u8) -> Arc<Message> {
    with_props(body, BasicProperties { priority: Some(priority), ..Default::default() })
}

fn expiring(body: &'static str, ms: &'static str) -> Arc<Message> {
    with_props(body, BasicProperties { expiration: Some(ms.into()), ..Default::default() })
}

fn bodies(q: &mut Queue) -> Vec<Bytes> {
    std::iter::from_fn(|| q.get(true)).map(|(_, m, _)| m.body.clone()).collect()
}

fn dead(q: &mut Queue) -> Vec<(Bytes, DeathReason)> {
    q.take_dead().into_iter().map(|d| (d.msg.body.clone(), d.reason)).collect()
}

fn dlx() -> (&'static str, FieldValue) {
    ("x-dead-letter-exchange", FieldValue::str("dlx"))
}

#[test]
fn messages_expire_at_the_head_by_queue_ttl_or_their_own_expiration_the_lower() {
    crate::clock::set(10);
    let mut q = with_args(&[("x-message-ttl", FieldValue::I32(1000)), dlx()]);
    q.push(msg("a"), |_| 0, None);
    q.push(expiring("b", "100"), |_| 0, None);
    crate::clock::set(500);
    q.push(msg("c"), |_| 0, None);
    assert_eq!(q.next_deadline(), Some(1011), "the head's expiry, once the clock is past it");
    crate::clock::set(1011);
    assert!(!q.on_timer(1011));
    // "b" expired at 110 but behind "a" it waited for the head (RabbitMQ does the same).
    assert_eq!(
        dead(&mut q),
        [(Bytes::from_static(b"a"), DeathReason::Expired), (Bytes::from_static(b"b"), DeathReason::Expired)]
    );
    assert_eq!(q.message_count(), 1);
    crate::clock::set(1502);
    assert_eq!(bodies(&mut q), Vec::<Bytes>::new(), "basic.get expires the head first");
    assert_eq!(dead(&mut q).len(), 1);
}

#[test]
fn a_ttl_of_zero_reaches_a_waiting_consumer_or_expires_at_once() {
    crate::clock::set(50);
    let mut q = with_args(&[dlx()]);
    q.push(expiring("gone", "0"), |_| 0, None);
    assert_eq!((q.message_count(), dead(&mut q).len()), (0, 1));
    q.add_consumer(Consumer::new(3, "c".into(), 1, 1, false, false, 1));
    q.push(expiring("taken", "0"), |_| 0, None);
    assert_eq!(drain(&mut q).len(), 1);
    // The consumer is full now: the next one expires.
    q.push(expiring("late", "0"), |_| 0, None);
    assert_eq!((q.message_count(), dead(&mut q)[0].0.clone()), (0, Bytes::from_static(b"late")));
}

#[test]
fn a_requeued_message_keeps_its_expiry() {
    crate::clock::set(100);
    let mut q = with_args(&[("x-message-ttl", FieldValue::I32(50))]);
    q.push(msg("a"), |_| 0, None);
    let (id, _, _) = q.get(false).unwrap();
    crate::clock::set(200);
    q.settle(id, Settle::Requeue);
    assert_eq!(bodies(&mut q), Vec::<Bytes>::new());
}

#[test]
fn length_limits_drop_the_head_or_refuse_the_publish() {
    let mut q = with_args(&[("x-max-length", FieldValue::I32(2)), dlx()]);
    for b in ["1", "2", "3"] {
        assert_eq!(q.push(msg(b), |_| 0, None), Pushed::Enqueued);
    }
    assert_eq!(dead(&mut q), [(Bytes::from_static(b"1"), DeathReason::Maxlen)]);
    assert_eq!(bodies(&mut q), ["2", "3"].map(Bytes::from));

    let mut q =
        with_args(&[("x-max-length-bytes", FieldValue::I32(5)), ("x-overflow", FieldValue::str("reject-publish"))]);
    assert_eq!(q.push(msg("abc"), |_| 0, None), Pushed::Enqueued);
    assert_eq!(q.push(msg("abc"), |_| 0, None), Pushed::Rejected);
    assert_eq!(q.push(msg("ab"), |_| 0, None), Pushed::Enqueued);
    assert_eq!(q.message_count(), 2);

    let mut q = with_args(&[
        ("x-max-length", FieldValue::I32(1)),
        ("x-overflow", FieldValue::str("reject-publish-dlx")),
        dlx(),
    ]);
    q.push(msg("kept"), |_| 0, None);
    assert_eq!(q.push(msg("refused"), |_| 0, None), Pushed::Rejected);
    assert_eq!(dead(&mut q), [(Bytes::from_static(b"refused"), DeathReason::Maxlen)]);
    // Unacked messages do not count: only ready ones.
    let (id, _, _) = q.get(false).unwrap();
    assert_eq!(q.push(msg("next"), |_| 0, None), Pushed::Enqueued);
    q.settle(id, Settle::Discard);
    assert_eq!(dead(&mut q), [(Bytes::from_static(b"kept"), DeathReason::Rejected)]);
}

// Review finding: requeues past the limit dropped heads on reject-publish queues too; RabbitMQ
// drops only for drop-head.
#[test]
fn a_reject_publish_queue_never_drops_what_it_holds() {
    let mut q =
        with_args(&[("x-max-length", FieldValue::I32(2)), ("x-overflow", FieldValue::str("reject-publish")), dlx()]);
    q.add_consumer(Consumer::new(3, "c".into(), 1, 1, false, false, 1));
    q.push(msg("1"), |_| 0, None);
    let taken = drain(&mut q);
    q.push(msg("2"), |_| 0, None);
    q.push(msg("3"), |_| 0, None);
    q.settle(taken[0].msg_id, Settle::Requeue);
    assert_eq!((q.message_count(), q.take_dead().len()), (3, 0));
}

#[test]
fn a_waiting_consumer_gets_a_message_before_the_limit_drops_it() {
    let mut q = with_args(&[("x-max-length", FieldValue::I32(0))]);
    q.add_consumer(Consumer::new(3, "c".into(), 1, 1, false, false, 1));
    q.push(msg("1"), |_| 0, None);
    assert_eq!(drain(&mut q).len(), 1);
    q.push(msg("2"), |_| 0, None);
    assert_eq!((drain(&mut q).len(), q.message_count()), (0, 0));
}

#[test]
fn higher_priorities_go_first_fifo_within_and_capped_at_the_maximum() {
    let mut q = with_args(&[("x-max-priority", FieldValue::I32(5))]);
    for (b, p) in [("low", 0), ("mid1", 3), ("top", 9), ("mid2", 3), ("none", 0)] {
        q.push(prio(b, p), |_| 0, None);
    }
    q.push(msg("plain"), |_| 0, None);
    let (id, _, _) = q.get(false).unwrap();
    q.settle(id, Settle::Requeue);
    assert_eq!(bodies(&mut q), ["top", "mid1", "mid2", "low", "none", "plain"].map(Bytes::from));
}

#[test]
fn a_paged_priority_queue_keeps_each_lane_in_order() {
    let pages = MemSpace(64 << 10);
    let mut q = with_args(&[("x-max-priority", FieldValue::I32(2))]);
    for i in 1..=600u64 {
        let p = BasicProperties { priority: Some((i % 3) as u8), ..Default::default() };
        let m = Arc::new(Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: p.encode(),
            body: big(i).body.clone(),
        });
        q.push(m, |_| 0, Some(&pages));
    }
    assert!(q.paged_count() > 0);
    let mut seen = Vec::new();
    while q.message_count() > 0 {
        while let Some((file, serial)) = q.page_in_due() {
            q.paged_in(serial, futures_lite::future::block_on(file.read()));
        }
        let (_, m, _) = q.get(true).unwrap();
        seen.push(u64::from_le_bytes(m.body[..8].try_into().unwrap()));
    }
    let lanes: Vec<Vec<u64>> = (0..3).rev().map(|p| seen.iter().copied().filter(|i| i % 3 == p).collect()).collect();
    for lane in &lanes {
        assert!(lane.windows(2).all(|w| w[0] < w[1]), "FIFO within a priority");
    }
    assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), 600);
}

#[test]
fn a_single_active_consumer_serves_until_it_leaves() {
    let mut q = with_args(&[("x-single-active-consumer", FieldValue::Bool(true))]);
    q.add_consumer(Consumer::new(1, "a".into(), 1, 1, false, false, 10));
    q.add_consumer(Consumer::new(2, "b".into(), 1, 1, false, false, 10));
    for b in ["1", "2", "3"] {
        q.push(msg(b), |_| 0, None);
    }
    assert!(drain(&mut q).iter().all(|d| d.consumer == 1));
    q.remove_consumers(|c| &*c.tag == "a");
    q.push(msg("4"), |_| 0, None);
    assert_eq!(drain(&mut q)[0].consumer, 2);
}

#[test]
fn higher_priority_consumers_first_while_they_have_credit() {
    let mut q = queue();
    q.add_consumer(Consumer::new(10, "low".into(), 1, 1, false, false, 10));
    q.add_consumer(Consumer::new(20, "high".into(), 1, 1, false, false, 2).with_priority(5));
    for b in ["1", "2", "3", "4"] {
        q.push(msg(b), |_| 0, None);
    }
    let keys: Vec<_> = drain(&mut q).iter().map(|d| d.consumer).collect();
    assert_eq!(keys, [20, 20, 10, 10]);
}

#[test]
fn past_the_delivery_limit_a_message_is_dead_lettered_and_returns_are_counted() {
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type", FieldValue::str("quorum"));
    arguments.insert("x-delivery-limit", FieldValue::I32(1));
    arguments.insert("x-dead-letter-exchange", FieldValue::str("dlx"));
    let flags = QueueFlags { durable: true, exclusive: false, auto_delete: false, arguments };
    let args = QueueArgs::parse(&flags, "q").unwrap();
    let mut q = Queue::new(1, "/".into(), "q".into(), flags, args, None);
    q.push(msg("m"), |_| 0, None);
    let (id, first, _) = q.get(false).unwrap();
    assert!(first.decode_properties().unwrap().headers.is_none());
    q.settle(id, Settle::Requeue);
    let (id, again, redelivered) = q.get(false).unwrap();
    let count = again.decode_properties().unwrap().headers.unwrap().get("x-delivery-count").cloned();
    assert_eq!((redelivered, count), (true, Some(FieldValue::I64(1))));
    q.settle(id, Settle::Requeue);
    assert_eq!(dead(&mut q), [(Bytes::from_static(b"m"), DeathReason::DeliveryLimit)]);
}

#[test]
fn an_unused_queue_expires_and_a_consumer_keeps_it() {
    crate::clock::set(1000);
    let mut q = with_args(&[("x-expires", FieldValue::I32(500))]);
    assert_eq!(q.next_deadline(), Some(1500));
    crate::clock::set(1400);
    q.get(true);
    assert_eq!(q.next_deadline(), Some(1900), "basic.get counts as use");
    q.add_consumer(Consumer::new(3, "c".into(), 1, 1, false, false, 1));
    assert_eq!(q.next_deadline(), None);
    assert!(!q.on_timer(5000));
    q.remove_consumers(|_| true);
    assert!(!q.on_timer(1500));
    assert!(q.on_timer(1900));
}

#[test]
fn purged_ranges_leave_out_held_ids() {
    assert_eq!(ranges_without(10, 20, &[3, 12, 13, 20, 25]), [(10, 11), (14, 19)]);
    assert_eq!(ranges_without(10, 20, &[]), [(10, 20)]);
}

#[test]
fn paged_messages_keep_their_expiry() {
    crate::clock::set(10);
    let pages = MemSpace(64 << 10);
    let mut q = with_args(&[("x-message-ttl", FieldValue::I32(100)), dlx()]);
    for i in 1..=300u64 {
        q.push(big(i), |_| 0, Some(&pages));
    }
    crate::clock::set(60);
    q.push(big(301), |_| 0, Some(&pages));
    assert!(q.paged_count() > 100);
    crate::clock::set(111);
    let mut got = Vec::new();
    loop {
        while let Some((file, serial)) = q.page_in_due() {
            q.paged_in(serial, futures_lite::future::block_on(file.read()));
        }
        match q.get(true) {
            Some((id, _, _)) => got.push(id),
            None if q.message_count() == 0 => break,
            None => {}
        }
    }
    assert_eq!(got, [301], "the 300 older ones expired, paged or not");
    assert_eq!(q.take_dead().len(), 300);
}
