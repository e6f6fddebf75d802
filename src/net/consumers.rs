//! A channel's consumers as its connection sees them. Each has the client's tag and a key of the
//! channel's own, which the queue puts in every delivery: finding a delivery's consumer is one
//! integer lookup, and a delivery carries no string and no reference count shared between shards.

use ahash::AHashMap as HashMap;

use crate::broker::delivery::Delivery;
use crate::ids::QueueId;

pub struct ConsumerEntry {
    pub tag: String,
    /// Its queue (0 until the queue accepted it, and for the direct reply-to consumer).
    pub queue: QueueId,
    /// False until consume-ok is written; deliveries wait in `held` so none precedes it.
    pub ready: bool,
    pub held: Vec<Delivery>,
}

#[derive(Default)]
pub struct ChannelConsumers {
    by_key: HashMap<u64, ConsumerEntry>,
    keys: HashMap<String, u64>,
    next_key: u64,
}

impl ChannelConsumers {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.keys.contains_key(tag)
    }

    /// Adds a consumer (its tag not taken, see `has_tag`) and returns its key.
    pub fn add(&mut self, tag: String, ready: bool) -> u64 {
        self.next_key += 1;
        let key = self.next_key;
        self.keys.insert(tag.clone(), key);
        self.by_key.insert(key, ConsumerEntry { tag, queue: 0, ready, held: Vec::new() });
        key
    }

    pub fn get(&self, key: u64) -> Option<&ConsumerEntry> {
        self.by_key.get(&key)
    }

    pub fn get_mut(&mut self, key: u64) -> Option<&mut ConsumerEntry> {
        self.by_key.get_mut(&key)
    }

    pub fn key_of(&self, tag: &str) -> Option<u64> {
        self.keys.get(tag).copied()
    }

    pub fn remove_tag(&mut self, tag: &str) -> Option<ConsumerEntry> {
        let key = self.keys.remove(tag)?;
        self.by_key.remove(&key)
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Takes every consumer out (the channel is closing).
    pub fn take_all(&mut self) -> impl Iterator<Item = ConsumerEntry> + use<> {
        self.keys.clear();
        std::mem::take(&mut self.by_key).into_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_find_consumers_and_tags_map_to_keys_until_removed() {
        let mut c = ChannelConsumers::default();
        let a = c.add("a".into(), false);
        let b = c.add("b".into(), true);
        assert_ne!(a, b);
        assert!(c.has_tag("a") && c.has_tag("b") && !c.has_tag("c"));
        assert_eq!(c.get(b).map(|e| e.tag.as_str()), Some("b"));
        assert_eq!(c.remove_tag("a").map(|e| e.tag), Some("a".to_string()));
        assert!(c.get(a).is_none() && !c.has_tag("a"));
        // A tag used again gets a new key: deliveries for the old consumer find nothing.
        let a2 = c.add("a".into(), true);
        assert_ne!(a2, a);
        assert_eq!(c.len(), 2);
        assert_eq!(c.take_all().count(), 2);
        assert!(c.is_empty() && !c.has_tag("b"));
    }
}
