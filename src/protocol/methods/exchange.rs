//! Class `exchange` (40), with RabbitMQ's exchange-to-exchange bind/unbind.

use crate::protocol::types::FieldTable;

method!(Declare {
    ticket: u16,
    exchange: String,
    kind: String,
    passive: bool,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    nowait: bool,
    arguments: FieldTable,
});
method!(DeclareOk {});
method!(Delete { ticket: u16, exchange: String, if_unused: bool, nowait: bool });
method!(DeleteOk {});
method!(Bind {
    ticket: u16,
    destination: String,
    source: String,
    routing_key: String,
    nowait: bool,
    arguments: FieldTable
});
method!(BindOk {});
method!(Unbind {
    ticket: u16,
    destination: String,
    source: String,
    routing_key: String,
    nowait: bool,
    arguments: FieldTable
});
method!(UnbindOk {});
