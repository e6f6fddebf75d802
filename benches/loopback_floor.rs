//! The floor under the "latency at a fixed rate" scenario: what any broker must spend on this host.
//! A relay thread does the least a broker can do per message (a blocking read from the publisher's
//! socket, one write of the same bytes to the consumer's socket: no parsing, no routing, no
//! executor), driven the way warren-perf drives a broker at a fixed rate (16-byte messages with a
//! timestamp, paced in 200 µs sleeps). It prints the relay's CPU time per message and the
//! end-to-end latency, to set beside Warren's and RabbitMQ's figures for the same rate.
//!
//! `cargo bench --bench loopback_floor [-- RATE SECONDS]` (default 10000 msg/s for 8 s). The relay
//! is pinned to the first allowed CPU and the load to the second, like compare-rabbitmq.sh, or to
//! `RELAY_CPU` and `LOAD_CPU`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

const SIZE: usize = 16;

fn pin(cpu: Option<usize>) {
    let Some(cpu) = cpu else { return };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

fn thread_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(r.ru_utime) + tv(r.ru_stime)
}

fn monotonic_ns() -> u64 {
    // SAFETY: clock_gettime fills the timespec it is given.
    let t = unsafe {
        let mut t: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t);
        t
    };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn relay(listener: TcpListener, cpu: Option<usize>) -> f64 {
    pin(cpu);
    let (mut from, _) = listener.accept().expect("accept publisher");
    let (mut to, _) = listener.accept().expect("accept consumer");
    to.set_nodelay(true).expect("nodelay");
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => to.write_all(&buf[..n]).expect("relay write"),
        }
    }
    thread_cpu_seconds()
}

fn publish(mut out: TcpStream, rate: u64, total: u64, cpu: Option<usize>) {
    pin(cpu);
    out.set_nodelay(true).expect("nodelay");
    let mut batch = Vec::with_capacity(64 * SIZE);
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        // The same pacing as warren-perf's --rate: send everything due, else sleep 200 µs.
        let due = ((started.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        if due <= sent {
            thread::sleep(Duration::from_micros(200));
            continue;
        }
        batch.clear();
        let n = (due - sent).min(64);
        for _ in 0..n {
            batch.extend_from_slice(&monotonic_ns().to_be_bytes());
            batch.extend_from_slice(&[0u8; SIZE - 8]);
        }
        sent += n;
        out.write_all(&batch).expect("publish");
    }
}

fn consume(mut input: TcpStream, total: u64, cpu: Option<usize>) -> Histogram<u64> {
    pin(cpu);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut buf = vec![0u8; 1 << 16];
    let (mut pending, mut got) = (Vec::new(), 0u64);
    while got < total {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now = monotonic_ns();
        pending.extend_from_slice(&buf[..n]);
        let whole = pending.len() / SIZE * SIZE;
        for m in pending[..whole].chunks_exact(SIZE) {
            let sent = u64::from_be_bytes(m[..8].try_into().expect("8 bytes"));
            let _ = hist.record((now.saturating_sub(sent) / 1000).max(1));
            got += 1;
        }
        pending.drain(..whole);
    }
    hist
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rate = args.first().copied().unwrap_or(10_000);
    let seconds = args.get(1).copied().unwrap_or(8);
    let total = rate * seconds;
    let cpus = warren::server::allowed_cpus();
    let cpu = |var: &str, default: Option<usize>| std::env::var(var).ok().and_then(|v| v.parse().ok()).or(default);
    let (relay_cpu, load_cpu) = (cpu("RELAY_CPU", cpus.first().copied()), cpu("LOAD_CPU", cpus.get(1).copied()));

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let relay = thread::spawn(move || relay(listener, relay_cpu));
    let publisher = TcpStream::connect(addr).expect("connect publisher");
    thread::sleep(Duration::from_millis(50));
    let consumer = TcpStream::connect(addr).expect("connect consumer");
    let consumer = thread::spawn(move || consume(consumer, total, load_cpu));
    publish(publisher, rate, total, load_cpu);
    let hist = consumer.join().expect("consumer");
    let relay_cpu_s = relay.join().expect("relay");
    println!(
        "loopback floor at {rate} msg/s for {seconds} s: {} relayed, relay CPU {relay_cpu_s:.3} s \
         ({:.1} us per message, {:.0} messages per relay CPU-s); latency us p50 {} p99 {} p99.9 {} max {}",
        hist.len(),
        relay_cpu_s * 1e6 / hist.len().max(1) as f64,
        hist.len() as f64 / relay_cpu_s.max(1e-9),
        hist.value_at_quantile(0.5),
        hist.value_at_quantile(0.99),
        hist.value_at_quantile(0.999),
        hist.max(),
    );
}
