//! Paging: when queues hold more message bytes than memory should, a queue's newest messages go
//! to a page file instead of memory, and come back a chunk at a time as the queue drains. A page
//! file holds one run of consecutive messages of one queue, appended at the end and read from the
//! front; the queue keeps only counts for it. Page files are a cache of memory, not a store:
//! each is unlinked as soon as it is created (persistent messages are in the message log too), and
//! the space of what was read back is given back to the filesystem as reading goes.
//!
//! A page file that cannot be created or written (a full disk) does not stop the broker: the batch
//! that failed and everything after it stay in memory, where reads find them, and the shard stops
//! paging altogether (`PageDir::failed`); the memory alarm then bounds what queues hold.
//!
//! The record format is in `page_record`.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

use glommio::io::{BufferedFile, OpenOptions};

use crate::broker::message::Message;
use crate::broker::paging::{LocalFuture, PageSpace, PagedMessage, PagedRun, RunFile};
use crate::notify::Notify;

use super::page_record::{parse, put_record};

/// Appended records are written once this many bytes gathered (less stays in memory only).
const WRITE_BATCH: usize = 256 << 10;
/// How much one page-in reads.
const READ_CHUNK: u64 = 1 << 20;
/// Disk space of what was read is given back in steps of this many bytes.
const PUNCH_STEP: u64 = 8 << 20;

/// Where a shard's page files go: `data_dir/page/shard-N/`, emptied at start; and how many bytes
/// of messages a queue keeps in memory before it pages.
pub struct PageDir {
    dir: PathBuf,
    next: Cell<u64>,
    keep: u64,
    /// A page file of this shard could not be written: none writes any more.
    failed: Rc<Cell<bool>>,
}

impl PageDir {
    pub fn new(dir: PathBuf, keep: u64) -> std::io::Result<Self> {
        // Left by a crash between a create and its unlink: never needed again.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, next: Cell::new(1), keep, failed: Rc::new(Cell::new(false)) })
    }

    /// Bytes of messages a queue keeps in memory before it pages newer ones out.
    pub fn keep(&self) -> u64 {
        self.keep
    }

    /// Whether a page file write failed, so that paging stopped on this shard.
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// A new, empty page file (created on disk only once it has a batch to write).
    pub fn file(&self) -> PageFile {
        let n = self.next.get();
        self.next.set(n + 1);
        PageFile(Rc::new(RefCell::new(Io {
            path: self.dir.join(format!("{n}.page")),
            keep: self.keep,
            file: None,
            pending: Vec::new(),
            batches: VecDeque::new(),
            batched: 0,
            written: 0,
            writing: false,
            in_write: 0,
            read_pos: 0,
            punched: 0,
            write_done: Rc::new(Notify::default()),
            failed: self.failed.clone(),
        })))
    }
}

struct Io {
    path: PathBuf,
    keep: u64,
    file: Option<Rc<BufferedFile>>,
    /// Full batches of records waiting for the writer (each at most WRITE_BATCH plus one record,
    /// far below the 2 GiB a single write may take), then the batch being filled. In file order,
    /// after `written` and the write in flight.
    batches: VecDeque<Vec<u8>>,
    batched: usize,
    pending: Vec<u8>,
    /// File offset up to which records are on disk (or were read straight from `pending`).
    written: u64,
    writing: bool,
    /// Bytes handed to the write in flight.
    in_write: usize,
    read_pos: u64,
    /// File space below this offset was given back.
    punched: u64,
    write_done: Rc<Notify>,
    /// Shared by the shard's page files: set, no batch is written any more (they stay in memory).
    failed: Rc<Cell<bool>>,
}

/// One run of a queue's paged-out messages (cheap to clone: a handle).
#[derive(Clone)]
pub struct PageFile(Rc<RefCell<Io>>);

impl PageSpace for PageDir {
    fn keep(&self) -> u64 {
        self.keep
    }
    fn run_file(&self) -> RunFile {
        Rc::new(self.file())
    }
}

impl PagedRun for PageFile {
    fn append(&self, id: u64, seg: u32, redelivered: bool, msg: &Message) {
        PageFile::append(self, id, seg, redelivered, msg)
    }
    fn keep(&self) -> u64 {
        PageFile::keep(self)
    }
    fn in_memory(&self) -> u64 {
        PageFile::in_memory(self)
    }
    fn read(&self) -> LocalFuture<Vec<PagedMessage>> {
        let f = self.clone();
        Box::pin(async move { PageFile::read(&f).await })
    }
    fn flushed(&self) -> LocalFuture<()> {
        let f = self.clone();
        Box::pin(async move { PageFile::flushed(&f).await })
    }
}

