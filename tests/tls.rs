//! AMQPS (issue 19) from Rust: the real broker with certificates made here (rcgen), spoken to with
//! Warren's own blocking client over rustls. The Python suite (tests/python/test_tls.py) covers
//! pika, EXTERNAL, reload and HTTPS; these pin what needs a TLS client under our control: the
//! configured versions and cipher suites, large transfers in both directions, and a plaintext
//! client on the TLS port.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TempDir, TestBroker, start_broker_with};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use warren::client::{ClientStream, SyncClient};
use warren::protocol::Method;
use warren::protocol::methods::{basic, queue};

/// A CA and a server certificate for localhost, written to files the broker reads.
struct Pki {
    dir: TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = TempDir::new("tls");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Warren test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut server = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = server.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.0.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.0.join("key.pem"), key.serialize_pem()).unwrap();
        Pki { dir, ca_pem: ca_cert.pem() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.0.join(name)
    }

    fn client(&self, versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A broker with an AMQPS listener, its `[tls]` table from `tls_toml` plus the files.
    fn broker(&self, tls_toml: &str) -> (TestBroker, std::net::SocketAddr) {
        let config = self.path("warren.toml");
        let text = format!(
            "[tls]\nlisten = \"127.0.0.1:0\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\n{tls_toml}",
            self.path("cert.pem").display(),
            self.path("key.pem").display()
        );
        std::fs::write(&config, text).unwrap();
        let b = start_broker_with(2, &["--config", config.to_str().unwrap()]);
        let line = b.wait_log(0, "stdout: amqps listening on ").expect("the broker names its AMQPS listener");
        let addr = line.rsplit(' ').next().unwrap().parse().unwrap();
        (b, addr)
    }
}

fn tls_session(c: &SyncClient) -> &rustls::ClientConnection {
    match &c.stream {
        ClientStream::Tls(t) => &t.conn,
        ClientStream::Plain(_) => panic!("not a TLS connection"),
    }
}

fn connect(addr: std::net::SocketAddr, config: Arc<ClientConfig>) -> std::io::Result<SyncClient> {
    SyncClient::connect_tls(addr, config, "localhost", "guest", "guest", "/")
}

#[test]
fn tls12_and_tls13_carry_large_messages_both_ways() {
    let pki = Pki::new();
    let (_b, addr) = pki.broker("");
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut c = connect(addr, pki.client(&[version])).unwrap();
        assert_eq!(tls_session(&c).protocol_version(), Some(version.version));
        c.open_channel(1).unwrap();
        c.call(1, &Method::QueueDeclare(queue::Declare { queue: "big".into(), ..Default::default() })).unwrap();
        // Bodies over several TLS records and frames, published in one write.
        let bodies: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 50_000 + i as usize * 1000]).collect();
        let mut out = bytes::BytesMut::new();
        for body in &bodies {
            let publish = basic::Publish { routing_key: "big".into(), ..Default::default() };
            warren::protocol::frame::put_method(&mut out, 1, &Method::BasicPublish(publish));
            let props = warren::protocol::properties::BasicProperties::default().encode();
            warren::protocol::frame::put_content(&mut out, 1, &props, body, c.frame_max);
        }
        c.stream.write_all(&out).unwrap();
        for body in &bodies {
            let got = loop {
                match c
                    .call(1, &Method::BasicGet(basic::Get { queue: "big".into(), no_ack: true, ..Default::default() }))
                {
                    Ok(Method::BasicGetOk(_)) => break read_body(&mut c),
                    Ok(Method::BasicGetEmpty(_)) => std::thread::sleep(Duration::from_millis(10)),
                    other => panic!("unexpected {other:?}"),
                }
            };
            assert_eq!(&got, body);
        }
        c.close().unwrap();
    }
}

/// The body after a basic.get-ok: its header, then body frames up to the declared size.
fn read_body(c: &mut SyncClient) -> Vec<u8> {
    let header = c.recv().unwrap();
    let size = u64::from_be_bytes(header.payload[4..12].try_into().unwrap()) as usize;
    let mut body = Vec::with_capacity(size);
    while body.len() < size {
        body.extend_from_slice(&c.recv().unwrap().payload);
    }
    body
}

#[test]
fn only_the_configured_versions_and_cipher_suites_are_negotiated() {
    let pki = Pki::new();
    // rcgen's default key is ECDSA P-256.
    let (_b, addr) = pki.broker("versions = [\"tlsv1.2\"]\nciphers = [\"ECDHE-ECDSA-CHACHA20-POLY1305\"]\n");
    assert!(connect(addr, pki.client(&[&rustls::version::TLS13])).is_err(), "TLS 1.3 was not configured");
    let c = connect(addr, pki.client(&[&rustls::version::TLS12])).unwrap();
    let suite = tls_session(&c).negotiated_cipher_suite().unwrap().suite();
    assert_eq!(suite, rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
    c.close().unwrap();
}

#[test]
fn a_plaintext_client_on_the_tls_port_is_closed_and_the_broker_serves_on() {
    let pki = Pki::new();
    let (b, addr) = pki.broker("");
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    raw.write_all(b"AMQP\x00\x00\x09\x01").unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    // Ends with EOF or a reset; a timeout (the broker waiting on) fails.
    match raw.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the connection was not closed: {e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // A TLS alert record (type 21) or nothing: never AMQP's protocol header.
    assert!(got.is_empty() || got[0] == 21, "{got:?}");
    let c = connect(addr, pki.client(&[&rustls::version::TLS13])).unwrap();
    c.close().unwrap();
    assert!(b.log_lines().iter().any(|l| l.contains("TLS handshake with")));
}

#[test]
fn a_certificate_file_that_cannot_be_read_stops_the_start() {
    let pki = Pki::new();
    std::fs::write(pki.path("cert.pem"), "garbage").unwrap();
    let bin = std::env::var("WARREN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_warren").to_string());
    let out = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--management-listen", "off", "--prometheus-listen", "off"])
        .args(["--tls-listen", "127.0.0.1:0", "--tls-cert"])
        .arg(pki.path("cert.pem"))
        .arg("--tls-key")
        .arg(pki.path("key.pem"))
        .arg("--data-dir")
        .arg(pki.path("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cert.pem") && err.contains("no certificate"), "{err}");
}
