//! Reading a shard's message log back at start: every segment in order, each up to its first torn
//! or corrupt record (the rest is logged, cut off, and never stops the start), replaying messages,
//! acks and queue drops into what each durable queue still holds.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use ahash::AHashMap as HashMap;

use crate::broker::message::Message;

use super::log::{segment_number, segment_path};
use super::record::{self, Record};

/// (vhost, queue) → id → (message, segment).
pub type QueueMessages = HashMap<(String, String), BTreeMap<u64, (Message, u32)>>;

pub struct Recovered {
    pub queues: QueueMessages,
    /// Every segment on disk → how many recovered messages it holds.
    pub live: BTreeMap<u32, u64>,
    /// Every segment on disk → how many message records it holds.
    pub written: BTreeMap<u32, u64>,
    /// Where appending continues: after every existing segment.
    pub next_seg: u32,
}

pub fn recover(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let mut segs: Vec<u32> =
        std::fs::read_dir(dir)?.filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_number)).collect();
    segs.sort_unstable();
    let mut queues = QueueMessages::default();
    let mut written: BTreeMap<u32, u64> = segs.iter().map(|&s| (s, 0)).collect();
    for &seg in &segs {
        let path = segment_path(dir, seg);
        let data = std::fs::read(&path)?;
        let (records, good) = record::read_all(&data);
        if good < data.len() {
            log::warn!(
                "{}: dropped a torn or corrupt tail of {} bytes after {} good records; keeping everything before it",
                path.display(),
                data.len() - good,
                records.len()
            );
            std::fs::OpenOptions::new().write(true).open(&path)?.set_len(good as u64)?;
        }
        for r in records {
            match r {
                Record::Message { vhost, queue, id, exchange, routing_key, properties, body } => {
                    let msg = Message { exchange, routing_key, properties, body };
                    *written.entry(seg).or_default() += 1;
                    queues.entry((vhost, queue)).or_default().insert(id, (msg, seg));
                }
                Record::Ack { vhost, queue, ids } => {
                    if let Some(q) = queues.get_mut(&(vhost, queue)) {
                        for id in ids {
                            q.remove(&id);
                        }
                    }
                }
                Record::AckRange { vhost, queue, first, last } => {
                    if let Some(q) = queues.get_mut(&(vhost, queue)) {
                        let mut after = q.split_off(&first);
                        q.append(&mut after.split_off(&last.saturating_add(1)));
                    }
                }
                Record::Drop { vhost, queue } => {
                    queues.remove(&(vhost, queue));
                }
            }
        }
    }
    queues.retain(|_, msgs| !msgs.is_empty());
    let mut live: BTreeMap<u32, u64> = segs.iter().map(|&s| (s, 0)).collect();
    for (_, seg) in queues.values().flat_map(|m| m.values()) {
        *live.entry(*seg).or_default() += 1;
    }
    let next_seg = segs.last().map_or(1, |s| s + 1);
    Ok(Recovered { queues, live, written, next_seg })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn msg(body: &'static [u8]) -> Message {
        Message {
            exchange: String::new(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from_static(body),
        }
    }

    fn tempdir(tag: &str) -> std::path::PathBuf {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let d = std::env::temp_dir().join(format!("warren-recovery-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn replays_acks_and_drops_across_segments_and_cuts_a_torn_tail() {
        let dir = tempdir("replay");
        let mut one = Vec::new();
        record::put_message(&mut one, "/", "a", 1, &msg(b"a1"));
        record::put_message(&mut one, "/", "a", 2, &msg(b"a2"));
        record::put_message(&mut one, "/", "b", 1, &msg(b"b1"));
        let mut two = Vec::new();
        record::put_ack(&mut two, "/", "a", &[1]);
        record::put_message(&mut two, "/", "a", 4, &msg(b"a4"));
        record::put_message(&mut two, "/", "a", 5, &msg(b"a5"));
        record::put_message(&mut two, "/", "a", 7, &msg(b"a7"));
        record::put_ack_range(&mut two, "/", "a", 3, 5);
        record::put_drop(&mut two, "/", "b");
        record::put_message(&mut two, "/", "b", 1, &msg(b"b1 again"));
        let whole = two.len();
        record::put_message(&mut two, "/", "a", 3, &msg(b"torn"));
        two.truncate(whole + 11);
        std::fs::write(segment_path(&dir, 1), &one).unwrap();
        std::fs::write(segment_path(&dir, 2), &two).unwrap();

        let r = recover(&dir).unwrap();
        let bodies = |q: &str| -> Vec<Vec<u8>> {
            r.queues[&("/".to_string(), q.to_string())].values().map(|(m, _)| m.body.to_vec()).collect()
        };
        assert_eq!(bodies("a"), [b"a2".to_vec(), b"a7".to_vec()]);
        assert_eq!(bodies("b"), [b"b1 again".to_vec()]);
        assert_eq!(r.live, BTreeMap::from([(1, 1), (2, 2)]));
        assert_eq!(r.next_seg, 3);
        assert_eq!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len(), whole as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