impl PageFile {
    pub fn append(&self, id: u64, seg: u32, redelivered: bool, msg: &Message) {
        let mut io = self.0.borrow_mut();
        put_record(&mut io.pending, id, seg, redelivered, msg);
        if io.pending.len() >= WRITE_BATCH {
            let full = std::mem::take(&mut io.pending);
            io.batched += full.len();
            io.batches.push_back(full);
            if !io.failed.get() && !std::mem::replace(&mut io.writing, true) {
                drop(io);
                glommio::spawn_local(self.clone().write_out()).detach();
            }
        }
    }

    /// Bytes of messages its queue keeps in memory (reads come when it holds less than half).
    pub fn keep(&self) -> u64 {
        self.0.borrow().keep
    }

    /// Bytes of this run held in memory: appended and not yet written, or being written.
    pub fn in_memory(&self) -> u64 {
        let io = self.0.borrow();
        (io.pending.len() + io.batched + io.in_write) as u64
    }

    /// Waits until the full batches appended so far are written (or writing failed: then they
    /// stay in memory). For recovery, which fills runs before any reader exists: a reader
    /// waiting at the same time would lose its wake-up (one waiter per notification).
    pub async fn flushed(&self) {
        loop {
            let (writing, done) = {
                let io = self.0.borrow();
                (io.writing, io.write_done.clone())
            };
            if !writing {
                return;
            }
            done.wait().await;
        }
    }

    /// Writes the full batches, one after another, until none is left (or writing failed: then
    /// the batches stay in memory and are read from there).
    async fn write_out(self) {
        loop {
            let (buf, pos, file) = {
                let mut io = self.0.borrow_mut();
                let next = if io.failed.get() { None } else { io.batches.pop_front() };
                let Some(buf) = next else {
                    io.writing = false;
                    io.write_done.notify();
                    return;
                };
                io.batched -= buf.len();
                io.in_write = buf.len();
                (buf, io.written, io.file.clone())
            };
            let result = self.write_batch(file, &buf, pos).await;
            let mut io = self.0.borrow_mut();
            io.in_write = 0;
            match result {
                Ok(()) => io.written += buf.len() as u64,
                Err(e) => {
                    // Nothing at or after `written` counts as on disk (a short write's bytes are
                    // never read): the batch goes back in front, in memory, counted as such.
                    io.batched += buf.len();
                    io.batches.push_front(buf);
                    if !io.failed.replace(true) {
                        log::error!(
                            "page file {}: {e}; paging stopped on this shard: what was not written stays in \
                             memory, and the memory alarm blocks publishers from half the memory limit",
                            io.path.display()
                        );
                    }
                }
            }
        }
    }

    /// Writes one batch at `pos`, creating (and unlinking) the file first if it has none yet.
    async fn write_batch(&self, file: Option<Rc<BufferedFile>>, buf: &[u8], pos: u64) -> Result<(), String> {
        let file = match file {
            Some(f) => f,
            None => {
                let path = self.0.borrow().path.clone();
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .buffered_open(&path)
                    .await
                    .map_err(|e| format!("create: {e}"))?;
                // Unlinked at once (on the blocking thread): the open handle is all that needs it.
                // A name left behind costs only space, and the next start clears the directory.
                let p = path.clone();
                if let Err(e) = glommio::executor().spawn_blocking(move || std::fs::remove_file(&p)).await {
                    log::warn!("page file {}: unlink failed: {e}; it stays until the next start", path.display());
                }
                let f = Rc::new(f);
                self.0.borrow_mut().file = Some(f.clone());
                f
            }
        };
        // glommio takes the buffer; the batch itself stays here in case the write fails.
        let n = file.write_at(buf.to_vec(), pos).await.map_err(|e| format!("write: {e}"))?;
        if n < buf.len() {
            return Err(format!("write: wrote {n} of {} bytes (disk full?)", buf.len()));
        }
        Ok(())
    }

