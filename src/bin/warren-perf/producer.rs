//! A producer: one connection, one thread; publishes in batches (one socket write per batch),
//! paced to --rate, and with --confirm a reader thread tracks the broker's acks.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use warren::client::SyncClient;
use warren::protocol::frame::{put_content, put_method};
use warren::protocol::methods::{basic, confirm};
use warren::protocol::properties::BasicProperties;
use warren::protocol::types::{FieldTable, FieldValue};
use warren::protocol::{Method, ShortStr};

use crate::stats::Counters;
use crate::{Args, topology};

/// Most messages written in one socket write.
const BATCH: u64 = 256;

pub struct Producer {
    client: SyncClient,
    index: usize,
}

impl Producer {
    pub fn connect(args: &Args, index: usize) -> io::Result<Self> {
        let mut client = crate::tls::connect(args)?;
        client.open_channel(1)?;
        if args.confirm > 0 {
            client.call(1, &Method::ConfirmSelect(confirm::Select { nowait: false }))?;
        }
        Ok(Self { client, index })
    }

    pub fn run(self, args: &Args, counters: &Counters, stop: &AtomicBool) {
        let Producer { mut client, index } = self;
        let confirmed = Arc::new(AtomicU64::new(0));
        if args.confirm > 0 {
            let Ok(mut reader) = client.reader() else { return };
            let confirmed = confirmed.clone();
            std::thread::spawn(move || {
                while let Ok((_, m)) = reader.recv_method() {
                    if let Method::BasicAck(a) = m {
                        // Acks come in publish order; `multiple` covers everything up to the tag.
                        confirmed.fetch_max(a.delivery_tag, Ordering::Relaxed);
                    }
                }
            });
        }
        let mut props = BasicProperties::default();
        if args.persistent {
            props.delivery_mode = Some(2);
        }
        if args.exchange_type == "headers" {
            let mut h = FieldTable::default();
            h.insert("perf", FieldValue::str("1"));
            props.headers = Some(h);
        }
        // One encoding per priority the messages cycle through.
        let props: Vec<_> = (0..=args.priorities)
            .map(|p| {
                let mut props = props.clone();
                if args.priorities > 0 {
                    props.priority = Some(p);
                }
                props.encode()
            })
            .collect();
        let mut body = vec![0u8; args.size.max(8)];
        let mut out = BytesMut::with_capacity(1 << 20);
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) && (args.pmessages == 0 || sent < args.pmessages) {
            let mut batch = BATCH;
            if args.rate > 0 {
                let due = (started.elapsed().as_secs_f64() * args.rate as f64) as u64;
                if due <= sent {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                }
                batch = batch.min(due - sent);
            }
            if args.confirm > 0 {
                let room = (confirmed.load(Ordering::Relaxed) + args.confirm).saturating_sub(sent);
                if room == 0 {
                    std::thread::yield_now();
                    continue;
                }
                batch = batch.min(room);
            }
            if args.pmessages > 0 {
                batch = batch.min(args.pmessages - sent);
            }
            out.clear();
            for _ in 0..batch {
                let (exchange, routing_key) = topology::target(args, index, sent);
                let (Ok(exchange), Ok(routing_key)) = (ShortStr::try_from(exchange), ShortStr::try_from(routing_key))
                else {
                    eprintln!("producer {index}: the exchange or routing key is longer than 255 bytes");
                    return;
                };
                let now = crate::stats::monotonic_ns();
                body[..8].copy_from_slice(&now.to_be_bytes());
                put_method(
                    &mut out,
                    1,
                    &Method::BasicPublish(basic::Publish { exchange, routing_key, ..Default::default() }),
                );
                let props = &props[(sent % props.len() as u64) as usize];
                put_content(&mut out, 1, props, &body, client.frame_max);
                sent += 1;
            }
            if client.stream.write_all(&out).is_err() {
                break;
            }
            counters.sent.fetch_add(batch, Ordering::Relaxed);
        }
        counters.producers_done.fetch_add(1, Ordering::Relaxed);
        while args.confirm > 0 && !stop.load(Ordering::Relaxed) && confirmed.load(Ordering::Relaxed) < sent {
            std::thread::sleep(Duration::from_millis(1));
        }
        counters.confirmed.fetch_add(confirmed.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}
