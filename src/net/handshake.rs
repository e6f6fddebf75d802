//! Connection handshake (spec 2.2.4): start / start-ok (PLAIN, AMQPLAIN, and EXTERNAL on TLS
//! listeners that verify peers, as rabbitmq_auth_mechanism_ssl), tune / tune-ok with RabbitMQ's
//! negotiation rules, open / open-ok.

use std::rc::Rc;

use bytes::Bytes;
use rustls::pki_types::CertificateDer;

use crate::protocol::Method;
use crate::protocol::codec::Reader;
use crate::protocol::frame::{FRAME_MIN_SIZE, Frame, FrameKind};
use crate::protocol::methods::connection as conn;
use crate::protocol::reply::ConnectionError;

use crate::protocol::types::{FieldTable, FieldValue};
use crate::shard::Shard;

use super::connection::{ClientCaps, Conn, Phase};

/// The handshake happens on channel 0, before any channel exists: it fails only with connection errors.
type Result<T> = std::result::Result<T, ConnectionError>;

/// EXTERNAL on this connection: offered on TLS listeners that verify peers, even to a client that
/// sent no certificate (RabbitMQ does, so that the refusal says why).
pub enum External {
    NotOffered,
    NoCertificate,
    Certificate(CertificateDer<'static>),
}

impl External {
    pub fn offered(shard: &Shard, cert: Option<CertificateDer<'static>>) -> External {
        if shard.config.tls.verify != crate::tls::settings::Verify::VerifyPeer {
            return External::NotOffered;
        }
        cert.map_or(External::NoCertificate, External::Certificate)
    }

    /// The user the certificate names, or RabbitMQ's reason for refusing.
    fn user(&self, shard: &Shard) -> std::result::Result<String, &'static str> {
        match self {
            External::NotOffered => Err("not a TLS connection that verifies peers"),
            External::NoCertificate => Err("connection peer presented no TLS (x.509) certificate"),
            External::Certificate(c) => crate::tls::peer_name::user_name(c, &shard.config.tls),
        }
    }
}

pub fn start_method(shard: &Shard, external: &External) -> Method {
    let mut caps = FieldTable::default();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
        "connection.blocked",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let mut props = FieldTable::default();
    props.insert("product", FieldValue::str("Warren"));
    props.insert("version", FieldValue::str(env!("CARGO_PKG_VERSION")));
    props.insert("platform", FieldValue::str("Rust"));
    props.insert("information", FieldValue::str("A thread-per-core AMQP 0-9-1 broker"));
    props.insert("cluster_name", FieldValue::str("warren"));
    props.insert("capabilities", FieldValue::Table(caps));
    // Which shard serves this connection: lets tests and operators see connections spread.
    props.insert("warren_shard", FieldValue::I32(shard.id as i32));
    Method::ConnectionStart(conn::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: match external {
            External::NotOffered => "PLAIN AMQPLAIN",
            _ => "EXTERNAL PLAIN AMQPLAIN",
        }
        .into(),
        locales: "en_US".into(),
    })
}