    /// Reads `size` bytes at `pos`, trying again each second while the read fails. Those bytes
    /// are the only copy of their messages (of transient ones at least), so the run waits for
    /// them rather than skip them; only this queue's page-in waits, the broker goes on.
    async fn read_at(&self, file: &BufferedFile, pos: u64, size: usize) -> glommio::io::ReadResult {
        let mut tries = 0u64;
        loop {
            match file.read_at(pos, size).await {
                Ok(data) => {
                    if tries > 0 {
                        log::warn!("page file {}: read at {pos} succeeded again", self.0.borrow().path.display());
                    }
                    return data;
                }
                Err(e) if tries.is_multiple_of(60) => log::error!(
                    "page file {}: read at {pos} failed: {e}; its queue waits for it, retrying each second",
                    self.0.borrow().path.display()
                ),
                Err(_) => {}
            }
            tries += 1;
            glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Reads the next messages of the run (at least one, if the run has any).
    pub async fn read(&self) -> Vec<PagedMessage> {
        loop {
            let (pos, written, writing, file, done) = {
                let io = self.0.borrow();
                (io.read_pos, io.written, io.writing, io.file.clone(), io.write_done.clone())
            };
            // Bytes below `written` are in the file: it was created before the first write.
            if let Some(file) = file.filter(|_| pos < written) {
                let mut size = READ_CHUNK.min(written - pos) as usize;
                let mut tries = 0u64;
                let (msgs, used) = loop {
                    let data = self.read_at(&file, pos, size).await;
                    let (msgs, used) = parse(&data);
                    if used > 0 {
                        break (msgs, used);
                    }
                    match data.first_chunk::<4>().map(|len| 4 + u32::from_le_bytes(*len) as usize) {
                        // One record bigger than a chunk: read exactly it.
                        Some(whole) if whole > size => size = whole,
                        // A short read, or a record that does not decode: as for a read that
                        // fails, the run waits for its bytes rather than skip them.
                        _ => {
                            if tries.is_multiple_of(60) {
                                log::error!(
                                    "page file {}: the record at {pos} cannot be read back ({} bytes read); its \
                                     queue waits for it, retrying each second",
                                    self.0.borrow().path.display(),
                                    data.len()
                                );
                            }
                            tries += 1;
                            glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                };
                let punch = {
                    let mut io = self.0.borrow_mut();
                    io.read_pos += used as u64;
                    let upto = io.read_pos / PUNCH_STEP * PUNCH_STEP;
                    (upto > io.punched).then(|| (io.punched, std::mem::replace(&mut io.punched, upto)))
                };
                if let Some((from, to)) = punch {
                    // Only space is at stake: a filesystem without hole punching keeps it until the run ends.
                    let _ = file.deallocate(from, to - from).await;
                }
                return msgs;
            }
            if writing {
                done.wait().await;
                continue;
            }
            // Everything left is still in memory (the writer is idle, so no batch waits unless
            // writing failed): take the next batch, or the one being filled, without the disk.
            let mut io = self.0.borrow_mut();
            let next = match io.batches.pop_front() {
                Some(batch) => {
                    io.batched -= batch.len();
                    batch
                }
                None => std::mem::take(&mut io.pending),
            };
            io.written += next.len() as u64;
            io.read_pos = io.written;
            let (msgs, used) = parse(&next);
            if used < next.len() {
                log::error!(
                    "page file {}: a record in memory does not decode; its messages are lost",
                    io.path.display()
                );
            }
            return msgs;
        }
    }
}

/// Runs a test body on a glommio executor, with a page dir in a fresh temp dir (removed after).
#[cfg(test)]
pub(crate) fn with_page_dir<Fut: std::future::Future<Output = ()> + 'static>(
    tag: &str,
    keep: u64,
    body: impl FnOnce(PageDir) -> Fut + Send + 'static,
) {
    let dir = std::env::temp_dir().join(format!("warren-{tag}-{}", std::process::id()));
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            body(PageDir::new(dir.clone(), keep).unwrap()).await;
            std::fs::remove_dir_all(&dir).unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::broker::delivery::Settle;
    use crate::broker::queue::tests::{big, queue};
    use crate::protocol::shortstr::ShortStr;
    use bytes::Bytes;
    use std::collections::BTreeMap;

    #[test]
    fn a_queue_pages_to_real_files_in_order_and_a_purge_logs_the_run() {
        with_page_dir("queue-page", 1 << 20, |pages| async move {
            let mut q = queue();
            // 1 KiB messages while the shard pages: about 1 MiB stays in memory, the rest goes out.
            for i in 1..=3000u64 {
                q.push(big(i), |id| (id % 2) as u32 * 7, Some(&pages as &dyn PageSpace));
            }
            assert_eq!(q.message_count(), 3000);
            assert!(q.paged_count() > 1500 && q.ready_bytes() < 2 << 20, "{} {}", q.paged_count(), q.ready_bytes());
            // Paged bytes the writer has not put on disk yet still count as memory (a disk
            // slower than publishers must raise the memory alarm, not grow the heap unseen).
            assert!(q.bytes() > 3 << 20, "{}", q.bytes());
            // No longer paging: new messages still go behind the paged ones.
            q.push(big(3001), |_| 0, None);
            let (mut seen, mut requeued) = (Vec::new(), false);
            while seen.len() < 2000 {
                if let Some((file, serial)) = q.page_in_due() {
                    q.paged_in(serial, file.read().await);
                }
                let (id, m, _) = q.get(false).unwrap();
                seen.push((id, m.body[..8].to_vec()));
                if id == 1990 && !requeued {
                    q.settle(id, Settle::Requeue);
                    (requeued, _) = (true, seen.pop());
                }
            }
            let expect: Vec<_> = (1..=2000u64).map(|i| (i, i.to_le_bytes().to_vec())).collect();
            assert_eq!(seen, expect);
            // Purge: what is in memory is logged one by one, the paged run as one id range.
            assert_eq!(q.purge(), 1001);
            let (ones, runs) = q.take_gone();
            let paged_from = runs[0].ranges[0].0;
            assert!(ones.iter().all(|&(id, seg)| id < paged_from && seg == (id % 2) as u32 * 7));
            assert_eq!(runs[0].ranges.last().unwrap().1, 3001);
            let persisted_in_run = (paged_from..=3000).filter(|i| i % 2 == 1).count() as u64;
            assert_eq!(runs[0].segs, BTreeMap::from([(7, persisted_in_run)]));
            assert_eq!((q.message_count(), q.paged_count()), (0, 0));
        });
    }

    /// Every third key ends in 0xFF, which is not UTF-8: page files keep keys as bytes.
    fn key(i: usize) -> Vec<u8> {
        let mut k = format!("k{i}").into_bytes();
        if i.is_multiple_of(3) {
            k.push(0xFF);
        }
        k
    }

    pub(crate) fn msg(i: usize, size: usize) -> Message {
        Message {
            exchange: "x".into(),
            routing_key: ShortStr::copy_from_slice(&key(i)).unwrap(),
            properties: Bytes::from_static(&[0x10, 0, 2]),
            body: Bytes::from(vec![(i % 251) as u8; size]),
        }
    }

    #[test]
    fn a_run_reads_back_in_order_from_memory_and_disk() {
        with_page_dir("page", 1 << 20, |pages| async move {
            let dir = pages.dir.clone();
            let f = pages.file();
            // Sizes around the batch and chunk limits, one record bigger than a chunk.
            let sizes: Vec<usize> = (0..3000).map(|i| if i == 1500 { 3 << 20 } else { (i * 37) % 2000 }).collect();
            for (i, &size) in sizes.iter().enumerate() {
                f.append(i as u64 + 1, (i % 3) as u32, i % 2 == 0, &msg(i, size));
            }
            let mut got = Vec::new();
            while got.len() < sizes.len() {
                let batch = f.read().await;
                assert!(!batch.is_empty());
                got.extend(batch);
            }
            for (i, p) in got.iter().enumerate() {
                assert_eq!((p.id, p.seg, p.redelivered), (i as u64 + 1, (i % 3) as u32, i % 2 == 0));
                assert_eq!(p.msg.routing_key.as_bytes(), key(i));
                assert_eq!(p.msg.body.len(), sizes[i]);
                assert!(p.msg.body.iter().all(|&b| b == (i % 251) as u8));
            }
            // A short tail never reaches the disk: it is read straight from memory.
            f.append(9001, 0, false, &msg(1, 10));
            f.append(9002, 0, false, &msg(2, 10));
            assert_eq!(f.in_memory(), 2 * (4 + 8 + 4 + 1 + 2 + 3 + 4 + 3 + 10));
            let tail: Vec<u64> = f.read().await.iter().map(|p| p.id).collect();
            assert_eq!((tail, f.in_memory()), (vec![9001, 9002], 0));
            // Nothing lingers on disk: page files are unlinked once created.
            assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        });
    }

    #[test]
    fn after_a_failed_write_batches_stay_in_memory_and_read_back_in_order() {
        with_page_dir("page-failed", 1 << 20, |pages| async move {
            let f = pages.file();
            for i in 0..500 {
                f.append(i as u64 + 1, 0, false, &msg(i, 1000));
            }
            // As after a write that failed: no batch is written any more, not even this file's.
            pages.failed.set(true);
            for i in 500..2000 {
                f.append(i as u64 + 1, 0, false, &msg(i, 1000));
            }
            assert!(f.in_memory() > 1 << 20, "{}", f.in_memory());
            let mut got = Vec::new();
            while got.len() < 2000 {
                let batch = f.read().await;
                assert!(!batch.is_empty());
                got.extend(batch.into_iter().map(|p| p.id));
            }
            assert_eq!(got, (1..=2000).collect::<Vec<u64>>());
            assert_eq!(f.in_memory(), 0);
        });
    }
}
