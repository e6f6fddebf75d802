//! The message logs' layout on disk: `data_dir/msgs/shard-N/`, one per shard, and a `shards` file
//! with their count. Queues are placed by hash modulo the shard count and each shard replays only
//! its own log, so when the broker starts with another count the logs are rewritten first: every
//! shard's log is replayed and what its queues still hold is written, in order, to the shard that
//! owns each queue under the new count.
//!
//! The new layout is built in `msgs.relayout` and swapped in with two renames; a crash at any
//! point leaves either the old layout (the half-built one is discarded at the next start) or the
//! complete new one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::log::segment_path;
use super::record;
use super::recovery::recover;

fn shard_dir(root: &Path, shard: usize) -> PathBuf {
    root.join(format!("shard-{shard}"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Makes `root` hold logs for `shards` shards, rewriting logs written by another count.
/// `place(vhost, queue, shards)` says which shard owns a queue.
pub fn ensure(root: &Path, shards: usize, place: impl Fn(&str, &str, usize) -> usize) -> io::Result<()> {
    let parent = root.parent().unwrap_or(Path::new("."));
    let staging = root.with_extension("relayout");
    let old = root.with_extension("old");
    // Finish or undo what a crash interrupted.
    if staging.exists() {
        if root.exists() {
            fs::remove_dir_all(&staging)?;
        } else {
            fs::rename(&staging, root)?;
            sync_dir(parent)?;
        }
    }
    if old.exists() {
        fs::remove_dir_all(&old)?;
    }
    fs::create_dir_all(root)?;
    let record = root.join("shards");
    let written: Option<usize> = fs::read_to_string(&record).ok().and_then(|s| s.trim().parse().ok());
    match written {
        Some(w) if w != shards => {
            rewrite(root, &staging, w, shards, place)?;
            fs::rename(root, &old)?;
            fs::rename(&staging, root)?;
            sync_dir(parent)?;
            fs::remove_dir_all(&old)
        }
        _ => {
            fs::write(&record, format!("{shards}\n"))?;
            Ok(())
        }
    }
}

/// Writes into `staging` the messages the logs of `from` shards in `root` still hold, each
/// queue's to the shard owning it among `to`.
fn rewrite(
    root: &Path,
    staging: &Path,
    from: usize,
    to: usize,
    place: impl Fn(&str, &str, usize) -> usize,
) -> io::Result<()> {
    fs::create_dir_all(staging)?;
    let mut files = Vec::with_capacity(to);
    for k in 0..to {
        let dir = shard_dir(staging, k);
        fs::create_dir_all(&dir)?;
        files.push(io::BufWriter::with_capacity(1 << 20, fs::File::create(segment_path(&dir, 1))?));
    }
    let (mut queues, mut messages) = (0, 0);
    let mut buf = Vec::new();
    // Recovery streams each old log: memory holds one message at a time, not a shard's backlog.
    for i in 0..from {
        let recovered = recover(&shard_dir(root, i))?;
        queues += recovered.queues().len();
        let mut replay = recovered.replay();
        while let Some(m) = replay.next_message()? {
            let (vhost, queue) = replay.queue(m.queue);
            buf.clear();
            record::put_message(&mut buf, vhost, queue, m.id, &m.msg);
            let k = place(vhost, queue, to);
            let file = files.get_mut(k).ok_or_else(|| {
                io::Error::other(format!("queue '{queue}' of vhost '{vhost}' placed on shard {k} of {to}"))
            })?;
            file.write_all(&buf)?;
            messages += 1;
        }
    }
    for (k, f) in files.into_iter().enumerate() {
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        sync_dir(&shard_dir(staging, k))?;
    }
    fs::write(staging.join("shards"), format!("{to}\n"))?;
    fs::File::open(staging.join("shards"))?.sync_all()?;
    sync_dir(staging)?;
    log::info!("message logs rewritten from {from} to {to} shards: {messages} messages of {queues} queues");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use bytes::Bytes;

    fn msg(body: &str) -> Message {
        Message {
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn logs_move_to_the_shards_that_own_their_queues() {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = std::env::temp_dir().join(format!("warren-relayout-{}-{n}", std::process::id())).join("msgs");
        // Two shards: queue "a" on shard 0 with an ack, queue "b" on shard 1.
        let place = |_: &str, q: &str, shards: usize| if q == "a" { 0 } else { shards - 1 };
        ensure(&root, 2, place).unwrap();
        for k in 0..2 {
            fs::create_dir_all(shard_dir(&root, k)).unwrap();
        }
        let mut zero = Vec::new();
        record::put_message(&mut zero, "/", "a", 1, &msg("a1"));
        record::put_message(&mut zero, "/", "a", 2, &msg("a2"));
        record::put_ack(&mut zero, "/", "a", &[1]);
        fs::write(segment_path(&shard_dir(&root, 0), 1), &zero).unwrap();
        let mut one = Vec::new();
        record::put_message(&mut one, "/", "b", 7, &msg("b7"));
        fs::write(segment_path(&shard_dir(&root, 1), 3), &one).unwrap();

        ensure(&root, 3, place).unwrap();
        assert_eq!(fs::read_to_string(root.join("shards")).unwrap(), "3\n");
        let held = |k: usize| -> Vec<(String, u64, String)> {
            let mut replay = recover(&shard_dir(&root, k)).unwrap().replay();
            let mut v = Vec::new();
            while let Some(m) = replay.next_message().unwrap() {
                v.push((replay.queue(m.queue).1.to_string(), m.id, String::from_utf8(m.msg.body.to_vec()).unwrap()));
            }
            v.sort();
            v
        };
        assert_eq!(held(0), [("a".to_string(), 2, "a2".to_string())]);
        assert_eq!(held(1), []);
        assert_eq!(held(2), [("b".to_string(), 7, "b7".to_string())]);
        assert!(!root.with_extension("old").exists() && !root.with_extension("relayout").exists());

        // A crash between the two renames: the complete new layout is taken at the next start.
        fs::rename(&root, root.with_extension("relayout")).unwrap();
        ensure(&root, 3, place).unwrap();
        assert_eq!(held(2), [("b".to_string(), 7, "b7".to_string())]);
        fs::remove_dir_all(root.parent().unwrap()).unwrap();
    }
}
