//! `warren-perf`: a load generator in the spirit of RabbitMQ's PerfTest. It speaks AMQP 0-9-1 to any
//! broker with Warren's codec, producers and consumers each on their own thread with blocking
//! sockets and batched writes, and reports rates and end-to-end latency (a timestamp in the body).

mod churn;
mod consumer;
mod producer;
mod stats;
mod tls;
mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

use stats::{Counters, Report};

#[derive(Parser, Debug, Clone)]
#[command(name = "warren-perf", about = "AMQP 0-9-1 load generator (Warren or RabbitMQ)")]
pub struct Args {
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:5672")]
    pub addr: String,
    #[arg(long, default_value = "guest")]
    pub user: String,
    #[arg(long, default_value = "guest")]
    pub pass: String,
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Producer connections (one thread each).
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer connections (one thread each).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,
    /// Queues, named QUEUE-PREFIX-i; consumer j reads queue j % queues.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    #[arg(long, default_value = "perf-q")]
    pub queue_prefix: String,
    /// Exchange type: "default" (publish to the queue by name), direct, fanout, topic or headers.
    #[arg(short = 't', long, default_value = "default")]
    pub exchange_type: String,
    #[arg(short = 'e', long, default_value = "perf-x")]
    pub exchange: String,
    /// Topic: pattern bindings spread over the queues (each message matches one).
    #[arg(long, default_value_t = 20)]
    pub bindings: usize,
    /// Message body size in bytes (at least 8: the send timestamp).
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,
    /// Messages per second per producer; 0 is as fast as possible.
    #[arg(short = 'r', long, default_value_t = 0)]
    pub rate: u64,
    /// Publisher confirms with at most this many unconfirmed per producer; 0 is off.
    #[arg(short = 'c', long, default_value_t = 0)]
    pub confirm: u64,
    /// Publish persistent messages (delivery_mode 2) to durable queues.
    #[arg(short = 'f', long)]
    pub persistent: bool,
    /// basic.qos prefetch_count per consumer (manual ack only); 0 is unlimited.
    #[arg(short = 'q', long, default_value_t = 0)]
    pub prefetch: u16,
    /// Consume with no-ack (auto-ack).
    #[arg(short = 'a', long)]
    pub auto_ack: bool,
    /// Ack with `multiple` once per this many messages (and at the end of each read); 1 acks each.
    #[arg(short = 'A', long, default_value_t = 1)]
    pub multi_ack: u64,
    /// Run time in seconds.
    #[arg(short = 'z', long, default_value_t = 10)]
    pub duration: u64,
    /// Stop each producer after this many messages (0: run for --duration).
    #[arg(short = 'C', long, default_value_t = 0)]
    pub pmessages: u64,
    /// Stop once the consumers received this many messages in all (0: no such limit).
    #[arg(short = 'D', long, default_value_t = 0)]
    pub cmessages: u64,
    /// Queue TTL (x-message-ttl, ms) of the queues published to.
    #[arg(long)]
    pub ttl: Option<u64>,
    /// Dead-lettering: the queues published to dead-letter (fanout exchange perf-dlx) into
    /// queues QUEUE-PREFIX-dead-i, which the consumers read instead. With --ttl 0 every message
    /// takes that path.
    #[arg(long)]
    pub dead_letter: bool,
    /// Priority queues (x-max-priority N); message n gets priority n % (N + 1).
    #[arg(long, default_value_t = 0)]
    pub priorities: u8,
    /// Keep what the queues already hold (default: purge them first), e.g. to drain a backlog.
    #[arg(long)]
    pub no_purge: bool,
    /// Connection churn instead of messaging: this many threads open a connection, declare a
    /// server-named exclusive queue and close, in a loop.
    #[arg(long, default_value_t = 0)]
    pub churn: usize,
    /// Also report this process's CPU time (the broker's) and deliveries per broker CPU-second.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Scenario name carried into the summary.
    #[arg(long, default_value = "custom")]
    pub name: String,
    /// Connect over TLS (AMQPS): the broker's certificate is checked against --tls-ca, or not
    /// at all without it (benchmarks only). Publisher confirms (-c) are not available over TLS.
    #[arg(long)]
    pub tls: bool,
    /// CA certificate (PEM) the broker's certificate must chain to.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// The name the broker's certificate must carry (with --tls-ca).
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(args) {
        eprintln!("warren-perf: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let counters = Arc::new(Counters::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    if args.churn > 0 {
        for _ in 0..args.churn {
            let (a, c, s) = (args.clone(), counters.clone(), stop.clone());
            threads.push(std::thread::spawn(move || churn::run(&a, &c, &s)));
        }
    } else {
        topology::declare(&args)?;
        for i in 0..args.consumers {
            let (a, c, s) = (args.clone(), counters.clone(), stop.clone());
            let conn = consumer::Consumer::connect(&a, i)?;
            threads.push(std::thread::spawn(move || conn.run(&a, &c, &s)));
        }
        for i in 0..args.producers {
            let (a, c, s) = (args.clone(), counters.clone(), stop.clone());
            let conn = producer::Producer::connect(&a, i)?;
            threads.push(std::thread::spawn(move || conn.run(&a, &c, &s)));
        }
    }
    let cpu_before = args.broker_pid.and_then(stats::cpu_seconds);
    let measured_from = Instant::now();
    let mut report = Report::new(&args, counters.clone());
    let deadline = measured_from + Duration::from_secs(args.duration);
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1).min(deadline.saturating_duration_since(Instant::now())));
        report.tick(measured_from.elapsed());
        let received = counters.received.load(Ordering::Relaxed);
        if args.pmessages > 0 && counters.producers_done.load(Ordering::Relaxed) == args.producers as u64 {
            let sent = counters.sent.load(Ordering::Relaxed);
            if args.consumers == 0 || received >= sent * topology::copies(&args) {
                break;
            }
        }
        if args.cmessages > 0 && received >= args.cmessages {
            break;
        }
    }
    let elapsed = measured_from.elapsed();
    let cpu = match (cpu_before, args.broker_pid.and_then(stats::cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    report.finish(elapsed, cpu);
    Ok(())
}
