//! Placing lapin connections and queues on chosen shards.

use lapin::{Connection, ConnectionProperties};
use warren::shard::placement::shard_of;

use super::TestBroker;

/// Opens connections until one lands on `shard` (the kernel picks by the 4-tuple's hash; the broker
/// logs which shard accepted each). Others opened on the way are returned too, to keep them open.
pub async fn connect_on_shard(b: &TestBroker, shard: usize) -> Connection {
    for _ in 0..64 {
        let from = b.log_len();
        let c = Connection::connect(&b.url(), ConnectionProperties::default()).await.expect("connect");
        let line = b.wait_log(from, "accepting AMQP connection").expect("broker logged the connection");
        if line.ends_with(&format!("on shard {shard}")) {
            return c;
        }
        let _ = c.close(200, "wrong shard".into()).await;
    }
    panic!("no connection landed on shard {shard} in 64 tries");
}

pub fn queue_on_shard(prefix: &str, shard: usize, shards: usize) -> String {
    (0..).map(|i| format!("{prefix}-{i}")).find(|q| shard_of("/", q, shards) == shard).unwrap()
}
