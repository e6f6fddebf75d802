//! A connection's share of the limits (broker/limits.rs): it counts against its vhost's and its
//! user's `max-connections` from connection.open, and each channel against its user's
//! `max-channels`, in the shards' shared `Tally`; what it counted is given back as channels
//! close and when it is over. Refusals are RabbitMQ's: connection.close 530 NOT_ALLOWED with
//! rabbit_reader's texts.

use crate::broker::limits::{MAX_CHANNELS, MAX_CONNECTIONS, Over};
use crate::protocol::reply::{AmqpError, ConnectionError};

use super::connection::Conn;

impl Conn {
    /// At connection.open of `vhost` (after the permission check): counted, or 530 if the vhost
    /// or the user has its `max-connections` open already.
    pub(super) fn count_connection(&self, vhost: &str) -> Result<(), ConnectionError> {
        let user = self.st.borrow().user.clone();
        let vhost_max = self.shard.routes.borrow().vhost_limit(vhost, MAX_CONNECTIONS);
        let user_max = self.shard.access.borrow().user(&user).and_then(|u| u.limits.get(MAX_CONNECTIONS));
        self.shard.tally.try_connection(vhost, &user, vhost_max, user_max).map_err(|over| {
            ConnectionError::not_allowed(match over {
                Over::Vhost(max) => {
                    format!("access to vhost '{vhost}' refused for user '{user}': connection limit ({max}) is reached")
                }
                Over::User(max) => {
                    format!("connection refused for user '{user}': user connection limit ({max}) is reached")
                }
            })
        })?;
        self.counted.set(true);
        Ok(())
    }

    /// At channel.open: counted, or 530 if the user has its `max-channels` open already.
    pub(super) fn count_channel(&self) -> Result<(), AmqpError> {
        let st = self.st.borrow();
        let max = self.shard.access.borrow().user(&st.user).and_then(|u| u.limits.get(MAX_CHANNELS));
        self.shard.tally.try_channel(&st.user, max).map_err(|max| {
            AmqpError::not_allowed(format!(
                "number of channels opened for user '{}' has reached the maximum allowed user limit of {max}",
                st.user
            ))
        })?;
        self.channel_slots.set(self.channel_slots.get() + 1);
        Ok(())
    }

    /// Channels were removed: the slots of those it counted go back.
    pub(super) fn channels_removed(&self) {
        let st = self.st.borrow();
        let (open, held) = (st.channels.len() as u32, self.channel_slots.get());
        if open < held {
            self.shard.tally.channels_closed(&st.user, held - open);
            self.channel_slots.set(open);
        }
    }

    /// The connection is over: everything it counted goes back.
    pub(super) fn uncount(&self) {
        let st = self.st.borrow();
        let held = self.channel_slots.replace(0);
        if held > 0 {
            self.shard.tally.channels_closed(&st.user, held);
        }
        if self.counted.replace(false) {
            self.shard.tally.connection_closed(&st.vhost, &st.user);
        }
    }
}
