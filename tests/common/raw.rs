//! A raw AMQP client over std TcpStream, built on warren's own codec, for sending what real
//! clients never would.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use warren::protocol::Method;
use warren::protocol::codec::LongStr;
use warren::protocol::frame::{self, Frame, FrameKind, PROTOCOL_HEADER};
use warren::protocol::methods::{channel, connection};
use warren::protocol::types::{FieldTable, FieldValue};

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        Raw { stream, buf: BytesMut::new() }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    pub fn send(&mut self, ch: u16, m: Method) {
        let mut out = BytesMut::new();
        frame::put_method(&mut out, ch, &m);
        self.send_raw(&out);
    }

    /// The next frame, or None if the peer closed the socket or nothing came within `wait`.
    pub fn recv_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(f)) = frame::parse(&mut self.buf, 0) {
                return Some(f);
            }
            if Instant::now() > deadline {
                return None;
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return None,
            }
        }
    }

    pub fn recv(&mut self) -> Frame {
        self.recv_within(Duration::from_secs(5)).expect("a frame from the broker")
    }

    /// The next method frame (heartbeats skipped).
    pub fn recv_method(&mut self) -> (u16, Method) {
        loop {
            let f = self.recv();
            if f.kind == FrameKind::Method {
                return (f.channel, Method::decode(f.payload).expect("broker sent a valid method"));
            }
        }
    }

    /// Whether the socket reaches EOF within `wait` (frames before it are skipped).
    pub fn closed_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(_) => return true,
            }
            if Instant::now() > deadline {
                return false;
            }
        }
    }

    /// Protocol header, connection.start, then start-ok with this mechanism and response (the client
    /// advertises authentication_failure_close and consumer_cancel_notify).
    pub fn login(addr: SocketAddr, mechanism: &str, response: &[u8]) -> Self {
        let mut r = Raw::connect(addr);
        r.send_raw(PROTOCOL_HEADER);
        let (_, start) = r.recv_method();
        assert!(matches!(start, Method::ConnectionStart(_)), "{start:?}");
        let mut caps = FieldTable::default();
        caps.insert("authentication_failure_close", FieldValue::Bool(true));
        caps.insert("consumer_cancel_notify", FieldValue::Bool(true));
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(caps));
        r.send(
            0,
            Method::ConnectionStartOk(connection::StartOk {
                client_properties: props,
                mechanism: mechanism.into(),
                response: LongStr(response.to_vec().into()),
                locale: "en_US".into(),
            }),
        );
        r
    }

    /// Logs in as guest and answers tune with these limits (0 keeps the broker's).
    pub fn tuned(addr: SocketAddr, channel_max: u16, frame_max: u32, heartbeat: u16) -> Self {
        let mut r = Raw::login(addr, "PLAIN", b"\0guest\0guest");
        let (_, tune) = r.recv_method();
        let Method::ConnectionTune(t) = tune else { panic!("expected tune, got {tune:?}") };
        let channel_max = if channel_max == 0 { t.channel_max } else { channel_max };
        let frame_max = if frame_max == 0 { t.frame_max } else { frame_max };
        r.send(0, Method::ConnectionTuneOk(connection::TuneOk { channel_max, frame_max, heartbeat }));
        r
    }

    /// Protocol header through connection.open-ok, with PLAIN guest/guest.
    pub fn handshake(addr: SocketAddr, heartbeat: u16) -> Self {
        let mut r = Raw::tuned(addr, 0, 0, heartbeat);
        r.send(0, Method::ConnectionOpen(connection::Open { virtual_host: "/".into(), ..Default::default() }));
        let (_, ok) = r.recv_method();
        assert!(matches!(ok, Method::ConnectionOpenOk(_)), "{ok:?}");
        r
    }

    pub fn open_channel(&mut self, ch: u16) {
        self.send(ch, Method::ChannelOpen(channel::Open::default()));
        let (c, m) = self.recv_method();
        assert_eq!(c, ch);
        assert!(matches!(m, Method::ChannelOpenOk(_)), "{m:?}");
    }

    /// Reads until connection.close and returns (reply code, class id, method id).
    pub fn expect_connection_close(&mut self) -> (u16, String, u16, u16) {
        loop {
            match self.recv_method() {
                (0, Method::ConnectionClose(c)) => return (c.reply_code, c.reply_text, c.class_id, c.method_id),
                _ => continue,
            }
        }
    }

    pub fn expect_channel_close(&mut self) -> (u16, u16, String) {
        loop {
            match self.recv_method() {
                (ch, Method::ChannelClose(c)) => return (ch, c.reply_code, c.reply_text),
                (0, Method::ConnectionClose(c)) => panic!("connection closed instead: {c:?}"),
                _ => continue,
            }
        }
    }
}
