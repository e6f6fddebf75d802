//! Ids that name connections and queues across shards: the owning shard sits in the top 16 bits,
//! so any shard can tell where to send a message about one without asking.

/// A connection's id: the shard that accepted it in the top 16 bits.
pub type ConnId = u64;
/// A queue's id: its owning shard in the top 16 bits.
pub type QueueId = u64;

pub fn shard_of_id(id: u64) -> usize {
    (id >> 48) as usize
}

pub fn make_id(shard: usize, serial: u64) -> u64 {
    ((shard as u64) << 48) | (serial & ((1 << 48) - 1))
}
