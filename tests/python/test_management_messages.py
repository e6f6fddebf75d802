"""POST /api/queues/VHOST/NAME/get and POST /api/exchanges/VHOST/NAME/publish against the real
binary, with RabbitMQ's bodies and answers (rabbit_mgmt_wm_queue_get, rabbit_mgmt_wm_exchange_publish):
messages crossing between AMQP (pika) and HTTP both ways, the four ack modes, base64 and non-UTF-8
payloads, properties, and the permissions a channel would need."""

import base64
import time

import pika
import pytest

from conftest import Broker
from test_management import call, ctl


@pytest.fixture
def broker():
    b = Broker(shards=2, http=True)
    yield b
    b.stop()


def post(b, path, body, **kw):
    return call(b, path, method="POST", body=body, **kw)


def get_msgs(b, queue, count=1, ackmode="ack_requeue_false", encoding="auto", vhost="%2F", **extra):
    status, _, body = post(b, f"/api/queues/{vhost}/{queue}/get",
                           {"count": count, "ackmode": ackmode, "encoding": encoding, **extra})
    assert status == 200, (status, body)
    return body


def publish(b, exchange, key, payload, encoding="string", properties=None, vhost="%2F"):
    status, _, body = post(b, f"/api/exchanges/{vhost}/{exchange}/publish",
                           {"properties": properties or {}, "routing_key": key, "payload": payload,
                            "payload_encoding": encoding})
    assert status == 200, (status, body)
    return body


def ready(b, queue):
    return call(b, f"/api/queues/%2F/{queue}")[2]["messages_ready"]


def until_ready(b, queue, n):
    """Waits until `queue` holds n ready messages: pika's basic_publish returns before the broker
    has the message."""
    deadline = time.time() + 5
    while (got := ready(b, queue)) != n and time.time() < deadline:
        time.sleep(0.02)
    assert got == n, (queue, got)


