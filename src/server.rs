//! Starting the shards: one glommio executor per shard, pinned to its CPU, each with its own
//! SO_REUSEPORT listener on the configured address, joined by the mesh.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_channel::oneshot;
use glommio::net::TcpListener;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use crate::broker::definitions::Definitions;
use crate::broker::limits::Tally;
use crate::config::Config;
use crate::net::listener;
use crate::store::definitions_file;
use crate::store::log::MessageLog;
use crate::store::page::PageDir;
use crate::store::recovery;
use crate::store::relayout;
use crate::tls::Tls;

use crate::shard::Shard;
use crate::shard::memory;
use crate::shard::mesh::{self, MeshEnds, Stopper};
use crate::shard::placement;

const PREEMPT_TIMER: Duration = Duration::from_micros(500);

/// How long a stopping shard waits for its connections to finish their close handshake.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct Running {
    pub addr: SocketAddr,
    /// The AMQPS listener's address, when TLS is configured.
    pub amqps: Option<SocketAddr>,
    pub shards: usize,
    stopper: Stopper,
    handles: Vec<ExecutorJoinHandle<()>>,
}

impl Running {
    /// Asks every shard to close its connections (320 CONNECTION_FORCED) and exit.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    pub fn join(self) {
        for h in self.handles {
            if let Err(e) = h.join() {
                log::error!("shard exited with an error: {e}");
            }
        }
    }
}

/// The CPUs this process may run on (taskset and cgroups included), from sched_getaffinity.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// glommio refuses to start below 512 KiB of locked memory: raise the soft limit to the hard one.
fn raise_memlock() {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim);
        }
    }
}

/// Each connection is a file descriptor: raise the soft limit to the hard one (a shell's default
/// soft limit, often 1024, would refuse connections long before the broker is busy).
fn raise_nofile() {
    // SAFETY: plain getrlimit/setrlimit on a stack struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return;
        }
        let soft = lim.rlim_cur;
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                lim.rlim_cur = soft;
            }
        }
        log::info!("file descriptor limit: {} (soft limit was {soft}, hard limit {})", lim.rlim_cur, lim.rlim_max);
    }
}

/// Starts the shards; `tls` holds the AMQPS configuration when `config.tls.listen` is on.
pub fn start(config: Config, tls: Option<Arc<Tls>>) -> io::Result<Running> {
    raise_memlock();
    raise_nofile();
    let allowed = allowed_cpus();
    let cpus = if config.cpus.is_empty() { allowed.clone() } else { config.cpus.clone() };
    let n = if config.shards == 0 { allowed.len().max(1) } else { config.shards };
    let definitions = Arc::new(initial_definitions(&config)?);
    // Checked once here so a bad file stops the start with a clear error.
    definitions.access(config.loopback_users.clone()).map_err(io::Error::other)?;
    definitions.vhost_limits().map_err(io::Error::other)?;
    // Logs written with another shard count are moved to the shards that now own their queues.
    relayout::ensure(&config.data_dir.join("msgs"), n, placement::shard_of)?;
    let config = Arc::new(config);
    let (ends, stopper) = mesh::build(n);
    let limit = if config.memory_limit == 0 { memory::default_limit() } else { config.memory_limit };
    let gauge = Arc::new(memory::MemoryGauge::new(n, limit));
    let tally = Arc::new(Tally::default());
    let (report, reports) = mpsc::channel();
    let mut handles = Vec::new();
    let mut binds = Vec::new();
    for (i, ends) in ends.into_iter().enumerate() {
        let (bind, listen) = oneshot::channel();
        binds.push(bind);
        let placement = match cpus.get(i % cpus.len().max(1)) {
            Some(&cpu) if n <= cpus.len() || !config.cpus.is_empty() => Placement::Fixed(cpu),
            _ => Placement::Unbound,
        };
        let config = config.clone();
        let gauge = gauge.clone();
        let tally = tally.clone();
        let reporter = Reporter { shard: i, tx: Some(report.clone()) };
        let tls = tls.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("warren-shard-{i}"))
            .io_memory(64 << 10)
            .ring_depth(128)
            // glommio reaps socket completions only between task-queue runs, which last until this
            // timer fires: while a publisher keeps its shard busy, it bounds how late every other
            // connection's reads and writes are noticed (the default 100 ms starved consumers).
            .preempt_timer(PREEMPT_TIMER)
            .spawn({
                let definitions = definitions.clone();
                move || run_shard(config, ends, (gauge, tally), definitions, tls, listen, reporter)
            })
            .map_err(|e| io::Error::other(format!("cannot start shard {i}: {e}")))?;
        handles.push(handle);
    }
    drop(report);
    let failed = |e: io::Error| {
        stopper.stop();
        e
    };
    // Every shard recovers its log at the same time, on its own core; none listens before all
    // have, so a client that connects finds every recovered message in place.
    for _ in 0..n {
        match reports.recv() {
            Ok((_, Ok(Progress::Recovered))) => {}
            Ok((_, Err(e))) => return Err(failed(e)),
            Ok((i, Ok(Progress::Listening(..)))) => {
                return Err(failed(io::Error::other(format!("shard {i} listened before it was told to"))));
            }
            Err(_) => return Err(failed(io::Error::other("the shards stopped while starting"))),
        }
    }
    // Shard 0 binds the configured address (port 0 picks a free port); the others bind the
    // address it got, so all share one port.
    let mut addr: Option<SocketAddr> = None;
    let mut amqps: Option<SocketAddr> = None;
    let tls_listen = config.tls.amqps().then(|| config.tls.listen.clone());
    for (i, bind) in binds.into_iter().enumerate() {
        let _ = bind.send(Addrs {
            amqp: addr.map(|a| a.to_string()).unwrap_or_else(|| config.listen.clone()),
            amqps: amqps.map(|a| a.to_string()).or_else(|| tls_listen.clone()),
        });
        match reports.recv() {
            Ok((_, Ok(Progress::Listening(a, tls_a)))) => {
                addr.get_or_insert(a);
                if let Some(t) = tls_a {
                    amqps.get_or_insert(t);
                }
            }
            Ok((_, Err(e))) => return Err(failed(e)),
            _ => return Err(failed(io::Error::other(format!("shard {i} failed to start")))),
        }
    }
    let addr = addr.ok_or_else(|| io::Error::other("no shards"))?;
    Ok(Running { addr, amqps, shards: n, stopper, handles })
}

