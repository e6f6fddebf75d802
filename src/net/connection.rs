//! One client connection on the shard that accepted it: the reader loop (frames in), the writer
//! task (frames out, one socket write per batch) and the watchdog (handshake timeout, heartbeats)
//! it starts; how it closes is in `closing`.

use ahash::AHashMap as HashMap;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::broker::access::{Perm, Resource};
use crate::broker::delivery::Delivery;
use crate::ids::{ConnId, QueueId};
use crate::notify::Notify;
use crate::protocol::frame::{self, Frame, FrameKind, PROTOCOL_HEADER};
use crate::protocol::methods::{channel as chan, connection as conn};
use crate::protocol::reply::{AmqpError, ChannelError, Result};
use crate::protocol::{Method, properties::ContentHeader};
use crate::shard::Shard;

use super::channel::{Channel, ChannelState};
use super::handshake::External;
use super::io;
use super::tls_socket::TlsSocket;

/// RabbitMQ's handshake_timeout.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long we wait for connection.close-ok after sending connection.close.
pub(super) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a closed connection's socket is still read (and what arrives dropped) before it is
/// closed, so that the peer gets a FIN after our last frame instead of a reset.
const LINGER: Duration = Duration::from_secs(2);
const READ_CHUNK: usize = 64 * 1024;
/// The awaited read, made once the socket was drained, fills this much. Most connections are idle
/// most of the time: they hold this, not READ_CHUNK. A full one means more is waiting, and that is
/// read straight into the frame buffer.
const WAIT_CHUNK: usize = 2 * 1024;
/// Deliveries are encoded into the output buffer while it holds less than this; past it they wait
/// as messages (counted by their queues) until the client reads, so a consumer that stops reading
/// does not get a whole queue encoded into memory no gauge sees.
pub(super) const OUT_WINDOW: usize = 1 << 20;
const FRAMES_PER_TURN: usize = 192;
/// Longest a connection paused by flow control waits before reading one more batch.
const FLOW_MAX_PAUSE: Duration = Duration::from_millis(50);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    AwaitStartOk,
    AwaitTuneOk,
    AwaitOpen,
    Open,
    /// We sent connection.close and wait for close-ok.
    Closing,
    Done,
}

/// What the client said it understands (client_properties.capabilities).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCaps {
    pub consumer_cancel_notify: bool,
    pub authentication_failure_close: bool,
    pub connection_blocked: bool,
}

pub struct ConnState {
    pub vhost: Arc<str>,
    pub user: String,
    pub frame_max: u32,
    pub channel_max: u16,
    pub heartbeat: u16,
    pub caps: ClientCaps,
    pub channels: HashMap<u16, Channel>,
    pub exclusive_queues: Vec<QueueId>,
}

pub struct Conn {
    pub id: ConnId,
    /// RabbitMQ's connection name: `peer -> local`.
    pub name: String,
    /// Whether the peer connects from a loopback address (loopback-only users such as guest).
    pub peer_loopback: bool,
    /// Whether EXTERNAL is offered (a TLS listener that verifies peers) and with which certificate.
    pub(super) external: External,
    /// Exchanges this connection's user was found allowed to publish to, so the regex runs once
    /// per exchange, not per message; forgotten whenever users or permissions change.
    pub(super) may_publish: RefCell<Vec<String>>,
    pub shard: Rc<Shard>,
    pub(super) fd: RawFd,
    pub(super) out: RefCell<BytesMut>,
    /// The writer's second buffer (it writes one while `out` fills); empty while a write runs.
    pub(super) spare: RefCell<BytesMut>,
    /// Large message bodies that go out with `out` without being copied into it: the offset in
    /// `out` each belongs at (see frame::put_content_shared), and their bytes in all.
    pub(super) shared: RefCell<Vec<(usize, Bytes)>>,
    pub(super) shared_bytes: Cell<usize>,
    pub(super) writer: Notify,
    /// Bytes the writer has put on the wire: a heartbeat is sent only when nothing else was.
    pub(super) written: Cell<u64>,
    /// Bytes read from the socket (RabbitMQ's `recv_oct`).
    pub(super) received: Cell<u64>,
    /// Wakes the watchdog before its tick: the connection started closing.
    pub(super) watchdog_wake: Notify,
    /// Deliveries tagged while `out` was over OUT_WINDOW, in tag order, waiting to be encoded.
    pub(super) backlog: RefCell<VecDeque<(u64, Delivery)>>,
    /// No-ack deliveries written to `out`: settled once the writer has put them on the wire.
    pub(super) written_no_ack: RefCell<Vec<(QueueId, u64)>>,
    /// Queues that asked this connection to stop publishing for now (flow control).
    pub(super) flow_holds: RefCell<Vec<QueueId>>,
    pub(super) flow_resumed: Notify,
    /// Set by the first publish: a memory alarm stops reading connections that publish.
    pub published: Cell<bool>,
    /// connection.blocked was sent and unblocked is owed.
    pub(super) blocked: Cell<bool>,
    /// Channels with publisher confirms to announce in the next write.
    pub(super) confirms_due: RefCell<Vec<u16>>,
    pub st: RefCell<ConnState>,
    pub phase: Cell<Phase>,
    pub(super) started: Instant,
    pub(super) last_read: Cell<Instant>,
    pub(super) closing_since: Cell<Option<Instant>>,
    /// It counts against its vhost's and user's max-connections (since connection.open).
    pub(super) counted: Cell<bool>,
    /// Channels it counts against its user's max-channels.
    pub(super) channel_slots: Cell<u32>,
}

