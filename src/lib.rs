//! Warren: a thread-per-core AMQP 0-9-1 broker.
//!
//! - `protocol/`: frames, methods, field tables, properties; pure codec.
//! - `config`: the TOML file and CLI overrides; `logging`: the log line format.
//! - `shard/`: executors pinned per core, queue placement, the mesh between shards.
//! - `broker/`: exchanges, routing tables, queues and consumers, owned per shard.
//! - `net/`: listeners, connections and channels speaking to clients.
//! - `server`: starts the shards (recovering their logs), their listeners and the admin socket.
//! - `admin`: the admin socket warrenctl uses; `mgmt/`: the management HTTP API and Prometheus
//!   endpoint on a thread of their own, asking the shards through the admin socket.
//! - `tls/`: rustls configurations from the `[tls]` settings, their reload, EXTERNAL's user name.
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
// Peer bytes, files and invariants answer with errors, not panics (issue 14); unit tests may index
// and expect. The binaries under src/bin/ are crates of their own, outside this policy.
#![cfg_attr(not(test), deny(clippy::expect_used, clippy::indexing_slicing))]

pub mod admin;
pub mod broker;
pub mod client;
pub mod clock;
pub mod config;
pub mod data_dir;
pub mod ids;
pub mod logging;
pub mod mgmt;
pub mod net;
pub mod notify;
pub mod protocol;
pub mod server;
pub mod shard;
pub mod store;
pub mod tls;
