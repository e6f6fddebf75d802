//! The management and Prometheus listeners: bound before the shards start (so a port in use stops
//! the broker at once, as the AMQP listener does), served by one thread running a current-thread
//! tokio runtime and hyper's HTTP/1 server; over TLS (tokio-rustls) when `[tls]` says
//! `https_management` or `https_prometheus`, with the certificate in force at each accept.

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::admin_client::{Admin, AdminError};
use super::sampler::Sampler;
use crate::admin::SOCKET_NAME;
use crate::config::{Config, LISTEN_OFF};
use crate::tls::Tls;
use crate::tls::settings::TlsSettings;
use tokio_rustls::TlsAcceptor;

/// A client that opens a TLS connection and says nothing is dropped after this long.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub type Resp = Response<Full<Bytes>>;

/// What the handlers share: the way to the shards and what the overview tells about the node.
pub struct Node {
    pub admin: Admin,
    pub amqp: SocketAddr,
    pub amqps: Option<SocketAddr>,
    pub management: Option<SocketAddr>,
    pub prometheus: Option<SocketAddr>,
    /// Which of the two HTTP listeners serve HTTPS.
    pub management_https: bool,
    pub prometheus_https: bool,
    pub name: String,
    /// The last samples of the message counters.
    pub sampler: Sampler,
}

/// The bound listeners, not yet served.
pub struct Listeners {
    management: Option<TcpListener>,
    prometheus: Option<TcpListener>,
    data_dir: std::path::PathBuf,
    stats_interval: std::time::Duration,
}

fn bind_one(key: &str, addr: &str) -> Result<Option<TcpListener>, String> {
    if addr == LISTEN_OFF {
        return Ok(None);
    }
    let l = TcpListener::bind(addr).map_err(|e| format!("{key} {addr}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| format!("{key} {addr}: {e}"))?;
    Ok(Some(l))
}

/// Binds the listeners the config asks for.
pub fn bind(config: &Config) -> Result<Listeners, String> {
    Ok(Listeners {
        management: bind_one("management_listen", &config.management_listen)?,
        prometheus: bind_one("prometheus_listen", &config.prometheus_listen)?,
        data_dir: config.data_dir.clone(),
        stats_interval: std::time::Duration::from_millis(config.collect_statistics_interval),
    })
}

impl Listeners {
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves both listeners on a thread of their own, until the process exits.
    pub fn serve(self, amqp: SocketAddr, amqps: Option<SocketAddr>, tls: Option<Arc<Tls>>) -> std::io::Result<()> {
        if self.management.is_none() && self.prometheus.is_none() {
            return Ok(());
        }
        let node = Arc::new(Node {
            admin: Admin::new(self.data_dir.join(SOCKET_NAME)),
            amqp,
            amqps,
            management_https: tls.as_ref().is_some_and(|t| t.settings().https_management),
            prometheus_https: tls.as_ref().is_some_and(|t| t.settings().https_prometheus),
            management: self.management_addr(),
            prometheus: self.prometheus_addr(),
            name: format!("warren@{}", hostname()),
            sampler: Sampler::default(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        std::thread::Builder::new().name("warren-http".into()).spawn(move || {
            runtime.block_on(async move {
                tokio::spawn(node.sampler.clone().run(node.admin.clone(), self.stats_interval));
                let https = |on: fn(&TlsSettings) -> bool| tls.clone().filter(|t| on(t.settings()));
                let mgmt_tls = https(|s| s.https_management);
                let prom_tls = https(|s| s.https_prometheus);
                let mgmt = self.management.map(|l| tokio::spawn(accept(l, node.clone(), Site::Management, mgmt_tls)));
                let prom = self.prometheus.map(|l| tokio::spawn(accept(l, node.clone(), Site::Prometheus, prom_tls)));
                for task in [mgmt, prom].into_iter().flatten() {
                    let _ = task.await;
                }
            })
        })?;
        Ok(())
    }
}

#[derive(Clone, Copy)]
enum Site {
    Management,
    Prometheus,
}

async fn accept(listener: TcpListener, node: Arc<Node>, site: Site, tls: Option<Arc<Tls>>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("http listener: {e}");
            return;
        }
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors, most likely: the next accept may succeed once some close.
                log::warn!("http accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let node = node.clone();
        let https = tls.as_ref().and_then(|t| t.https());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let node = node.clone();
                async move { Ok::<_, Infallible>(route(&node, site, peer, req).await) }
            });
            let served = match https {
                None => http1::Builder::new().serve_connection(TokioIo::new(stream), service).await,
                Some(config) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(stream));
                    match handshake.await {
                        Ok(Ok(s)) => http1::Builder::new().serve_connection(TokioIo::new(s), service).await,
                        Ok(Err(e)) => return log::debug!("https connection from {peer}: TLS handshake failed: {e}"),
                        Err(_) => return log::debug!("https connection from {peer}: TLS handshake timed out"),
                    }
                }
            };
            if let Err(e) = served {
                log::debug!("http connection from {peer}: {e}");
            }
        });
    }
}

async fn route(node: &Node, site: Site, peer: SocketAddr, req: Request<Incoming>) -> Resp {
    match site {
        Site::Management => super::api::handle(node, peer, req).await,
        Site::Prometheus => super::metrics::handle(node, req).await,
    }
}

pub fn with_body(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub fn json_reply(status: StatusCode, v: &Value) -> Resp {
    with_body(status, "application/json", v.to_string())
}

/// RabbitMQ's error body: `{"error": ..., "reason": ...}`.
pub fn error(status: StatusCode, error: &str, reason: &str) -> Resp {
    json_reply(status, &json!({ "error": error, "reason": reason }))
}

pub fn no_content() -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    r
}

pub fn not_found() -> Resp {
    error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
}

/// An admin request that failed: the broker's refusal is the client's fault (400), an unreachable
/// broker is ours (503).
pub fn admin_failed(e: AdminError) -> Resp {
    match e {
        AdminError::Refused(text) => error(StatusCode::BAD_REQUEST, "bad_request", &text),
        AdminError::Unreachable(text) => {
            log::warn!("management API: admin endpoint unreachable: {text}");
            error(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the broker is not answering")
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
