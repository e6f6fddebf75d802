//! Class `access` (30): deprecated in 0-9-1; RabbitMQ still answers access.request.

method!(Request { realm: String, exclusive: bool, passive: bool, active: bool, write: bool, read: bool });
method!(RequestOk { ticket: u16 });
