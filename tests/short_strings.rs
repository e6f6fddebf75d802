//! Short strings are bytes (issue 14). Warren decoded every short string lossily into a `String`:
//! a routing key of 253 × 'a' + 0xFF 0xFF came back to consumers as another key (each 0xFF became
//! U+FFFD, three bytes, and the wire encoder cut the result on a char boundary); the message log cut
//! it at byte 255 inside a character, so after a kill -9 recovery took the record for a torn tail and
//! truncated the segment, losing the confirmed messages behind it; reading a paged copy back hit an
//! `expect` and aborted the broker; and two different keys matched one binding.
//!
//! As RabbitMQ 3.10: routing keys, table keys and the short-string properties are bytes, delivered,
//! stored and matched as sent; names, binding keys and consumer tags must be UTF-8, else 501.
//!
//! Frames are written and read by hand here, so these tests build against the codec that had the bug
//! and show it failing.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::raw::Raw;
use common::{TempDir, TestBroker, start_broker, start_broker_with};
use warren::protocol::Method;
use warren::protocol::frame::{FrameKind, put_content};
use warren::protocol::methods::{basic, confirm, connection, queue};
use warren::protocol::types::{FieldTable, FieldValue};

const PERSISTENT: [u8; 3] = [0x10, 0, 2];

/// 255 bytes, the longest a short string holds, ending in two bytes that are not UTF-8.
fn long_key() -> Vec<u8> {
    let mut k = vec![b'a'; 253];
    k.extend([0xFF, 0xFF]);
    k
}

/// The key message `i` is published with: every other one (from the second on) the 255-byte key,
/// the rest short keys with bytes that are not UTF-8 in the middle of a word.
fn key(i: u64) -> Vec<u8> {
    if i % 2 == 1 { long_key() } else { [format!("k.{i}.").as_bytes(), b"\xfe\xff.z"].concat() }
}

fn short(out: &mut Vec<u8>, s: &[u8]) {
    out.push(u8::try_from(s.len()).expect("a short string"));
    out.extend_from_slice(s);
}

fn method_frame(out: &mut BytesMut, ch: u16, class: u16, method: u16, args: &[u8]) {
    out.extend_from_slice(&[1]);
    out.extend_from_slice(&ch.to_be_bytes());
    out.extend_from_slice(&(4 + args.len() as u32).to_be_bytes());
    out.extend_from_slice(&class.to_be_bytes());
    out.extend_from_slice(&method.to_be_bytes());
    out.extend_from_slice(args);
    out.extend_from_slice(&[0xCE]);
}

/// basic.publish with these exchange and routing key bytes, then its content.
fn publish(out: &mut BytesMut, exchange: &[u8], key: &[u8], mandatory: bool, properties: &[u8], body: &[u8]) {
    let mut args = vec![0, 0];
    short(&mut args, exchange);
    short(&mut args, key);
    args.push(mandatory as u8);
    method_frame(out, 1, 60, 40, &args);
    put_content(out, 1, properties, body, 131072);
}

fn publish_one(r: &mut Raw, exchange: &[u8], key: &[u8], mandatory: bool, body: &[u8]) {
    let mut out = BytesMut::new();
    publish(&mut out, exchange, key, mandatory, &[0, 0], body);
    r.send_raw(&out);
}

/// A message as it came back: the method that carried it (50 return, 60 deliver, 71 get-ok), its
/// exchange and routing key as the frame held them, and its body.
#[derive(Debug, PartialEq)]
struct Got {
    method: u16,
    exchange: Vec<u8>,
    key: Vec<u8>,
    body: Vec<u8>,
}

struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn skip(&mut self, n: usize) {
        self.0 = &self.0[n..];
    }
    fn short(&mut self) -> Vec<u8> {
        let n = self.0[0] as usize;
        let s = self.0[1..1 + n].to_vec();
        self.skip(1 + n);
        s
    }
}

