//! Class `queue` (50).

use crate::protocol::types::FieldTable;

method!(Declare {
    ticket: u16,
    queue: String,
    passive: bool,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    nowait: bool,
    arguments: FieldTable,
});
method!(DeclareOk { queue: String, message_count: u32, consumer_count: u32 });
method!(Bind {
    ticket: u16,
    queue: String,
    exchange: String,
    routing_key: String,
    nowait: bool,
    arguments: FieldTable
});
method!(BindOk {});
method!(Purge { ticket: u16, queue: String, nowait: bool });
method!(PurgeOk { message_count: u32 });
method!(Delete { ticket: u16, queue: String, if_unused: bool, if_empty: bool, nowait: bool });
method!(DeleteOk { message_count: u32 });
method!(Unbind { ticket: u16, queue: String, exchange: String, routing_key: String, arguments: FieldTable });
method!(UnbindOk {});
