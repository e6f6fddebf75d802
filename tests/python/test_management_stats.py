"""Message rates (`message_stats`), pagination and `columns=`, and the management tags' write rules
of the management HTTP API, against the real binary: counts must be exact after a known burst,
rates positive and bounded while it runs, and each tag may change only what RabbitMQ lets it."""

import base64
import json
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pika
import pytest

from conftest import Broker, ctl, wait

# The sampler's interval in these tests (RabbitMQ's default is 5 s): short, so rates show quickly.
INTERVAL_MS = 200


@pytest.fixture
def broker():
    conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    conf.write(f"collect_statistics_interval = {INTERVAL_MS}\n")
    conf.close()
    b = Broker(shards=2, http=True, extra=["--config", conf.name])
    yield b
    b.stop()


def call(b, path, method="GET", user="guest", password="guest", body=None):
    url = f"http://127.0.0.1:{b.mgmt_port}{path}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    return status, (json.loads(raw) if raw else None)


def get(b, path, **kw):
    status, body = call(b, path, **kw)
    assert status == 200, (path, status, body)
    return body


def stat(obj, key):
    return obj.get("message_stats", {}).get(key, 0)


def test_counts_are_exact_after_a_burst_and_rates_positive_while_it_runs(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("burst")
    ch.confirm_delivery()
    # A burst of known size over about a second, while the overview is read.
    seen_rates, sent = [], 0
    start = time.time()
    while time.time() - start < 1.5:
        for _ in range(100):
            ch.basic_publish("", "burst", b"m")
        sent += 100
        seen_rates.append(get(broker, "/api/overview")["message_stats"].get("publish_details", {}).get("rate", 0))
    elapsed = time.time() - start
    assert max(seen_rates) > 0, seen_rates
    # A rate is messages per second over one sampling interval: never more than were sent at all
    # per second of the burst's shortest possible span (one interval).
    assert max(seen_rates) <= sent / (INTERVAL_MS / 1000) + 1, (max(seen_rates), sent, elapsed)
    # Consume part with manual acks, get some, requeue one (redelivered), drop and return one each.
    got = []
    for _ in range(5):
        method, _, _ = ch.basic_get("burst")
        got.append(method.delivery_tag)
    ch.basic_nack(got[-1], requeue=True)
    for t in got[:-1]:
        ch.basic_ack(t)
    consumed = []
    ch.basic_qos(prefetch_count=50)

    def on_message(chan, method, props, body):
        consumed.append(method.delivery_tag)
        chan.basic_ack(method.delivery_tag)

    ch.basic_consume("burst", on_message)
    while len(consumed) < sent - 4:
        c.process_data_events(time_limit=0.1)
    ch.basic_publish("amq.direct", "nowhere", b"dropped")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", "nowhere", b"returned", mandatory=True)

    def queue_stats():
        return get(broker, "/api/queues/%2F/burst")["message_stats"]

    # Counted exactly, once the sampler has looked again.
    assert wait(lambda: queue_stats()["ack"] == sent, timeout=5), queue_stats()
    q = queue_stats()
    assert q["publish"] == sent
    assert (q["get"], q["get_no_ack"], q["deliver_no_ack"]) == (5, 0, 0)
    assert q["deliver"] == sent - 4  # 4 got and acked; the nacked one came back redelivered
    assert q["redeliver"] == 1 and q["deliver_get"] == sent + 1
    over = get(broker, "/api/overview")["message_stats"]
    assert over["publish"] == sent + 2
    assert (over["confirm"], over["drop_unroutable"], over["return_unroutable"]) == (sent + 2, 1, 1)
    assert over["ack"] == sent and over["deliver_get"] == sent + 1
    assert get(broker, "/api/vhosts/%2F")["message_stats"]["publish"] == sent + 2
    chan = get(broker, "/api/channels")[0]
    assert stat(chan, "publish") == sent + 2 and stat(chan, "deliver") == sent - 4
    default = get(broker, "/api/exchanges/%2F/amq.default")["message_stats"]
    assert (default["publish_in"], default["publish_out"]) == (sent, sent)
    direct = get(broker, "/api/exchanges/%2F/amq.direct")["message_stats"]
    assert (direct["publish_in"], direct["publish_out"]) == (2, 0)
    conn = get(broker, "/api/connections")[0]
    assert conn["recv_oct"] > sent * 10 and conn["send_oct"] > sent * 10
    assert "rate" in conn["recv_oct_details"]
    # After the burst the rates fall back to 0 (two samples with nothing between them).
    assert wait(lambda: get(broker, "/api/overview")["message_stats"]["publish_details"]["rate"] == 0, timeout=5)


def test_counters_survive_their_channel_in_vhost_and_overview_totals(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("q")
    for _ in range(7):
        ch.basic_publish("", "q", b"x")
    ch.close()
    c.close()
    assert wait(lambda: get(broker, "/api/overview")["message_stats"].get("publish") == 7, timeout=5)
    assert get(broker, "/api/channels") == []
    assert get(broker, "/api/vhosts/%2F")["message_stats"]["publish"] == 7


def test_pages_filters_sorts_and_columns_as_rabbitmq(broker):
    c = broker.connect()
    ch = c.channel()
    for i in range(7):
        ch.queue_declare(f"q{i}")
        for _ in range(i):
            ch.basic_publish("", f"q{i}", b"x")
    ch.queue_declare("other")
    assert wait(lambda: get(broker, "/api/queues/%2F/q6")["messages"] == 6)
    # A queue's counters appear with the first sample after it was declared.
    assert wait(lambda: get(broker, "/api/queues/%2F/other")["message_stats"] != {}, timeout=5)
    page = get(broker, "/api/queues?page=2&page_size=3")
    assert {k: page[k] for k in ["filtered_count", "item_count", "page", "page_count", "page_size", "total_count"]} == {
        "filtered_count": 8, "item_count": 3, "page": 2, "page_count": 3, "page_size": 3, "total_count": 8}
    assert [q["name"] for q in page["items"]] == ["q2", "q3", "q4"]
    named = get(broker, "/api/queues?page=1&name=Q")
    assert (named["filtered_count"], named["total_count"], named["page_size"]) == (7, 8, 100)
    regex = get(broker, "/api/queues/%2F?page=1&name=%5Eq%5B13%5D%24&use_regex=true")
    assert [q["name"] for q in regex["items"]] == ["q1", "q3"]
    by_depth = get(broker, "/api/queues?sort=messages&sort_reverse=true&columns=name,messages")
    assert by_depth[0] == {"name": "q6", "messages": 6}
    assert [q["messages"] for q in by_depth] == sorted([q["messages"] for q in by_depth], reverse=True)
    dotted = get(broker, "/api/queues?columns=name,message_stats.publish&page=1&page_size=1")
    assert dotted["items"] == [{"name": "other", "message_stats": {"publish": 0}}]
    assert get(broker, "/api/queues/%2F/q6?columns=messages") == {"messages": 6}
    for bad in ["page=0", "page=1&page_size=501", "page=1&page_size=0", "page=x", "page=9&page_size=2"]:
        status, body = call(broker, f"/api/queues?{bad}")
        assert status == 400 and body["error"] in ("bad_request", "invalid_pagination_parameters",
                                                   "page_out_of_range"), (bad, body)
    assert get(broker, "/api/exchanges?page=1&page_size=2")["total_count"] == 6
    assert get(broker, "/api/connections?page=1")["total_count"] == 1
    assert get(broker, "/api/channels?page=1&columns=name")["items"][0].keys() == {"name"}


def test_management_tags_change_what_permissions_allow(broker):
    for user, tags in [("bob", "management"), ("carol", "policymaker"), ("mon", "monitoring")]:
        assert call(broker, f"/api/users/{user}", "PUT", body={"password": "pw", "tags": tags})[0] == 201
    assert call(broker, "/api/permissions/%2F/bob", "PUT",
                body={"configure": "^bob-", "write": "^bob-", "read": "^bob-"})[0] == 201
    assert call(broker, "/api/permissions/%2F/carol", "PUT", body={"configure": "", "write": "", "read": ""})[0] == 201
    bob = {"user": "bob", "password": "pw"}
    # Queues and exchanges within the configure expression; purge with read.
    assert call(broker, "/api/queues/%2F/bob-q", "PUT", body={}, **bob)[0] == 201
    status, body = call(broker, "/api/queues/%2F/other", "PUT", body={}, **bob)
    assert (status, body["reason"]) == (401, "Access refused.")
    assert call(broker, "/api/exchanges/%2F/bob-x", "PUT", body={"type": "fanout"}, **bob)[0] == 201
    assert call(broker, "/api/exchanges/%2F/other-x", "PUT", body={"type": "fanout"}, **bob)[0] == 401
    assert call(broker, "/api/queues/%2F/bob-q/contents", "DELETE", **bob)[0] == 204
    # A binding needs write on the destination and read on the source.
    assert call(broker, "/api/bindings/%2F/e/bob-x/q/bob-q", "POST", body={"routing_key": "k"}, **bob)[0] == 201
    assert call(broker, "/api/bindings/%2F/e/amq.direct/q/bob-q", "POST", body={"routing_key": "k"}, **bob)[0] == 401
    # Not in a vhost it has no permissions in, not policies, users or vhosts.
    ctl(broker, "add_vhost", "elsewhere")
    assert call(broker, "/api/queues/elsewhere/bob-q", "PUT", body={}, **bob)[0] == 401
    policy = {"pattern": "^bob-", "definition": {"message-ttl": 1000}}
    assert call(broker, "/api/policies/%2F/p", "PUT", body=policy, **bob)[0] == 401
    assert call(broker, "/api/vhosts/bobs", "PUT", **bob)[0] == 403
    assert call(broker, "/api/users/eve", "PUT", body={"password": "x"}, **bob)[0] == 403
    # A policymaker sets policies in its vhosts, nowhere else, and no queues beyond its permissions.
    carol = {"user": "carol", "password": "pw"}
    assert call(broker, "/api/policies/%2F/p", "PUT", body=policy, **carol)[0] == 201
    assert call(broker, "/api/policies/elsewhere/p", "PUT", body=policy, **carol)[0] == 401
    assert call(broker, "/api/queues/%2F/carol-q", "PUT", body={}, **carol)[0] == 401
    assert call(broker, "/api/policies/%2F/p", "DELETE", **carol)[0] == 204
    # Monitoring reads everything but changes only within its own permissions (none here).
    assert call(broker, "/api/queues/%2F/bob-q", "DELETE", user="mon", password="pw")[0] == 401
    # Its own connections only.
    guest_conn = broker.connect()
    bob_conn = pika.BlockingConnection(broker.params(credentials=pika.PlainCredentials("bob", "pw")))
    try:
        names = {c["user"]: c["name"] for c in get(broker, "/api/connections")}
        quoted = {u: urllib.request.quote(n, safe="") for u, n in names.items()}
        assert call(broker, f"/api/connections/{quoted['guest']}", "DELETE", **bob)[0] == 401
        assert call(broker, f"/api/connections/{quoted['bob']}", "DELETE", **bob)[0] == 204
        assert guest_conn.is_open
    finally:
        for conn in (bob_conn, guest_conn):
            try:
                conn.close()
            except Exception:
                pass
    assert call(broker, "/api/queues/%2F/bob-q", "DELETE", **bob)[0] == 204


def test_a_busy_api_reads_samples_not_the_shards(broker):
    # Regression guard for the design: requests read the sampler's state, so a burst of 200
    # overview requests adds no `admin_stats` round trips beyond one per interval.
    def stats_asked():
        text = urllib.request.urlopen(f"http://127.0.0.1:{broker.prometheus_port}/metrics", timeout=10).read().decode()
        return sum(float(line.split()[-1]) for line in text.splitlines()
                   if line.startswith("warren_shard_mesh_messages_total") and 'kind="admin_stats"' in line)
    before, t0 = stats_asked(), time.time()
    threads = [threading.Thread(target=lambda: [get(broker, "/api/overview") for _ in range(50)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    intervals = (time.time() - t0) / (INTERVAL_MS / 1000) + 2
    assert stats_asked() - before <= 2 * intervals, (stats_asked() - before, intervals)


def test_auto_ack_deliveries_are_not_counted_as_acks(broker):
    # An auto-ack consumer's deliveries are settled at the queue once written; that settlement is
    # not a client's ack and must not show as one.
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("auto")
    for _ in range(5):
        ch.basic_publish("", "auto", b"x")
    got = []
    ch.basic_consume("auto", lambda chan, m, p, b: got.append(m.delivery_tag), auto_ack=True)
    while len(got) < 5:
        c.process_data_events(time_limit=0.1)

    def stats():
        return get(broker, "/api/queues/%2F/auto")["message_stats"]

    assert wait(lambda: stats().get("deliver_no_ack") == 5, timeout=5), stats()
    assert (stats()["ack"], stats()["deliver"], stats()["publish"]) == (0, 0, 5)
