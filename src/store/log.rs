//! A shard's message log: persistent messages of durable queues, and what became of them, appended
//! to numbered segment files in the shard's own directory. Records are encoded on the shard as
//! queues change; one writer task writes whatever has gathered, then fsyncs once for every publish
//! waiting on it (group commit) and hands the waiters back. A segment is deleted once no queue
//! holds a message from it and every older segment is gone (acks in it may name their messages),
//! and only after an fsync covering the records that made it dead (an ack, a copy written forward
//! by compaction). The directory sync of a new segment and the unlink of a dead one are blocking
//! calls: they run on the executor's blocking thread, never on the shard's own.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use glommio::Task;
use glommio::io::BufferedFile;

use crate::broker::message::Message;
use crate::notify::Notify;

use super::record;

pub fn segment_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(format!("{seg:08}.seg"))
}

/// Parses a segment file name back to its number.
pub fn segment_number(name: &str) -> Option<u32> {
    name.strip_suffix(".seg")?.parse().ok()
}

struct State<W> {
    /// The segment records are appended to, and how many bytes it has taken so far.
    seg: u32,
    seg_len: u64,
    /// Segment → persistent messages from it still held by a queue. Ordered: the head is the oldest.
    live: BTreeMap<u32, u64>,
    /// Segment → messages ever written to it.
    written: BTreeMap<u32, u64>,
    /// The oldest segment as the last compaction check saw it.
    oldest_seen: Option<u32>,
    /// Encoded records not yet handed to the writer, per segment, in order.
    pending: Vec<(u32, Vec<u8>)>,
    /// Publishes waiting for everything appended before them to be on disk.
    waiting: Vec<W>,
}

pub struct MessageLog<W> {
    dir: PathBuf,
    segment_bytes: u64,
    state: RefCell<State<W>>,
    wake: Notify,
    /// The first segment this run appends to; every older one is complete on disk.
    first_seg: u32,
    pub fsyncs: Cell<u64>,
    /// The last write failed (a full disk): nothing after it is confirmed until a retry succeeds.
    stalled: Cell<bool>,
}

/// How long a log that could not write waits before it tries again.
const RETRY: std::time::Duration = std::time::Duration::from_millis(500);

impl<W> MessageLog<W> {
    /// A log continuing in `dir` after recovery: `live` holds the recovered messages per segment,
    /// `written` the messages each holds, and appends go to a fresh segment after all of them.
    pub fn new(
        dir: PathBuf,
        segment_bytes: u64,
        mut live: BTreeMap<u32, u64>,
        written: BTreeMap<u32, u64>,
        next_seg: u32,
    ) -> Self {
        live.insert(next_seg, 0);
        let state = State {
            seg: next_seg,
            seg_len: 0,
            live,
            written,
            oldest_seen: None,
            pending: Vec::new(),
            waiting: Vec::new(),
        };
        Self {
            dir,
            segment_bytes,
            state: RefCell::new(state),
            wake: Notify::default(),
            first_seg: next_seg,
            fsyncs: Cell::new(0),
            stalled: Cell::new(false),
        }
    }

    /// Appends with `put`, returning the segment the record went to.
    fn append(&self, put: impl FnOnce(&mut Vec<u8>)) -> u32 {
        let mut st = self.state.borrow_mut();
        let seg = st.seg;
        // The record joins the last pending batch if that is this segment's, else starts one.
        let mut buf = match st.pending.pop() {
            Some((s, buf)) if s == seg => buf,
            last => {
                // Another segment's batch (or none) stays as it was.
                st.pending.extend(last);
                Vec::with_capacity(64 << 10)
            }
        };
        let before = buf.len();
        put(&mut buf);
        let added = (buf.len() - before) as u64;
        st.pending.push((seg, buf));
        st.seg_len += added;
        if st.seg_len >= self.segment_bytes {
            st.seg += 1;
            st.seg_len = 0;
            let next = st.seg;
            st.live.insert(next, 0);
        }
        drop(st);
        self.wake.notify();
        seg
    }

