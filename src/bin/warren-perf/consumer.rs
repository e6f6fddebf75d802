//! A consumer: one connection, one thread; parses deliveries straight from its read buffer,
//! records latency from the timestamp in each body, and acks once per read (multiple) or per
//! --multi-ack messages.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use hdrhistogram::Histogram;
use warren::client::SyncClient;
use warren::protocol::Method;
use warren::protocol::frame::{self, FrameKind, put_method};
use warren::protocol::methods::basic;

use crate::stats::Counters;
use crate::{Args, topology};

pub struct Consumer {
    client: SyncClient,
}

impl Consumer {
    pub fn connect(args: &Args, index: usize) -> io::Result<Self> {
        let mut client = crate::tls::connect(args)?;
        client.open_channel(1)?;
        if !args.auto_ack && args.prefetch > 0 {
            client.call(1, &Method::BasicQos(basic::Qos { prefetch_count: args.prefetch, ..Default::default() }))?;
        }
        let consume = basic::Consume {
            queue: topology::consumed_queue(args, index),
            consumer_tag: format!("perf-{index}"),
            no_ack: args.auto_ack,
            ..Default::default()
        };
        client.call(1, &Method::BasicConsume(consume))?;
        client.stream.set_read_timeout(Some(Duration::from_millis(100)))?;
        Ok(Self { client })
    }

    pub fn run(self, args: &Args, counters: &Counters, stop: &AtomicBool) {
        let mut client = self.client;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        let mut chunk = vec![0u8; 1 << 18];
        let mut buf = std::mem::take(&mut client.buf);
        let mut out = BytesMut::new();
        let (mut last_tag, mut acked_tag, mut body_left, mut first_body) = (0u64, 0u64, 0u64, true);
        while !stop.load(Ordering::Relaxed) {
            let n = match client.stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
                Err(_) => break,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut received = 0;
            while let Ok(Some(f)) = frame::parse(&mut buf, 0) {
                match f.kind {
                    FrameKind::Method => {
                        if let Ok(Method::BasicDeliver(d)) = Method::decode(f.payload) {
                            last_tag = d.delivery_tag;
                        }
                    }
                    FrameKind::Header => {
                        body_left = u64::from_be_bytes(f.payload[4..12].try_into().unwrap_or([0; 8]));
                        first_body = true;
                        if body_left == 0 {
                            received += 1;
                        }
                    }
                    FrameKind::Body => {
                        if first_body && f.payload.len() >= 8 {
                            let sent = u64::from_be_bytes(f.payload[..8].try_into().unwrap_or([0; 8]));
                            let now = crate::stats::monotonic_ns();
                            let _ = hist.record((now.saturating_sub(sent) / 1000).max(1));
                        }
                        first_body = false;
                        body_left = body_left.saturating_sub(f.payload.len() as u64);
                        if body_left == 0 {
                            received += 1;
                        }
                    }
                    FrameKind::Heartbeat => {}
                }
            }
            counters.received.fetch_add(received, Ordering::Relaxed);
            if !args.auto_ack && last_tag > acked_tag && (last_tag - acked_tag >= args.multi_ack || args.multi_ack <= 1)
            {
                out.clear();
                if args.multi_ack <= 1 {
                    for tag in acked_tag + 1..=last_tag {
                        put_method(&mut out, 1, &Method::BasicAck(basic::Ack { delivery_tag: tag, multiple: false }));
                    }
                } else {
                    put_method(&mut out, 1, &Method::BasicAck(basic::Ack { delivery_tag: last_tag, multiple: true }));
                }
                if client.stream.write_all(&out).is_err() {
                    break;
                }
                acked_tag = last_tag;
            }
        }
        counters.merge_latency(&hist);
    }
}