/// Serves one accepted connection; `tls` is the configuration of the TLS listener it came from.
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, tls: Option<Arc<rustls::ServerConfig>>) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let local = stream.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let peer_loopback = stream.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let (socket, external) = match tls {
        None => (io::Socket::Plain(stream), External::NotOffered),
        Some(config) => {
            let handshake = futures_lite::future::or(TlsSocket::accept(stream, config), async {
                glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
                Err(std::io::ErrorKind::TimedOut.into())
            });
            match handshake.await {
                Ok(t) => {
                    let external = External::offered(&shard, t.peer_certificate());
                    (io::Socket::Tls(Box::new(t)), external)
                }
                Err(e) => {
                    log::info!("TLS handshake with {peer} failed: {e}");
                    return;
                }
            }
        }
    };
    let (mut rd, mut wr, fd) = io::split(socket);
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; WAIT_CHUNK];
    // The protocol header: anything else is answered with ours and the socket closed (spec 4.2.2).
    let header = futures_lite::future::or(
        async {
            while buf.len() < 8 {
                match io::filled(rd.read(&mut chunk).await, &chunk) {
                    Some(read) => buf.extend_from_slice(read),
                    None => return false,
                }
            }
            true
        },
        async {
            glommio::timer::sleep(HANDSHAKE_TIMEOUT).await;
            false
        },
    )
    .await;
    if !header {
        return;
    }
    if buf.first_chunk::<8>() != Some(PROTOCOL_HEADER) {
        let _ = wr.write_all(PROTOCOL_HEADER).await;
        let _ = wr.flush().await;
        linger(&mut rd, fd).await;
        return;
    }
    buf.advance(8);
    let c = Conn::new(shard.clone(), fd, peer_loopback, format!("{peer} -> {local}"), external);
    log::info!("accepting AMQP connection {} ({}) on shard {}", c.id, c.name, shard.id);
    shard.register(c.clone());
    let writer = glommio::spawn_local(c.clone().run_writer(wr));
    let watchdog = glommio::spawn_local(c.clone().run_watchdog());
    c.send_method(0, &super::handshake::start_method(&shard, &c.external));
    c.read_loop(&mut rd, buf, chunk).await;
    c.cleanup();
    // Let the writer flush what is left (close-ok, close), but not wait forever on a dead peer.
    futures_lite::future::or(writer, async {
        glommio::timer::sleep(Duration::from_secs(2)).await;
    })
    .await;
    drop(watchdog);
    linger(&mut rd, fd).await;
    log::debug!("connection {} closed", c.id);
}

/// Closes a socket the way that keeps our last frames: FIN after them, then what the peer still
/// sends is read and dropped until it closes too (at most LINGER). Closing with unread input
/// would send a reset, and a reset makes the peer's kernel throw away what it has not delivered
/// yet, our connection.close among it: a client still sending never learnt why it was closed.
async fn linger(rd: &mut io::ReadHalf, fd: RawFd) {
    rd.close_notify();
    io::shutdown_write(fd);
    let mut sink = vec![0u8; WAIT_CHUNK];
    let drain = async {
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    };
    futures_lite::future::or(drain, glommio::timer::sleep(LINGER)).await;
    io::shutdown(fd);
}

