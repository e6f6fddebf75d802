"""The management HTTP API and the Prometheus endpoint against the real binary: RabbitMQ's paths,
JSON shapes, status codes and tag rules, checked with real objects declared through pika first;
and pyrabbit2, a RabbitMQ management client, used unchanged."""

import base64
import json
import time
import subprocess
import pathlib
import urllib.error
import urllib.request

import pika
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import BINARY, Broker

CTL = str(pathlib.Path(BINARY).parent / "warrenctl")


@pytest.fixture
def broker():
    b = Broker(shards=2, http=True)
    yield b
    b.stop()


def ctl(b, *args):
    p = subprocess.run([CTL, "--data-dir", b.data.name, *args], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (args, p.stdout, p.stderr)


def call(b, path, method="GET", user="guest", password="guest", body=None, port=None):
    """(status, headers, parsed JSON or text) of one request."""
    url = f"http://127.0.0.1:{port or b.mgmt_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, headers, raw = r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        status, headers, raw = e.code, e.headers, e.read()
    text = raw.decode()
    try:
        return status, headers, json.loads(text) if text else None
    except ValueError:
        return status, headers, text


def get(b, path, **kw):
    status, _, body = call(b, path, **kw)
    assert status == 200, (path, status, body)
    return body


def until(b, path, key, want, timeout=5):
    """Polls `path` until its `key` is `want` (a publish reaches its queue after basic_publish returns)."""
    deadline = time.time() + timeout
    while (got := get(b, path)[key]) != want and time.time() < deadline:
        time.sleep(0.02)
    assert got == want, (path, key, got)


def populate(b):
    """Two queues in '/', one with 3 ready messages and one unacked, a binding, a consumer."""
    c = b.connect()
    ch = c.channel()
    ch.queue_declare("orders", durable=True, arguments={"x-max-length": 100})
    ch.queue_declare("events")
    ch.exchange_declare("ex", "topic")
    ch.queue_bind("events", "ex", "a.*")
    for i in range(4):
        ch.basic_publish("", "orders", b"m%d" % i)
    ch.basic_publish("ex", "a.b", b"e")
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume("orders", lambda *a: None, consumer_tag="ctag")
    # Wait until the consumer holds its one unacked message.
    for _ in range(100):
        c.process_data_events(time_limit=0.05)
        if get(b, "/api/queues/%2F/orders")["messages_unacknowledged"] == 1:
            break
    until(b, "/api/queues/%2F/orders", "messages", 4)
    until(b, "/api/queues/%2F/events", "messages", 1)
    return c, ch


def test_no_or_bad_credentials_get_401_with_a_basic_challenge(broker):
    for kw in [{"user": None}, {"password": "wrong"}, {"user": "nobody"}]:
        status, headers, body = call(broker, "/api/overview", **kw)
        assert status == 401, kw
        assert headers["WWW-Authenticate"].startswith("Basic realm=")
        assert body["error"] == "not_authorised"


def test_tags_decide_access_as_in_rabbitmq(broker):
    ctl(broker, "add_user", "plain", "pw")
    ctl(broker, "set_permissions", "plain", ".*", ".*", ".*")
    ctl(broker, "add_user", "mon", "pw")
    ctl(broker, "set_user_tags", "mon", "monitoring")
    ctl(broker, "add_user", "mgr", "pw")
    ctl(broker, "set_user_tags", "mgr", "management")
    ctl(broker, "add_vhost", "other")
    ctl(broker, "set_permissions", "-p", "other", "mgr", ".*", ".*", ".*")
    ctl(broker, "set_permissions", "-p", "other", "guest", ".*", ".*", ".*")
    # No management tag: 401, as RabbitMQ's "Not management user".
    status, _, body = call(broker, "/api/overview", user="plain", password="pw")
    assert (status, body["reason"]) == (401, "Not management user")
    # Monitoring sees every vhost but may not list users or change anything.
    assert {v["name"] for v in get(broker, "/api/vhosts", user="mon", password="pw")} == {"/", "other"}
    assert call(broker, "/api/users", user="mon", password="pw")[0] == 403
    # ...changes only where it has permissions (none in "/"): RabbitMQ's 401 for the vhost.
    assert call(broker, "/api/queues/%2F/q", "PUT", user="mon", password="pw", body={})[0] == 401
    # Management sees only the vhosts it has permissions in.
    assert [v["name"] for v in get(broker, "/api/vhosts", user="mgr", password="pw")] == ["other"]
    assert call(broker, "/api/queues/%2F", user="mgr", password="pw")[0] == 401
    assert get(broker, "/api/queues/other", user="mgr", password="pw") == []
    assert get(broker, "/api/whoami", user="mgr", password="pw") == {"name": "mgr", "tags": ["management"]}
    # The administrator sees and changes everything.
    assert get(broker, "/api/whoami") == {"name": "guest", "tags": ["administrator"]}
    assert {u["name"] for u in get(broker, "/api/users")} == {"guest", "plain", "mon", "mgr"}


def test_overview_counts_what_clients_declared(broker):
    c, _ = populate(broker)
    o = get(broker, "/api/overview")
    for key in ["rabbitmq_version", "management_version", "product_name", "node", "listeners", "exchange_types"]:
        assert key in o, key
    assert o["object_totals"] == {"connections": 1, "channels": 1, "exchanges": 7, "queues": 2, "consumers": 1}
    assert o["queue_totals"] == {"messages": 5, "messages_ready": 4, "messages_unacknowledged": 1}
    assert {"protocol": "amqp", "port": broker.port} == {k: o["listeners"][0][k] for k in ["protocol", "port"]}
    c.close()


def test_queues_exchanges_bindings_in_rabbitmqs_shapes(broker):
    c, _ = populate(broker)
    qs = get(broker, "/api/queues")
    assert [q["name"] for q in qs] == ["events", "orders"]
    assert get(broker, "/api/queues/%2F") == qs
    q = get(broker, "/api/queues/%2F/orders")
    assert {k: q[k] for k in ["name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "type"]} == {
        "name": "orders",
        "vhost": "/",
        "durable": True,
        "auto_delete": False,
        "exclusive": False,
        "arguments": {"x-max-length": 100},
        "type": "classic",
    }
    assert (q["messages"], q["messages_ready"], q["messages_unacknowledged"], q["consumers"]) == (4, 3, 1, 1)
    assert call(broker, "/api/queues/%2F/nope")[0] == 404
    assert call(broker, "/api/queues/novhost")[0] == 404

    xs = get(broker, "/api/exchanges/%2F")
    assert {x["name"] for x in xs} >= {"", "amq.direct", "amq.topic", "ex"}
    ex = get(broker, "/api/exchanges/%2F/ex")
    assert {k: ex[k] for k in ["name", "vhost", "type", "durable", "auto_delete", "internal"]} == {
        "name": "ex", "vhost": "/", "type": "topic", "durable": False, "auto_delete": False, "internal": False
    }
    assert get(broker, "/api/exchanges/%2F/amq.default")["name"] == ""
    assert get(broker, "/api/exchanges") == xs

    bs = get(broker, "/api/bindings")
    assert {
        "source": "ex", "vhost": "/", "destination": "events", "destination_type": "queue",
        "routing_key": "a.*", "arguments": {}, "properties_key": "a.%2A",
    } in bs
    # The default exchange's implicit bindings, as RabbitMQ lists them.
    assert any(b["source"] == "" and b["destination"] == "orders" and b["routing_key"] == "orders" for b in bs)
    assert get(broker, "/api/bindings/%2F") == bs
    c.close()


def test_connections_channels_consumers(broker):
    c, _ = populate(broker)
    [conn] = get(broker, "/api/connections")
    assert (conn["user"], conn["vhost"], conn["channels"], conn["state"]) == ("guest", "/", 1, "running")
    assert conn["protocol"] == "AMQP 0-9-1" and conn["port"] == broker.port and conn["peer_host"] == "127.0.0.1"
    [ch] = get(broker, "/api/channels")
    assert (ch["number"], ch["consumer_count"], ch["messages_unacknowledged"], ch["prefetch_count"]) == (1, 1, 1, 1)
    assert ch["connection_details"]["name"] == conn["name"]
    [cons] = get(broker, "/api/consumers")
    assert cons["consumer_tag"] == "ctag" and cons["queue"] == {"name": "orders", "vhost": "/"}
    assert cons["ack_required"] is True and cons["channel_details"]["connection_name"] == conn["name"]
    assert get(broker, "/api/consumers/%2F") == [cons]
    c.close()


def test_put_declares_and_delete_deletes_a_queue(broker):
    status, _, _ = call(broker, "/api/queues/%2F/made", "PUT", body={"durable": False, "arguments": {"x-max-length": 5}})
    assert status == 201
    # Again, equivalent: it exists (204); inequivalent: 400.
    assert call(broker, "/api/queues/%2F/made", "PUT", body={"durable": False, "arguments": {"x-max-length": 5}})[0] == 204
    assert call(broker, "/api/queues/%2F/made", "PUT", body={"durable": True})[0] == 400
    q = get(broker, "/api/queues/%2F/made")
    assert (q["durable"], q["arguments"]) == (False, {"x-max-length": 5})
    # The queue is real: a client publishes to it and the API counts the message.
    ch = broker.connect().channel()
    ch.queue_declare("made", passive=True)
    ch.basic_publish("", "made", b"x")
    until(broker, "/api/queues/%2F/made", "messages", 1)
    assert call(broker, "/api/queues/%2F/made", "DELETE")[0] == 204
    assert call(broker, "/api/queues/%2F/made")[0] == 404
    assert call(broker, "/api/queues/%2F/made", "DELETE")[0] == 404
    assert call(broker, "/api/queues/novhost/q", "PUT", body={})[0] == 404


def test_vhosts_users_definitions_health(broker):
    populate(broker)[0].close()
    [v] = get(broker, "/api/vhosts")
    assert (v["name"], v["messages"], v["messages_ready"]) == ("/", 5, 5)
    assert get(broker, "/api/vhosts/%2F")["name"] == "/"
    [u] = get(broker, "/api/users")
    assert u["name"] == "guest" and u["tags"] == ["administrator"]
    assert u["hashing_algorithm"] == "rabbit_password_hashing_sha256" and u["password_hash"]
    d = get(broker, "/api/definitions")
    assert {q["name"] for q in d["queues"]} == {"orders"}  # the durable ones, as RabbitMQ exports
    assert {"users", "vhosts", "permissions", "exchanges", "queues", "bindings"} <= set(d)
    assert get(broker, "/api/health/checks/alarms") == {"status": "ok"}
    assert get(broker, "/api/aliveness-test/%2F") == {"status": "ok"}
    assert call(broker, "/api/aliveness-test/novhost")[0] == 404
    [n] = get(broker, "/api/nodes")
    assert n["running"] is True and n["mem_used"] > 0 and n["fd_used"] > 0
    assert call(broker, "/api/nonsense")[0] == 404
    assert call(broker, "/api/overview", "DELETE")[0] == 405


def test_delete_connection_closes_it_with_320(broker):
    c = broker.connect()
    [conn] = get(broker, "/api/connections")
    assert call(broker, "/api/connections/" + urllib.request.quote(conn["name"], safe=""), "DELETE")[0] == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        for _ in range(50):
            c.process_data_events(time_limit=0.1)
    assert e.value.reply_code == 320


def test_metrics_use_rabbitmq_prometheus_names(broker):
    c, _ = populate(broker)
    status, headers, text = call(broker, "/metrics", user=None, port=broker.prometheus_port)
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = lambda name: sum(s.value for s in families[name].samples)  # noqa: E731
    for name in ["rabbitmq_queues", "rabbitmq_connections", "rabbitmq_channels", "rabbitmq_consumers",
                 "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
                 "rabbitmq_process_resident_memory_bytes", "rabbitmq_process_open_fds"]:
        assert families[name].type == "gauge", name
    assert (value("rabbitmq_queues"), value("rabbitmq_connections"), value("rabbitmq_channels")) == (2, 1, 1)
    assert value("rabbitmq_consumers") == 1
    assert (value("rabbitmq_queue_messages_ready"), value("rabbitmq_queue_messages_unacked")) == (4, 1)
    assert value("rabbitmq_queue_messages") == 5
    assert value("rabbitmq_process_resident_memory_bytes") > 1 << 20
    assert value("warren_shard_queues") == 2
    # Every mesh message a shard handles is counted by kind: the 5 publishes, the queue declares.
    mesh = families["warren_shard_mesh_messages"]
    assert mesh.type == "counter"
    by_kind = {}
    for sample in mesh.samples:
        by_kind[sample.labels["kind"]] = by_kind.get(sample.labels["kind"], 0) + sample.value
    assert by_kind["publish"] >= 5 and by_kind["queue_declare"] > 0 and by_kind["answer"] > 0, by_kind
    assert call(broker, "/other", user=None, port=broker.prometheus_port)[0] == 404
    c.close()


def test_pyrabbit2_works_unchanged(broker):
    from pyrabbit2.api import Client

    populate(broker)[0].close()
    cl = Client(f"127.0.0.1:{broker.mgmt_port}", "guest", "guest")
    assert cl.is_alive()
    assert cl.get_overview()["object_totals"]["queues"] == 2
    assert cl.get_queue_depth("/", "orders") == 4
    assert [v["name"] for v in cl.get_all_vhosts()] == ["/"]
    assert sorted(q["name"] for q in cl.get_queues("/")) == ["events", "orders"]
    cl.create_queue("/", "from-pyrabbit", durable=False)
    assert cl.get_queue("/", "from-pyrabbit")["durable"] is False
    cl.delete_queue("/", "from-pyrabbit")
    assert "from-pyrabbit" not in [q["name"] for q in cl.get_queues()]
    assert any(e["name"] == "ex" for e in cl.get_exchanges("/"))
    assert cl.get_whoami()["name"] == "guest"


def test_exchanges_bindings_vhosts_users_permissions_change_as_in_rabbitmq(broker):
    # Exchanges: PUT declares (201, then 204), DELETE deletes; the predeclared ones are refused.
    assert call(broker, "/api/exchanges/%2F/logs", "PUT", body={"type": "fanout", "durable": False})[0] == 201
    assert call(broker, "/api/exchanges/%2F/logs", "PUT", body={"type": "fanout", "durable": False})[0] == 204
    assert get(broker, "/api/exchanges/%2F/logs")["type"] == "fanout"
    # Bindings: POST creates one (Location: its properties key), DELETE by that key removes it.
    assert call(broker, "/api/queues/%2F/inbox", "PUT", body={})[0] == 201
    status, headers, _ = call(broker, "/api/bindings/%2F/e/logs/q/inbox", "POST", body={"routing_key": "k.1"})
    assert (status, headers["Location"]) == (201, "k.1")
    ch = broker.connect().channel()
    ch.basic_publish("logs", "any", b"routed")
    until(broker, "/api/queues/%2F/inbox", "messages", 1)
    assert any(b["source"] == "logs" and b["properties_key"] == "k.1" for b in get(broker, "/api/bindings/%2F"))
    assert call(broker, "/api/bindings/%2F/e/logs/q/inbox/k.1", "DELETE")[0] == 204
    assert call(broker, "/api/bindings/%2F/e/logs/q/inbox/k.1", "DELETE")[0] == 404
    assert not any(b["source"] == "logs" for b in get(broker, "/api/bindings/%2F"))
    # Purge: DELETE .../contents empties the queue.
    assert call(broker, "/api/queues/%2F/inbox/contents", "DELETE")[0] == 204
    assert get(broker, "/api/queues/%2F/inbox")["messages"] == 0
    assert call(broker, "/api/exchanges/%2F/logs", "DELETE")[0] == 204
    assert call(broker, "/api/exchanges/%2F/logs")[0] == 404
    assert call(broker, "/api/exchanges/%2F/amq.direct", "DELETE")[0] == 400
    assert call(broker, "/api/exchanges/%2F/amq.mine", "PUT", body={"type": "direct"})[0] == 403
    # Vhosts, users, permissions.
    assert call(broker, "/api/vhosts/staging", "PUT")[0] == 201
    assert call(broker, "/api/vhosts/staging", "PUT")[0] == 204
    assert call(broker, "/api/users/ops", "PUT", body={"password": "s3cret", "tags": "monitoring"})[0] == 201
    assert get(broker, "/api/whoami", user="ops", password="s3cret")["tags"] == ["monitoring"]
    assert call(broker, "/api/users/ops", "PUT", body={"password": "other", "tags": ["administrator"]})[0] == 204
    assert get(broker, "/api/whoami", user="ops", password="other")["tags"] == ["administrator"]
    assert call(broker, "/api/users/nopass", "PUT", body={"tags": ""})[0] == 400
    perms = {"configure": ".*", "write": "^w", "read": "^r"}
    assert call(broker, "/api/permissions/staging/ops", "PUT", body=perms)[0] == 201
    assert get(broker, "/api/permissions/staging/ops") == {"user": "ops", "vhost": "staging", **perms}
    assert get(broker, "/api/vhosts/staging/permissions") == [{"user": "ops", "vhost": "staging", **perms}]
    assert {p["vhost"] for p in get(broker, "/api/users/ops/permissions")} == {"staging"}
    pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port, "staging",
                                                      pika.PlainCredentials("ops", "other"))).close()
    assert call(broker, "/api/permissions/staging/ops", "DELETE")[0] == 204
    assert call(broker, "/api/permissions/staging/ops")[0] == 404
    assert call(broker, "/api/users/ops", "DELETE")[0] == 204
    assert call(broker, "/api/whoami", user="ops", password="other")[0] == 401
    assert call(broker, "/api/vhosts/staging", "DELETE")[0] == 204
    assert call(broker, "/api/vhosts/staging", "DELETE")[0] == 404


