"""Limits as RabbitMQ has them (issue 19): per vhost max-connections and max-queues, per user
max-connections and max-channels (warrenctl set_vhost_limits / set_user_limits and the management
API), a global max_connections and channel_max in the config. Each refusal is RabbitMQ's: its reply
code, connection.close or channel.close, and its text; a freed slot is usable again; the limits are
kept in the definitions and counted over every shard."""

import base64
import hashlib
import json
import socket
import struct
import signal
import urllib.request

import pika
import pytest

from conftest import Broker, closed_with, ctl


def as_json(b, *args):
    return json.loads(ctl(b, *args, "--formatter", "json").stdout)


def shortstr(s):
    b = s.encode()
    return bytes([len(b)]) + b


def method(channel, class_id, method_id, args=b""):
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce"


class Raw:
    """A bare AMQP client that shows what the broker answers, byte for byte."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def read(self, n):
        while len(self.buf) < n:
            got = self.s.recv(65536)
            if not got:
                raise EOFError(f"socket closed with {self.buf!r} unread")
            self.buf += got
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def method(self):
        """The next method frame as (channel, (class, method), arguments); heartbeats are skipped."""
        while True:
            kind, channel, size = struct.unpack(">BHI", self.read(7))
            payload = self.read(size + 1)[:-1]
            if kind == 1:
                return channel, struct.unpack(">HH", payload[:4]), payload[4:]

    def open(self, user="guest", password="guest", vhost="/"):
        """The handshake up to connection.open; returns what answers it: open-ok, or the close
        as (reply code, reply text, failing class and method)."""
        self.s.sendall(b"AMQP\x00\x00\x09\x01")
        _, mid, start = self.method()
        assert mid == (10, 10)
        at = start.find(b"\x0cwarren_shardI")
        self.shard = struct.unpack(">i", start[at + 14 : at + 18])[0]
        response = f"\0{user}\0{password}".encode()
        self.s.sendall(method(0, 10, 11, b"\0\0\0\0" + shortstr("PLAIN") + struct.pack(">I", len(response)) + response + shortstr("en_US")))
        _, mid, tune = self.method()
        assert mid == (10, 30), mid
        self.channel_max = struct.unpack(">H", tune[:2])[0]
        self.s.sendall(method(0, 10, 31, tune[:8][:6] + b"\0\0"))
        self.s.sendall(method(0, 10, 40, shortstr(vhost) + shortstr("") + b"\0"))
        return self.answer()

    def answer(self):
        channel, mid, args = self.method()
        if mid in ((10, 50), (20, 40)):
            code = struct.unpack(">H", args[:2])[0]
            text = args[3 : 3 + args[2]].decode()
            failing = struct.unpack(">HH", args[3 + args[2] : 7 + args[2]])
            return channel, code, text, failing
        return channel, mid

    def channel(self, n):
        self.s.sendall(method(n, 20, 10, shortstr("")))
        return self.answer()

    def close(self):
        self.s.close()


def refused_open(b, **kw):
    r = Raw(b.port)
    try:
        return r.open(**kw)
    finally:
        r.close()


def user(b, name, vhost="/"):
    ctl(b, "add_user", name, "pw")
    ctl(b, "set_permissions", "-p", vhost, name, ".*", ".*", ".*")


def login(b, name, vhost="/"):
    return b.connect(credentials=pika.PlainCredentials(name, "pw"), virtual_host=vhost)


def test_vhost_connection_limit_is_530_on_open_and_a_freed_slot_is_usable_again(broker):
    ctl(broker, "set_vhost_limits", '{"max-connections": 2}')
    a, b = broker.connect(), broker.connect()
    assert refused_open(broker) == (
        0, 530, "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (2) is reached", (10, 40))
    a.close()
    c = broker.connect()
    assert c.is_open and b.is_open
    # Another vhost is not limited by this one's limit.
    ctl(broker, "add_vhost", "other")
    ctl(broker, "set_permissions", "-p", "other", "guest", ".*", ".*", ".*")
    broker.connect(virtual_host="other").close()


def test_vhost_connection_limit_zero_allows_none_and_negative_none_at_all(broker):
    ctl(broker, "set_vhost_limits", '{"max-connections": 0}')
    assert refused_open(broker)[1:3] == (
        530, "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (0) is reached")
    ctl(broker, "set_vhost_limits", '{"max-connections": -1}')
    conns = [broker.connect() for _ in range(5)]
    assert all(c.is_open for c in conns)
    assert as_json(broker, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-connections": -1}}]


def test_connections_are_counted_over_both_shards(broker):
    ctl(broker, "set_vhost_limits", '{"max-connections": 2}')
    held = [Raw(broker.port)]
    assert held[0].open()[1] == (10, 41)
    # A second connection on the other shard (the kernel spreads them; retry until it lands there).
    for _ in range(60):
        r = Raw(broker.port)
        assert r.open()[1] == (10, 41)
        if r.shard != held[0].shard:
            held.append(r)
            break
        r.close()
        # The closed one's slot is back once the broker saw it go.
        for _ in range(100):
            if len(as_json(broker, "list_connections")) == 1:
                break
    assert len(held) == 2, "no connection landed on the second shard"
    refused_on = set()
    for _ in range(40):
        r = Raw(broker.port)
        answer = r.open()
        r.close()
        assert answer[1] == 530, answer
        refused_on.add(r.shard)
        if len(refused_on) == 2:
            break
    assert refused_on == {0, 1}, "every shard refuses past the limit counted over both"


def test_queue_limit_is_406_on_the_channel_and_counts_queues_on_every_shard(broker):
    ctl(broker, "set_vhost_limits", '{"max-queues": 3}')
    c = broker.connect()
    ch = c.channel()
    for q in ("q1", "q2", "q3"):
        ch.queue_declare(q)
    owners = {q["name"]: q["shard"] for q in as_json(broker, "list_queues")}
    assert set(owners.values()) == {0, 1}, owners
    text = closed_with(406, c.channel().queue_declare, "q4")
    assert text == "PRECONDITION_FAILED - cannot declare queue 'q4': queue limit in vhost '/' (3) is reached"
    assert c.is_open, "a channel error, not a connection error"
    # Redeclaring and passive declares create nothing: allowed.
    ch = c.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q2", passive=True)
    text = closed_with(406, ch.queue_declare, "", exclusive=True)
    assert text.startswith("PRECONDITION_FAILED - cannot declare queue 'amq.gen-") and text.endswith(
        "': queue limit in vhost '/' (3) is reached")
    ch = c.channel()
    ch.queue_delete("q1")
    ch.queue_declare("q4")
    # An exclusive queue gives its slot back when its connection closes.
    ch.queue_delete("q4")
    other = broker.connect()
    other.channel().queue_declare("", exclusive=True)
    closed_with(406, c.channel().queue_declare, "q5")
    other.close()
    c.channel().queue_declare("q5")


def test_queue_limit_zero_allows_no_queue(broker):
    ctl(broker, "set_vhost_limits", '{"max-queues": 0}')
    text = closed_with(406, broker.connect().channel().queue_declare, "q")
    assert text == "PRECONDITION_FAILED - cannot declare queue 'q': queue limit in vhost '/' (0) is reached"


def test_user_connection_limit_is_530_on_open(broker):
    user(broker, "u")
    ctl(broker, "set_user_limits", "u", '{"max-connections": 1}')
    first = login(broker, "u")
    assert refused_open(broker, user="u", password="pw") == (
        0, 530, "NOT_ALLOWED - connection refused for user 'u': user connection limit (1) is reached", (10, 40))
    broker.connect().close()  # guest is not limited
    first.close()
    login(broker, "u").close()


def test_user_channel_limit_counts_every_connection_of_the_user(broker):
    user(broker, "u")
    ctl(broker, "set_user_limits", "u", '{"max-channels": 2}')
    a = Raw(broker.port)
    b = Raw(broker.port)
    assert a.open(user="u", password="pw")[1] == (10, 41)
    assert b.open(user="u", password="pw")[1] == (10, 41)
    assert a.channel(1) == (1, (20, 11))
    assert b.channel(7) == (7, (20, 11))
    assert a.channel(2) == (
        0, 530, "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of 2",
        (20, 10))
    a.close()
    # a's channel went with it: one more fits.
    for _ in range(100):
        r = Raw(broker.port)
        r.open(user="u", password="pw")
        got = r.channel(1)
        if got == (1, (20, 11)):
            break
        r.close()
    assert got == (1, (20, 11))
    # r holds one and b one: a closed channel gives its slot back too.
    b.s.sendall(method(7, 20, 40, struct.pack(">H", 200) + shortstr("bye") + b"\0\0\0\0"))
    assert b.answer() == (7, (20, 41))
    assert b.channel(8) == (8, (20, 11))
    assert b.channel(9)[1:3] == (
        530, "NOT_ALLOWED - number of channels opened for user 'u' has reached the maximum allowed user limit of 2")


def test_user_limits_merge_clear_and_list(broker):
    user(broker, "u")
    user(broker, "w")
    ctl(broker, "set_user_limits", "u", '{"max-connections": 2}')
    ctl(broker, "set_user_limits", "u", '{"max-channels": 3}')
    assert as_json(broker, "list_user_limits") == [{"user": "u", "limits": {"max-channels": 3, "max-connections": 2}}]
    assert as_json(broker, "list_user_limits", "w") == []
    ctl(broker, "clear_user_limits", "u", "max-connections")
    assert as_json(broker, "list_user_limits", "u") == [{"user": "u", "limits": {"max-channels": 3}}]
    ctl(broker, "change_password", "u", "pw2")  # keeps the limits
    assert as_json(broker, "list_user_limits", "u") == [{"user": "u", "limits": {"max-channels": 3}}]
    ctl(broker, "clear_user_limits", "u", "all")
    assert as_json(broker, "list_user_limits") == []
    bad = ctl(broker, "set_user_limits", "u", '{"max-queues": 1}', ok=False)
    assert bad.returncode == 1 and "Unrecognised terms" in bad.stderr
    bad = ctl(broker, "set_user_limits", "nobody", '{"max-channels": 1}', ok=False)
    assert bad.returncode == 1 and "no such user 'nobody'" in bad.stderr


def test_vhost_limits_replace_clear_and_refuse_bad_input(broker):
    ctl(broker, "set_vhost_limits", '{"max-connections": 10, "max-queues": 5}')
    ctl(broker, "set_vhost_limits", '{"max-queues": 4}')  # replaces, as RabbitMQ's parameter does
    assert as_json(broker, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-queues": 4}}]
    ctl(broker, "clear_vhost_limits")
    assert as_json(broker, "list_vhost_limits") == []
    for bad, says in (('{"max-channels": 1}', "Unrecognised terms"), ('{"max-queues": "x"}', "should be a number"),
                      ("nope", "Could not parse JSON")):
        p = ctl(broker, "set_vhost_limits", bad, ok=False)
        assert p.returncode == 1 and says in p.stderr, (bad, p.stderr)
    p = ctl(broker, "set_vhost_limits", "-p", "nowhere", '{"max-queues": 1}', ok=False)
    assert p.returncode == 1 and "no such vhost 'nowhere'" in p.stderr


def test_limits_are_kept_in_the_definitions_and_enforced_after_a_restart(broker):
    user(broker, "u")
    ctl(broker, "set_vhost_limits", '{"max-connections": 5, "max-queues": 2}')
    ctl(broker, "set_user_limits", "u", '{"max-connections": 1, "max-channels": 4}')
    ch = broker.connect().channel()
    ch.queue_declare("d1", durable=True)
    ch.queue_declare("d2", durable=True)
    defs = json.loads(ctl(broker, "export_definitions", "-").stdout)
    assert {"vhost": "/", "component": "vhost-limits", "name": "limits",
            "value": {"max-connections": 5, "max-queues": 2}} in defs["parameters"]
    assert [u["limits"] for u in defs["users"] if u["name"] == "u"] == [{"max-channels": 4, "max-connections": 1}]

    broker.halt(signal.SIGKILL)
    broker.start()
    assert as_json(broker, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-connections": 5, "max-queues": 2}}]
    assert as_json(broker, "list_user_limits") == [{"user": "u", "limits": {"max-channels": 4, "max-connections": 1}}]
    # The recovered durable queues count against max-queues.
    text = closed_with(406, broker.connect().channel().queue_declare, "d3")
    assert text == "PRECONDITION_FAILED - cannot declare queue 'd3': queue limit in vhost '/' (2) is reached"
    login(broker, "u")
    assert refused_open(broker, user="u", password="pw")[1] == 530


def test_definitions_in_rabbitmq_export_format_load_their_limits(tmp_path):
    defs = {
        "users": [{"name": "u", "password_hash": rabbit_hash("pw"), "hashing_algorithm": "rabbit_password_hashing_sha256",
                   "tags": [], "limits": {"max-connections": 1}}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "u", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
        "parameters": [{"value": {"max-queues": 1}, "vhost": "/", "component": "vhost-limits", "name": "limits"}],
    }
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    b = Broker(extra=["--config", str(_config(tmp_path, f'load_definitions = "{path}"'))])
    try:
        assert as_json(b, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-queues": 1}}]
        assert as_json(b, "list_user_limits") == [{"user": "u", "limits": {"max-connections": 1}}]
        login(b, "u")
        assert refused_open(b, user="u", password="pw")[1:3] == (
            530, "NOT_ALLOWED - connection refused for user 'u': user connection limit (1) is reached")
    finally:
        b.stop()


def test_import_definitions_applies_limits(broker, tmp_path):
    user(broker, "u")
    defs = json.loads(ctl(broker, "export_definitions", "-").stdout)
    defs["parameters"] = [{"value": {"max-queues": 0}, "vhost": "/", "component": "vhost-limits", "name": "limits"}]
    for u in defs["users"]:
        if u["name"] == "u":
            u["limits"] = {"max-channels": 0}
    path = tmp_path / "defs.json"
    path.write_text(json.dumps(defs))
    ctl(broker, "import_definitions", str(path))
    assert as_json(broker, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-queues": 0}}]
    assert as_json(broker, "list_user_limits") == [{"user": "u", "limits": {"max-channels": 0}}]
    defs["parameters"][0]["value"] = {"max-queues": "many"}
    path.write_text(json.dumps(defs))
    p = ctl(broker, "import_definitions", str(path), ok=False)
    assert p.returncode == 1 and "limits of vhost '/'" in p.stderr


def rabbit_hash(password, salt=b"\x01\x02\x03\x04"):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + sha256(salt + password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def _config(tmp_path, text):
    path = tmp_path / "warren.toml"
    path.write_text(text + "\n")
    return path


def test_global_max_connections_closes_a_socket_past_it_at_once(tmp_path):
    b = Broker(extra=["--config", str(_config(tmp_path, "max_connections = 3"))])
    try:
        conns = [b.connect() for _ in range(3)]
        # The fourth socket is closed as soon as it is accepted: nothing is sent, nothing read.
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass
            s.close()
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            b.connect(connection_attempts=1)
        conns[0].close()
        for _ in range(100):  # the closed socket's slot comes back once the broker is done with it
            try:
                b.connect(connection_attempts=1).close()
                break
            except pika.exceptions.AMQPConnectionError:
                pass
        else:
            raise AssertionError("the freed slot was never usable")
        assert any("node connection limit (3) is reached" in line for line in b.log)
    finally:
        b.stop()


def test_channel_max_from_the_config_is_negotiated_and_enforced(tmp_path):
    b = Broker(extra=["--config", str(_config(tmp_path, "channel_max = 3"))])
    try:
        r = Raw(b.port)
        assert r.open()[1] == (10, 41)
        assert r.channel_max == 3
        for n in (1, 2, 3):
            assert r.channel(n) == (n, (20, 11))
        assert r.channel(4) == (
            0, 530, "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)", (20, 10))
        r.close()
    finally:
        b.stop()


def test_management_api_shows_and_changes_limits():
    b = Broker(http=True)
    try:
        user(b, "u")
        base = f"http://127.0.0.1:{b.mgmt_port}/api"
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()

        def call(verb, path, body=None):
            req = urllib.request.Request(base + path, method=verb, headers={"Authorization": auth,
                                         "content-type": "application/json"},
                                         data=json.dumps(body).encode() if body is not None else None)
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
                return r.status, json.loads(text) if text else None

        assert call("PUT", "/vhost-limits/%2F/max-queues", {"value": 1})[0] == 204
        assert call("PUT", "/vhost-limits/%2F/max-connections", {"value": 7})[0] == 204
        assert call("GET", "/vhost-limits") == (200, [{"vhost": "/", "value": {"max-connections": 7, "max-queues": 1}}])
        assert call("GET", "/vhost-limits/%2F")[1] == [{"vhost": "/", "value": {"max-connections": 7, "max-queues": 1}}]
        assert call("DELETE", "/vhost-limits/%2F/max-connections")[0] == 204
        assert as_json(b, "list_vhost_limits") == [{"vhost": "/", "limits": {"max-queues": 1}}]
        assert call("PUT", "/user-limits/u/max-channels", {"value": 2})[0] == 204
        assert call("GET", "/user-limits") == (200, [{"user": "u", "value": {"max-channels": 2}}])
        assert call("GET", "/users/u")[1]["limits"] == {"max-channels": 2}
        # A user PUT without limits keeps them.
        assert call("PUT", "/users/u", {"password_hash": rabbit_hash("pw2"), "tags": ""})[0] == 204
        assert call("GET", "/users/u")[1]["limits"] == {"max-channels": 2}
        assert call("DELETE", "/user-limits/u/max-channels")[0] == 204
        assert call("GET", "/user-limits/u") == (200, [])
    finally:
        b.stop()
