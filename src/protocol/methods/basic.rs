//! Class `basic` (60), with RabbitMQ's basic.nack.

use crate::protocol::types::FieldTable;

method!(Qos { prefetch_size: u32, prefetch_count: u16, global: bool });
method!(QosOk {});
method!(Consume {
    ticket: u16,
    queue: String,
    consumer_tag: String,
    no_local: bool,
    no_ack: bool,
    exclusive: bool,
    nowait: bool,
    arguments: FieldTable,
});
method!(ConsumeOk { consumer_tag: String });
method!(Cancel { consumer_tag: String, nowait: bool });
method!(CancelOk { consumer_tag: String });
method!(Publish { ticket: u16, exchange: String, routing_key: String, mandatory: bool, immediate: bool });
method!(Return { reply_code: u16, reply_text: String, exchange: String, routing_key: String });
method!(Deliver { consumer_tag: String, delivery_tag: u64, redelivered: bool, exchange: String, routing_key: String });
method!(Get { ticket: u16, queue: String, no_ack: bool });
method!(GetOk { delivery_tag: u64, redelivered: bool, exchange: String, routing_key: String, message_count: u32 });
method!(GetEmpty { cluster_id: String });
method!(Ack { delivery_tag: u64, multiple: bool });
method!(Reject { delivery_tag: u64, requeue: bool });
method!(RecoverAsync { requeue: bool });
method!(Recover { requeue: bool });
method!(RecoverOk {});
method!(Nack { delivery_tag: u64, multiple: bool, requeue: bool });
