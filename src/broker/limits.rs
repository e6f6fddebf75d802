//! Resource limits as RabbitMQ has them: per vhost (`max-connections`, `max-queues`: its
//! "vhost-limits" runtime parameter) and per user (`max-connections`, `max-channels`: kept in the
//! user). rabbitmqctl gives them as a JSON object of integers; a negative value means no limit, 0
//! means none allowed (rabbit_vhost_limit, rabbit_auth_backend_internal).
//!
//! `Tally` counts what the limits are checked against across every shard (see its doc).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ahash::AHashMap as HashMap;
use serde_json::{Map, Value};

pub const MAX_CONNECTIONS: &str = "max-connections";
pub const MAX_QUEUES: &str = "max-queues";
pub const MAX_CHANNELS: &str = "max-channels";
/// The limits a vhost may have.
pub const VHOST_LIMITS: [&str; 2] = [MAX_CONNECTIONS, MAX_QUEUES];
/// The limits a user may have.
pub const USER_LIMITS: [&str; 2] = [MAX_CONNECTIONS, MAX_CHANNELS];

/// Limit name → value, as set (a negative value is kept, and shown, as given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Limits(BTreeMap<String, i64>);

impl Limits {
    /// rabbitmqctl's JSON argument: an object whose keys are among `known`, with integer values.
    pub fn parse(json: &str, known: &[&str]) -> Result<Self, String> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => Self::from_json(&map, known),
            Ok(_) => Err(format!("Validation failed\n\n'{json}' is not a JSON object")),
            Err(e) => Err(format!("Could not parse JSON document: {e}")),
        }
    }

    pub fn from_json(map: &Map<String, Value>, known: &[&str]) -> Result<Self, String> {
        let mut limits = BTreeMap::new();
        for (name, value) in map {
            if !known.contains(&name.as_str()) {
                return Err(format!("Validation failed\n\nUnrecognised terms [{{<<\"{name}\">>,{value}}}] in limits"));
            }
            let n = value
                .as_i64()
                .ok_or_else(|| format!("Validation failed\n\n{name} should be a number but was {value}"))?;
            limits.insert(name.clone(), n);
        }
        Ok(Self(limits))
    }

    pub fn to_json(&self) -> Map<String, Value> {
        self.0.iter().map(|(k, v)| (k.clone(), Value::from(*v))).collect()
    }

    /// The limit `name` if it limits anything: None when unset or negative.
    pub fn get(&self, name: &str) -> Option<u32> {
        let n = *self.0.get(name)?;
        (n >= 0).then(|| u32::try_from(n).unwrap_or(u32::MAX))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets the limits `other` has, keeping the others (rabbitmqctl set_user_limits).
    pub fn merge(&mut self, other: Limits) {
        self.0.extend(other.0);
    }

    /// Clears one limit; false if it was not set.
    pub fn clear(&mut self, name: &str) -> bool {
        self.0.remove(name).is_some()
    }
}

/// Why a connection was refused: the vhost's or the user's connection limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Over {
    Vhost(u32),
    User(u32),
}

#[derive(Default)]
struct Counts {
    vhost_connections: HashMap<Box<str>, u32>,
    user_connections: HashMap<Box<str>, u32>,
    user_channels: HashMap<Box<str>, u32>,
    vhost_queues: HashMap<Box<str>, u32>,
}

/// What the limits are checked against, counted over every shard: sockets held (the global
/// `max_connections`), open connections per vhost and per user, open channels per user, queues
/// per vhost. One table shared by the shards: a connection lives on one shard and a queue on
/// another, and the limits are broker-wide. Only connection open and close, channel open and
/// close, and queue creation and deletion touch it (one short uncontended lock, no allocation
/// but a new key's), never a publish, delivery or ack. Check and count happen under one lock,
/// so a limit is never passed, even by shards racing (RabbitMQ's own check is not atomic).
#[derive(Default)]
pub struct Tally {
    sockets: AtomicUsize,
    counts: Mutex<Counts>,
}

fn up(map: &mut HashMap<Box<str>, u32>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.into(), 1);
        }
    }
}

fn down(map: &mut HashMap<Box<str>, u32>, key: &str, by: u32) {
    if let Some(n) = map.get_mut(key) {
        *n = n.saturating_sub(by);
        if *n == 0 {
            map.remove(key);
        }
    }
}

fn count(map: &HashMap<Box<str>, u32>, key: &str) -> u32 {
    map.get(key).copied().unwrap_or(0)
}

