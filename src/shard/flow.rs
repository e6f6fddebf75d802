//! Publisher flow control: a queue with consumers whose backlog passes `flow_backlog` pauses the
//! connection that just published to it; once it drains to half (or loses its consumers, or goes)
//! every paused connection resumes.

use crate::ids::{ConnId, QueueId, shard_of_id};

use super::Shard;
use super::msg::ShardMsg;

impl Shard {
    /// Publisher flow control: a queue with consumers whose backlog passes `flow_backlog` pauses
    /// the connection that just published to it; once it drains to half (or loses its consumers,
    /// or goes) every paused connection resumes.
    pub(super) fn check_flow(&self, id: QueueId, from: Option<ConnId>) {
        let high = self.config.flow_backlog;
        if high == 0 {
            return;
        }
        let (pause, resume) = {
            let mut queues = self.queues.borrow_mut();
            let Some(q) = queues.get_mut(id) else { return };
            let backlog = q.message_count();
            let mut pause = None;
            if let Some(from) = from
                && backlog > high
                && q.consumer_count() > 0
                && !q.paused.contains(&from)
            {
                q.paused.push(from);
                pause = Some(from);
            }
            let drained = backlog <= high / 2 || q.consumer_count() == 0;
            let resume = if drained { std::mem::take(&mut q.paused) } else { Vec::new() };
            (pause, resume)
        };
        for (conn, hold) in pause.map(|c| (c, true)).into_iter().chain(resume.into_iter().map(|c| (c, false))) {
            self.send_flow(conn, id, hold);
        }
    }

    pub(super) fn send_flow(&self, conn: ConnId, queue: QueueId, hold: bool) {
        self.send(shard_of_id(conn), ShardMsg::FlowHold { conn, queue, hold });
    }
}
