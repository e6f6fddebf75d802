//! The control plane's HTTP side: RabbitMQ's management API (`/api/...`) and rabbitmq_prometheus's
//! scrape endpoint (`/metrics`), served by one thread of their own off the shard cores. They reach
//! the shards only through the admin socket warrenctl uses (src/admin.rs), so a busy API costs the
//! message path what a warrenctl command costs, and nothing more.
//!
//! - `server`: the listeners, the thread and its runtime, HTTP responses.
//! - `admin_client`: the admin socket, asked asynchronously.
//! - `auth`: basic auth against Warren's users, RabbitMQ's tag rules.
//! - `api`: the paths under /api/ and what GET answers; `writes`: PUT, POST and DELETE
//!   (`limit_writes`: of vhost and user limits); `shapes`: RabbitMQ's JSON objects; `messages`:
//!   get and publish.
//! - `sampler`: the message counters sampled every `collect_statistics_interval`, and rates.
//! - `metrics`: the Prometheus exposition.
//! - `ui`: the web UI's static files (`ui/`), served at `/`.

mod admin_client;
mod api;
mod auth;
mod limit_writes;
mod listing;
mod message_stats;
mod messages;
mod metrics;
mod metrics_counters;
mod sampler;
mod server;
mod shapes;
mod ui;
mod writes;

pub use server::{Listeners, bind};
