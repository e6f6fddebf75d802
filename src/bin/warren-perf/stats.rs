//! Counters shared by the threads, the live per-second line, and the summary (text or JSON).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::Args;

#[derive(Default)]
pub struct Counters {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub confirmed: AtomicU64,
    pub errors: AtomicU64,
    pub producers_done: AtomicU64,
    latency: Mutex<Option<Histogram<u64>>>,
}

impl Counters {
    pub fn merge_latency(&self, h: &Histogram<u64>) {
        let mut slot = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_mut() {
            Some(all) => {
                let _ = all.add(h);
            }
            None => *slot = Some(h.clone()),
        }
    }
}

/// User + system CPU seconds of a process, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th overall.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz)
}

pub struct Report {
    args: Args,
    counters: Arc<Counters>,
    last: (u64, u64),
}

impl Report {
    pub fn new(args: &Args, counters: Arc<Counters>) -> Self {
        let last = (counters.sent.load(Ordering::Relaxed), counters.received.load(Ordering::Relaxed));
        Self { args: args.clone(), counters, last }
    }

    pub fn tick(&mut self, at: Duration) {
        let now = (self.counters.sent.load(Ordering::Relaxed), self.counters.received.load(Ordering::Relaxed));
        if !self.args.json {
            let what = if self.args.churn > 0 { "connections" } else { "received" };
            eprintln!(
                "time {:>5.1}s, sent {:>9} msg/s, {what} {:>9} /s",
                at.as_secs_f64(),
                now.0 - self.last.0,
                now.1 - self.last.1
            );
        }
        self.last = now;
    }

    pub fn finish(&self, elapsed: Duration, broker_cpu: Option<f64>) {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let sent = self.counters.sent.load(Ordering::Relaxed);
        let received = self.counters.received.load(Ordering::Relaxed);
        let lat = self.counters.latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let q = |p: f64| lat.as_ref().map(|h| h.value_at_quantile(p)).unwrap_or(0);
        let max = lat.as_ref().map(|h| h.max()).unwrap_or(0);
        let per_cpu = broker_cpu.filter(|c| *c > 0.0).map(|c| received as f64 / c);
        let (p50, p95, p99, p999) = (q(0.50), q(0.95), q(0.99), q(0.999));
        if self.args.json {
            let opt = |v: Option<f64>| v.map(|v| format!("{v:.3}")).unwrap_or_else(|| "null".into());
            println!(
                "{{\"scenario\":\"{}\",\"seconds\":{secs:.3},\"sent\":{sent},\"received\":{received},\
                 \"sent_per_s\":{:.1},\"received_per_s\":{:.1},\"confirmed\":{},\"errors\":{},\
                 \"latency_us\":{{\"p50\":{p50},\"p95\":{p95},\"p99\":{p99},\"p999\":{p999},\"max\":{max}}},\
                 \"broker_cpu_s\":{},\"received_per_broker_cpu_s\":{}}}",
                self.args.name,
                sent as f64 / secs,
                received as f64 / secs,
                self.counters.confirmed.load(Ordering::Relaxed),
                self.counters.errors.load(Ordering::Relaxed),
                opt(broker_cpu),
                opt(per_cpu),
            );
        } else {
            println!("scenario {}: {secs:.1}s", self.args.name);
            println!("  sent      {:>12.0} msg/s ({sent} total)", sent as f64 / secs);
            println!("  received  {:>12.0} /s ({received} total)", received as f64 / secs);
            println!("  latency   p50 {p50} us, p95 {p95} us, p99 {p99} us, p99.9 {p999} us, max {max} us");
            if let (Some(cpu), Some(pc)) = (broker_cpu, per_cpu) {
                println!("  broker    {cpu:.2} CPU-s, {pc:.0} deliveries per CPU-second");
            }
        }
    }
}

/// The host's monotonic clock in nanoseconds: the send time carried in each body. It is the same
/// clock in every process, so a run that drains what another run published (`--no-purge`) still
/// measures true end-to-end latency.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
