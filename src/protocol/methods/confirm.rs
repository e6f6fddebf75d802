//! Class `confirm` (85): RabbitMQ's publisher confirms.

method!(Select { nowait: bool });
method!(SelectOk {});
