//! TLS with rustls (ring provider, no OpenSSL): the `[tls]` settings, the server configurations
//! built from their PEM files, reloading those files while the broker runs, and the user name an
//! EXTERNAL login takes from a client certificate. The AMQPS connections themselves are in
//! `net::tls_socket`, on the shard that accepted them; the HTTPS listeners in `mgmt::server`.
//!
//! A reload builds new configurations from the files and publishes them under a new generation
//! number: each shard's accept loop sees the number change and takes the new one for its next
//! connections (existing connections keep theirs). A file that cannot be read or does not fit
//! leaves the old configuration in place and the error is reported.

pub mod peer_name;
pub mod server_config;
pub mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;

use settings::TlsSettings;

/// A listener address that disables the listener.
pub const LISTEN_OFF: &str = "off";

#[derive(Default)]
struct Current {
    amqps: Option<Arc<ServerConfig>>,
    https: Option<Arc<ServerConfig>>,
}

/// The TLS configurations in force, shared by the shards and the HTTP thread; read at accept.
pub struct Tls {
    settings: TlsSettings,
    generation: AtomicU64,
    current: RwLock<Current>,
}

impl Tls {
    /// Reads the files the settings name: `None` if no listener uses TLS, an error if one does and
    /// its files do not make a configuration.
    pub fn load(settings: &TlsSettings) -> Result<Option<Arc<Tls>>, String> {
        if !settings.amqps() && !settings.https() {
            return Ok(None);
        }
        let tls = Tls { settings: settings.clone(), generation: AtomicU64::new(1), current: RwLock::default() };
        let built = tls.build()?;
        *tls.current.write().map_err(|_| "TLS configuration lock poisoned")? = built;
        Ok(Some(Arc::new(tls)))
    }

    fn build(&self) -> Result<Current, String> {
        let s = &self.settings;
        let amqps = if s.amqps() { Some(Arc::new(server_config::amqps(s)?)) } else { None };
        let https = if s.https() { Some(Arc::new(server_config::https(s)?)) } else { None };
        Ok(Current { amqps, https })
    }

    /// Reads the certificate and key files again; new connections use them, existing ones keep
    /// theirs. On an error nothing changes.
    pub fn reload(&self) -> Result<(), String> {
        let built =
            self.build().inspect_err(|e| log::error!("TLS reload failed, keeping the old certificates: {e}"))?;
        *self.current.write().map_err(|_| "TLS configuration lock poisoned")? = built;
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        log::info!("TLS certificates reloaded (generation {g})");
        Ok(())
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Changes with every successful reload: a cached configuration older than this is stale.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The AMQPS configuration in force and its generation.
    pub fn amqps(&self) -> Option<(u64, Arc<ServerConfig>)> {
        let current = self.current.read().ok()?;
        let g = self.generation();
        current.amqps.clone().map(|c| (g, c))
    }

    pub fn https(&self) -> Option<Arc<ServerConfig>> {
        self.current.read().ok()?.https.clone()
    }
}
