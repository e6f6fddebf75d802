"""Users, virtual hosts and permissions from a RabbitMQ definitions file (`load_definitions`),
checked per method as RabbitMQ checks them."""

import base64
import hashlib
import json
import os
import tempfile

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, ProbableAuthenticationError

from conftest import Broker


def rabbit_hash(password, salt=b"\x01\x02\x03\x04"):
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt ++ sha256(salt ++ password))."""
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


DEFINITIONS = {
    "rabbit_version": "3.10.8",
    "users": [
        {"name": "alice", "password_hash": rabbit_hash("alice-pw"),
         "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": "administrator"},
        {"name": "bob", "password_hash": rabbit_hash("bob-pw", b"\x09\x09\x09\x09"),
         "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ""},
    ],
    "vhosts": [{"name": "/"}, {"name": "other"}],
    "permissions": [
        {"user": "alice", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "alice", "vhost": "other", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "bob", "vhost": "/", "configure": "^bob-", "write": "^bob-|^amq\\.default$",
         "read": "^bob-|^amq\\.direct$"},
    ],
    "exchanges": [{"name": "orders", "vhost": "/", "type": "topic", "durable": True,
                   "auto_delete": False, "internal": False, "arguments": {}}],
    "queues": [{"name": "orders-eu", "vhost": "/", "durable": True, "auto_delete": False,
                "arguments": {"x-max-length": 1000}}],
    "bindings": [{"source": "orders", "vhost": "/", "destination": "orders-eu",
                  "destination_type": "queue", "routing_key": "eu.#", "arguments": {}}],
}


@pytest.fixture
def secured():
    d = tempfile.TemporaryDirectory(prefix="warren-defs-")
    defs = os.path.join(d.name, "definitions.json")
    cfg = os.path.join(d.name, "warren.toml")
    with open(defs, "w") as f:
        json.dump(DEFINITIONS, f)
    with open(cfg, "w") as f:
        f.write(f'load_definitions = "{defs}"\n')
    b = Broker(shards=2, extra=["--config", cfg])
    yield b
    b.stop()
    d.cleanup()


def as_user(broker, user, password, vhost="/"):
    return broker.connect(credentials=pika.PlainCredentials(user, password), virtual_host=vhost)


def refused(fn, *args, **kw):
    with pytest.raises(ChannelClosedByBroker) as e:
        fn(*args, **kw)
    assert e.value.reply_code == 403, e.value.reply_text
    return e.value.reply_text


def test_users_log_in_with_their_rabbitmq_hashes_and_others_are_refused(secured):
    as_user(secured, "alice", "alice-pw").close()
    as_user(secured, "bob", "bob-pw").close()
    with pytest.raises((ProbableAuthenticationError, ConnectionClosedByBroker)):
        as_user(secured, "alice", "wrong")
    # With definitions loaded there is no default guest user, as in RabbitMQ.
    with pytest.raises((ProbableAuthenticationError, ConnectionClosedByBroker)):
        as_user(secured, "guest", "guest")


def test_vhost_without_permission_is_530(secured):
    with pytest.raises(Exception) as e:
        as_user(secured, "bob", "bob-pw", vhost="other")
    assert "530" in str(e.value)


def test_configure_permission_guards_declare_and_delete(secured):
    c = as_user(secured, "bob", "bob-pw")
    c.channel().queue_declare("bob-q")
    text = refused(c.channel().queue_declare, "alice-q")
    assert text == "ACCESS_REFUSED - access to queue 'alice-q' in vhost '/' refused for user 'bob'"
    refused(c.channel().exchange_declare, "not-bobs", "direct")
    refused(c.channel().queue_delete, "orders-eu")
    # A passive declare needs no permission.
    c.channel().queue_declare("orders-eu", passive=True)


def test_write_permission_guards_publish(secured):
    c = as_user(secured, "bob", "bob-pw")
    ch = c.channel()
    ch.queue_declare("bob-in")
    ch.basic_publish("", "bob-in", b"ok")  # amq.default is writable for bob
    ch.basic_publish("orders", "eu.x", b"no")
    text = refused(ch.queue_declare, "bob-in", passive=True)
    assert "access to exchange 'orders'" in text


def test_read_permission_guards_consume_get_purge_and_bind(secured):
    alice = as_user(secured, "alice", "alice-pw")
    alice.channel().queue_declare("shared")
    bob = as_user(secured, "bob", "bob-pw")
    refused(bob.channel().basic_consume, "shared", lambda *a: None)
    refused(bob.channel().basic_get, "shared")
    refused(bob.channel().queue_purge, "shared")
    ch = bob.channel()
    ch.queue_declare("bob-bound")
    # queue.bind needs write on the queue and read on the exchange.
    ch.queue_bind("bob-bound", "amq.direct", "k")
    refused(bob.channel().queue_bind, "bob-bound", "orders", "eu.#")


def test_vhosts_are_separate_namespaces(secured):
    root = as_user(secured, "alice", "alice-pw", "/")
    other = as_user(secured, "alice", "alice-pw", "other")
    r, o = root.channel(), other.channel()
    r.queue_declare("same")
    o.queue_declare("same")
    r.confirm_delivery()
    o.confirm_delivery()
    for _ in range(3):
        r.basic_publish("", "same", b"root")
    o.basic_publish("", "same", b"other")
    assert r.queue_declare("same", passive=True).method.message_count == 3
    assert o.queue_declare("same", passive=True).method.message_count == 1
    # Definitions of one vhost are not visible in another.
    with pytest.raises(ChannelClosedByBroker) as e:
        other.channel().exchange_declare("orders", passive=True)
    assert e.value.reply_code == 404


def test_defined_queues_exchanges_and_bindings_exist_and_route(secured):
    c = as_user(secured, "alice", "alice-pw")
    ch = c.channel()
    ok = ch.queue_declare("orders-eu", durable=True, arguments={"x-max-length": 1000})
    assert ok.method.message_count == 0
    ch.confirm_delivery()
    ch.basic_publish("orders", "eu.de.new", b"order")
    ch.basic_publish("orders", "us.new", b"elsewhere")
    assert ch.basic_get("orders-eu", auto_ack=True)[2] == b"order"
    assert ch.basic_get("orders-eu", auto_ack=True)[0] is None
