//! Accepting connections on a shard's own SO_REUSEPORT listeners (AMQP, and AMQPS when TLS is
//! configured); each is served on this shard, its TLS session too. Past the global
//! `max_connections` (sockets held over every shard) a new socket is closed as soon as it is
//! accepted, unread: a refusal costs no more than the accept.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;

use crate::broker::limits::Tally;
use crate::shard::Shard;
use crate::tls::Tls;

use super::connection;

/// TLS session tickets or ids this shard remembers for resumption.
const SESSION_CACHE: usize = 256;

/// Refusals are logged at most this often (a storm of them must not become a storm of log lines).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// A socket counted against `max_connections`, and in its shard's sockets, until it is dropped.
struct Slot(Arc<Tally>, Rc<Shard>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.socket_closed();
        self.1.sockets.set(self.1.sockets.get().saturating_sub(1));
    }
}

/// `tls`: this is the AMQPS listener; new connections use the configuration in force when they
/// arrive (see `tls::Tls::reload`).
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, tls: Option<Arc<Tls>>) {
    let mut config = ShardTls::default();
    let max = shard.config.max_connections;
    let (mut refused, mut logged) = (0u64, None::<Instant>);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if shard.stopping.get() {
                    continue;
                }
                let tls_config = match &tls {
                    None => None,
                    Some(tls) => match config.current(tls) {
                        Some(c) => Some(c),
                        None => continue,
                    },
                };
                if !shard.tally.try_socket(max) {
                    drop(stream);
                    refused += 1;
                    if logged.is_none_or(|t| t.elapsed() >= REFUSAL_LOG_EVERY) {
                        log::warn!(
                            "shard {}: connection refused: node connection limit ({max}) is reached ({refused} refused)",
                            shard.id
                        );
                        logged = Some(Instant::now());
                    }
                    continue;
                }
                shard.sockets.set(shard.sockets.get() + 1);
                let slot = Slot(shard.tally.clone(), shard.clone());
                let served = connection::serve(shard.clone(), stream, tls_config);
                glommio::spawn_local(async move {
                    served.await;
                    drop(slot);
                })
                .detach();
            }
            Err(e) => {
                log::warn!("shard {}: accept failed: {e}", shard.id);
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// This shard's copy of the AMQPS configuration, with a session cache of its own so that no
/// handshake takes a lock another core holds.
#[derive(Default)]
struct ShardTls {
    generation: u64,
    config: Option<Arc<ServerConfig>>,
}

impl ShardTls {
    fn current(&mut self, tls: &Tls) -> Option<Arc<ServerConfig>> {
        if self.config.is_none() || self.generation != tls.generation() {
            let (generation, shared) = tls.amqps()?;
            let mut own = (*shared).clone();
            own.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
            self.config = Some(Arc::new(own));
            self.generation = generation;
        }
        self.config.clone()
    }
}
