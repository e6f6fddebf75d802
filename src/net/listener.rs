//! Accepting connections on a shard's own SO_REUSEPORT listeners (AMQP, and AMQPS when TLS is
//! configured); each is served on this shard, its TLS session too.

use std::rc::Rc;
use std::sync::Arc;

use glommio::net::TcpListener;
use rustls::ServerConfig;
use rustls::server::ServerSessionMemoryCache;

use crate::shard::Shard;
use crate::tls::Tls;

use super::connection;

/// TLS session tickets or ids this shard remembers for resumption.
const SESSION_CACHE: usize = 256;

/// `tls`: this is the AMQPS listener; new connections use the configuration in force when they
/// arrive (see `tls::Tls::reload`).
pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, tls: Option<Arc<Tls>>) {
    let mut config = ShardTls::default();
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
                glommio::spawn_local(connection::serve(shard.clone(), stream, tls_config)).detach();
            }
            Err(e) => {
                log::warn!("shard {}: accept failed: {e}", shard.id);
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
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
