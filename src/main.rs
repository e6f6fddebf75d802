//! `warren`: parse flags, load the config, run the shards until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use warren::config::Config;
use warren::server;

#[derive(Parser, Debug)]
#[command(name = "warren", version, about = "A thread-per-core AMQP 0-9-1 broker")]
struct Args {
    /// Configuration file (TOML); without it /etc/warren/warren.toml if that exists, else defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:5672 (port 0 picks a free port).
    #[arg(long)]
    listen: Option<String>,
    /// Management HTTP API address, e.g. 127.0.0.1:15672 (port 0 picks a free port; off disables).
    #[arg(long)]
    management_listen: Option<String>,
    /// Prometheus /metrics address, e.g. 127.0.0.1:15692 (port 0 picks a free port; off disables).
    #[arg(long)]
    prometheus_listen: Option<String>,
    /// Number of shards (0 = one per allowed CPU).
    #[arg(long)]
    shards: Option<usize>,
    /// Data directory (lock file; later the message store).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// AMQPS listener address, e.g. 127.0.0.1:5671 (port 0 picks a free port; off disables).
    #[arg(long)]
    tls_listen: Option<String>,
    /// The server certificate chain (PEM) for AMQPS and HTTPS.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// The server's private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) client certificates are verified against.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Ask clients for a certificate and verify it against --tls-ca (verify_peer); EXTERNAL is
    /// offered.
    #[arg(long)]
    tls_verify_peer: bool,
    /// With --tls-verify-peer: refuse clients without a certificate (fail_if_no_peer_cert).
    #[arg(long)]
    tls_fail_if_no_peer_cert: bool,
}

/// The TLS flags over the config's `[tls]` table.
fn apply_tls_flags(args: &Args, tls: &mut warren::tls::settings::TlsSettings) {
    if let Some(l) = &args.tls_listen {
        tls.listen = l.clone();
    }
    if let Some(c) = &args.tls_cert {
        tls.certfile = Some(c.clone());
    }
    if let Some(k) = &args.tls_key {
        tls.keyfile = Some(k.clone());
    }
    if let Some(ca) = &args.tls_ca {
        tls.cacertfile = Some(ca.clone());
    }
    if args.tls_verify_peer {
        tls.verify = warren::tls::settings::Verify::VerifyPeer;
    }
    if args.tls_fail_if_no_peer_cert {
        tls.fail_if_no_peer_cert = true;
    }
}

/// mimalloc instead of glibc's malloc: the message path allocates and frees small objects across
/// tasks (messages, deliveries, batches) and glibc spent ~13% of the broker's CPU in it under the
/// many-queues load (unlink_chunk, malloc_consolidate); see the commit for before/after figures.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where a packaged install keeps its config (see config/warren.service).
const SYSTEM_CONFIG: &str = "/etc/warren/warren.toml";

fn main() -> ExitCode {
    // A shard that panicked would leave the others routing into a void: stop the whole broker
    // loudly instead (after the default hook has printed the panic).
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        log::error!("fatal: {info}; aborting");
        std::process::abort();
    }));
    let args = Args::parse();
    let system = PathBuf::from(SYSTEM_CONFIG);
    let path = args.config.clone().or_else(|| system.exists().then_some(system));
    let mut config = match &path {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warren: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    apply_tls_flags(&args, &mut config.tls);
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = args.management_listen {
        config.management_listen = m;
    }
    if let Some(p) = args.prometheus_listen {
        config.prometheus_listen = p;
    }
    if let Some(s) = args.shards {
        config.shards = s;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Err(e) = config.validate() {
        eprintln!("warren: {e}");
        return ExitCode::FAILURE;
    }
    warren::logging::init(config.log_format);
    if let Some(p) = &path {
        log::info!("config: {}", p.display());
    }
    let _lock = match warren::data_dir::lock(&config.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Certificate files that cannot be read stop the start, as a bad config does.
    let tls = match warren::tls::Tls::load(&config.tls) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("warren: TLS: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Bound before the shards start: a port in use stops the broker here, as the AMQP port does.
    let http = match warren::mgmt::bind(&config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match server::start(config, tls.clone()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Tests and scripts read this line to find the port.
    println!("warren listening on {} with {} shards", running.addr, running.shards);
    // The lines after it name the HTTP listeners that are on.
    if let Some(a) = http.management_addr() {
        println!("management listening on {a}");
    }
    if let Some(a) = http.prometheus_addr() {
        println!("prometheus listening on {a}");
    }
    if let Some(a) = running.amqps {
        println!("amqps listening on {a}");
    }
    if let Err(e) = http.serve(running.addr, running.amqps, tls.clone()) {
        log::error!("management and prometheus listeners: {e}; not serving them");
    }
    let stopper = running.stopper();
    match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                for sig in signals.forever() {
                    if sig == SIGHUP {
                        // Reload the TLS certificate files (an error keeps the old ones, logged).
                        match &tls {
                            Some(tls) => {
                                log::info!("SIGHUP: reloading TLS certificates");
                                let _ = tls.reload();
                            }
                            None => log::info!("SIGHUP: no TLS configured, nothing to reload"),
                        }
                        continue;
                    }
                    log::info!("signal {sig}: shutting down");
                    stopper.stop();
                    // Shards close their connections within server::SHUTDOWN_GRACE. A shard that does
                    // not exit after that (seen rarely in stress runs, cause not yet found) must not
                    // keep the process alive: nothing is left to flush (no disk store yet).
                    std::thread::sleep(server::SHUTDOWN_GRACE + std::time::Duration::from_secs(2));
                    log::warn!("shards did not stop within the grace period; exiting");
                    std::process::exit(0);
                }
            });
        }
        Err(e) => log::warn!("cannot install signal handlers: {e}"),
    }
    running.join();
    log::info!("stopped");
    ExitCode::SUCCESS
}
