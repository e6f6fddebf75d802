"""AMQPS (issue 19): pika over TLS, EXTERNAL logins with client certificates, refused untrusted
or missing certificates, a plaintext client on the TLS port, certificate reload (warrenctl and
SIGHUP), and HTTPS for the management API. Certificates are made per test with trustme."""

import base64
import json
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request

import pika
import pytest
import trustme
from pika.credentials import ExternalCredentials

from conftest import Broker, ctl, wait


class Pki:
    """A CA, a server certificate for localhost/127.0.0.1, and files for the broker."""

    def __init__(self, tmp_path, name="ca"):
        self.dir = tmp_path
        self.ca = trustme.CA(organization_name=f"Warren test {name}")
        self.server = self.ca.issue_cert("localhost", "127.0.0.1")
        self.cert, self.key, self.ca_file = (tmp_path / f"{name}-cert.pem", tmp_path / f"{name}-key.pem", tmp_path / f"{name}-ca.pem")
        self.write_server(self.server)
        self.ca.cert_pem.write_to_path(str(self.ca_file))

    def write_server(self, issued):
        """Puts `issued`'s chain and key where the broker reads them."""
        self.cert.write_bytes(b"".join(b.bytes() for b in issued.cert_chain_pems))
        issued.private_key_pem.write_to_path(str(self.key))

    def client_context(self, client_cert=None, maximum_version=None):
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if client_cert is not None:
            client_cert.configure_cert(ctx)
        if maximum_version is not None:
            ctx.maximum_version = maximum_version
        return ctx

    def flags(self, verify=False, fail_if_no_peer_cert=False):
        f = ["--tls-listen", "127.0.0.1:0", "--tls-cert", str(self.cert), "--tls-key", str(self.key)]
        if verify:
            f += ["--tls-ca", str(self.ca_file), "--tls-verify-peer"]
        if fail_if_no_peer_cert:
            f += ["--tls-fail-if-no-peer-cert"]
        return f


def start_tls(extra, http=False):
    """A broker with an AMQPS listener; `tls_port` is read from its 'amqps listening on' line."""
    b = Broker(shards=2, extra=extra, http=http)
    line = b.proc.stdout.readline()
    assert line.startswith("amqps listening on "), line
    b.tls_port = int(line.split()[-1].rsplit(":", 1)[1])
    return b


def tls_params(b, ctx, **kw):
    return pika.ConnectionParameters(
        "127.0.0.1", b.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"), connection_attempts=1, **kw
    )


def round_trip(conn, queue="tls-q", body=b"over tls"):
    ch = conn.channel()
    ch.queue_declare(queue)
    ch.basic_publish("", queue, body)
    for _ in range(50):
        method, _, got = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return got
        time.sleep(0.05)
    return None


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_pika_round_trip_over_tls(pki, version):
    b = start_tls(pki.flags())
    try:
        conn = pika.BlockingConnection(tls_params(b, pki.client_context(maximum_version=version)))
        ch = conn.channel()
        ch.queue_declare("tls-q")
        ch.basic_publish("", "tls-q", b"x" * 100_000)
        got = []
        ch.basic_consume("tls-q", lambda c, m, p, body: (got.append(body), c.basic_ack(m.delivery_tag)))
        deadline = time.time() + 10
        while not got and time.time() < deadline:
            conn.process_data_events(time_limit=0.1)
        assert got == [b"x" * 100_000]
        conn.close()
        # The plain listener keeps serving alongside.
        plain = pika.BlockingConnection(b.params())
        assert round_trip(plain, "plain-q") == b"over tls"
        plain.close()
    finally:
        b.stop()


def test_many_messages_both_ways_over_tls(pki):
    """Batches larger than one TLS record and than the 2 KiB awaited read, in both directions."""
    b = start_tls(pki.flags())
    try:
        pub = pika.BlockingConnection(tls_params(b, pki.client_context()))
        sub = pika.BlockingConnection(tls_params(b, pki.client_context()))
        pch, sch = pub.channel(), sub.channel()
        sch.queue_declare("bulk")
        bodies = [bytes([i % 256]) * (i * 37 % 5000) for i in range(2000)]
        for body in bodies:
            pch.basic_publish("", "bulk", body)
        got = []
        sch.basic_consume("bulk", lambda c, m, p, body: got.append(body), auto_ack=True)
        deadline = time.time() + 20
        while len(got) < len(bodies) and time.time() < deadline:
            sub.process_data_events(time_limit=0.1)
        assert got == bodies
        pub.close()
        sub.close()
    finally:
        b.stop()


