"""The Prometheus endpoint against the real binary, read with prometheus_client's own text parser:
rabbitmq_prometheus's metric names and types (global counters, churn counters, core channel,
connection and queue metrics), per-object series on /metrics/per-object with RabbitMQ's labels,
counters that move by exactly what clients did, and Warren's per-shard `warren_` series."""

import tempfile
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import Broker, wait


@pytest.fixture
def broker():
    conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    conf.write("collect_statistics_interval = 200\n")
    conf.close()
    b = Broker(shards=2, http=True, extra=["--config", conf.name])
    yield b
    b.stop()


def scrape(b, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{b.prometheus_port}{path}", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    # The parser names a counter family without its _total suffix.
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, **labels):
    f = families[name]
    return sum(s.value for s in f.samples if all(s.labels.get(k) == v for k, v in labels.items()))


GLOBAL_COUNTERS = [
    "messages_received", "messages_received_confirm", "messages_routed", "messages_unroutable_dropped",
    "messages_unroutable_returned", "messages_confirmed", "messages_delivered",
    "messages_delivered_consume_auto_ack", "messages_delivered_consume_manual_ack",
    "messages_delivered_get_auto_ack", "messages_delivered_get_manual_ack", "messages_redelivered",
    "messages_acknowledged", "messages_get_empty",
]


def test_names_and_types_are_rabbitmq_prometheus_ones(broker):
    fams = scrape(broker)
    for name in GLOBAL_COUNTERS:
        assert fams[f"rabbitmq_global_{name}"].type == "counter", name
        assert all(s.labels.get("protocol") == "amqp091" for s in fams[f"rabbitmq_global_{name}"].samples)
    for name in ["rabbitmq_global_publishers", "rabbitmq_global_consumers"]:
        assert fams[name].type == "gauge"
    for name in ["connections_opened", "connections_closed", "channels_opened", "channels_closed",
                 "queues_declared", "queues_created", "queues_deleted"]:
        assert fams[f"rabbitmq_{name}"].type == "counter", name
    for name in ["rabbitmq_channel_messages_published", "rabbitmq_channel_messages_confirmed",
                 "rabbitmq_channel_messages_unroutable_returned", "rabbitmq_channel_messages_unroutable_dropped",
                 "rabbitmq_channel_get_ack", "rabbitmq_channel_get", "rabbitmq_channel_messages_delivered_ack",
                 "rabbitmq_channel_messages_delivered", "rabbitmq_channel_messages_redelivered",
                 "rabbitmq_channel_messages_acked", "rabbitmq_connection_incoming_bytes",
                 "rabbitmq_connection_outgoing_bytes", "rabbitmq_queue_messages_published",
                 "warren_shard_deliveries", "warren_shard_cpu_seconds", "warren_shard_mesh_messages"]:
        assert fams[name].type == "counter", name
    for name in ["rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queue_messages",
                 "rabbitmq_queue_consumers", "rabbitmq_channel_consumers", "rabbitmq_channel_messages_unacked",
                 "rabbitmq_connection_channels", "warren_shard_queues", "warren_shard_messages"]:
        assert fams[name].type == "gauge", name
    # Aggregated: no per-object labels.
    assert all(not s.labels for s in fams["rabbitmq_queue_messages_ready"].samples)


