//! Codec micro-benchmarks: parsing a publish (method + header + body frames) and encoding a delivery.

mod common;

use std::hint::black_box;

use bytes::BytesMut;
use warren::protocol::Method;
use warren::protocol::frame::{self, put_content, put_method};
use warren::protocol::methods::basic;
use warren::protocol::properties::{BasicProperties, ContentHeader};

fn publish_bytes(body: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let p =
        basic::Publish { exchange: "amq.direct".into(), routing_key: "some.routing.key".into(), ..Default::default() };
    put_method(&mut out, 1, &Method::BasicPublish(p));
    let props =
        BasicProperties { delivery_mode: Some(2), content_type: Some("application/json".into()), ..Default::default() };
    put_content(&mut out, 1, &props.encode(), &vec![7u8; body], 131072);
    out
}

fn main() {
    for body in [16usize, 1024] {
        let one = publish_bytes(body);
        // Many publishes in one buffer, as a read delivers them.
        let mut many = BytesMut::new();
        for _ in 0..1000 {
            many.extend_from_slice(&one);
        }
        let many = many.freeze();
        common::bench_items(&format!("parse publish ({body} B body)"), 1000, 1000, || {
            let mut buf = BytesMut::from(&many[..]);
            while let Ok(Some(f)) = frame::parse(&mut buf, 131072) {
                match f.kind {
                    frame::FrameKind::Method => {
                        black_box(Method::decode(f.payload).ok());
                    }
                    frame::FrameKind::Header => {
                        black_box(ContentHeader::decode(f.payload).ok());
                    }
                    _ => {
                        black_box(f.payload);
                    }
                }
            }
        });

        let props = BasicProperties::default().encode();
        let body_bytes = vec![7u8; body];
        let mut out = BytesMut::with_capacity(1 << 20);
        let mut tag = 0u64;
        common::bench(&format!("encode deliver ({body} B body)"), 1_000_000, || {
            tag += 1;
            if out.len() > (1 << 19) {
                out.clear();
            }
            let d = basic::Deliver {
                consumer_tag: "amq.ctag-abcdefghijklmnopqrstuv".into(),
                delivery_tag: tag,
                redelivered: false,
                exchange: "amq.direct".into(),
                routing_key: "some.routing.key".into(),
            };
            put_method(&mut out, 1, &Method::BasicDeliver(d));
            put_content(&mut out, 1, &props, &body_bytes, 131072);
        });
    }
}