def test_external_login_with_a_client_certificate(pki):
    b = start_tls(pki.flags(verify=True))
    try:
        ctl(b, "add_user", "alice", "unused-password")
        ctl(b, "set_permissions", "alice", ".*", ".*", ".*")
        alice = pki.ca.issue_cert("alice.example", common_name="alice")
        conn = pika.BlockingConnection(tls_params(b, pki.client_context(alice), credentials=ExternalCredentials()))
        assert round_trip(conn) == b"over tls"
        rows = json.loads(ctl(b, "--formatter", "json", "list_connections").stdout)
        assert any(r.get("user") == "alice" for r in rows), rows
        conn.close()
    finally:
        b.stop()


def cert_with_common_names(pki, cns):
    """A client certificate from the test CA whose subject has several CN attributes (which
    trustme does not make), as an ssl context."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    ca_key = serialization.load_pem_private_key(pki.ca.private_key_pem.bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.cert_pem.bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    certfile, keyfile = pki.dir / "multi-cn.pem", pki.dir / "multi-cn-key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = pki.client_context()
    ctx.load_cert_chain(str(certfile), str(keyfile))
    return ctx


def test_external_user_from_several_common_names_or_a_subject_alternative_name(pki, tmp_path):
    b = start_tls(pki.flags(verify=True))
    try:
        # Several CNs are joined with "," as RabbitMQ does.
        ctl(b, "add_user", "a,b", "unused")
        ctl(b, "set_permissions", "a,b", ".*", ".*", ".*")
        conn = pika.BlockingConnection(tls_params(b, cert_with_common_names(pki, ["a", "b"]), credentials=ExternalCredentials()))
        assert round_trip(conn) == b"over tls"
        conn.close()
    finally:
        b.stop()
    config = tmp_path / "san.toml"
    config.write_text(
        '[tls]\nssl_cert_login_from = "subject_alternative_name"\nssl_cert_login_san_type = "dns"\n'
        "ssl_cert_login_san_index = 1\n"
    )
    b = start_tls(["--config", str(config), *pki.flags(verify=True)])
    try:
        ctl(b, "add_user", "second.example", "unused")
        ctl(b, "set_permissions", "second.example", ".*", ".*", ".*")
        cert = pki.ca.issue_cert("first.example", "second.example", common_name="guest")
        conn = pika.BlockingConnection(tls_params(b, pki.client_context(cert), credentials=ExternalCredentials()))
        assert round_trip(conn) == b"over tls"
        rows = json.loads(ctl(b, "--formatter", "json", "list_connections").stdout)
        assert [r["user"] for r in rows] == ["second.example"], rows
        conn.close()
    finally:
        b.stop()


def test_external_refused_for_a_user_that_does_not_exist(pki):
    b = start_tls(pki.flags(verify=True))
    try:
        mallory = pki.ca.issue_cert("mallory.example", common_name="mallory")
        with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
            pika.BlockingConnection(tls_params(b, pki.client_context(mallory), credentials=ExternalCredentials()))
        assert "EXTERNAL" in str(e.value) and "403" in str(e.value), e.value
        assert wait(lambda: any("EXTERNAL login refused" in l and "mallory" in l for l in b.log)), b.log[-5:]
        # A user who exists but has no permissions in the vhost is refused at connection.open (530).
        ctl(b, "add_user", "nobody", "unused")
        nobody = pki.ca.issue_cert("nobody.example", common_name="nobody")
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
            pika.BlockingConnection(tls_params(b, pki.client_context(nobody), credentials=ExternalCredentials()))
        assert "530" in str(e.value) and "nobody" in str(e.value), e.value
    finally:
        b.stop()


def test_external_refused_without_a_certificate_and_not_offered_without_verify_peer(pki):
    b = start_tls(pki.flags(verify=True))
    try:
        # verify_peer without fail_if_no_peer_cert: EXTERNAL is offered, and refused with RabbitMQ's reason.
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(tls_params(b, pki.client_context(), credentials=ExternalCredentials()))
        assert wait(lambda: any("presented no TLS (x.509) certificate" in l for l in b.log)), b.log[-5:]
        # A password login still works on that listener.
        conn = pika.BlockingConnection(tls_params(b, pki.client_context()))
        assert round_trip(conn) == b"over tls"
        conn.close()
    finally:
        b.stop()
    b = start_tls(pki.flags())
    try:
        ctx = pki.client_context(pki.ca.issue_cert("guest.example", common_name="guest"))
        with pytest.raises(pika.exceptions.AuthenticationError) as e:
            pika.BlockingConnection(tls_params(b, ctx, credentials=ExternalCredentials()))
        assert "EXTERNAL" in str(e.value)
    finally:
        b.stop()


def test_untrusted_or_missing_client_certificate_is_refused(pki, tmp_path):
    b = start_tls(pki.flags(verify=True, fail_if_no_peer_cert=True))
    try:
        stranger = trustme.CA().issue_cert("stranger.example", common_name="guest")
        for ctx in [pki.client_context(stranger), pki.client_context()]:
            with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, ConnectionError)):
                pika.BlockingConnection(tls_params(b, ctx))
        assert wait(lambda: any("TLS handshake with" in l for l in b.log))
        # A trusted certificate is still let in.
        trusted = pki.ca.issue_cert("guest.example", common_name="guest")
        conn = pika.BlockingConnection(tls_params(b, pki.client_context(trusted), credentials=ExternalCredentials()))
        assert round_trip(conn) == b"over tls"
        conn.close()
    finally:
        b.stop()


def test_plaintext_client_on_the_tls_port_is_refused_cleanly(pki):
    b = start_tls(pki.flags())
    try:
        s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
        s.sendall(b"AMQP\x00\x00\x09\x01")
        got = b""
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail("the broker kept the plaintext connection open")
        s.close()
        # Whatever came back is a TLS alert record (content type 21), never an AMQP frame.
        assert got == b"" or got[0] == 21, got
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", b.tls_port, connection_attempts=1, socket_timeout=5))
        assert b.proc.poll() is None
        conn = pika.BlockingConnection(tls_params(b, pki.client_context()))
        assert round_trip(conn) == b"over tls"
        conn.close()
    finally:
        b.stop()


def served_issuer(port):
    """The organization of the CA that issued the certificate the broker serves now."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            der = s.getpeercert(binary_form=True)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return cert.issuer.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)[0].value


