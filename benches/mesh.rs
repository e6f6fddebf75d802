//! Cross-shard channel throughput: shard 0 sends batches of envelopes to shard 1 over the mesh
//! (crossbeam + doorbell), shard 1 drains them; each on its own pinned glommio executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use glommio::{LocalExecutorBuilder, Placement};
use warren::broker::delivery::Settle;
use warren::shard::mesh;
use warren::shard::msg::ShardMsg;

const MESSAGES: u64 = 10_000_000;

fn main() {
    for batch in [1usize, 64, 256] {
        let (mut ends, _stop) = mesh::build(2);
        let (e1, e0) = (ends.pop().unwrap(), ends.pop().unwrap());
        let got = Arc::new(AtomicU64::new(0));
        let cpus = warren::server::allowed_cpus();
        let place = |i: usize| cpus.get(i).map(|&c| Placement::Fixed(c)).unwrap_or(Placement::Unbound);
        let start = Instant::now();
        let g = got.clone();
        let rx = LocalExecutorBuilder::new(place(1))
            .spawn(move || async move {
                let mut batches = Vec::new();
                let mut n = 0u64;
                while n < MESSAGES {
                    e1.park().await;
                    e1.drain(&mut batches);
                    for b in batches.drain(..) {
                        n += b.len() as u64;
                    }
                }
                g.store(n, Ordering::SeqCst);
            })
            .unwrap();
        let tx = LocalExecutorBuilder::new(place(0))
            .spawn(move || async move {
                let mut sent = 0u64;
                while sent < MESSAGES {
                    let b: Vec<ShardMsg> = (0..batch)
                        .map(|i| ShardMsg::Settle { queue: 1, msg_ids: vec![sent + i as u64], action: Settle::Ack })
                        .collect();
                    sent += b.len() as u64;
                    e0.send(1, b);
                }
            })
            .unwrap();
        tx.join().unwrap();
        rx.join().unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "mesh 0 -> 1, batches of {batch:>3}: {:>12.0} msg/s ({} messages in {secs:.2}s)",
            got.load(Ordering::SeqCst) as f64 / secs,
            MESSAGES
        );
    }
}
