//! rustls server configurations built from the `[tls]` settings and the PEM files they name:
//! the AMQPS one (versions, cipher suites, client-certificate verification) and the HTTPS one.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, ring};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::settings::{TlsSettings, Verify};

/// A version as RabbitMQ names it in `ssl_options.versions`.
pub fn version(name: &str) -> Option<&'static SupportedProtocolVersion> {
    match name.to_ascii_lowercase().as_str() {
        "tlsv1.3" => Some(&rustls::version::TLS13),
        "tlsv1.2" => Some(&rustls::version::TLS12),
        _ => None,
    }
}

/// OpenSSL's names (what RabbitMQ's `ssl_options.ciphers` lists) and the TLS 1.3 IANA names, with
/// rustls' name for the same suite.
const ALIASES: &[(&str, &str)] = &[
    ("TLS_AES_128_GCM_SHA256", "TLS13_AES_128_GCM_SHA256"),
    ("TLS_AES_256_GCM_SHA384", "TLS13_AES_256_GCM_SHA384"),
    ("TLS_CHACHA20_POLY1305_SHA256", "TLS13_CHACHA20_POLY1305_SHA256"),
    ("ECDHE-ECDSA-AES128-GCM-SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-ECDSA-AES256-GCM-SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"),
    ("ECDHE-ECDSA-CHACHA20-POLY1305", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"),
    ("ECDHE-RSA-AES128-GCM-SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("ECDHE-RSA-AES256-GCM-SHA384", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ("ECDHE-RSA-CHACHA20-POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
];

/// A cipher suite ring provides, by its OpenSSL, IANA or rustls name.
pub fn cipher_suite(name: &str) -> Option<SupportedCipherSuite> {
    let wanted = ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)).map_or(name, |(_, r)| r);
    ring::ALL_CIPHER_SUITES.iter().find(|s| s.suite().as_str().is_some_and(|n| n.eq_ignore_ascii_case(wanted))).copied()
}

fn provider(s: &TlsSettings) -> Arc<CryptoProvider> {
    let mut p = ring::default_provider();
    if !s.ciphers.is_empty() {
        p.cipher_suites = s.ciphers.iter().filter_map(|c| cipher_suite(c)).collect();
    }
    Arc::new(p)
}

fn versions(s: &TlsSettings) -> Vec<&'static SupportedProtocolVersion> {
    if s.versions.is_empty() {
        return vec![&rustls::version::TLS13, &rustls::version::TLS12];
    }
    s.versions.iter().filter_map(|v| version(v)).collect()
}

pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{}: no private key read: {e}", path.display()))
}

fn missing(key: &str) -> String {
    format!("tls.{key} is not set")
}

/// The AMQPS listener's configuration.
pub fn amqps(s: &TlsSettings) -> Result<ServerConfig, String> {
    let cert = s.certfile.as_deref().ok_or_else(|| missing("certfile"))?;
    let key = s.keyfile.as_deref().ok_or_else(|| missing("keyfile"))?;
    let (chain, key) = (read_chain(cert)?, read_key(key)?);
    let provider = provider(s);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions(s))
        .map_err(|e| format!("tls.versions and tls.ciphers: {e}"))?;
    let builder = match s.verify {
        Verify::VerifyNone => builder.with_no_client_auth(),
        Verify::VerifyPeer => {
            let ca = s.cacertfile.as_deref().ok_or_else(|| missing("cacertfile"))?;
            let mut roots = RootCertStore::empty();
            for c in read_chain(ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            if !s.fail_if_no_peer_cert {
                verifier = verifier.allow_unauthenticated();
            }
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("{}: {e}", ca.display()))?)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| format!("{}: {e}", cert.display()))
}

/// The HTTPS listeners' configuration (no client certificates; HTTP/1.1).
pub fn https(s: &TlsSettings) -> Result<ServerConfig, String> {
    let cert = s.https_certfile.as_deref().or(s.certfile.as_deref()).ok_or_else(|| missing("https_certfile"))?;
    let key = s.https_keyfile.as_deref().or(s.keyfile.as_deref()).ok_or_else(|| missing("https_keyfile"))?;
    let (chain, key) = (read_chain(cert)?, read_key(key)?);
    let mut config = ServerConfig::builder_with_provider(provider(s))
        .with_protocol_versions(&versions(s))
        .map_err(|e| format!("tls.versions and tls.ciphers: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_suites_are_found_by_openssl_iana_and_rustls_names() {
        let by = |n: &str| cipher_suite(n).map(|s| s.suite());
        assert_eq!(by("ECDHE-RSA-AES128-GCM-SHA256"), by("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"));
        assert!(by("ECDHE-RSA-AES128-GCM-SHA256").is_some());
        assert_eq!(by("TLS_AES_256_GCM_SHA384"), by("tls13_aes_256_gcm_sha384"));
        assert!(by("TLS_AES_256_GCM_SHA384").is_some());
        assert_eq!(by("DES-CBC3-SHA"), None);
        assert!(version("TLSv1.3").is_some() && version("tlsv1.1").is_none());
    }

    #[test]
    fn a_missing_or_empty_file_is_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("warren-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let s = TlsSettings {
            certfile: Some(empty.clone()),
            keyfile: Some(dir.join("absent.pem")),
            ..TlsSettings::default()
        };
        let e = amqps(&s).unwrap_err();
        assert!(e.contains("empty.pem") && e.contains("no certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
