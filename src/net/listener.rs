//! Accepting connections on a shard's own SO_REUSEPORT listener; each is served on this shard.

use std::rc::Rc;

use glommio::net::TcpListener;

use crate::shard::Shard;

use super::connection;

pub async fn accept_loop(shard: Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if shard.stopping.get() {
                    continue;
                }
                glommio::spawn_local(connection::serve(shard.clone(), stream)).detach();
            }
            Err(e) => {
                log::warn!("shard {}: accept failed: {e}", shard.id);
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
