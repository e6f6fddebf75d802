//! AMQP 0-9-1 as RabbitMQ speaks it. Pure: bytes in, typed values out; no sockets, no executor.

pub mod codec;
pub mod frame;
pub mod methods;
pub mod properties;
pub mod reply;
pub mod shortstr;
pub mod types;

pub use methods::Method;
pub use reply::{AmqpError, ChannelError, ConnectionError, HardError, SoftError};
pub use shortstr::ShortStr;