def test_reload_serves_the_new_certificate_and_keeps_the_old_on_error(pki, tmp_path):
    b = start_tls(pki.flags())
    try:
        old = pika.BlockingConnection(tls_params(b, pki.client_context()))
        assert served_issuer(b.tls_port) == "Warren test ca"
        second = Pki(tmp_path, "second")
        pki.write_server(second.server)
        ctl(b, "reload_tls")
        assert served_issuer(b.tls_port) == "Warren test second"
        conn = pika.BlockingConnection(tls_params(b, second.client_context()))
        assert round_trip(conn, "after-reload") == b"over tls"
        conn.close()
        # A client that trusts only the old CA refuses the new certificate.
        with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
            pika.BlockingConnection(tls_params(b, pki.client_context()))
        # The connection made before the reload keeps its session.
        assert round_trip(old, "before-reload") == b"over tls"
        old.close()
        # A bad file: the reload fails with the reason, the certificate in force stays.
        pki.cert.write_text("not a certificate")
        p = ctl(b, "reload_tls", ok=False)
        assert p.returncode != 0 and "no certificate" in (p.stdout + p.stderr), (p.stdout, p.stderr)
        b.proc.send_signal(signal.SIGHUP)
        assert wait(lambda: sum("TLS reload failed" in l for l in b.log) >= 2), b.log[-5:]
        assert served_issuer(b.tls_port) == "Warren test second"
        # SIGHUP with good files switches back.
        pki.write_server(pki.server)
        b.proc.send_signal(signal.SIGHUP)
        assert wait(lambda: served_issuer(b.tls_port) == "Warren test ca")
    finally:
        b.stop()


def test_https_management_and_prometheus(pki, tmp_path):
    config = tmp_path / "warren.toml"
    config.write_text(
        "[tls]\n"
        f"certfile = \"{pki.cert}\"\nkeyfile = \"{pki.key}\"\n"
        "https_management = true\nhttps_prometheus = true\n"
    )
    b = Broker(shards=2, extra=["--config", str(config)], http=True)
    try:
        ctx = pki.client_context()
        auth = base64.b64encode(b"guest:guest").decode()
        req = urllib.request.Request(f"https://localhost:{b.mgmt_port}/api/overview", headers={"Authorization": f"Basic {auth}"})
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            overview = json.loads(r.read())
        assert overview["product_name"] == "Warren", overview
        protocols = {l["protocol"] for l in overview["listeners"]}
        assert {"amqp", "https", "https/prometheus"} <= protocols, protocols
        with urllib.request.urlopen(f"https://localhost:{b.prometheus_port}/metrics", context=ctx, timeout=10) as r:
            assert b"rabbitmq_" in r.read()
        # Plain HTTP on the HTTPS port gets no API answer.
        with pytest.raises(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{b.mgmt_port}/api/overview", timeout=5).read()
        assert b.proc.poll() is None
        # reload_tls reloads the HTTPS certificate too.
        second = Pki(tmp_path, "second")
        pki.write_server(second.server)
        ctl(b, "reload_tls")
        with urllib.request.urlopen(req, context=second.client_context(), timeout=10) as r:
            assert json.loads(r.read())["product_name"] == "Warren"
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(req, context=ctx, timeout=10).read()
    finally:
        b.stop()
