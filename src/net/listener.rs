//! Accepting connections on a shard's own SO_REUSEPORT listener; each is served on this shard.
//! Past the global `max_connections` (sockets held over every shard) a new socket is closed as
//! soon as it is accepted, unread: a refusal costs no more than the accept.

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;

use crate::broker::limits::Tally;
use crate::shard::Shard;

use super::connection;

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

pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    let max = shard.config.max_connections;
    let (mut refused, mut logged) = (0u64, None::<Instant>);
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if shard.stopping.get() {
                    continue;
                }
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
                let served = connection::serve(shard.clone(), stream);
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
