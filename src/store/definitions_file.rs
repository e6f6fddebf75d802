//! The durable definitions (users, vhosts, permissions, durable exchanges, queues and the bindings
//! between durable ends) kept in `definitions.json` in the data dir, in RabbitMQ's export format.
//! The coordinator shard owns the file: every change to something durable bumps a version, one
//! task rewrites the whole file atomically (temp file, fsync, rename, fsync of the directory) off
//! the shard's thread, and whoever made the change waits for a save that covers it before the
//! client hears `-ok`. A save that fails (a full disk) answers those waiting with the error, so
//! their clients hear it instead of waiting; the change stays in memory and the save is tried
//! again each second until it succeeds.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::broker::definitions::QueueDef;
use crate::notify::Notify;

pub const FILE_NAME: &str = "definitions.json";

/// Told whether a save covering its change reached the disk (else why not).
type Waiter = Box<dyn FnOnce(Result<(), String>)>;

/// How long a save that failed waits before it is tried again.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

pub struct DurableDefinitions {
    path: PathBuf,
    /// Durable queues by (vhost, name), as their owning shards reported them.
    pub queues: RefCell<BTreeMap<(String, String), QueueDef>>,
    version: Cell<u64>,
    saved: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waiter)>>,
    wake: Notify,
}

impl DurableDefinitions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
            queues: RefCell::new(BTreeMap::new()),
            version: Cell::new(0),
            saved: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            wake: Notify::default(),
        }
    }

    /// Records that something durable changed; returns the version a save must reach to cover it.
    pub fn changed(&self) -> u64 {
        let v = self.version.get() + 1;
        self.version.set(v);
        self.wake.notify();
        v
    }

    /// Runs `f` once a save covering version `v` is on disk, or with the error of the next save
    /// that was tried and failed.
    pub fn when_saved(&self, v: u64, f: Waiter) {
        if self.saved.get() >= v {
            f(Ok(()));
        } else {
            self.waiters.borrow_mut().push((v, f));
        }
    }

    pub fn wake(&self) {
        self.wake.notify();
    }

    /// The saver: writes `snapshot()` whenever the version moved, until `stopping()` and saved
    /// (or a save failed while stopping: the change was never confirmed to anyone).
    pub async fn run(&self, snapshot: impl Fn() -> String, stopping: impl Fn() -> bool) {
        let mut failing = false;
        loop {
            let v = self.version.get();
            if v == self.saved.get() {
                if stopping() {
                    return;
                }
                self.wake.wait().await;
                continue;
            }
            let (path, text) = (self.path.clone(), snapshot());
            let result = glommio::executor().spawn_blocking(move || write_atomic(&path, text.as_bytes())).await;
            let result = match result {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        log::warn!("saved {} again", self.path.display());
                    }
                    self.saved.set(v);
                    Ok(())
                }
                Err(e) => {
                    if !std::mem::replace(&mut failing, true) {
                        log::error!("cannot save {}: {e}; retrying each second", self.path.display());
                    }
                    Err(e.to_string())
                }
            };
            // Whoever waits for a change this save covered hears how it went: `-ok` only for a
            // change on disk, an error (not an endless wait) for one that is not.
            let due: Vec<Waiter> = {
                let mut waiters = self.waiters.borrow_mut();
                let (due, keep): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(w, _)| *w <= v);
                *waiters = keep;
                due.into_iter().map(|(_, f)| f).collect()
            };
            for f in due {
                f(result.clone());
            }
            if result.is_err() {
                if stopping() {
                    log::error!("stopping with changes to {} unsaved", self.path.display());
                    return;
                }
                glommio::timer::sleep(RETRY).await;
            }
        }
    }
}

/// Replaces `path` with `data` so that a crash leaves either the old file or the new one.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        f.write_all(data)?;
        f.sync_all()
    });
    if let Err(e) = written {
        // A full disk gets back what the half-written copy took.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