def test_counters_move_by_what_clients_did(broker):
    before = scrape(broker)
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q2")
    ch.confirm_delivery()
    for _ in range(30):
        ch.basic_publish("", "q1", b"x")
    for _ in range(4):
        ch.basic_publish("amq.direct", "none", b"x")
    m, _, _ = ch.basic_get("q1")
    ch.basic_ack(m.delivery_tag)
    ch.basic_get("q1", auto_ack=True)
    ch.basic_get("q2")
    got = []
    ch.basic_consume("q1", lambda chan, method, p, b: got.append(method.delivery_tag), auto_ack=True)
    while len(got) < 28:
        c.process_data_events(time_limit=0.1)
    ch.queue_delete("q2")

    def now():
        return scrape(broker)

    assert wait(lambda: value(now(), "rabbitmq_global_messages_delivered") == 30, timeout=5)
    after = now()

    def moved(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rabbitmq_global_messages_received") == 34
    assert moved("rabbitmq_global_messages_received_confirm") == 34
    assert moved("rabbitmq_global_messages_confirmed") == 34
    assert moved("rabbitmq_global_messages_routed") == 30
    assert moved("rabbitmq_global_messages_unroutable_dropped") == 4
    assert moved("rabbitmq_global_messages_delivered_get_manual_ack") == 1
    assert moved("rabbitmq_global_messages_delivered_get_auto_ack") == 1
    assert moved("rabbitmq_global_messages_delivered_consume_auto_ack") == 28
    assert moved("rabbitmq_global_messages_get_empty") == 1
    assert moved("rabbitmq_global_messages_acknowledged") == 1
    assert value(after, "rabbitmq_global_consumers") == 1 and value(after, "rabbitmq_global_publishers") == 1
    assert moved("rabbitmq_queues_declared") == 2 and moved("rabbitmq_queues_created") == 2
    assert moved("rabbitmq_queues_deleted") == 1
    assert moved("rabbitmq_connections_opened") == 1 and moved("rabbitmq_channels_opened") == 1
    assert moved("rabbitmq_channel_messages_published") == 34
    assert moved("rabbitmq_channel_messages_delivered") == 28
    assert moved("rabbitmq_queue_messages_published") == 30
    assert moved("warren_shard_deliveries") == 30
    assert value(after, "rabbitmq_connection_incoming_bytes") > 34 * 40
    c.close()
    assert wait(lambda: value(now(), "rabbitmq_connections_closed") - value(before, "rabbitmq_connections_closed") == 1,
                timeout=5)
    assert value(now(), "rabbitmq_channels_closed") - value(before, "rabbitmq_channels_closed") == 1


def test_per_object_series_carry_rabbitmqs_labels(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("orders")
    for _ in range(3):
        ch.basic_publish("", "orders", b"x")
    assert wait(lambda: value(scrape(broker, "/metrics/per-object"), "rabbitmq_queue_messages_published",
                              queue="orders") == 3, timeout=5)
    fams = scrape(broker, "/metrics/per-object")
    assert value(fams, "rabbitmq_queue_messages_ready", vhost="/", queue="orders") == 3
    assert value(fams, "rabbitmq_queue_messages", vhost="/", queue="orders") == 3
    assert value(fams, "rabbitmq_queue_consumers", vhost="/", queue="orders") == 0
    channels = [s for s in fams["rabbitmq_channel_messages_published"].samples if s.value == 3]
    assert len(channels) == 1 and channels[0].labels["channel"].endswith(" (1)")
    conns = fams["rabbitmq_connection_incoming_bytes"].samples
    assert len(conns) == 1 and " -> " in conns[0].labels["channel"] and conns[0].value > 0
    assert value(fams, "rabbitmq_connection_channels") == 1
    c.close()


def test_shard_cpu_seconds_grow_under_load(broker):
    def shards():
        return {s.labels["shard"] for s in scrape(broker)["warren_shard_cpu_seconds"].samples}

    # The series come with the sampler's first sample after the start.
    assert wait(lambda: shards() == {"0", "1"}, timeout=5), shards()
    fams = scrape(broker)
    before = value(fams, "warren_shard_cpu_seconds")
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("busy")
    t0 = time.time()
    while time.time() - t0 < 1.5:
        for _ in range(500):
            ch.basic_publish("", "busy", b"x" * 100)
        ch.queue_purge("busy")
    assert wait(lambda: value(scrape(broker), "warren_shard_cpu_seconds") > before, timeout=5)
    c.close()