    /// Logs a persistent message entering a durable queue; returns its segment.
    pub fn message(&self, vhost: &str, queue: &str, id: u64, msg: &Message) -> u32 {
        let seg = self.append(|b| record::put_message(b, vhost, queue, id, msg));
        let mut st = self.state.borrow_mut();
        *st.live.entry(seg).or_default() += 1;
        *st.written.entry(seg).or_default() += 1;
        seg
    }

    /// Logs that these messages left the queue: `(id, segment)` pairs.
    pub fn gone(&self, vhost: &str, queue: &str, gone: &[(u64, u32)]) {
        if gone.is_empty() {
            return;
        }
        let ids: Vec<u64> = gone.iter().map(|&(id, _)| id).collect();
        self.append(|b| record::put_ack(b, vhost, queue, &ids));
        self.release(gone.iter().map(|&(_, seg)| (seg, 1)));
    }

    /// Logs that the messages of a queue with ids `first..=last` left it; `segs` counts the
    /// persisted ones per segment.
    pub fn gone_range(&self, vhost: &str, queue: &str, first: u64, last: u64, segs: &BTreeMap<u32, u64>) {
        self.append(|b| record::put_ack_range(b, vhost, queue, first, last));
        self.release(segs.iter().map(|(&s, &n)| (s, n)));
    }

    /// Logs that a queue was deleted, releasing the segments of the messages it held (segment →
    /// how many).
    pub fn dropped(&self, vhost: &str, queue: &str, segs: impl Iterator<Item = (u32, u64)>) {
        self.append(|b| record::put_drop(b, vhost, queue));
        self.release(segs);
    }

    fn release(&self, segs: impl Iterator<Item = (u32, u64)>) {
        let mut st = self.state.borrow_mut();
        for (seg, k) in segs {
            if let Some(n) = st.live.get_mut(&seg) {
                *n = n.saturating_sub(k);
            }
        }
    }

    /// The segment worth compacting, asked about once a second: the oldest one, if it stayed the
    /// oldest since the last time, is not among the two newest, and at most half of what it holds
    /// is still live. It pins every newer segment on disk (deletion goes oldest first), so copying
    /// its few live messages forward (`message` again, then `moved`) frees them all. In a queue
    /// that flows, the oldest segment empties within a second and is never copied.
    pub fn compaction_due(&self) -> Option<u32> {
        let mut st = self.state.borrow_mut();
        let (&oldest, &live) = st.live.first_key_value()?;
        let seen = st.oldest_seen.replace(oldest);
        let written = st.written.get(&oldest).copied().unwrap_or(0);
        (seen == Some(oldest) && oldest + 2 <= st.seg && live > 0 && live * 2 <= written).then_some(oldest)
    }

    /// `n` live messages of segment `seg` were written again to a newer one.
    pub fn moved(&self, seg: u32, n: u64) {
        self.release(std::iter::once((seg, n)));
        self.wake.notify();
    }

    /// `w` is handed back once everything appended so far is on disk.
    pub fn after_sync(&self, w: W) {
        self.state.borrow_mut().waiting.push(w);
        self.wake.notify();
    }

    /// Takes the segments no queue needs off the books, oldest first, into `dead`: the oldest ones
    /// with no live message, below the one being written. Whatever made them dead was appended
    /// before this call, so it is in the next write; they are deleted after that write's fsync.
    fn take_dead(&self, below: u32, dead: &mut Vec<u32>) {
        let mut st = self.state.borrow_mut();
        while let Some((&seg, &0)) = st.live.first_key_value()
            && seg < below
        {
            st.live.pop_first();
            st.written.remove(&seg);
            dead.push(seg);
        }
    }

