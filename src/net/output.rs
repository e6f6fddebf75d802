//! A connection's frames out: the output buffer methods write into, the writer task (one socket
//! write per batch, double-buffered), and the watchdog (handshake and close timeouts, heartbeats
//! both ways, giving back buffers an idle connection no longer needs).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::AsyncWriteExt;

use crate::broker::delivery::Settle;
use crate::protocol::Method;
use crate::protocol::frame;

use super::connection::{CLOSE_TIMEOUT, Conn, HANDSHAKE_TIMEOUT, Phase};
use super::io::{self, WriteHalf};

/// Output buffers larger than this are given back once a connection has been idle for a tick.
const IDLE_BUFFER: usize = 16 * 1024;
/// How often the watchdog looks at a connection that negotiated no heartbeats (buffers to shrink).
const IDLE_TICK: Duration = Duration::from_secs(15);

impl Conn {
    pub fn out_mut(&self) -> std::cell::RefMut<'_, BytesMut> {
        self.out.borrow_mut()
    }

    /// Marks a channel's confirms for the next write and wakes the writer.
    pub fn confirms_due(&self, ch: u16) {
        let mut due = self.confirms_due.borrow_mut();
        if !due.contains(&ch) {
            due.push(ch);
        }
        drop(due);
        self.writer.notify();
    }

    /// Whether connection.close or close-ok was sent: after them nothing but close-ok is written
    /// (replies, returns and confirms that come back from other shards later are dropped).
    pub fn closed(&self) -> bool {
        matches!(self.phase.get(), Phase::Closing | Phase::Done)
    }

    pub fn send_method(&self, ch: u16, m: &Method) {
        if self.closed() && !matches!(m, Method::ConnectionCloseOk(_)) {
            return;
        }
        frame::put_method(&mut self.out.borrow_mut(), ch, m);
        self.writer.notify();
    }

    /// A method followed by a message's header and body.
    pub fn send_content(&self, ch: u16, m: &Method, properties: &[u8], body: &[u8]) {
        if self.closed() {
            return;
        }
        let frame_max = self.st.borrow().frame_max;
        let mut out = self.out.borrow_mut();
        frame::put_method(&mut out, ch, m);
        frame::put_content(&mut out, ch, properties, body, frame_max);
        drop(out);
        self.writer.notify();
    }

    /// Bytes waiting for the writer: the output buffer and the bodies spliced into it.
    pub(super) fn out_len(&self) -> usize {
        self.out.borrow().len() + self.shared_bytes.get()
    }

    pub(super) async fn run_writer(self: Rc<Self>, mut wr: WriteHalf) {
        let mut settled = Vec::new();
        let mut confirms = Vec::new();
        let mut shared = Vec::new();
        loop {
            std::mem::swap(&mut *self.confirms_due.borrow_mut(), &mut confirms);
            self.flush_confirms(&mut confirms);
            self.drain_backlog();
            if self.out.borrow().is_empty() {
                if wr.pending() {
                    // TLS records the reader made (a key update's answer): only this task waits.
                    if wr.flush().await.is_err() {
                        io::shutdown(self.fd);
                        return;
                    }
                    continue;
                }
                if self.phase.get() == Phase::Done {
                    return;
                }
                self.writer.wait().await;
                // Let the tasks that are ready run first: what they produce joins this write.
                futures_lite::future::yield_now().await;
                continue;
            }
            let mut spare = self.spare.take();
            std::mem::swap(&mut *self.out.borrow_mut(), &mut spare);
            std::mem::swap(&mut *self.shared.borrow_mut(), &mut shared);
            let shared_bytes = self.shared_bytes.replace(0);
            std::mem::swap(&mut *self.written_no_ack.borrow_mut(), &mut settled);
            let written = match shared.is_empty() {
                true => wr.write_all(&spare).await,
                false => io::write_spliced(&mut wr, self.fd, &spare, &shared).await,
            };
            // Flushing a plain socket is a no-op; over TLS it sends the records `write_all` made.
            if written.is_err() || wr.flush().await.is_err() {
                io::shutdown(self.fd);
                return;
            }
            self.written.set(self.written.get() + (spare.len() + shared_bytes) as u64);
            spare.clear();
            shared.clear();
            *self.spare.borrow_mut() = spare;
            self.shard.settle(settled.drain(..), Settle::Ack);
        }
    }

    /// Handshake and close deadlines, the silent-peer timeout, heartbeats, and idle buffers.
    pub(super) async fn run_watchdog(self: Rc<Self>) {
        // Bytes written as of the last tick, and whether our own heartbeat was queued at it.
        let (mut seen, mut beat_queued) = (0u64, false);
        loop {
            let hb = self.st.borrow().heartbeat;
            let tick = match self.phase.get() {
                // RabbitMQ sends a heartbeat after half the negotiated interval without sending.
                Phase::Open if hb > 0 => Duration::from_millis(hb as u64 * 500),
                Phase::Open => IDLE_TICK,
                _ => Duration::from_secs(1),
            };
            futures_lite::future::or(glommio::timer::sleep(tick), self.watchdog_wake.wait()).await;
            let now = Instant::now();
            if self.phase.get() == Phase::Open {
                let written = self.written.get();
                let idle = written - seen <= if beat_queued { frame::HEARTBEAT_SIZE } else { 0 };
                (seen, beat_queued) = (written, false);
                if idle {
                    self.shrink_output_buffers();
                    if hb > 0 && self.out.borrow().is_empty() {
                        frame::put_heartbeat(&mut self.out.borrow_mut());
                        self.writer.notify();
                        beat_queued = true;
                    }
                }
            }
            match self.phase.get() {
                Phase::AwaitStartOk | Phase::AwaitTuneOk | Phase::AwaitOpen => {
                    if now - self.started > HANDSHAKE_TIMEOUT {
                        log::info!("connection {}: handshake timed out", self.id);
                        io::shutdown(self.fd);
                        return;
                    }
                }
                Phase::Open if hb > 0 => {
                    let hb = Duration::from_secs(hb as u64);
                    // A connection paused by flow control is not read, so its heartbeats are not seen.
                    let paused = !self.flow_holds.borrow().is_empty() || self.blocked.get();
                    if now - self.last_read.get() > hb * 2 && !paused {
                        log::info!("connection {}: missed heartbeats from client, timeout: {}s", self.id, hb.as_secs());
                        io::shutdown(self.fd);
                        return;
                    }
                }
                Phase::Open => {}
                Phase::Closing => {
                    if self.closing_since.get().is_some_and(|t| now - t > CLOSE_TIMEOUT) {
                        io::shutdown(self.fd);
                        return;
                    }
                }
                Phase::Done => return,
            }
        }
    }

    /// An idle connection gives back output buffers that a burst grew.
    fn shrink_output_buffers(&self) {
        for buf in [&self.out, &self.spare] {
            let mut buf = buf.borrow_mut();
            if buf.is_empty() && buf.capacity() > IDLE_BUFFER {
                *buf = BytesMut::new();
            }
        }
    }
}