def test_definitions_post_imports_what_get_exported(broker):
    populate(broker)[0].close()
    exported = get(broker, "/api/definitions")
    other = Broker(shards=1, http=True)
    try:
        assert call(other, "/api/definitions", "POST", body=exported)[0] == 204
        assert get(other, "/api/queues/%2F/orders")["arguments"] == {"x-max-length": 100}
        assert call(other, "/api/definitions", "POST", body={"queues": "not a list"})[0] == 400
    finally:
        other.stop()


def test_policies_over_http_as_rabbitmq_serves_them(broker):
    body = {"pattern": "^limited$", "definition": {"max-length": 1}, "priority": 2, "apply-to": "queues"}
    assert call(broker, "/api/policies/%2F/cap", "PUT", body=body)[0] == 201
    assert call(broker, "/api/policies/%2F/cap", "PUT", body=body)[0] == 204
    expected = {"vhost": "/", "name": "cap", "pattern": "^limited$", "apply-to": "queues",
                "definition": {"max-length": 1}, "priority": 2}
    assert get(broker, "/api/policies") == [expected]
    assert get(broker, "/api/policies/%2F") == [expected]
    assert get(broker, "/api/policies/%2F/cap") == expected
    ch = broker.connect().channel()
    ch.queue_declare("limited")
    for i in range(3):
        ch.basic_publish("", "limited", b"%d" % i)
    until(broker, "/api/queues/%2F/limited", "messages", 1)
    assert call(broker, "/api/policies/%2F/bad", "PUT", body={"pattern": ".*", "definition": {"nope": 1}})[0] == 400
    assert call(broker, "/api/policies/%2F/cap", "DELETE")[0] == 204
    assert call(broker, "/api/policies/%2F/cap")[0] == 404
    assert call(broker, "/api/policies/%2F/cap", "DELETE")[0] == 404
    assert call(broker, "/api/policies/novhost")[0] == 404