/// (user, password) from a PLAIN or AMQPLAIN response.
fn credentials(mechanism: &str, response: &Bytes) -> Option<(String, String)> {
    match mechanism {
        "PLAIN" => {
            let mut parts = response.split(|&b| b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((String::from_utf8_lossy(user).into(), String::from_utf8_lossy(pass).into()))
        }
        "AMQPLAIN" => {
            // A field table without its length prefix.
            let mut framed = Vec::with_capacity(response.len() + 4);
            framed.extend_from_slice(&(response.len() as u32).to_be_bytes());
            framed.extend_from_slice(response);
            let table = <FieldTable as crate::protocol::codec::Field>::read(&mut Reader::new(framed.into())).ok()?;
            Some((table.get_str("LOGIN")?, table.get_str("PASSWORD")?))
        }
        _ => None,
    }
}

fn client_caps(props: &FieldTable) -> ClientCaps {
    let Some(FieldValue::Table(caps)) = props.get("capabilities") else { return ClientCaps::default() };
    ClientCaps {
        consumer_cancel_notify: caps.get_bool("consumer_cancel_notify").unwrap_or(false),
        authentication_failure_close: caps.get_bool("authentication_failure_close").unwrap_or(false),
        connection_blocked: caps.get_bool("connection.blocked").unwrap_or(false),
    }
}

impl Conn {
    pub async fn on_handshake_frame(self: &Rc<Self>, f: Frame) -> Result<()> {
        if f.kind == FrameKind::Heartbeat {
            return Ok(());
        }
        if f.kind != FrameKind::Method || f.channel != 0 {
            return Err(ConnectionError::command_invalid(
                "expected a connection method on channel 0 during the handshake",
            ));
        }
        let m = Method::decode(f.payload)?;
        let id = m.id();
        match (self.phase.get(), m) {
            (_, Method::ConnectionClose(_)) => {
                self.send_method(0, &Method::ConnectionCloseOk(conn::CloseOk {}));
                self.phase.set(Phase::Done);
                Ok(())
            }
            (Phase::AwaitStartOk, Method::ConnectionStartOk(s)) => self.start_ok(s),
            (Phase::AwaitTuneOk, Method::ConnectionTuneOk(t)) => self.tune_ok(t),
            (Phase::AwaitOpen, Method::ConnectionOpen(o)) => self.open(o),
            (phase, m) => Err(ConnectionError::command_invalid(format!(
                "method {:?} is not expected in handshake phase {phase:?}",
                m.id()
            ))
            .on(id)),
        }
    }

    fn start_ok(self: &Rc<Self>, s: conn::StartOk) -> Result<()> {
        let caps = client_caps(&s.client_properties);
        self.st.borrow_mut().caps = caps;
        let cfg = &self.shard.config;
        let refused = || {
            ConnectionError::access_refused(format!(
                "Login was refused using authentication mechanism {}. For details see the broker logfile.",
                s.mechanism
            ))
        };
        let login = if s.mechanism == "EXTERNAL" {
            // The client's response is ignored: the certificate names the user, who needs no password.
            match self.external.user(&self.shard) {
                Ok(user) => self.shard.access.borrow().login_external(&user, self.peer_loopback).map(|_| user),
                Err(why) => {
                    log::info!("connection {}: EXTERNAL login refused: {why}", self.id);
                    Err(refused())
                }
            }
        } else {
            match credentials(&s.mechanism, &s.response.0) {
                Some((user, pass)) => {
                    self.shard.access.borrow().login(&user, &pass, &s.mechanism, self.peer_loopback).map(|_| user)
                }
                None => Err(refused()),
            }
        };
        let user = match login {
            Ok(user) => user,
            Err(e) => {
                log::info!("connection {}: login refused ({}): {}", self.id, s.mechanism, e.text());
                if caps.authentication_failure_close {
                    // Then wait (bounded) for close-ok: closing at once would reset the socket on
                    // the client's close-ok, and the reset can discard our close unread (rabbitpy
                    // reported "connection reset" instead of access refused).
                    self.close_connection(e);
                } else {
                    // Without the capability RabbitMQ just closes the socket; we do so at once.
                    self.phase.set(Phase::Done);
                }
                return Ok(());
            }
        };
        self.st.borrow_mut().user = user;
        self.send_method(
            0,
            &Method::ConnectionTune(conn::Tune {
                channel_max: cfg.channel_max,
                frame_max: cfg.frame_max,
                heartbeat: cfg.heartbeat,
            }),
        );
        self.phase.set(Phase::AwaitTuneOk);
        Ok(())
    }

    fn tune_ok(self: &Rc<Self>, t: conn::TuneOk) -> Result<()> {
        let cfg = &self.shard.config;
        let id = (10, 31);
        let frame_max = if t.frame_max == 0 { cfg.frame_max } else { t.frame_max };
        if frame_max < FRAME_MIN_SIZE {
            return Err(
                ConnectionError::not_allowed(format!("frame_max={frame_max} < {FRAME_MIN_SIZE} min size")).on(id)
            );
        }
        if cfg.frame_max != 0 && frame_max > cfg.frame_max {
            return Err(
                ConnectionError::not_allowed(format!("frame_max={frame_max} > {} max size", cfg.frame_max)).on(id)
            );
        }
        let channel_max = if t.channel_max == 0 { cfg.channel_max } else { t.channel_max };
        if cfg.channel_max != 0 && channel_max > cfg.channel_max {
            return Err(
                ConnectionError::not_allowed(format!("channel_max={channel_max} > {} max", cfg.channel_max)).on(id)
            );
        }
        let mut st = self.st.borrow_mut();
        st.frame_max = frame_max;
        st.channel_max = channel_max;
        st.heartbeat = t.heartbeat;
        drop(st);
        self.phase.set(Phase::AwaitOpen);
        Ok(())
    }

    fn open(self: &Rc<Self>, o: conn::Open) -> Result<()> {
        if !self.shard.routes.borrow().has_vhost(&o.virtual_host) {
            return Err(ConnectionError::not_allowed(format!("vhost {} not found", o.virtual_host)).on((10, 40)));
        }
        let user = self.st.borrow().user.clone();
        self.shard.access.borrow().check_vhost(&user, &o.virtual_host).map_err(|e| e.on((10, 40)))?;
        self.count_connection(&o.virtual_host).map_err(|e| e.on((10, 40)))?;
        self.st.borrow_mut().vhost = o.virtual_host.as_str().into();
        self.send_method(0, &Method::ConnectionOpenOk(conn::OpenOk::default()));
        self.phase.set(Phase::Open);
        Ok(())
    }
}
