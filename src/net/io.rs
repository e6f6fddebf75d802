//! Splits a glommio TcpStream into a read half and a write half for two tasks of one shard.
//! glommio keeps separate read and write sources per socket, so both may be pending at once; the
//! `RefCell` is only borrowed inside a poll, and a shard runs one poll at a time.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

pub struct ReadHalf(Rc<RefCell<TcpStream>>);
pub struct WriteHalf(Rc<RefCell<TcpStream>>);

pub fn split(stream: TcpStream) -> (ReadHalf, WriteHalf, RawFd) {
    let fd = stream.as_raw_fd();
    let s = Rc::new(RefCell::new(stream));
    (ReadHalf(s.clone()), WriteHalf(s), fd)
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
        Pin::new(&mut *self.0.borrow_mut()).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_flush(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0.borrow_mut()).poll_close(cx)
    }
}
