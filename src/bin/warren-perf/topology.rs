//! Declares the scenario's queues, exchange and bindings before the run.

use std::io;

use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::methods::{exchange, queue};
use warren::protocol::types::{FieldTable, FieldValue};

use crate::Args;

pub fn queue_name(args: &Args, i: usize) -> String {
    format!("{}-{}", args.queue_prefix, i % args.queues.max(1))
}

/// The queue consumer `i` reads: the dead-letter queue with --dead-letter.
pub fn consumed_queue(args: &Args, i: usize) -> String {
    if args.dead_letter {
        format!("{}-dead-{}", args.queue_prefix, i % args.queues.max(1))
    } else {
        queue_name(args, i)
    }
}

const DLX: &str = "perf-dlx";

/// The x- arguments of the queues published to.
fn queue_arguments(args: &Args) -> FieldTable {
    let mut t = FieldTable::default();
    if let Some(ttl) = args.ttl {
        t.insert("x-message-ttl", FieldValue::I64(ttl as i64));
    }
    if args.dead_letter {
        t.insert("x-dead-letter-exchange", FieldValue::str(DLX));
    }
    if args.priorities > 0 {
        t.insert("x-max-priority", FieldValue::U8(args.priorities));
    }
    t
}

/// The (exchange, routing key) producer `p` publishes its `n`th message with.
pub fn target(args: &Args, p: usize, n: u64) -> (String, String) {
    match args.exchange_type.as_str() {
        "default" => (String::new(), queue_name(args, p)),
        "direct" => (args.exchange.clone(), format!("k{}", p % args.queues.max(1))),
        "topic" => (args.exchange.clone(), format!("p{}.x.y", n % args.bindings.max(1) as u64)),
        _ => (args.exchange.clone(), String::new()),
    }
}

/// How many queues each message reaches.
pub fn copies(args: &Args) -> u64 {
    if args.exchange_type == "fanout" || args.exchange_type == "headers" { args.queues as u64 } else { 1 }
}

pub fn declare(args: &Args) -> io::Result<()> {
    let mut c = crate::tls::connect(args)?;
    c.open_channel(1)?;
    if args.dead_letter {
        let dlx = exchange::Declare { exchange: DLX.into(), kind: "fanout".into(), ..Default::default() };
        c.call(1, &Method::ExchangeDeclare(dlx))?;
    }
    for i in 0..args.queues {
        let name = queue_name(args, i);
        c.call(
            1,
            &Method::QueueDeclare(queue::Declare {
                queue: name.clone(),
                durable: args.persistent,
                arguments: queue_arguments(args),
                ..Default::default()
            }),
        )?;
        if !args.no_purge {
            c.call(1, &Method::QueuePurge(queue::Purge { queue: name, ..Default::default() }))?;
        }
        if args.dead_letter {
            let dead = consumed_queue(args, i);
            let declare = queue::Declare { queue: dead.clone(), durable: args.persistent, ..Default::default() };
            c.call(1, &Method::QueueDeclare(declare))?;
            if !args.no_purge {
                c.call(1, &Method::QueuePurge(queue::Purge { queue: dead.clone(), ..Default::default() }))?;
            }
            let bind = queue::Bind { queue: dead, exchange: DLX.into(), ..Default::default() };
            c.call(1, &Method::QueueBind(bind))?;
        }
    }
    if args.exchange_type != "default" {
        let declare = exchange::Declare {
            exchange: args.exchange.clone(),
            kind: args.exchange_type.clone(),
            durable: args.persistent,
            ..Default::default()
        };
        c.call(1, &Method::ExchangeDeclare(declare))?;
        let bind = |c: &mut SyncClient, i: usize, key: String, arguments: FieldTable| {
            let b = queue::Bind {
                queue: queue_name(args, i),
                exchange: args.exchange.clone(),
                routing_key: key,
                arguments,
                ..Default::default()
            };
            c.call(1, &Method::QueueBind(b)).map(|_| ())
        };
        match args.exchange_type.as_str() {
            "topic" => {
                for b in 0..args.bindings {
                    bind(&mut c, b, format!("p{b}.*.y"), FieldTable::default())?;
                }
            }
            "direct" => {
                for i in 0..args.queues {
                    bind(&mut c, i, format!("k{i}"), FieldTable::default())?;
                }
            }
            "headers" => {
                for i in 0..args.queues {
                    let mut t = FieldTable::default();
                    t.insert("x-match", FieldValue::str("any"));
                    t.insert("perf", FieldValue::str("1"));
                    bind(&mut c, i, String::new(), t)?;
                }
            }
            _ => {
                for i in 0..args.queues {
                    bind(&mut c, i, String::new(), FieldTable::default())?;
                }
            }
        }
    }
    c.close()
}