/// What a starting shard tells `start`.
enum Progress {
    /// Its log is recovered: its queues hold their messages again.
    Recovered,
    /// It listens on this address (and AMQPS on that one).
    Listening(SocketAddr, Option<SocketAddr>),
}

/// Where a shard is told to listen: the AMQP address, and the AMQPS one when TLS is on.
struct Addrs {
    amqp: String,
    amqps: Option<String>,
}

/// A starting shard's line to `start`. Dropped before the shard listens (it stopped on the way),
/// it says so, so that `start` never waits for a shard that is gone.
struct Reporter {
    shard: usize,
    tx: Option<mpsc::Sender<(usize, io::Result<Progress>)>>,
}

impl Reporter {
    fn recovered(&self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((self.shard, Ok(Progress::Recovered)));
        }
    }

    fn listening(mut self, a: SocketAddr, tls: Option<SocketAddr>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.shard, Ok(Progress::Listening(a, tls))));
        }
    }

    fn failed(mut self, e: io::Error) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.shard, Err(e)));
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ =
                tx.send((self.shard, Err(io::Error::other(format!("shard {} stopped while starting", self.shard)))));
        }
    }
}

/// What the shards share: the memory gauge and the counts limits are checked against.
type Shared = (Arc<memory::MemoryGauge>, Arc<Tally>);

async fn run_shard(
    config: Arc<Config>,
    ends: MeshEnds,
    shared: Shared,
    definitions: Arc<Definitions>,
    tls: Option<Arc<Tls>>,
    listen: oneshot::Receiver<Addrs>,
    report: Reporter,
) {
    log::debug!("shard {} starting", ends.me);
    let started = Instant::now();
    let shard = match recover_shard(&config, ends, shared, &definitions, tls.clone()).await {
        Ok(s) => s,
        Err(e) => return report.failed(e),
    };
    log::info!("shard {}: recovered in {:.1?}", shard.id, started.elapsed());
    report.recovered();
    // Cancelled: another shard failed to start, and so does the broker.
    let Ok(listen) = listen.await else { return };
    let bound = bind(&listen.amqp).and_then(|plain| match &listen.amqps {
        Some(a) => Ok((plain, Some(bind(a)?))),
        None => Ok((plain, None)),
    });
    let admin = if shard.id == 0 { crate::admin::bind(&config.data_dir) } else { None };
    let (listener, tls_listener) = match bound {
        Ok(((l, a), tls_bound)) => {
            log::debug!("shard {} ready on {a}", shard.id);
            let tls_addr = tls_bound.as_ref().map(|(_, t)| *t);
            report.listening(a, tls_addr);
            (l, tls_bound.map(|(t, _)| t))
        }
        Err(e) => return report.failed(e),
    };
    let log_writer = glommio::spawn_local(shard.clone().run_log());
    let saver = (shard.id == 0).then(|| glommio::spawn_local(shard.clone().run_definitions_saver()));
    glommio::spawn_local(shard.clone().run_flusher()).detach();
    glommio::spawn_local(shard.clone().run_timers()).detach();
    glommio::spawn_local(shard.clone().run_monitor()).detach();
    if let Some(admin) = admin {
        glommio::spawn_local(crate::admin::serve(shard.clone(), admin)).detach();
    }
    glommio::spawn_local(shard.clone().run_mesh()).detach();
    glommio::spawn_local(listener::accept_loop(shard.clone(), listener, None)).detach();
    if let Some(l) = tls_listener {
        glommio::spawn_local(listener::accept_loop(shard.clone(), l, tls)).detach();
    }
    shard.stop.wait().await;
    shutdown(&shard).await;
    shard.log.wake();
    log_writer.await;
    log::info!("shard {} message log: {} fsyncs", shard.id, shard.log.fsyncs.get());
    if let Some(saver) = saver {
        shard.defs.wake();
        saver.await;
    }
}

