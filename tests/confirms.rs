//! Publisher confirms over a raw socket, where the ack frames themselves are visible.

mod common;

use bytes::BytesMut;
use common::raw::Raw;
use common::start_broker;
use warren::protocol::Method;
use warren::protocol::frame::{put_content, put_method};
use warren::protocol::methods::{basic, confirm, queue};

fn publish_many(r: &mut Raw, ch: u16, exchange: &'static str, key: &'static str, n: usize, mandatory: bool) {
    let mut out = BytesMut::new();
    for i in 0..n {
        let p = basic::Publish { exchange: exchange.into(), routing_key: key.into(), mandatory, ..Default::default() };
        put_method(&mut out, ch, &Method::BasicPublish(p));
        put_content(&mut out, ch, &[0, 0], format!("{i}").as_bytes(), 131072);
    }
    r.send_raw(&out);
}

/// Reads acks until `n` tags are covered; returns the ack frames and any returns seen before them.
fn read_acks(r: &mut Raw, n: u64) -> (Vec<basic::Ack>, Vec<(u64, basic::Return)>) {
    let (mut acks, mut returns, mut covered) = (Vec::new(), Vec::new(), 0u64);
    while covered < n {
        match r.recv_method() {
            (_, Method::BasicAck(a)) => {
                let first = if a.multiple { covered + 1 } else { a.delivery_tag };
                assert_eq!(first, covered + 1, "acks out of order or repeated: {a:?} after {covered}");
                covered = a.delivery_tag;
                acks.push(a);
            }
            (_, Method::BasicReturn(ret)) => returns.push((covered, ret)),
            (_, m) => panic!("unexpected {m:?}"),
        }
    }
    (acks, returns)
}

#[test]
fn confirms_arrive_in_publish_order_batched_with_multiple() {
    let b = start_broker(2);
    let mut r = Raw::handshake(b.addr, 0);
    r.open_channel(1);
    r.send(1, Method::QueueDeclare(queue::Declare { queue: "confirmed".into(), ..Default::default() }));
    r.recv_method();
    r.send(1, Method::ConfirmSelect(confirm::Select { nowait: false }));
    assert!(matches!(r.recv_method().1, Method::ConfirmSelectOk(_)));
    publish_many(&mut r, 1, "", "confirmed", 2000, false);
    let (acks, _) = read_acks(&mut r, 2000);
    assert!(acks.len() < 2000, "{} ack frames for 2000 publishes: not batched", acks.len());
    assert!(acks.iter().any(|a| a.multiple));
}

#[test]
fn unroutable_mandatory_is_returned_before_its_ack() {
    let b = start_broker(2);
    let mut r = Raw::handshake(b.addr, 0);
    r.open_channel(1);
    r.send(1, Method::ConfirmSelect(confirm::Select { nowait: true }));
    publish_many(&mut r, 1, "amq.direct", "nobody", 3, true);
    let (_, returns) = read_acks(&mut r, 3);
    assert_eq!(returns.len(), 3);
    for (i, (acked_before, ret)) in returns.iter().enumerate() {
        assert_eq!(ret.reply_code, 312);
        assert!(*acked_before <= i as u64, "return {i} came after its ack");
    }
}
