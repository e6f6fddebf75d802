//! A connection's socket, plain TCP or TLS, split into a read half and a write half for two tasks
//! of one shard. glommio keeps separate read and write sources per socket, so both may be pending
//! at once; the `RefCell` is only borrowed inside a poll, and a shard runs one poll at a time.
//! The plain path forwards straight to the TcpStream: one match more per read or write.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;

use super::tls_socket::TlsSocket;

pub enum Socket {
    Plain(TcpStream),
    Tls(Box<TlsSocket>),
}

pub struct ReadHalf(Rc<RefCell<Socket>>);
pub struct WriteHalf(Rc<RefCell<Socket>>);

pub fn split(socket: Socket) -> (ReadHalf, WriteHalf, RawFd) {
    let fd = match &socket {
        Socket::Plain(s) => s.as_raw_fd(),
        Socket::Tls(t) => t.fd(),
    };
    let s = Rc::new(RefCell::new(socket));
    (ReadHalf(s.clone()), WriteHalf(s), fd)
}

impl ReadHalf {
    /// Reads what the connection holds right now into `buf`, at most `max` bytes: `None` if
    /// nothing is waiting, at end of stream or on an error (the next awaited read reports those).
    pub fn recv_now(&mut self, fd: RawFd, buf: &mut BytesMut, max: usize) -> Option<usize> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(_) => recv_now(fd, buf, max),
            Socket::Tls(t) => t.recv_now(buf, max),
        }
    }

    /// TLS records waiting to be sent (a key update's answer) that only the writer can wait for.
    pub fn owes_peer(&self) -> bool {
        match &*self.0.borrow() {
            Socket::Plain(_) => false,
            Socket::Tls(t) => t.wants_write(),
        }
    }

    /// TLS: queues close_notify and sends it if the socket takes it now (before our FIN).
    pub fn close_notify(&mut self) {
        if let Socket::Tls(t) = &mut *self.0.borrow_mut() {
            t.close_notify();
        }
    }
}

impl WriteHalf {
    /// TLS records the reader produced (a key update's answer) that the socket did not take yet.
    pub fn pending(&self) -> bool {
        match &*self.0.borrow() {
            Socket::Plain(_) => false,
            Socket::Tls(t) => t.wants_write(),
        }
    }
}

/// Reads what the socket holds right now straight into `buf`'s spare capacity, at most `max`
/// bytes: `None` if nothing is waiting, at end of stream or on an error (the next awaited read
/// reports those).
pub fn recv_now(fd: RawFd, buf: &mut BytesMut, max: usize) -> Option<usize> {
    buf.reserve(max);
    let spare = buf.spare_capacity_mut();
    let len = spare.len().min(max);
    // SAFETY: recv(2) writes at most `len` bytes into the region it is given, which is spare
    // capacity of `buf`'s allocation (valid and writable, no reference to it is made).
    let n = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), len, libc::MSG_DONTWAIT) };
    if n <= 0 {
        return None;
    }
    // SAFETY: the kernel initialised the first `n` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + n as usize) };
    Some(n as usize)
}

/// Sends what the socket takes right now of `parts`, without waiting: `None` if it takes nothing
/// (full, or an error the next awaited write reports).
fn send_now(fd: RawFd, parts: &[IoSlice<'_>]) -> Option<usize> {
    // SAFETY: an all-zero msghdr is a valid empty one; it only points at `parts`, which outlive
    // the call (IoSlice is ABI-compatible with iovec), and sendmsg(2) only reads through it.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = parts.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = parts.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    (n > 0).then_some(n as usize)
}

/// Most pieces one sendmsg takes (below the kernel's IOV_MAX of 1024).
const PIECES: usize = 512;

/// Writes `buf` with the `shared` bodies spliced in at their offsets (see
/// frame::put_content_shared), the bodies not copied on a plain socket: sendmsg takes what the
/// socket has room for now, and what it does not take is copied together and written through
/// `wr`, which waits for room.
pub async fn write_spliced(wr: &mut WriteHalf, fd: RawFd, buf: &[u8], shared: &[(usize, Bytes)]) -> io::Result<()> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(shared.len() * 2 + 1);
    let mut at = 0;
    for (offset, body) in shared {
        parts.push(buf.get(at..*offset).unwrap_or_default());
        parts.push(body);
        at = *offset;
    }
    parts.push(buf.get(at..).unwrap_or_default());
    // The first part not wholly sent, and how much of it was.
    let (mut first, mut skip) = (0, 0);
    // Over TLS everything is copied anyway, into records: straight to the copy below.
    let plain = matches!(&*wr.0.borrow(), Socket::Plain(_));
    loop {
        while parts.get(first).is_some_and(|p| p.len() == skip) {
            (first, skip) = (first + 1, 0);
        }
        if !plain || first >= parts.len() {
            break;
        }
        let slices: Vec<IoSlice<'_>> = parts
            .iter()
            .skip(first)
            .take(PIECES)
            .enumerate()
            .map(|(i, p)| IoSlice::new(if i == 0 { p.get(skip..).unwrap_or_default() } else { p }))
            .collect();
        let asked: usize = slices.iter().map(|s| s.len()).sum();
        let Some(sent) = send_now(fd, &slices) else { break };
        let mut n = sent;
        while n > 0 && first < parts.len() {
            let left = parts.get(first).map_or(0, |p| p.len() - skip);
            if n < left {
                skip += n;
                n = 0;
            } else {
                n -= left;
                (first, skip) = (first + 1, 0);
            }
        }
        if sent < asked {
            // The socket is full: the rest waits for room below.
            break;
        }
    }
    if first >= parts.len() {
        return Ok(());
    }
    let mut rest = Vec::new();
    for (i, p) in parts.iter().enumerate().skip(first) {
        rest.extend_from_slice(if i == first { p.get(skip..).unwrap_or_default() } else { p });
    }
    wr.write_all(&rest).await
}

/// The bytes a read put at the front of `chunk`: `None` at end of stream, on an error, or for a
/// count past the buffer (which a reader must not report).
pub fn filled(read: io::Result<usize>, chunk: &[u8]) -> Option<&[u8]> {
    read.ok().filter(|&n| n > 0).and_then(|n| chunk.get(..n))
}

/// Ends our direction of a socket (FIN after what is queued); the peer's may still be read.
pub fn shutdown_write(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor this connection still owns; it does not close it.
    unsafe {
        libc::shutdown(fd, libc::SHUT_WR);
    }
}

/// Shuts both directions of a socket down, waking any task blocked on it.
pub fn shutdown(fd: RawFd) {
    // SAFETY: shutdown(2) on a descriptor this connection still owns; it does not close it.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Socket::Tls(t) => t.poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Socket::Tls(t) => Poll::Ready(t.write_plaintext(buf)),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => Pin::new(s).poll_flush(cx),
            Socket::Tls(t) => t.poll_flush(cx),
        }
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut *self.0.borrow_mut() {
            Socket::Plain(s) => Pin::new(s).poll_close(cx),
            Socket::Tls(t) => t.poll_flush(cx),
        }
    }
}