/// The next message the broker sends (basic.return, deliver or get-ok with its content); other
/// methods are skipped, and `None` if basic.get-empty comes first.
fn next_message(r: &mut Raw) -> Option<Got> {
    let (method, exchange, key) = loop {
        let f = r.recv();
        if f.kind != FrameKind::Method {
            continue;
        }
        let p = &f.payload[..];
        let (class, method) = (u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
        let mut a = Fields(&p[4..]);
        match (class, method) {
            (60, 50) => {
                a.skip(2);
                a.short();
            }
            (60, 60) => {
                a.short();
                a.skip(9);
            }
            (60, 71) => a.skip(9),
            (60, 72) => return None,
            (10, 50) => panic!("connection closed: {:?}", Method::decode(f.payload)),
            (20, 40) => panic!("channel closed: {:?}", Method::decode(f.payload)),
            _ => continue,
        }
        break (method, a.short(), a.short());
    };
    let header = r.recv();
    assert_eq!(header.kind, FrameKind::Header);
    let size = u64::from_be_bytes(header.payload[4..12].try_into().unwrap()) as usize;
    let mut body = Vec::new();
    while body.len() < size {
        let f = r.recv();
        assert_eq!(f.kind, FrameKind::Body);
        body.extend_from_slice(&f.payload);
    }
    Some(Got { method, exchange, key, body })
}

fn get(r: &mut Raw, queue: &str) -> Option<Got> {
    r.send(1, Method::BasicGet(basic::Get { queue: queue.into(), no_ack: true, ..Default::default() }));
    next_message(r)
}

fn declare_and_bind(r: &mut Raw, queue: &str, durable: bool, exchange: &str, key: &str, arguments: FieldTable) {
    r.send(1, Method::QueueDeclare(queue::Declare { queue: queue.into(), durable, ..Default::default() }));
    let (_, m) = r.recv_method();
    assert!(matches!(m, Method::QueueDeclareOk(_)), "{m:?}");
    let bind = queue::Bind {
        queue: queue.into(),
        exchange: exchange.into(),
        routing_key: key.into(),
        arguments,
        ..Default::default()
    };
    r.send(1, Method::QueueBind(bind));
    let (_, m) = r.recv_method();
    assert!(matches!(m, Method::QueueBindOk(_)), "{m:?}");
}

fn client(b: &TestBroker) -> Raw {
    let mut r = Raw::handshake(b.addr, 0);
    r.open_channel(1);
    r
}

/// Waits for publisher confirms up to `n` (the broker acks with `multiple`).
fn await_confirms(r: &mut Raw, n: u64) {
    let mut upto = 0;
    while upto < n {
        match r.recv_method() {
            (_, Method::BasicAck(a)) => upto = upto.max(a.delivery_tag),
            (_, m @ (Method::BasicNack(_) | Method::ChannelClose(_) | Method::ConnectionClose(_))) => {
                panic!("{m:?} after {upto} confirms")
            }
            _ => {}
        }
    }
}

#[test]
fn a_routing_key_that_is_not_utf8_comes_back_byte_for_byte() {
    let b = start_broker(2);
    let mut r = client(&b);
    declare_and_bind(&mut r, "rk", false, "amq.topic", "#", FieldTable::default());
    let key = long_key();

    publish_one(&mut r, b"amq.topic", &key, false, b"got");
    let got = get(&mut r, "rk").expect("the message");
    assert_eq!(got, Got { method: 71, exchange: b"amq.topic".to_vec(), key: key.clone(), body: b"got".to_vec() });

    let consume = basic::Consume { queue: "rk".into(), consumer_tag: "c".into(), no_ack: true, ..Default::default() };
    r.send(1, Method::BasicConsume(consume));
    publish_one(&mut r, b"amq.topic", &key, false, b"delivered");
    let got = next_message(&mut r).expect("the delivery");
    assert_eq!((got.method, &got.key, &got.body[..]), (60, &key, &b"delivered"[..]));

    // Unroutable and mandatory: basic.return names the key as published.
    publish_one(&mut r, b"amq.direct", &key, true, b"returned");
    let got = next_message(&mut r).expect("the return");
    assert_eq!(
        (got.method, &got.exchange[..], &got.key, &got.body[..]),
        (50, &b"amq.direct"[..], &key, &b"returned"[..])
    );
}

#[test]
fn keys_that_differ_in_bytes_never_match_the_same_binding() {
    let b = start_broker(2);
    let mut r = client(&b);
    // "k\u{FFFD}" is what a lossy decode made of b"k\xff": as text it is another key.
    let lossy = "k\u{FFFD}";
    declare_and_bind(&mut r, "direct", false, "amq.direct", lossy, FieldTable::default());
    assert_returned(&mut r, "direct", b"amq.direct", b"k\xff", &[0, 0]);
    publish_one(&mut r, b"amq.direct", lossy.as_bytes(), true, b"routed");
    assert_eq!(get(&mut r, "direct").map(|g| g.body), Some(b"routed".to_vec()));

    declare_and_bind(&mut r, "topic", false, "amq.topic", "*.\u{FFFD}.#", FieldTable::default());
    assert_returned(&mut r, "topic", b"amq.topic", b"a.\xff.b", &[0, 0]);
    publish_one(&mut r, b"amq.topic", "a.\u{FFFD}.b".as_bytes(), true, b"routed");
    assert_eq!(get(&mut r, "topic").map(|g| g.body), Some(b"routed".to_vec()));

    // Headers: a header named b"k\xff" does not match a binding argument named "k\u{FFFD}".
    let mut args = FieldTable::default();
    args.insert(lossy, FieldValue::str("v"));
    declare_and_bind(&mut r, "headers", false, "amq.headers", "", args);
    let props = |name: &[u8]| {
        let mut table = Vec::new();
        short(&mut table, name);
        table.extend_from_slice(b"S\0\0\0\x01v");
        let mut p = vec![0x20, 0];
        p.extend_from_slice(&(table.len() as u32).to_be_bytes());
        p.extend(table);
        p
    };
    assert_returned(&mut r, "headers", b"amq.headers", b"", &props(b"k\xff"));
    let mut out = BytesMut::new();
    publish(&mut out, b"amq.headers", b"", true, &props(lossy.as_bytes()), b"routed");
    r.send_raw(&out);
    assert_eq!(get(&mut r, "headers").map(|g| g.body), Some(b"routed".to_vec()));
}

/// Publishes a mandatory message that must route nowhere: it comes back as basic.return, and
/// `queue` (which a lossy match would have put it in) stays empty.
fn assert_returned(r: &mut Raw, queue: &str, exchange: &[u8], key: &[u8], properties: &[u8]) {
    let mut out = BytesMut::new();
    publish(&mut out, exchange, key, true, properties, b"unroutable");
    r.send_raw(&out);
    r.send(1, Method::BasicGet(basic::Get { queue: queue.into(), no_ack: true, ..Default::default() }));
    // The return comes before the answer to the get; a message routed by mistake is the get-ok.
    let got = next_message(r).map(|g| g.method);
    assert_eq!(got, Some(50), "{key:?} with properties {properties:?} was routed to '{queue}', bound with other bytes");
    assert_eq!(next_message(r), None, "'{queue}' should be empty");
}

/// A method whose name, binding key or consumer tag is not UTF-8 closes the connection as RabbitMQ
/// does: 501 "FRAME_ERROR - Malformed UTF-8 in shortstr".
#[test]
fn names_binding_keys_and_consumer_tags_that_are_not_utf8_close_the_connection_501() {
    let b = start_broker(2);
    let table = [0u8, 0, 0, 0];
    let with = |parts: &[&[u8]]| parts.concat();
    let name = |s: &[u8]| {
        let mut v = Vec::new();
        short(&mut v, s);
        v
    };
    let cases: Vec<(&str, u16, u16, Vec<u8>)> = vec![
        ("queue.declare queue", 50, 10, with(&[&[0, 0], &name(b"q\xff"), &[0], &table])),
        ("exchange.declare exchange", 40, 10, with(&[&[0, 0], &name(b"x\xff"), &name(b"direct"), &[0], &table])),
        (
            "queue.bind routing key",
            50,
            20,
            with(&[&[0, 0], &name(b"q"), &name(b"amq.direct"), &name(b"k\xff"), &[0], &table]),
        ),
        (
            "exchange.bind routing key",
            40,
            30,
            with(&[&[0, 0], &name(b"amq.direct"), &name(b"amq.topic"), &name(b"k\xff"), &[0], &table]),
        ),
        ("basic.consume consumer tag", 60, 20, with(&[&[0, 0], &name(b"q"), &name(b"c\xff"), &[0], &table])),
    ];
    for (what, class, method, args) in cases {
        let mut r = client(&b);
        // The queue the bind and consume name exists, so only the bad bytes can be refused.
        r.send(1, Method::QueueDeclare(queue::Declare { queue: "q".into(), ..Default::default() }));
        assert!(matches!(r.recv_method().1, Method::QueueDeclareOk(_)));
        let mut out = BytesMut::new();
        method_frame(&mut out, 1, class, method, &args);
        r.send_raw(&out);
        let close = match r.recv_within(Duration::from_secs(2)).map(|f| Method::decode(f.payload)) {
            Some(Ok(Method::ConnectionClose(c))) => (c.reply_code, c.reply_text),
            other => panic!("{what}: expected connection.close 501, got {other:?}"),
        };
        assert_eq!(close, (501, "FRAME_ERROR - Malformed UTF-8 in shortstr".to_string()), "{what}");
        r.send(0, Method::ConnectionCloseOk(connection::CloseOk {}));
        assert!(r.closed_within(Duration::from_secs(2)), "{what}");
    }
    // RabbitMQ checks no UTF-8 in a publish (a content method): such an exchange is just not found.
    let mut r = client(&b);
    publish_one(&mut r, b"x\xff", b"k", false, b"");
    let (_, code, text) = r.expect_channel_close();
    assert_eq!(code, 404, "{text}");
}

#[test]
fn paged_messages_keep_keys_that_are_not_utf8() {
    // A small memory limit: past half of it, queues page new messages to disk (in batches of 256 KiB,
    // which count as memory until written).
    let config = TempDir::new("shortstr-paging");
    let config_file = config.0.join("warren.toml");
    std::fs::write(&config_file, "memory_limit = 2097152\n").expect("config");
    let b = start_broker_with(2, &["--config", config_file.to_str().expect("path")]);
    let mut r = client(&b);
    declare_and_bind(&mut r, "paged", false, "amq.topic", "#", FieldTable::default());
    r.send(1, Method::ConfirmSelect(confirm::Select { nowait: false }));
    assert!(matches!(r.recv_method().1, Method::ConfirmSelectOk(_)));
    // Batches small and slow enough for the broker's 100 ms memory sampling to start paging well
    // before the memory alarm would block this publisher.
    let (total, batch) = (4000u64, 50u64);
    for first in (0..total).step_by(batch as usize) {
        let mut out = BytesMut::new();
        for i in first..first + batch {
            let mut body = i.to_be_bytes().to_vec();
            body.resize(512, 0);
            publish(&mut out, b"amq.topic", &key(i), false, &[0, 0], &body);
        }
        r.send_raw(&out);
        await_confirms(&mut r, first + batch);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(b.wait_log(0, "queue 'paged' in vhost '/': paging messages to disk").is_some(), "the queue never paged");
    let consume =
        basic::Consume { queue: "paged".into(), consumer_tag: "c".into(), no_ack: true, ..Default::default() };
    r.send(1, Method::BasicConsume(consume));
    // Everything first, the keys after: reading a paged message back used to abort the broker.
    let got: Vec<Got> = (0..total).map(|_| next_message(&mut r).expect("a delivery")).collect();
    for (i, got) in (0..total).zip(got) {
        let n = u64::from_be_bytes(got.body[..8].try_into().unwrap());
        assert_eq!((n, got.key), (i, key(i)), "message {i}");
    }
    assert!(b.log_lines().iter().all(|l| !l.contains("panicked")));
}

#[test]
fn persistent_messages_with_keys_that_are_not_utf8_survive_kill_9() {
    let mut b = start_broker(2);
    let mut r = client(&b);
    declare_and_bind(&mut r, "durable", true, "amq.topic", "#", FieldTable::default());
    r.send(1, Method::ConfirmSelect(confirm::Select { nowait: false }));
    assert!(matches!(r.recv_method().1, Method::ConfirmSelectOk(_)));
    let total = 300u64;
    let mut out = BytesMut::new();
    for i in 0..total {
        publish(&mut out, b"amq.topic", &key(i), false, &PERSISTENT, &i.to_be_bytes());
    }
    r.send_raw(&out);
    await_confirms(&mut r, total);
    b.kill();
    b.restart();
    let mut r = client(&b);
    let mut back = Vec::new();
    while let Some(got) = get(&mut r, "durable") {
        back.push((u64::from_be_bytes(got.body[..8].try_into().unwrap()), got.key));
    }
    let lost: Vec<u64> = (0..total).filter(|i| !back.iter().any(|(n, _)| n == i)).collect();
    assert!(
        lost.is_empty(),
        "{} of {total} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let expected: Vec<(u64, Vec<u8>)> = (0..total).map(|i| (i, key(i))).collect();
    assert_eq!(back, expected);
}
