//! The `[tls]` table of the config: RabbitMQ's `listeners.ssl` and `ssl_options.*` (certfile,
//! keyfile, cacertfile, verify, fail_if_no_peer_cert, versions, ciphers), its
//! `ssl_cert_login_from` for EXTERNAL, and HTTPS for the management and Prometheus listeners.

use std::path::PathBuf;

use serde::Deserialize;

/// RabbitMQ's AMQPS port.
pub const DEFAULT_TLS_PORT: u16 = 5671;

/// Whether client certificates are asked for and checked against `cacertfile` (RabbitMQ's
/// `ssl_options.verify`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    #[default]
    VerifyNone,
    VerifyPeer,
}

/// Where an EXTERNAL login takes the user name from (RabbitMQ's `ssl_cert_login_from`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CertLoginFrom {
    #[default]
    CommonName,
    SubjectAlternativeName,
}

/// Which subject alternative names count (RabbitMQ's `ssl_cert_login_san_type`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SanType {
    #[default]
    Dns,
    Email,
    Uri,
    Ip,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The AMQPS listener (every shard binds it, SO_REUSEPORT), or "off".
    pub listen: String,
    /// The server's certificate chain (PEM, leaf first).
    pub certfile: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub keyfile: Option<PathBuf>,
    /// CA certificates (PEM) client certificates are verified against.
    pub cacertfile: Option<PathBuf>,
    pub verify: Verify,
    /// With verify_peer: refuse clients that present no certificate.
    pub fail_if_no_peer_cert: bool,
    /// "tlsv1.3", "tlsv1.2"; empty = both.
    pub versions: Vec<String>,
    /// Cipher suites by IANA or OpenSSL name; empty = every suite rustls offers.
    pub ciphers: Vec<String>,
    pub ssl_cert_login_from: CertLoginFrom,
    pub ssl_cert_login_san_type: SanType,
    /// Which SAN of that type (0 = the first).
    pub ssl_cert_login_san_index: usize,
    /// The management listener serves HTTPS instead of HTTP.
    pub https_management: bool,
    /// The Prometheus listener serves HTTPS instead of HTTP.
    pub https_prometheus: bool,
    /// The HTTPS listeners' certificate chain and key; unset = `certfile` and `keyfile`.
    pub https_certfile: Option<PathBuf>,
    pub https_keyfile: Option<PathBuf>,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            listen: crate::tls::LISTEN_OFF.into(),
            certfile: None,
            keyfile: None,
            cacertfile: None,
            verify: Verify::VerifyNone,
            fail_if_no_peer_cert: false,
            versions: Vec::new(),
            ciphers: Vec::new(),
            ssl_cert_login_from: CertLoginFrom::CommonName,
            ssl_cert_login_san_type: SanType::Dns,
            ssl_cert_login_san_index: 0,
            https_management: false,
            https_prometheus: false,
            https_certfile: None,
            https_keyfile: None,
        }
    }
}

impl TlsSettings {
    pub fn amqps(&self) -> bool {
        self.listen != crate::tls::LISTEN_OFF
    }

    pub fn https(&self) -> bool {
        self.https_management || self.https_prometheus
    }

    /// The checks that need no file: what is missing or contradictory.
    pub fn validate(&self) -> Result<(), String> {
        if self.amqps() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("tls.listen must be ADDR:PORT or \"off\", not '{}'", self.listen));
        }
        if self.amqps() && (self.certfile.is_none() || self.keyfile.is_none()) {
            return Err("tls.listen needs tls.certfile and tls.keyfile".into());
        }
        if self.https() {
            let cert = self.https_certfile.as_ref().or(self.certfile.as_ref());
            let key = self.https_keyfile.as_ref().or(self.keyfile.as_ref());
            if cert.is_none() || key.is_none() {
                return Err(
                    "HTTPS listeners need tls.https_certfile and tls.https_keyfile (or tls.certfile and tls.keyfile)"
                        .into(),
                );
            }
        }
        if self.verify == Verify::VerifyPeer && self.cacertfile.is_none() {
            return Err("tls.verify = \"verify_peer\" needs tls.cacertfile".into());
        }
        if self.fail_if_no_peer_cert && self.verify != Verify::VerifyPeer {
            return Err("tls.fail_if_no_peer_cert needs tls.verify = \"verify_peer\"".into());
        }
        for v in &self.versions {
            if crate::tls::server_config::version(v).is_none() {
                return Err(format!("tls.versions: unknown version '{v}' (tlsv1.3 or tlsv1.2)"));
            }
        }
        for c in &self.ciphers {
            if crate::tls::server_config::cipher_suite(c).is_none() {
                return Err(format!("tls.ciphers: unknown or unsupported cipher suite '{c}'"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TlsSettings, String> {
        let s: TlsSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        s.validate().map(|_| s)
    }

    #[test]
    fn off_by_default_and_what_a_listener_needs_is_checked() {
        let s = parse("").unwrap();
        assert!(!s.amqps() && !s.https());
        assert!(parse("listen = \"127.0.0.1:5671\"").unwrap_err().contains("certfile"));
        let ok = parse("listen = \"127.0.0.1:5671\"\ncertfile = \"c.pem\"\nkeyfile = \"k.pem\"").unwrap();
        assert!(ok.amqps());
        assert!(parse("listen = \"5671\"\ncertfile = \"c\"\nkeyfile = \"k\"").is_err());
        assert!(parse("verify = \"verify_peer\"").unwrap_err().contains("cacertfile"));
        assert!(parse("fail_if_no_peer_cert = true").unwrap_err().contains("verify_peer"));
        assert!(parse("https_management = true").unwrap_err().contains("https_certfile"));
        assert!(parse("versions = [\"tlsv1.1\"]").unwrap_err().contains("tlsv1.1"));
        assert!(parse("ciphers = [\"RC4-SHA\"]").unwrap_err().contains("RC4-SHA"));
        let named = parse("versions = [\"tlsv1.2\"]\nciphers = [\"ECDHE-RSA-AES128-GCM-SHA256\"]").unwrap();
        assert_eq!(named.versions, ["tlsv1.2"]);
        assert_eq!(
            parse("ssl_cert_login_from = \"subject_alternative_name\"").unwrap().ssl_cert_login_from,
            CertLoginFrom::SubjectAlternativeName
        );
        assert!(parse("ssl_cert_login_from = \"distinguished_name\"").is_err());
        assert!(parse("verfy = \"verify_peer\"").is_err());
    }
}
