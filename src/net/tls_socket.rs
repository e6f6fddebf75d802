//! One AMQPS connection's TLS session (rustls `ServerConnection`) over its glommio TcpStream, on
//! the shard that accepted it: the handshake, then reads (ciphertext in, `process_new_packets`,
//! plaintext out of `reader()`) and writes (plaintext into `writer()`, records out with
//! `write_tls`) for the connection's reader and writer tasks, which share it through `io::Socket`.
//!
//! Readiness comes from glommio's own poll_read/poll_write (they register the task's waker with
//! the reactor; they hold no buffer of ours, so a read or write that would block can be dropped).
//! Only the writer task registers for writability: glommio keeps one waiter per direction, so the
//! reader writes what rustls owes the peer (a key update's answer, an alert) with a plain
//! non-blocking send, and leaves what the socket does not take to the writer.

use std::io::{self, BufRead, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::pki_types::CertificateDer;
use rustls::{ServerConfig, ServerConnection};

pub struct TlsSocket {
    tcp: TcpStream,
    tls: ServerConnection,
}

/// The socket as `io::Read`/`io::Write` for rustls, through glommio's readiness: a read or write
/// that would block registers the task's waker and answers WouldBlock.
struct Glommio<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for Glommio<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Glommio<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    /// rustls hands over up to 64 records at once: one sendmsg for all of them; only when the
    /// socket is full does glommio's poll_write (one buffer) register for writability.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match send_vectored(self.tcp.as_raw_fd(), bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
                self.write(first)
            }
            r => r,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The socket as `io::Read`/`io::Write` without waiting or registering anything.
struct NonBlocking(RawFd);

impl Read for NonBlocking {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: recv(2) writes at most buf.len() bytes into `buf`.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }
}

impl Write for NonBlocking {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        send_vectored(self.0, &[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        send_vectored(self.0, bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr is plain data; IoSlice is ABI-compatible with iovec on Unix, and sendmsg(2)
    // only reads the `bufs.len()` slices it points to.
    let n = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len() as _;
        libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
    };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl TlsSocket {
    /// The TLS handshake on a new connection; an error (a plaintext client, an untrusted
    /// certificate, a peer that left) has sent its alert when the socket took it.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsSocket> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        // What the writer hands over is bounded by the connection's output window.
        tls.set_buffer_limit(None);
        let mut s = TlsSocket { tcp, tls };
        std::future::poll_fn(|cx| s.poll_handshake(cx)).await?;
        Ok(s)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            while self.tls.wants_write() {
                match self.tls.write_tls(&mut Glommio { tcp: &mut self.tcp, cx }) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            if !self.tls.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            match self.tls.read_tls(&mut Glommio { tcp: &mut self.tcp, cx }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
            if let Err(e) = self.tls.process_new_packets() {
                self.send_now();
                return Poll::Ready(Err(tls_error(e)));
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// The client's certificate (verified against the CA when the listener verifies peers).
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        self.tls.peer_certificates()?.first().map(|c| c.clone().into_owned())
    }

    pub fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends what rustls owes the peer as far as the socket takes it now.
    fn send_now(&mut self) {
        let mut sock = NonBlocking(self.fd());
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut sock).is_err() {
                break;
            }
        }
    }

    /// Processes newly read records; what they make us send goes out now if it can.
    fn process(&mut self) -> io::Result<()> {
        let processed = self.tls.process_new_packets().map(|_| ()).map_err(tls_error);
        if self.tls.wants_write() {
            self.send_now();
        }
        processed
    }

    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.tls.reader().read(buf) {
                // 0: the peer sent close_notify.
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The TCP stream ended without close_notify: the end of this connection all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            match self.tls.read_tls(&mut Glommio { tcp: &mut self.tcp, cx }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
            if let Err(e) = self.process() {
                return Poll::Ready(Err(e));
            }
        }
    }

    /// What is readable now, decrypted into `buf` (at most `max` bytes) without waiting.
    pub fn recv_now(&mut self, buf: &mut BytesMut, max: usize) -> Option<usize> {
        let mut got = 0;
        let fd = self.fd();
        while got < max {
            let mut reader = self.tls.reader();
            match reader.fill_buf() {
                Ok(chunk) if !chunk.is_empty() => {
                    let n = chunk.len().min(max - got);
                    buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    reader.consume(n);
                    got += n;
                    continue;
                }
                _ => {}
            }
            match self.tls.read_tls(&mut NonBlocking(fd)) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
            if self.process().is_err() {
                break;
            }
        }
        (got > 0).then_some(got)
    }

    /// Encrypts `buf` into records waiting to be sent (all of it: the buffer has no limit).
    pub fn write_plaintext(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tls.writer().write(buf)
    }

    /// Sends every waiting record.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Glommio { tcp: &mut self.tcp, cx }) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(()))
    }

    pub fn close_notify(&mut self) {
        self.tls.send_close_notify();
        self.send_now();
    }
}
