//! The broker's configuration: `config/warren.toml`, defaults as named consts, CLI overrides,
//! validated once at start.

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5672";
/// RabbitMQ's management plugin port.
pub const DEFAULT_MANAGEMENT_LISTEN: &str = "127.0.0.1:15672";
/// rabbitmq_prometheus's port.
pub const DEFAULT_PROMETHEUS_LISTEN: &str = "127.0.0.1:15692";
/// RabbitMQ's `collect_statistics_interval`: how often the management API samples the message
/// counters (milliseconds); rates are computed over the last interval.
pub const DEFAULT_STATS_INTERVAL_MS: u64 = 5000;
/// A listener address that disables the listener.
pub const LISTEN_OFF: &str = "off";
pub const DEFAULT_FRAME_MAX: u32 = 131_072;
pub const DEFAULT_CHANNEL_MAX: u16 = 2047;
pub const DEFAULT_HEARTBEAT_SECS: u16 = 60;
/// RabbitMQ's default `max_message_size`.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;
pub const DEFAULT_DATA_DIR: &str = "data";
pub const DEFAULT_USER: &str = "guest";
pub const DEFAULT_VHOST: &str = "/";
/// How many deliveries a no-ack consumer may have written but not yet flushed to its socket.
pub const DEFAULT_NO_ACK_WINDOW: u32 = 2048;
/// Size at which a shard's message log starts a new segment file.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DEFAULT_DISK_FREE_LIMIT: u64 = 50_000_000;
/// Backlog (ready messages) at which a consumed queue starts pausing its publishers.
pub const DEFAULT_FLOW_BACKLOG: u32 = 20_000;

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every shard listens on (SO_REUSEPORT).
    pub listen: String,
    /// The management HTTP API (RabbitMQ's paths), or "off".
    pub management_listen: String,
    /// The Prometheus scrape endpoint (/metrics), or "off".
    pub prometheus_listen: String,
    /// How often (ms) the management API samples message counters for its rates.
    pub collect_statistics_interval: u64,
    /// Number of shards; 0 means one per CPU this process may run on.
    pub shards: usize,
    /// CPUs to pin shards to, in order; empty means the CPUs this process may run on.
    pub cpus: Vec<usize>,
    pub frame_max: u32,
    pub channel_max: u16,
    /// Most client sockets held at once, over every shard (0 = no limit); one more is closed as
    /// soon as it is accepted.
    pub max_connections: usize,
    pub heartbeat: u16,
    pub max_message_size: u64,
    pub data_dir: PathBuf,
    pub default_user: String,
    pub default_pass: String,
    pub default_vhost: String,
    pub no_ack_window: u32,
    /// A queue with consumers whose ready backlog passes this many messages pauses the connections
    /// publishing to it until it drains to half; 0 disables publisher flow control.
    pub flow_backlog: u32,
    /// A RabbitMQ definitions file (JSON) to load at start; without one, the default user and vhost
    /// are created, as RabbitMQ does on first start.
    pub load_definitions: Option<PathBuf>,
    /// Users who may only connect from loopback addresses (RabbitMQ's default: guest).
    pub loopback_users: Vec<String>,
    /// A shard's message log starts a new segment file past this size; a segment is deleted once
    /// every message in it (and in every older one) is settled.
    pub segment_bytes: u64,
    /// Bytes of messages the queues may hold in memory: past half of it queues page their newest
    /// messages to disk; past all of it connections that publish are blocked (connection.blocked)
    /// until it is back under; 0 = 40% of the machine's memory (RabbitMQ's default high watermark).
    pub memory_limit: u64,
    /// Free disk space (bytes) under which connections that publish are blocked, as RabbitMQ's
    /// disk_free_limit (default 50 MB).
    pub disk_free_limit: u64,
    /// Log lines as "text" (default) or "json" (one object a line).
    pub log_format: crate::logging::LogFormat,
    /// AMQPS, client certificates, EXTERNAL and HTTPS: the `[tls]` table.
    pub tls: crate::tls::settings::TlsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.into(),
            management_listen: DEFAULT_MANAGEMENT_LISTEN.into(),
            prometheus_listen: DEFAULT_PROMETHEUS_LISTEN.into(),
            collect_statistics_interval: DEFAULT_STATS_INTERVAL_MS,
            shards: 0,
            cpus: Vec::new(),
            frame_max: DEFAULT_FRAME_MAX,
            channel_max: DEFAULT_CHANNEL_MAX,
            max_connections: 0,
            heartbeat: DEFAULT_HEARTBEAT_SECS,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            data_dir: DEFAULT_DATA_DIR.into(),
            default_user: DEFAULT_USER.into(),
            default_pass: DEFAULT_USER.into(),
            default_vhost: DEFAULT_VHOST.into(),
            no_ack_window: DEFAULT_NO_ACK_WINDOW,
            flow_backlog: DEFAULT_FLOW_BACKLOG,
            load_definitions: None,
            loopback_users: vec![DEFAULT_USER.into()],
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            memory_limit: 0,
            disk_free_limit: DEFAULT_DISK_FREE_LIMIT,
            log_format: crate::logging::LogFormat::Text,
            tls: Default::default(),
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.frame_max != 0 && self.frame_max < crate::protocol::frame::FRAME_MIN_SIZE {
            return Err(format!("frame_max {} is below the minimum 4096", self.frame_max));
        }
        if self.no_ack_window == 0 {
            return Err("no_ack_window must be at least 1".into());
        }
        // A segment's records go out in one write, and one write takes at most 2 GiB.
        if !(4096..=1 << 30).contains(&self.segment_bytes) {
            return Err("segment_bytes must be between 4096 and 1073741824".into());
        }
        for (key, addr) in
            [("management_listen", &self.management_listen), ("prometheus_listen", &self.prometheus_listen)]
        {
            if addr != LISTEN_OFF && addr.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!("{key} must be ADDR:PORT or \"off\", not '{addr}'"));
            }
        }
        if !(100..=3_600_000).contains(&self.collect_statistics_interval) {
            return Err("collect_statistics_interval must be between 100 and 3600000 (ms)".into());
        }
        if self.default_vhost.is_empty() {
            return Err("default_vhost must not be empty".into());
        }
        self.tls.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_parses() {
        let text = include_str!("../config/warren.toml");
        let c = Config::parse(text).unwrap();
        assert_eq!(c.frame_max, DEFAULT_FRAME_MAX);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("shardz = 2").is_err());
        assert!(Config::parse("frame_max = 100").is_err());
        assert_eq!(Config::parse("shards = 3").unwrap().shards, 3);
        assert_eq!(Config::parse("max_connections = 10").unwrap().max_connections, 10);
        assert!(Config::parse("max_connections = -1").is_err());
        assert_eq!(Config::parse("log_format = \"json\"").unwrap().log_format, crate::logging::LogFormat::Json);
        assert!(Config::parse("log_format = \"xml\"").is_err());
        assert!(Config::parse("management_listen = \"15672\"").is_err());
        assert_eq!(Config::parse("prometheus_listen = \"off\"").unwrap().prometheus_listen, LISTEN_OFF);
        assert!(Config::parse("[tls]\nlisten = \"127.0.0.1:5671\"").is_err());
        let tls = Config::parse("[tls]\nlisten = \"127.0.0.1:5671\"\ncertfile = \"c\"\nkeyfile = \"k\"").unwrap().tls;
        assert!(tls.amqps());
    }
}
