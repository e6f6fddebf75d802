//! Routing lookups through a shard's routing table copy: default, direct, fanout, topic, headers.

mod common;

use std::hint::black_box;
use std::sync::Arc;

use warren::broker::routing::{Dest, MetaOp, RoutingTable};
use warren::protocol::types::{FieldTable, FieldValue};

type Headers = dyn Fn() -> Option<FieldTable>;

fn main() {
    let mut t = RoutingTable::default();
    t.apply(&MetaOp::AddVhost { vhost: "/".into() }).unwrap();
    let declare = |t: &mut RoutingTable, name: &str, kind: &str| {
        let op = MetaOp::DeclareExchange {
            vhost: "/".into(),
            name: name.into(),
            kind: kind.into(),
            passive: false,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: FieldTable::default(),
        };
        t.apply(&op).unwrap();
    };
    let bind = |t: &mut RoutingTable, x: &str, q: String, key: String, args: FieldTable| {
        let op = MetaOp::Bind { vhost: "/".into(), source: x.into(), dest: Dest::Queue(q.into()), key, args };
        t.apply(&op).unwrap();
    };
    declare(&mut t, "direct", "direct");
    declare(&mut t, "fanout", "fanout");
    declare(&mut t, "topic", "topic");
    declare(&mut t, "headers", "headers");
    for i in 0..1000 {
        bind(&mut t, "direct", format!("d{i}"), format!("key{i}"), FieldTable::default());
    }
    for i in 0..4 {
        bind(&mut t, "fanout", format!("f{i}"), String::new(), FieldTable::default());
    }
    for i in 0..20 {
        bind(&mut t, "topic", format!("t{}", i % 4), format!("p{i}.*.y"), FieldTable::default());
    }
    for i in 0..4 {
        let mut args = FieldTable::default();
        args.insert("x-match", FieldValue::str("all"));
        args.insert("kind", FieldValue::str(&format!("k{i}")));
        bind(&mut t, "headers", format!("h{i}"), String::new(), args);
    }
    let mut out: Vec<Arc<str>> = Vec::new();
    let none = || None;
    let mut headers = FieldTable::default();
    headers.insert("kind", FieldValue::str("k2"));
    let with_headers = move || Some(headers.clone());
    let cases: [(&str, &str, &Headers); 5] = [
        ("", "queue-name", &none),
        ("direct", "key500", &none),
        ("fanout", "", &none),
        ("topic", "p7.x.y", &none),
        ("headers", "", &with_headers),
    ];
    for (exchange, key, h) in cases {
        let label = if exchange.is_empty() { "default" } else { exchange };
        common::bench(&format!("route via {label} exchange"), 1_000_000, || {
            out.clear();
            t.route("/", exchange, key.as_bytes(), h, &mut out).unwrap();
            black_box(out.len());
        });
    }
}
