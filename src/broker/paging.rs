//! What a queue needs of the disk to page its newest messages out: defined here, implemented by
//! `store::page`, so the queue stays a state machine (tested with an in-memory run file, without
//! an executor or files) and broker does not depend on store.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use super::message::Message;

/// A message read back from a page file.
pub struct PagedMessage {
    pub id: u64,
    pub seg: u32,
    pub redelivered: bool,
    pub msg: Message,
}

/// A future that stays on its shard.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Where a shard's paging queues put their runs.
pub trait PageSpace {
    /// Bytes of messages a queue keeps in memory before it pages newer ones out.
    fn keep(&self) -> u64;
    /// A new, empty file for one run of a queue's paged-out messages.
    fn run_file(&self) -> RunFile;
}

/// One run of a queue's paged-out messages, in queue order (a cheap handle).
pub type RunFile = Rc<dyn PagedRun>;

pub trait PagedRun {
    fn append(&self, id: u64, seg: u32, redelivered: bool, msg: &Message);
    /// Bytes its queue keeps in memory (reads come when it holds less than half).
    fn keep(&self) -> u64;
    /// Bytes of the run held in memory: appended and not yet on disk.
    fn in_memory(&self) -> u64;
    /// The next messages of the run (at least one, if it has any).
    fn read(&self) -> LocalFuture<Vec<PagedMessage>>;
    /// Resolves once what was appended so far is written (or writing failed).
    fn flushed(&self) -> LocalFuture<()>;
}
