//! The mesh: one lock-free FIFO (crossbeam) per ordered pair of shards, carrying batches of
//! `ShardMsg`. Senders buffer per destination and flush once per turn; a parked receiver is woken
//! through its doorbell (an atomic flag plus an `AtomicWaker`), never by spinning.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, unbounded};

use super::msg::ShardMsg;

type Batch = Vec<ShardMsg>;

const PARK_RECHECK: std::time::Duration = std::time::Duration::from_millis(200);

/// One per shard, rung by every other shard: on a cache line of its own, so ringing one shard's
/// bell does not invalidate the line a neighbour's bell (and its parked flag) sits on.
#[derive(Default)]
#[repr(align(64))]
pub struct Doorbell {
    parked: AtomicBool,
    waker: AtomicWaker,
}

impl Doorbell {
    fn ring(&self) {
        // The SeqCst fence pairs with the one in `park`: either the receiver sees our batch, or we
        // see it parked and wake it.
        fence(Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst) {
            self.waker.wake();
        }
    }
}

/// One shard's ends of the mesh.
pub struct MeshEnds {
    pub me: usize,
    /// Element i: the FIFO to shard i and shard i's doorbell.
    senders: Vec<(Sender<Batch>, Arc<Doorbell>)>,
    receivers: Vec<Receiver<Batch>>,
    /// This shard's doorbell.
    bell: Arc<Doorbell>,
    stop: Arc<AtomicBool>,
    stop_seen: Cell<bool>,
}

/// Asks every shard to stop (from the signal thread): sets the flag and rings every doorbell.
#[derive(Clone)]
pub struct Stopper {
    bells: Vec<Arc<Doorbell>>,
    stop: Arc<AtomicBool>,
}

impl Stopper {
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for b in self.bells.iter() {
            b.ring();
        }
    }
}

/// Builds the ends for `n` shards; element i belongs to shard i.
pub fn build(n: usize) -> (Vec<MeshEnds>, Stopper) {
    let stop = Arc::new(AtomicBool::new(false));
    let bells: Vec<Arc<Doorbell>> = (0..n).map(|_| Arc::default()).collect();
    // pairs[src][dst]
    let mut senders: Vec<Vec<(Sender<Batch>, Arc<Doorbell>)>> = (0..n).map(|_| Vec::new()).collect();
    let mut receivers: Vec<Vec<Receiver<Batch>>> = (0..n).map(|_| Vec::new()).collect();
    for s in senders.iter_mut() {
        for (r, bell) in receivers.iter_mut().zip(&bells) {
            let (tx, rx) = unbounded();
            s.push((tx, bell.clone()));
            r.push(rx);
        }
    }
    let ends = senders
        .into_iter()
        .zip(receivers)
        .zip(&bells)
        .enumerate()
        .map(|(me, ((senders, receivers), bell))| MeshEnds {
            me,
            senders,
            receivers,
            bell: bell.clone(),
            stop: stop.clone(),
            stop_seen: Cell::new(false),
        })
        .collect();
    (ends, Stopper { bells, stop })
}

impl MeshEnds {
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Sends one batch to another shard and rings its doorbell.
    pub fn send(&self, dest: usize, batch: Batch) {
        // A send fails only when the destination shard has exited (shutdown): nothing to deliver to.
        match self.senders.get(dest) {
            Some((tx, bell)) => {
                if tx.send(batch).is_ok() {
                    bell.ring();
                }
            }
            None => log::error!("mesh: a batch for shard {dest} of {}: no such shard, dropped", self.shards()),
        }
    }

    /// Moves every batch that has arrived into `into`; returns whether any did.
    pub fn drain(&self, into: &mut Vec<Batch>) -> bool {
        let before = into.len();
        for r in &self.receivers {
            while let Ok(b) = r.try_recv() {
                into.push(b);
            }
        }
        into.len() > before
    }

    fn any_ready(&self) -> bool {
        (!self.stop_seen.get() && self.stop.load(Ordering::SeqCst)) || self.receivers.iter().any(|r| !r.is_empty())
    }

    /// True once, the first time it is asked after a stop was requested.
    pub fn take_stop(&self) -> bool {
        let new = !self.stop_seen.get() && self.stop.load(Ordering::SeqCst);
        if new {
            self.stop_seen.set(true);
        }
        new
    }

    /// Waits until some batch has arrived, parking the executor if none has. A doorbell is rung
    /// from another thread through glommio's foreign wake-up; in stress runs a wake-up was seen to
    /// go missing, so a parked shard also looks again every PARK_RECHECK: a lost wake-up costs at
    /// most that much delay, and an idle shard wakes 5 times a second (~0.1% CPU). One cause was
    /// found later and fixed in the vendored glommio (vendor/glommio/WARREN.md: the executor
    /// parked with runnable tasks); the re-check stays as a guard until stress runs show no other.
    pub async fn park(&self) {
        futures_lite::future::or(self.park_until_rung(), glommio::timer::sleep(PARK_RECHECK)).await
    }

    async fn park_until_rung(&self) {
        let bell = &self.bell;
        poll_fn(|cx| {
            if self.any_ready() {
                return Poll::Ready(());
            }
            bell.waker.register(cx.waker());
            bell.parked.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if self.any_ready() {
                bell.parked.store(false, Ordering::SeqCst);
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Per-shard outgoing buffers, one per destination, flushed once per turn.
pub struct Outbox {
    pending: RefCell<Vec<Batch>>,
}

impl Outbox {
    pub fn new(n: usize) -> Self {
        Self { pending: RefCell::new((0..n).map(|_| Vec::new()).collect()) }
    }

    /// Returns true when this is the first message since the last flush (the caller wakes the flusher).
    pub fn push(&self, dest: usize, msg: ShardMsg) -> bool {
        let mut p = self.pending.borrow_mut();
        let was_empty = p.iter().all(|b| b.is_empty());
        let Some(batch) = p.get_mut(dest) else {
            log::error!("mesh: a message for shard {dest} of {}: no such shard, dropped", p.len());
            return false;
        };
        batch.push(msg);
        was_empty
    }

    /// Takes every non-empty buffer, as (destination, batch).
    pub fn take(&self) -> Vec<(usize, Batch)> {
        let mut p = self.pending.borrow_mut();
        p.iter_mut().enumerate().filter(|(_, b)| !b.is_empty()).map(|(d, b)| (d, std::mem::take(b))).collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn doorbells_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<super::Doorbell>(), 64);
        assert!(std::mem::size_of::<super::Doorbell>() <= 64);
    }

    use super::*;
    use crate::broker::delivery::Settle;

    fn settle() -> ShardMsg {
        ShardMsg::Settle { queue: 1, msg_ids: vec![1], action: Settle::Ack }
    }

    #[test]
    fn a_message_for_a_shard_that_does_not_exist_is_dropped() {
        let outbox = Outbox::new(2);
        assert!(!outbox.push(2, settle()));
        assert!(outbox.push(1, settle()));
        assert_eq!(outbox.take().iter().map(|(d, b)| (*d, b.len())).collect::<Vec<_>>(), vec![(1, 1)]);
        let (ends, _stop) = build(2);
        ends[0].send(2, vec![settle()]);
        ends[0].send(1, vec![settle()]);
        let mut got = Vec::new();
        assert!(ends[1].drain(&mut got));
        assert_eq!(got.len(), 1);
    }
}