impl Conn {
    fn new(shard: Rc<Shard>, fd: RawFd, peer_loopback: bool, name: String, external: External) -> Rc<Self> {
        let cfg = &shard.config;
        let st = ConnState {
            vhost: cfg.default_vhost.as_str().into(),
            user: String::new(),
            frame_max: cfg.frame_max,
            channel_max: cfg.channel_max,
            heartbeat: 0,
            caps: ClientCaps::default(),
            channels: HashMap::new(),
            exclusive_queues: Vec::new(),
        };
        let now = Instant::now();
        Rc::new(Self {
            id: shard.next_conn_id(),
            name,
            peer_loopback,
            external,
            may_publish: RefCell::new(Vec::new()),
            shard,
            fd,
            out: RefCell::new(BytesMut::new()),
            spare: RefCell::new(BytesMut::new()),
            shared: RefCell::new(Vec::new()),
            shared_bytes: Cell::new(0),
            writer: Notify::default(),
            written: Cell::new(0),
            received: Cell::new(0),
            watchdog_wake: Notify::default(),
            backlog: RefCell::new(VecDeque::new()),
            written_no_ack: RefCell::new(Vec::new()),
            confirms_due: RefCell::new(Vec::new()),
            flow_holds: RefCell::new(Vec::new()),
            flow_resumed: Notify::default(),
            published: Cell::new(false),
            blocked: Cell::new(false),
            st: RefCell::new(st),
            phase: Cell::new(Phase::AwaitStartOk),
            started: now,
            last_read: Cell::new(now),
            closing_since: Cell::new(None),
            counted: Cell::new(false),
            channel_slots: Cell::new(0),
        })
    }

    async fn read_loop(self: &Rc<Self>, rd: &mut io::ReadHalf, mut buf: BytesMut, mut chunk: Vec<u8>) {
        let mut more = false;
        loop {
            // What arrived during a resource alarm waits, unparsed, until it clears.
            self.wait_out_alarm().await;
            let mut frames = 0;
            loop {
                // Bounded work per turn: a publisher's 64 KiB read holds ~1000 small messages, a
                // consumer's turn delivers far fewer; yielding every FRAMES_PER_TURN frames keeps
                // the shard's time shared by message, not by read.
                frames += 1;
                if frames % FRAMES_PER_TURN == 0 {
                    futures_lite::future::yield_now().await;
                }
                let frame_max = self.st.borrow().frame_max;
                let frame = match frame::parse(&mut buf, frame_max) {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => {
                        // The stream cannot be parsed past a framing error: say why and stop.
                        self.close_connection(e);
                        return;
                    }
                };
                let ch = frame.channel;
                if let Err(e) = self.on_frame(frame).await {
                    self.fail(ch, e);
                }
                if self.phase.get() == Phase::Done {
                    return;
                }
            }
            while !self.flow_holds.borrow().is_empty() && self.phase.get() == Phase::Open {
                // Paused by flow control until the queue drains. A connection that also consumes
                // waits at most FLOW_MAX_PAUSE per batch, so its own acks (which drain the queue)
                // are still read.
                if self.has_consumers() {
                    futures_lite::future::or(self.flow_resumed.wait(), glommio::timer::sleep(FLOW_MAX_PAUSE)).await;
                    break;
                }
                self.flow_resumed.wait().await;
            }
            // After a full read more is likely waiting: it is taken straight into `buf` (no copy
            // through `chunk`, which cost ~5% of a shard flooded with 1 KiB messages). Otherwise,
            // or if the socket turns out empty, the awaited read waits for data.
            let direct = if more { rd.recv_now(self.fd, &mut buf, READ_CHUNK) } else { None };
            more = match direct {
                Some(n) => {
                    self.received.set(self.received.get() + n as u64);
                    n == READ_CHUNK
                }
                None => {
                    if buf.is_empty() {
                        // Nothing half-read: an idle connection does not keep (or pin, through the
                        // frames split off it) the buffer a burst grew.
                        buf = BytesMut::new();
                    }
                    match io::filled(rd.read(&mut chunk).await, &chunk) {
                        Some(read) => {
                            self.received.set(self.received.get() + read.len() as u64);
                            buf.extend_from_slice(read);
                            read.len() == chunk.len()
                        }
                        None => return,
                    }
                }
            };
            if rd.owes_peer() {
                // TLS records the read made us owe the peer that the socket did not take.
                self.writer.notify();
            }
            self.last_read.set(Instant::now());
            // A read that is always ready would never give the shard back: let the mesh, the
            // flusher and other connections run between batches.
            futures_lite::future::yield_now().await;
        }
    }

