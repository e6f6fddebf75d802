//! Connection churn: open a connection and a channel, declare a server-named exclusive queue, close.

use std::sync::atomic::{AtomicBool, Ordering};

use warren::protocol::Method;
use warren::protocol::methods::queue;

use crate::Args;
use crate::stats::Counters;

pub fn run(args: &Args, counters: &Counters, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let round = || -> std::io::Result<()> {
            let mut c = crate::tls::connect(args)?;
            c.open_channel(1)?;
            c.call(1, &Method::QueueDeclare(queue::Declare { exclusive: true, ..Default::default() }))?;
            c.close()
        };
        match round() {
            Ok(()) => counters.received.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.errors.fetch_add(1, Ordering::Relaxed),
        };
    }
}