    /// Deletes segments `dead` (oldest first) on the blocking thread, after the deletions started
    /// before (`prev`) are done: an older segment is gone before a newer one goes, since acks in a
    /// newer one may name messages of an older one.
    fn delete_later(&self, prev: Option<Task<()>>, dead: Vec<u32>) -> Task<()> {
        let paths: Vec<PathBuf> = dead.into_iter().map(|seg| segment_path(&self.dir, seg)).collect();
        glommio::spawn_local(async move {
            if let Some(prev) = prev {
                prev.await;
            }
            for path in paths {
                let p = path.clone();
                if let Err(e) = glommio::executor().spawn_blocking(move || std::fs::remove_file(&p)).await
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    log::warn!("cannot delete {}: {e}", path.display());
                }
            }
        })
    }

    pub fn wake(&self) {
        self.wake.notify();
    }

    /// Whether the log is waiting to write again after a failed write (the disk alarm holds then).
    pub fn stalled(&self) -> bool {
        self.stalled.get()
    }

    /// Bytes of records appended and not yet handed to the writer (they pile up while a full disk
    /// stalls it), for the memory gauge.
    pub fn pending_bytes(&self) -> u64 {
        self.state.borrow().pending.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Segment files in use (for tests and stats).
    pub fn segments(&self) -> usize {
        self.state.borrow().live.len()
    }

    /// The writer: runs until `stopping` says so and nothing is left to write. `synced` gets the
    /// waiters each fsync covered.
    pub async fn run(&self, stopping: impl Fn() -> bool, mut synced: impl FnMut(Vec<W>)) {
        let mut file: Option<(u32, BufferedFile, u64)> = None;
        // Segments taken off the books, to delete once the next fsync covers what made them dead;
        // and the task deleting the ones before them.
        let mut dead = Vec::new();
        let mut deleting: Option<Task<()>> = None;
        loop {
            let below = file.as_ref().map_or(self.first_seg, |(s, _, _)| *s);
            self.take_dead(below, &mut dead);
            let (mut chunks, waiters) = {
                let mut st = self.state.borrow_mut();
                (std::mem::take(&mut st.pending), std::mem::take(&mut st.waiting))
            };
            if chunks.is_empty() && waiters.is_empty() && dead.is_empty() {
                if stopping() {
                    if let Some((_, f, _)) = file.take() {
                        let _ = f.fdatasync().await;
                        let _ = f.close().await;
                    }
                    if let Some(t) = deleting.take() {
                        t.await;
                    }
                    return;
                }
                self.wake.wait().await;
                continue;
            }
            if let Err(e) = self.write(&mut file, &mut chunks).await {
                // Nothing after the failed write is on disk, so nobody waiting is answered: what
                // is left goes back in front of what came meanwhile, publishers are blocked
                // (the disk alarm), and the same bytes are written at the same place again.
                // The dead segments wait too: what made them dead may be in what is left.
                if !self.stalled.replace(true) {
                    log::error!("message log {}: {e}; confirms withheld until it can write again", self.dir.display());
                }
                {
                    let mut st = self.state.borrow_mut();
                    chunks.append(&mut st.pending);
                    st.pending = chunks;
                    let mut waiting = waiters;
                    waiting.append(&mut st.waiting);
                    st.waiting = waiting;
                }
                if stopping() {
                    if let Some(t) = deleting.take() {
                        t.await;
                    }
                    return;
                }
                glommio::timer::sleep(RETRY).await;
                continue;
            }
            if self.stalled.replace(false) {
                log::warn!("message log {}: writing again", self.dir.display());
            }
            if (!waiters.is_empty() || !dead.is_empty())
                && let Some((_, f, _)) = &file
            {
                f.fdatasync().await.unwrap_or_else(|e| self.fatal("fsync", e));
                self.fsyncs.set(self.fsyncs.get() + 1);
            }
            synced(waiters);
            if !dead.is_empty() {
                deleting = Some(self.delete_later(deleting.take(), std::mem::take(&mut dead)));
            }
        }
    }

    /// Writes `chunks` in order, each removed once it is wholly written. A failed write leaves the
    /// file and position as they were, so writing the same chunk again puts it where it belongs.
    async fn write(
        &self,
        file: &mut Option<(u32, BufferedFile, u64)>,
        chunks: &mut Vec<(u32, Vec<u8>)>,
    ) -> Result<(), String> {
        let mut done = 0;
        let result = async {
            for (seg, buf) in chunks.iter() {
                if file.as_ref().is_none_or(|(s, _, _)| s != seg) {
                    if let Some((_, old, _)) = file.take() {
                        old.fdatasync().await.unwrap_or_else(|e| self.fatal("fsync", e));
                        let _ = old.close().await;
                    }
                    let path = segment_path(&self.dir, *seg);
                    let f = BufferedFile::create(&path).await.map_err(|e| format!("create {}: {e}", path.display()))?;
                    // The new name must survive a power cut as well as the data behind it: the
                    // directory is synced before anything in the segment can be confirmed.
                    let dir = self.dir.clone();
                    glommio::executor()
                        .spawn_blocking(move || std::fs::File::open(&dir).and_then(|d| d.sync_all()))
                        .await
                        .map_err(|e| format!("sync {}: {e}", self.dir.display()))?;
                    *file = Some((*seg, f, 0));
                }
                let Some((_, f, pos)) = file.as_mut() else { unreachable!("opened above") };
                // glommio takes the buffer; the copy is what a retry writes if this fails.
                let n = f.write_at(buf.clone(), *pos).await.map_err(|e| format!("write: {e}"))?;
                if n < buf.len() {
                    return Err(format!("write: wrote {n} of {} bytes (disk full?)", buf.len()));
                }
                *pos += n as u64;
                done += 1;
            }
            Ok(())
        }
        .await;
        chunks.drain(..done);
        result
    }

    /// A log whose fsync failed must not go on: after a failed fsync nothing says what is on disk
    /// (PostgreSQL's rule). Stop at once; what was confirmed is on disk, and the rest was never
    /// confirmed. (A failed write, such as a full disk, is retried instead: see `run`.)
    fn fatal(&self, what: &str, e: impl std::fmt::Display) -> ! {
        log::error!("message log {}: {what} failed: {e}; stopping", self.dir.display());
        std::process::abort()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    fn seg_files(dir: &Path) -> Vec<u32> {
        let mut segs: Vec<u32> =
            std::fs::read_dir(dir).unwrap().filter_map(|e| segment_number(e.unwrap().file_name().to_str()?)).collect();
        segs.sort();
        segs
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            glommio::timer::sleep(Duration::from_millis(2)).await;
        }
    }

    #[test]
    fn segments_rotate_and_dead_ones_go_after_an_fsync_covering_their_acks() {
        let dir = std::env::temp_dir().join(format!("warren-log-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.clone();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let log: Rc<MessageLog<u64>> =
                    Rc::new(MessageLog::new(d.clone(), 4096, BTreeMap::new(), BTreeMap::new(), 1));
                let (stop, synced) = (Rc::new(Cell::new(false)), Rc::new(RefCell::new(Vec::new())));
                let writer = glommio::spawn_local({
                    let (log, stop, synced) = (log.clone(), stop.clone(), synced.clone());
                    async move { log.run(|| stop.get(), |done| synced.borrow_mut().extend(done)).await }
                });
                let msg = Message {
                    exchange: "".into(),
                    routing_key: "q".into(),
                    properties: Bytes::from_static(&[0x10, 0, 2]),
                    body: Bytes::from(vec![7u8; 1000]),
                };
                // About four messages a segment: 40 messages rotate through ten segments.
                let mut held = Vec::new();
                for id in 1..=40 {
                    held.push((id, log.message("/", "q", id, &msg)));
                    log.after_sync(id);
                }
                until("every publish is synced", || synced.borrow().len() == 40).await;
                let segs: Vec<u32> = held.iter().map(|&(_, s)| s).collect();
                assert!(segs.last() > segs.first().map(|s| s + 8).as_ref(), "{segs:?}");
                // Confirmed records are in files whose names were synced: every segment is there.
                let on_disk = seg_files(&d);
                assert!(segs.iter().all(|s| on_disk.contains(s)), "{segs:?} {on_disk:?}");

                // Every message leaves: the acks are appended to the newest segment, and the older
                // segments go, but only after an fsync that covers those acks (nobody waits on it).
                let fsyncs = log.fsyncs.get();
                log.gone("/", "q", &held);
                until("the dead segments are deleted", || seg_files(&d).len() == 1).await;
                assert!(log.fsyncs.get() > fsyncs, "segments were deleted before their acks were synced");
                assert_eq!(log.segments(), 1);
                stop.set(true);
                log.wake();
                writer.await;
            })
            .unwrap()
            .join()
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