    async fn on_frame(self: &Rc<Self>, f: Frame) -> Result<()> {
        match self.phase.get() {
            Phase::AwaitStartOk | Phase::AwaitTuneOk | Phase::AwaitOpen => Ok(self.on_handshake_frame(f).await?),
            Phase::Closing => {
                if f.kind == FrameKind::Method && f.channel == 0 {
                    match Method::decode(f.payload) {
                        Ok(Method::ConnectionCloseOk(_)) => self.phase.set(Phase::Done),
                        Ok(Method::ConnectionClose(_)) => {
                            self.send_method(0, &Method::ConnectionCloseOk(conn::CloseOk {}));
                            self.phase.set(Phase::Done);
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            Phase::Done => Ok(()),
            Phase::Open => self.on_open_frame(f).await,
        }
    }

    async fn on_open_frame(self: &Rc<Self>, f: Frame) -> Result<()> {
        match f.kind {
            FrameKind::Heartbeat if f.channel == 0 => Ok(()),
            // RabbitMQ's reader: a heartbeat anywhere but channel 0 is an unexpected frame (505).
            FrameKind::Heartbeat => {
                Err(AmqpError::unexpected_frame(format!("heartbeat frame on channel {}", f.channel)))
            }
            FrameKind::Method if f.channel == 0 => match Method::decode(f.payload)? {
                Method::ConnectionClose(_) => {
                    self.send_method(0, &Method::ConnectionCloseOk(conn::CloseOk {}));
                    self.phase.set(Phase::Done);
                    Ok(())
                }
                Method::ConnectionUpdateSecret(_) => {
                    self.send_method(0, &Method::ConnectionUpdateSecretOk(conn::UpdateSecretOk {}));
                    Ok(())
                }
                Method::ConnectionCloseOk(_) | Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => Ok(()),
                // RabbitMQ's handle_method0: anything else on channel 0 is 504 CHANNEL_ERROR.
                m => Err(AmqpError::channel_error("unexpected method in connection state running").on(m.id())),
            },
            FrameKind::Method => {
                let m = Method::decode(f.payload)?;
                self.on_method(f.channel, m).await
            }
            FrameKind::Header => self.on_header(f.channel, ContentHeader::decode(f.payload)?),
            FrameKind::Body => self.on_body(f.channel, f.payload),
        }
    }

    async fn on_method(self: &Rc<Self>, ch: u16, m: Method) -> Result<()> {
        let id = m.id();
        if id.0 == 10 {
            return Err(AmqpError::command_invalid("connection methods are only valid on channel 0").on(id));
        }
        let state = {
            let st = self.st.borrow();
            st.channels.get(&ch).map(|c| (c.state, c.between_messages()))
        };
        match (state, m) {
            (None, Method::ChannelOpen(_)) => {
                // channel_max caps how many channels are open, not their numbers (RabbitMQ's reader;
                // clients pick any number up to 65535).
                let (max, open) = {
                    let st = self.st.borrow();
                    (st.channel_max, st.channels.len())
                };
                if max != 0 && open >= max as usize {
                    return Err(AmqpError::not_allowed(format!(
                        "number of channels opened ({open}) has reached the negotiated channel_max ({max})"
                    ))
                    .on(id));
                }
                self.count_channel().map_err(|e| e.on(id))?;
                let totals = self.shard.vhost_totals(&self.st.borrow().vhost);
                self.st.borrow_mut().channels.insert(ch, Channel::new(totals));
                self.send_method(ch, &Method::ChannelOpenOk(chan::OpenOk::default()));
                Ok(())
            }
            (None, _) => Err(AmqpError::channel_error(format!("expected 'channel.open' on channel {ch}")).on(id)),
            (Some((ChannelState::Closing, _)), m) => {
                match m {
                    Method::ChannelCloseOk(_) => {
                        self.st.borrow_mut().channels.remove(&ch);
                        self.channels_removed();
                    }
                    Method::ChannelClose(_) => {
                        self.send_method(ch, &Method::ChannelCloseOk(chan::CloseOk {}));
                        self.st.borrow_mut().channels.remove(&ch);
                        self.channels_removed();
                    }
                    _ => {}
                }
                Ok(())
            }
            (Some((ChannelState::Open, false)), _) => Err(AmqpError::unexpected_frame(format!(
                "expected content header for class 60, got a method frame on channel {ch}"
            ))
            .on(id)),
            (Some((ChannelState::Open, true)), Method::ChannelOpen(_)) => {
                Err(AmqpError::channel_error(format!("second 'channel.open' seen on channel {ch}")).on(id))
            }
            (Some((ChannelState::Open, true)), m) => self.on_channel_method(ch, m).await,
        }
    }

    /// 403 ACCESS_REFUSED unless this connection's user holds `perm` on the resource in its vhost.
    pub fn permit(&self, perm: Perm, resource: Resource<'_>) -> Result<(), ChannelError> {
        let st = self.st.borrow();
        self.shard.access.borrow().check(&st.user, &st.vhost, perm, resource)
    }

    /// The write permission a publish needs, remembered per exchange once granted.
    pub fn permit_publish(&self, exchange: &str) -> Result<(), ChannelError> {
        // Exchange names are short (at most 255 bytes): an inline byte loop, not a memcmp call
        // per cached name (that call was ~5% of a shard's time publishing to the default exchange).
        let same = |x: &String| x.len() == exchange.len() && x.bytes().zip(exchange.bytes()).all(|(a, b)| a == b);
        if self.may_publish.borrow().iter().any(same) {
            return Ok(());
        }
        self.permit(Perm::Write, Resource::Exchange(exchange))?;
        self.may_publish.borrow_mut().push(exchange.to_string());
        Ok(())
    }
}
