//! A small blocking AMQP 0-9-1 client on Warren's own codec: the load generator and tests use it
//! to speak to any broker (Warren or RabbitMQ) without an async runtime in the way, over plain
//! TCP or TLS (rustls).

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use bytes::BytesMut;

use crate::protocol::Method;
use crate::protocol::codec::LongStr;
use crate::protocol::frame::{self, Frame, FrameKind, PROTOCOL_HEADER};
use crate::protocol::methods::{channel, connection};
use crate::protocol::types::{FieldTable, FieldValue};

/// The client's socket: plain TCP or a TLS session over it.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl ClientStream {
    fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(t) => &t.sock,
        }
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.tcp().set_read_timeout(t)
    }

    /// Shuts the TCP socket down (under TLS too: no close_notify).
    pub fn shutdown(&self, how: std::net::Shutdown) -> io::Result<()> {
        self.tcp().shutdown(how)
    }

    /// A second handle on the socket; a TLS session cannot be shared between threads.
    pub fn try_clone(&self) -> io::Result<ClientStream> {
        match self {
            ClientStream::Plain(s) => Ok(ClientStream::Plain(s.try_clone()?)),
            ClientStream::Tls(_) => Err(io::Error::other("a TLS connection cannot be read from another thread")),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(t) => t.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(t) => t.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.write_all(buf),
            // rustls' stream encrypts what it is given and writes it out before returning.
            ClientStream::Tls(t) => {
                t.write_all(buf)?;
                t.flush()
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(t) => t.flush(),
        }
    }
}

pub struct SyncClient {
    pub stream: ClientStream,
    pub buf: BytesMut,
    pub frame_max: u32,
    chunk: Vec<u8>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl SyncClient {
    /// Connects and completes the handshake (PLAIN) up to connection.open-ok.
    pub fn connect(addr: impl ToSocketAddrs, user: &str, pass: &str, vhost: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Self::handshake(ClientStream::Plain(stream), user, pass, vhost)
    }

    /// Connects over TLS (`server_name` is checked against the broker's certificate, as `tls`
    /// says), then as `connect`.
    pub fn connect_tls(
        addr: impl ToSocketAddrs,
        tls: Arc<ClientConfig>,
        server_name: &str,
        user: &str,
        pass: &str,
        vhost: &str,
    ) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let name = ServerName::try_from(server_name.to_string()).map_err(|e| invalid(e.to_string()))?;
        let session = ClientConnection::new(tls, name).map_err(io::Error::other)?;
        Self::handshake(ClientStream::Tls(Box::new(StreamOwned::new(session, stream))), user, pass, vhost)
    }

    fn handshake(stream: ClientStream, user: &str, pass: &str, vhost: &str) -> io::Result<Self> {
        let mut c =
            SyncClient { stream, buf: BytesMut::with_capacity(1 << 18), frame_max: 131072, chunk: vec![0; 1 << 18] };
        c.stream.write_all(PROTOCOL_HEADER)?;
        match c.recv_method()? {
            (0, Method::ConnectionStart(_)) => {}
            (_, m) => return Err(invalid(format!("expected connection.start, got {:?}", m.id()))),
        }
        let mut caps = FieldTable::default();
        caps.insert("authentication_failure_close", FieldValue::Bool(true));
        caps.insert("consumer_cancel_notify", FieldValue::Bool(true));
        let mut props = FieldTable::default();
        props.insert("product", FieldValue::str("warren-client"));
        props.insert("capabilities", FieldValue::Table(caps));
        let response = LongStr(format!("\0{user}\0{pass}").into_bytes().into());
        let start_ok = connection::StartOk {
            client_properties: props,
            mechanism: "PLAIN".into(),
            response,
            locale: "en_US".into(),
        };
        c.send(0, &Method::ConnectionStartOk(start_ok))?;
        let tune = match c.recv_method()? {
            (0, Method::ConnectionTune(t)) => t,
            (_, m) => return Err(invalid(format!("expected connection.tune, got {m:?}"))),
        };
        c.frame_max = if tune.frame_max == 0 { 131072 } else { tune.frame_max };
        let tune_ok = connection::TuneOk { channel_max: tune.channel_max, frame_max: c.frame_max, heartbeat: 0 };
        c.send(0, &Method::ConnectionTuneOk(tune_ok))?;
        c.send(0, &Method::ConnectionOpen(connection::Open { virtual_host: vhost.into(), ..Default::default() }))?;
        match c.recv_method()? {
            (0, Method::ConnectionOpenOk(_)) => Ok(c),
            (_, m) => Err(invalid(format!("expected connection.open-ok, got {m:?}"))),
        }
    }

    /// A second client over the same socket, for reading on another thread while this one writes.
    pub fn reader(&self) -> io::Result<SyncClient> {
        Ok(SyncClient {
            stream: self.stream.try_clone()?,
            buf: BytesMut::with_capacity(1 << 16),
            frame_max: self.frame_max,
            chunk: vec![0; 1 << 16],
        })
    }

    pub fn send(&mut self, ch: u16, m: &Method) -> io::Result<()> {
        let mut out = BytesMut::new();
        frame::put_method(&mut out, ch, m);
        self.stream.write_all(&out)
    }

    /// The next frame; blocks until one is complete.
    pub fn recv(&mut self) -> io::Result<Frame> {
        loop {
            if let Some(f) = frame::parse(&mut self.buf, 0).map_err(|e| invalid(e.to_string()))? {
                return Ok(f);
            }
            let n = self.stream.read(&mut self.chunk)?;
            let read = self.chunk.get(..n).filter(|read| !read.is_empty()).ok_or(io::ErrorKind::UnexpectedEof)?;
            self.buf.extend_from_slice(read);
        }
    }

    /// The next method frame, skipping heartbeats and content frames.
    pub fn recv_method(&mut self) -> io::Result<(u16, Method)> {
        loop {
            let f = self.recv()?;
            if f.kind == FrameKind::Method {
                let m = Method::decode(f.payload).map_err(|e| invalid(e.to_string()))?;
                return Ok((f.channel, m));
            }
        }
    }

    /// Sends a synchronous method and waits for its reply; a close from the broker is an error.
    pub fn call(&mut self, ch: u16, m: &Method) -> io::Result<Method> {
        self.send(ch, m)?;
        match self.recv_method()? {
            (_, Method::ChannelClose(c)) => Err(invalid(format!("channel closed: {} {}", c.reply_code, c.reply_text))),
            (_, Method::ConnectionClose(c)) => {
                Err(invalid(format!("connection closed: {} {}", c.reply_code, c.reply_text)))
            }
            (_, reply) => Ok(reply),
        }
    }

    pub fn open_channel(&mut self, ch: u16) -> io::Result<()> {
        self.call(ch, &Method::ChannelOpen(channel::Open::default())).map(|_| ())
    }

    pub fn close(mut self) -> io::Result<()> {
        self.stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        self.call(0, &Method::ConnectionClose(connection::Close { reply_code: 200, ..Default::default() })).map(|_| ())
    }
}