/// A shard with its log recovered: the log continues after it, the queues the definitions name
/// are declared, and the messages they held are back in them.
async fn recover_shard(
    config: &Arc<Config>,
    ends: MeshEnds,
    (gauge, tally): Shared,
    definitions: &Definitions,
    tls: Option<Arc<Tls>>,
) -> io::Result<Rc<Shard>> {
    let dir = log_dir(config, ends.me);
    let unreadable = |e: io::Error| io::Error::other(format!("cannot read message log {}: {e}", dir.display()));
    let started = Instant::now();
    let mut recovered = recovery::recover(&dir).map_err(unreadable)?;
    log::info!(
        "shard {}: message log read in {:.1?}: {} live messages in {} segments",
        ends.me,
        started.elapsed(),
        recovered.live.values().sum::<u64>(),
        recovered.live.len()
    );
    let (live, written) = (std::mem::take(&mut recovered.live), std::mem::take(&mut recovered.written));
    let log = MessageLog::new(dir.clone(), config.segment_bytes, live, written, recovered.next_seg);
    let page_dir = config.data_dir.join("page").join(format!("shard-{}", ends.me));
    // A paging queue keeps up to 1 MiB in memory, less under a small limit (1/16 of it).
    let keep = (gauge.limit / 16).clamp(16 << 10, 1 << 20);
    let pages = PageDir::new(page_dir.clone(), keep)
        .map_err(|e| io::Error::other(format!("cannot make page dir {}: {e}", page_dir.display())))?;
    let shard = Shard::new(config.clone(), ends, log, pages, gauge, tls, tally);
    shard.load_definitions(definitions).map_err(io::Error::other)?;
    shard.restore_messages(recovered).await.map_err(unreadable)?;
    Ok(shard)
}

/// What the shards start from: the durable definitions saved by the last run (or, on a first start
/// without a definitions file, the default user and vhost, as RabbitMQ creates them), then the
/// configured `load_definitions` file, applied on top at every start as RabbitMQ does.
fn initial_definitions(config: &Config) -> io::Result<Definitions> {
    let saved = config.data_dir.join(definitions_file::FILE_NAME);
    let mut d = if saved.exists() {
        Definitions::load(&saved).map_err(io::Error::other)?
    } else if config.load_definitions.is_some() {
        Definitions::default()
    } else {
        let salt = (std::process::id() ^ 0x5741_5252).to_be_bytes();
        Definitions::default_user(&config.default_user, &config.default_pass, &config.default_vhost, salt)
    };
    if let Some(path) = &config.load_definitions {
        d.merge(Definitions::load(path).map_err(io::Error::other)?);
    }
    Ok(d)
}

/// Binds one of a shard's SO_REUSEPORT listeners.
fn bind(addr: &str) -> io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).map_err(|e| io::Error::other(format!("cannot listen on {addr}: {e}")))?;
    let a = l.local_addr().map_err(|e| io::Error::other(e.to_string()))?;
    Ok((l, a))
}

/// Where shard `i` keeps its message log.
pub fn log_dir(config: &Config, shard: usize) -> std::path::PathBuf {
    config.data_dir.join("msgs").join(format!("shard-{shard}"))
}

async fn shutdown(shard: &Rc<Shard>) {
    let conns: Vec<_> = shard.conns.borrow().values().cloned().collect();
    log::info!("shard {} stopping, closing {} connections", shard.id, conns.len());
    for c in conns {
        c.force_close("broker forced connection closure with reason 'shutdown'");
    }
    let deadline = Instant::now() + SHUTDOWN_GRACE;
    while !shard.conns.borrow().is_empty() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    // A shard's executor must leave a busy run of tasks for its reactor (timers, socket
    // completions) every preempt period. glommio did it with a timer re-armed on every loop;
    // our vendored copy checks the clock instead. Without either, this task yields forever and the
    // timer never fires.
    #[test]
    fn a_busy_shard_still_runs_its_timers() {
        let fired_after = LocalExecutorBuilder::new(Placement::Unbound)
            .preempt_timer(PREEMPT_TIMER)
            .spawn(|| async {
                let fired = Rc::new(Cell::new(false));
                let f = fired.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_millis(5)).await;
                    f.set(true);
                })
                .detach();
                let start = Instant::now();
                while !fired.get() && start.elapsed() < Duration::from_secs(2) {
                    futures_lite::future::yield_now().await;
                }
                fired.get().then(|| start.elapsed())
            })
            .expect("executor")
            .join()
            .expect("join");
        let after = fired_after.expect("the timer never fired while a task kept the shard busy");
        assert!(after < Duration::from_millis(500), "the timer fired only after {after:?}");
    }
}
