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
        Raw::login_over(Raw::connect(addr), mechanism, response)
    }

    /// Connects with a receive buffer of `bytes` (set before connecting, so the window the broker
    /// sees is that small from the start), then logs in and opens vhost "/" as `handshake` does.
    pub fn handshake_with_receive_buffer(addr: SocketAddr, bytes: libc::c_int) -> Self {
        use std::os::fd::FromRawFd;
        let SocketAddr::V4(v4) = addr else { panic!("an IPv4 broker address") };
        // SAFETY: a new socket, options of the sizes given, a sockaddr_in of its true size; the fd
        // is handed to TcpStream, which closes it.
        let stream = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0);
            let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            let set =
                libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, (&bytes as *const libc::c_int).cast(), len);
            assert_eq!(set, 0);
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*v4.ip()).to_be() },
                sin_zero: [0; 8],
            };
            let salen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            assert_eq!(libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), salen), 0);
            TcpStream::from_raw_fd(fd)
        };
        stream.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let r = Raw::login_over(Raw { stream, buf: BytesMut::new() }, "PLAIN", b"\0guest\0guest");
        Raw::open_vhost(Raw::tune_over(r, 0, 0, 0))
    }

    fn login_over(mut r: Raw, mechanism: &str, response: &[u8]) -> Self {
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
        Raw::tune_over(Raw::login(addr, "PLAIN", b"\0guest\0guest"), channel_max, frame_max, heartbeat)
    }

    fn tune_over(mut r: Raw, channel_max: u16, frame_max: u32, heartbeat: u16) -> Self {
        let (_, tune) = r.recv_method();
        let Method::ConnectionTune(t) = tune else { panic!("expected tune, got {tune:?}") };
        let channel_max = if channel_max == 0 { t.channel_max } else { channel_max };
        let frame_max = if frame_max == 0 { t.frame_max } else { frame_max };
        r.send(0, Method::ConnectionTuneOk(connection::TuneOk { channel_max, frame_max, heartbeat }));
        r
    }

    /// Protocol header through connection.open-ok, with PLAIN guest/guest.
    pub fn handshake(addr: SocketAddr, heartbeat: u16) -> Self {
        Raw::open_vhost(Raw::tuned(addr, 0, 0, heartbeat))
    }

    fn open_vhost(mut r: Raw) -> Self {
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