impl Tally {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent under a panic elsewhere: every change is one statement.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A socket was accepted: counted unless `max` (0 = no limit) are held already.
    pub fn try_socket(&self, max: usize) -> bool {
        let held = self.sockets.fetch_add(1, Ordering::Relaxed);
        if max != 0 && held >= max {
            self.sockets.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    pub fn socket_closed(&self) {
        self.sockets.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn sockets(&self) -> usize {
        self.sockets.load(Ordering::Relaxed)
    }

    /// A connection opens `vhost` as `user`: counted unless either limit is reached.
    pub fn try_connection(
        &self,
        vhost: &str,
        user: &str,
        vhost_max: Option<u32>,
        user_max: Option<u32>,
    ) -> Result<(), Over> {
        let mut c = self.counts();
        if let Some(max) = vhost_max.filter(|&m| count(&c.vhost_connections, vhost) >= m) {
            return Err(Over::Vhost(max));
        }
        if let Some(max) = user_max.filter(|&m| count(&c.user_connections, user) >= m) {
            return Err(Over::User(max));
        }
        up(&mut c.vhost_connections, vhost);
        up(&mut c.user_connections, user);
        Ok(())
    }

    pub fn connection_closed(&self, vhost: &str, user: &str) {
        let mut c = self.counts();
        down(&mut c.vhost_connections, vhost, 1);
        down(&mut c.user_connections, user, 1);
    }

    /// `user` opens a channel: counted unless it has `max` open already (the limit is returned).
    pub fn try_channel(&self, user: &str, max: Option<u32>) -> Result<(), u32> {
        let mut c = self.counts();
        if let Some(max) = max.filter(|&m| count(&c.user_channels, user) >= m) {
            return Err(max);
        }
        up(&mut c.user_channels, user);
        Ok(())
    }

    pub fn channels_closed(&self, user: &str, n: u32) {
        down(&mut self.counts().user_channels, user, n);
    }

    /// A queue is created in `vhost`: counted unless it has `max` already (the limit is returned).
    pub fn try_queue(&self, vhost: &str, max: Option<u32>) -> Result<(), u32> {
        let mut c = self.counts();
        if let Some(max) = max.filter(|&m| count(&c.vhost_queues, vhost) >= m) {
            return Err(max);
        }
        up(&mut c.vhost_queues, vhost);
        Ok(())
    }

    pub fn queue_gone(&self, vhost: &str) {
        down(&mut self.counts().vhost_queues, vhost, 1);
    }

    /// (open connections, queues) of `vhost`.
    pub fn of_vhost(&self, vhost: &str) -> (u32, u32) {
        let c = self.counts();
        (count(&c.vhost_connections, vhost), count(&c.vhost_queues, vhost))
    }

    /// (open connections, open channels) of `user`.
    pub fn of_user(&self, user: &str) -> (u32, u32) {
        let c = self.counts();
        (count(&c.user_connections, user), count(&c.user_channels, user))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_is_no_limit_and_zero_allows_none() {
        let l = Limits::parse(r#"{"max-connections": -1, "max-queues": 0}"#, &VHOST_LIMITS).unwrap();
        assert_eq!((l.get(MAX_CONNECTIONS), l.get(MAX_QUEUES)), (None, Some(0)));
        assert_eq!(l.to_json()["max-connections"], -1);
        let t = Tally::default();
        assert_eq!(t.try_queue("/", l.get(MAX_QUEUES)), Err(0));
        assert_eq!(t.try_queue("/", l.get(MAX_CONNECTIONS)), Ok(()));
    }

    #[test]
    fn unknown_names_and_non_integers_are_refused() {
        assert!(Limits::parse(r#"{"max-channels": 1}"#, &VHOST_LIMITS).unwrap_err().contains("Unrecognised terms"));
        assert!(Limits::parse(r#"{"max-queues": "5"}"#, &VHOST_LIMITS).unwrap_err().contains("should be a number"));
        assert!(Limits::parse(r#"{"max-queues": 1.5}"#, &VHOST_LIMITS).is_err());
        assert!(Limits::parse("[1]", &VHOST_LIMITS).is_err());
        assert!(Limits::parse("{", &VHOST_LIMITS).unwrap_err().starts_with("Could not parse JSON"));
    }

    #[test]
    fn merge_keeps_the_others_and_clear_removes_one() {
        let mut l = Limits::parse(r#"{"max-connections": 2}"#, &USER_LIMITS).unwrap();
        l.merge(Limits::parse(r#"{"max-channels": 3}"#, &USER_LIMITS).unwrap());
        assert_eq!((l.get(MAX_CONNECTIONS), l.get(MAX_CHANNELS)), (Some(2), Some(3)));
        assert!(l.clear(MAX_CONNECTIONS) && !l.clear(MAX_CONNECTIONS));
        assert_eq!(l.get(MAX_CONNECTIONS), None);
    }

    #[test]
    fn a_connection_over_either_limit_is_refused_and_not_counted() {
        let t = Tally::default();
        assert_eq!(t.try_connection("/", "u", Some(2), Some(1)), Ok(()));
        assert_eq!(t.try_connection("/", "u", Some(2), Some(1)), Err(Over::User(1)));
        assert_eq!(t.try_connection("/", "v", Some(2), None), Ok(()));
        assert_eq!(t.try_connection("/", "w", Some(2), None), Err(Over::Vhost(2)));
        assert_eq!(t.of_vhost("/"), (2, 0));
        t.connection_closed("/", "u");
        assert_eq!(t.try_connection("/", "w", Some(2), None), Ok(()));
        assert_eq!(t.of_user("u"), (0, 0));
    }

    #[test]
    fn a_freed_channel_or_socket_slot_is_usable_again() {
        let t = Tally::default();
        assert_eq!(t.try_channel("u", Some(2)), Ok(()));
        assert_eq!(t.try_channel("u", Some(2)), Ok(()));
        assert_eq!(t.try_channel("u", Some(2)), Err(2));
        t.channels_closed("u", 1);
        assert_eq!(t.try_channel("u", Some(2)), Ok(()));
        t.channels_closed("u", 5);
        assert_eq!(t.of_user("u"), (0, 0));
        assert!(t.try_socket(1) && !t.try_socket(1));
        t.socket_closed();
        assert!(t.try_socket(1) && t.try_socket(0));
        assert_eq!(t.sockets(), 2);
    }
}
