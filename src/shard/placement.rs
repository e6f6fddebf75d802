//! Which shard owns a queue: a hash of (vhost, name) with fixed seeds, so every shard and every
//! process computes the same answer.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use ahash::RandomState;

const SEEDS: [u64; 4] = [0x5741_5252_454e_0001, 0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9, 0x94d0_49bb_1331_11eb];

pub fn shard_of(vhost: &str, queue: &str, shards: usize) -> usize {
    let mut h = RandomState::with_seeds(SEEDS[0], SEEDS[1], SEEDS[2], SEEDS[3]).build_hasher();
    vhost.hash(&mut h);
    queue.hash(&mut h);
    (h.finish() % shards.max(1) as u64) as usize
}

/// Queues split by the shard `shard` says owns each, in order of first appearance.
pub fn by_shard(queues: Vec<Arc<str>>, shard: impl Fn(&Arc<str>) -> usize) -> Vec<(usize, Vec<Arc<str>>)> {
    let mut groups: Vec<(usize, Vec<Arc<str>>)> = Vec::new();
    for q in queues {
        let s = shard(&q);
        match groups.iter_mut().find(|(d, _)| *d == s) {
            Some((_, g)) => g.push(q),
            None => groups.push((s, vec![q])),
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_spreads() {
        assert_eq!(shard_of("/", "q", 2), shard_of("/", "q", 2));
        let on_zero = (0..1000).filter(|i| shard_of("/", &format!("q{i}"), 2) == 0).count();
        assert!((400..600).contains(&on_zero), "{on_zero}");
        assert_eq!(shard_of("/", "q", 1), 0);
    }
}
