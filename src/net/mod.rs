//! Talking to clients: listeners, connections (handshake, frames, heartbeats, close) and channels
//! (each AMQP class's methods), all on the shard that accepted the connection.

pub mod basic_methods;
pub mod channel;
pub mod client;
mod closing;
pub mod connection;
pub mod consumers;
pub mod delivery;
pub mod direct_reply;
pub mod exchange_methods;
pub mod handshake;
pub mod io;
mod limits;
pub mod listener;
pub mod output;
pub mod publish;
pub mod queue_methods;
pub mod tls_socket;
