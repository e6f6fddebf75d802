//! Reading a shard's message log back at start: every segment in order, replaying messages, acks
//! and queue drops into what each durable queue still holds.
//!
//! Only the newest segment can end in a torn write: the writer fsyncs a segment before it starts
//! the next one. So a bad record in the newest segment is a crash's torn tail, cut off with a
//! warning; a bad record in any older one is damage to data that was confirmed, and recovery stops
//! with an error naming the file and offset instead of dropping what follows it.

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
    let newest = segs.last().copied();
    for &seg in &segs {
        let path = segment_path(dir, seg);
        let data = std::fs::read(&path)?;
        let (records, good) = record::read_all(&data);
        if good < data.len() {
            if Some(seg) != newest {
                // Segments are checked oldest first, so nothing on disk has been changed yet.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: corrupt record at byte offset {good} of {} in a segment older than the newest \
                         (it was fsynced before the next one began, so this is not a torn write); \
                         refusing to start rather than drop the {} bytes from there on",
                        path.display(),
                        data.len(),
                        data.len() - good
                    ),
                ));
            }
            log::warn!(
                "{}: dropped a torn tail of {} bytes at byte offset {good} after {} good records; keeping everything before it",
                path.display(),
                data.len() - good,
                records.len()
            );
            let file = std::fs::OpenOptions::new().write(true).open(&path)?;
            file.set_len(good as u64)?;
            // The next run appends to a newer segment, after which this one must not end torn
            // again: the cut has to be on disk before that.
            file.sync_all()?;
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
            exchange: "".into(),
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

    #[test]
    fn a_torn_tail_in_the_newest_segment_is_cut_and_the_records_before_it_kept() {
        let dir = tempdir("torn-newest");
        let mut one = Vec::new();
        record::put_message(&mut one, "/", "q", 1, &msg(b"m1"));
        let mut two = Vec::new();
        record::put_message(&mut two, "/", "q", 2, &msg(b"m2"));
        record::put_message(&mut two, "/", "q", 3, &msg(b"m3"));
        let whole = two.len();
        record::put_message(&mut two, "/", "q", 4, &msg(b"torn by a crash"));
        two.truncate(two.len() - 5);
        std::fs::write(segment_path(&dir, 1), &one).unwrap();
        std::fs::write(segment_path(&dir, 2), &two).unwrap();

        let r = recover(&dir).unwrap();
        let ids: Vec<u64> = r.queues[&("/".to_string(), "q".to_string())].keys().copied().collect();
        assert_eq!(ids, [1, 2, 3]);
        assert_eq!(std::fs::metadata(segment_path(&dir, 1)).unwrap().len(), one.len() as u64);
        assert_eq!(std::fs::metadata(segment_path(&dir, 2)).unwrap().len(), whole as u64);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // Bug: recovery cut every segment at its first bad record, so a flipped bit in an older
    // (fsynced, confirmed) segment silently dropped every message after it and started anyway.
    #[test]
    fn a_corrupt_record_in_an_older_segment_stops_recovery_and_changes_nothing() {
        let dir = tempdir("corrupt-older");
        let mut one = Vec::new();
        record::put_message(&mut one, "/", "q", 1, &msg(b"m1"));
        let second = one.len();
        record::put_message(&mut one, "/", "q", 2, &msg(b"m2"));
        record::put_message(&mut one, "/", "q", 3, &msg(b"m3"));
        one[second + record::HEADER + 5] ^= 0x01;
        let mut two = Vec::new();
        record::put_message(&mut two, "/", "q", 4, &msg(b"m4"));
        record::put_message(&mut two, "/", "q", 5, &msg(b"torn"));
        two.truncate(two.len() - 3);
        std::fs::write(segment_path(&dir, 1), &one).unwrap();
        std::fs::write(segment_path(&dir, 2), &two).unwrap();

        let Err(e) = recover(&dir) else { panic!("recovery went on past a corrupt record in an older segment") };
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let text = e.to_string();
        let path = segment_path(&dir, 1);
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("byte offset {second} ")), "{text}");
        // Neither the damaged segment nor the newest one's torn tail was touched.
        assert_eq!(std::fs::read(&path).unwrap(), one);
        assert_eq!(std::fs::read(segment_path(&dir, 2)).unwrap(), two);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