def test_amqp_published_message_is_got_over_http_with_its_properties(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q1")
    props = pika.BasicProperties(content_type="text/plain", delivery_mode=2, priority=3, message_id="m-1",
                                 headers={"x-n": 7, "x-s": "hello"}, timestamp=1700000000, type="order")
    ch.basic_publish("", "q1", "grüße".encode(), props)
    ch.basic_publish("", "q1", b"second")
    until_ready(broker, "q1", 2)
    msgs = get_msgs(broker, "q1")
    assert len(msgs) == 1
    m = msgs[0]
    assert m["payload"] == "grüße" and m["payload_encoding"] == "string"
    assert m["payload_bytes"] == len("grüße".encode())
    assert (m["exchange"], m["routing_key"], m["redelivered"], m["message_count"]) == ("", "q1", False, 1)
    assert m["properties"] == {"content_type": "text/plain", "delivery_mode": 2, "priority": 3, "message_id": "m-1",
                               "headers": {"x-n": 7, "x-s": "hello"}, "timestamp": 1700000000, "type": "order"}
    # ack_requeue_false took it for good: the second is next, and then the queue is empty.
    assert [m["payload"] for m in get_msgs(broker, "q1", count=5)] == ["second"]
    assert get_msgs(broker, "q1") == []


def test_http_published_message_is_consumed_over_amqp(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q2")
    ch.exchange_declare("tx", "topic")
    ch.queue_bind("q2", "tx", "orders.*")
    props = {"content_type": "application/json", "delivery_mode": 2, "headers": {"k": "v", "n": 5},
             "correlation_id": "c-9", "reply_to": "answers"}
    assert publish(broker, "tx", "orders.new", '{"id": 1}', properties=props) == {"routed": True}
    assert publish(broker, "tx", "nothing.here", "lost") == {"routed": False}
    method, p, body = ch.basic_get("q2", auto_ack=True)
    assert body == b'{"id": 1}'
    assert (method.exchange, method.routing_key) == ("tx", "orders.new")
    assert (p.content_type, p.delivery_mode, p.correlation_id, p.reply_to) == ("application/json", 2, "c-9", "answers")
    assert p.headers == {"k": b"v", "n": 5} or p.headers == {"k": "v", "n": 5}
    assert ch.basic_get("q2")[0] is None


def test_default_exchange_is_amq_default_and_routed_says_whether_the_queue_exists(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q3")
    assert publish(broker, "amq.default", "q3", "to q3") == {"routed": True}
    assert publish(broker, "amq.default", "no-such-queue", "x") == {"routed": False}
    assert ch.basic_get("q3", auto_ack=True)[2] == b"to q3"


def test_requeue_modes_put_messages_back_redelivered_and_other_modes_take_them(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q4")
    for i in range(3):
        ch.basic_publish("", "q4", b"m%d" % i)
    until_ready(broker, "q4", 3)
    for mode in ("ack_requeue_true", "reject_requeue_true"):
        msgs = get_msgs(broker, "q4", count=2, ackmode=mode)
        # Settled after all the gets: two different messages, not the first one twice.
        assert [m["payload"] for m in msgs] == ["m0", "m1"], mode
        assert ready(broker, "q4") == 3, mode
    again = get_msgs(broker, "q4", count=3, ackmode="ack_requeue_true")
    assert [(m["payload"], m["redelivered"]) for m in again] == [("m0", True), ("m1", True), ("m2", False)]
    assert [m["payload"] for m in get_msgs(broker, "q4", ackmode="reject_requeue_false")] == ["m0"]
    assert ready(broker, "q4") == 2
    assert [m["payload"] for m in get_msgs(broker, "q4", count=10, ackmode="ack_requeue_false")] == ["m1", "m2"]
    assert ready(broker, "q4") == 0


def test_reject_requeue_false_dead_letters(broker):
    ch = broker.connect().channel()
    ch.queue_declare("dead")
    ch.queue_declare("q5", arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "dead"})
    ch.basic_publish("", "q5", b"bye")
    until_ready(broker, "q5", 1)
    get_msgs(broker, "q5", ackmode="reject_requeue_false")
    until_ready(broker, "dead", 1)
    m = get_msgs(broker, "dead")[0]
    assert m["payload"] == "bye" and m["properties"]["headers"]["x-death"][0]["reason"] == "rejected"


def test_base64_and_non_utf8_payloads(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q6")
    raw = bytes([0xFF, 0x00, 0xC3, 0x28, 0x80])
    ch.basic_publish("", "q6", raw)
    ch.basic_publish("", "q6", b"plain text")
    until_ready(broker, "q6", 2)
    m = get_msgs(broker, "q6", ackmode="ack_requeue_true")[0]
    # Not UTF-8: base64 even in auto mode.
    assert m["payload_encoding"] == "base64" and base64.b64decode(m["payload"]) == raw
    assert m["payload_bytes"] == 5
    m = get_msgs(broker, "q6", count=2, encoding="base64")
    assert [base64.b64decode(x["payload"]) for x in m] == [raw, b"plain text"]
    assert all(x["payload_encoding"] == "base64" for x in m)
    # Published as base64 over HTTP: the bytes arrive as they were.
    assert publish(broker, "amq.default", "q6", base64.b64encode(raw).decode(), encoding="base64")["routed"]
    assert ch.basic_get("q6", auto_ack=True)[2] == raw
    status, _, body = post(broker, "/api/exchanges/%2F/amq.default/publish",
                           {"properties": {}, "routing_key": "q6", "payload": "not base64!", "payload_encoding": "base64"})
    assert status == 400, body


def test_truncate_cuts_the_payload_not_its_size(broker):
    ch = broker.connect().channel()
    ch.queue_declare("q7")
    ch.basic_publish("", "q7", b"0123456789")
    until_ready(broker, "q7", 1)
    m = get_msgs(broker, "q7", truncate=4)[0]
    assert (m["payload"], m["payload_bytes"]) == ("0123", 10)


def test_missing_objects_and_bad_bodies(broker):
    status, _, body = post(broker, "/api/queues/%2F/nope/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert status == 404 and "NOT_FOUND" in body["reason"], body
    status, _, body = post(broker, "/api/exchanges/%2F/nope/publish", {"properties": {}, "routing_key": "", "payload": ""})
    assert status == 404, body
    status, _, body = post(broker, "/api/queues/novhost/q/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert status == 404, body
    broker.connect().channel().queue_declare("q8")
    for bad in ({"count": 1, "ackmode": "peek", "encoding": "auto"},
                {"count": 1, "ackmode": "ack_requeue_true", "encoding": "hex"},
                {"ackmode": "ack_requeue_true", "encoding": "auto"}):
        status, _, body = post(broker, "/api/queues/%2F/q8/get", bad)
        assert status == 400, (bad, body)
    status, _, body = post(broker, "/api/exchanges/%2F/amq.default/publish",
                           {"properties": {"colour": "red"}, "routing_key": "q8", "payload": "x"})
    assert status == 400 and "colour" in body["reason"], body
    status, _, body = post(broker, "/api/exchanges/%2F/amq.default/publish",
                           {"properties": {"user_id": "someone-else"}, "routing_key": "q8", "payload": "x"})
    assert status == 400 and "user_id" in body["reason"], body
    assert ready(broker, "q8") == 0


def test_get_needs_read_and_publish_needs_write_permission(broker):
    ctl(broker, "add_user", "reader", "pw")
    ctl(broker, "set_user_tags", "reader", "management")
    # May read queues named r.*, write nowhere.
    ctl(broker, "set_permissions", "reader", ".*", "", "^r\\.")
    ch = broker.connect().channel()
    for q in ("r.q", "other"):
        ch.queue_declare(q)
        ch.basic_publish("", q, b"x")
        until_ready(broker, q, 1)
    as_reader = {"user": "reader", "password": "pw"}
    status, _, body = post(broker, "/api/queues/%2F/r.q/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, **as_reader)
    assert status == 200 and body[0]["payload"] == "x", body
    status, _, body = post(broker, "/api/queues/%2F/other/get", {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}, **as_reader)
    assert status == 401 and "ACCESS_REFUSED" in body["reason"], body
    assert ready(broker, "other") == 1
    status, _, body = post(broker, "/api/exchanges/%2F/amq.default/publish",
                           {"properties": {}, "routing_key": "r.q", "payload": "y"}, **as_reader)
    assert status == 401 and "ACCESS_REFUSED" in body["reason"], body
    assert ready(broker, "r.q") == 1
    # A management user with no permissions in a vhost may not use it at all.
    ctl(broker, "add_vhost", "v2")
    status, _, body = post(broker, "/api/queues/v2/r.q/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, **as_reader)
    assert status == 401, body


def test_get_waits_for_a_paged_out_head(tmp_path):
    # A queue whose head is on disk answers a get once it is read back, not "empty": 6 MiB of
    # 1 KiB messages against an 8 MiB limit page out past 4 MiB, and the queue keeps only its
    # first 512 KiB in memory, so 1000 gets must read some back.
    config = tmp_path / "warren.toml"
    config.write_text("memory_limit = 8388608\n")
    b = Broker(shards=1, http=True, extra=["--config", str(config)])
    try:
        ch = b.connect(blocked_connection_timeout=20).channel()
        ch.queue_declare("big")
        for i in range(6000):
            ch.basic_publish("", "big", b"%08d" % i + bytes(1016))
        deadline = time.time() + 10
        while ready(b, "big") != 6000 and time.time() < deadline:
            time.sleep(0.05)
        got = get_msgs(b, "big", count=1000, ackmode="ack_requeue_false", encoding="base64", truncate=8)
        assert [base64.b64decode(m["payload"]) for m in got] == [b"%08d" % i for i in range(1000)]
        assert all(m["payload_bytes"] == 1024 for m in got)
        assert ready(b, "big") == 5000
        assert any("paging messages to disk" in line for line in b.log), b.log[-10:]
    finally:
        b.stop()


def test_web_ui_files_are_served_at_the_root_without_credentials(broker):
    import urllib.request
    base = f"http://127.0.0.1:{broker.mgmt_port}"
    with urllib.request.urlopen(base + "/", timeout=10) as r:
        page = r.read().decode()
        assert r.headers["Content-Type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert '<script src="app.js">' in page
    for path, kind in (("/app.js", "text/javascript"), ("/style.css", "text/css"), ("/favicon.svg", "image/svg+xml")):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            assert r.headers["Content-Type"].startswith(kind) and r.read()
    status, _, _ = call(broker, "/nothing-here", user=None)
    assert status == 404


def test_a_401_to_the_web_ui_has_no_basic_challenge(broker):
    # Bug: the browser answered the page's wrong-password login with its own basic-auth dialog
    # (a 401 with WWW-Authenticate), which hid the page's error and hung its request.
    import urllib.error
    import urllib.request
    url = f"http://127.0.0.1:{broker.mgmt_port}/api/whoami"
    bad = "Basic " + base64.b64encode(b"guest:wrong").decode()
    for extra, challenged in (({}, True), ({"X-Requested-With": "XMLHttpRequest"}, False)):
        req = urllib.request.Request(url, headers={"Authorization": bad, **extra})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 401
        assert ("WWW-Authenticate" in e.value.headers) == challenged
