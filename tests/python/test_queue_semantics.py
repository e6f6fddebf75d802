"""queue.declare, basic.consume, qos and ack semantics as pika sees them, reply codes included."""

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ProbableAuthenticationError, ConnectionClosedByBroker


def test_redeclare_same_is_idempotent_and_reports_counts(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("counts", durable=True)
    for i in range(3):
        ch.basic_publish("", "counts", f"m{i}".encode())
    ok = ch.queue_declare("counts", durable=True)
    assert ok.method.message_count == 3
    assert ok.method.consumer_count == 0
    c.close()


def test_redeclare_with_other_durable_closes_channel_406(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("q406", durable=True)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("q406", durable=False)
    assert e.value.reply_code == 406
    assert "inequivalent arg 'durable'" in e.value.reply_text
    # The connection goes on.
    ch2 = c.channel()
    ch2.queue_declare("q406", durable=True)
    c.close()


def test_passive_declare_of_missing_queue_is_404(broker):
    c = broker.connect()
    ch = c.channel()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("missing", passive=True)
    assert e.value.reply_code == 404
    assert e.value.reply_text == "NOT_FOUND - no queue 'missing' in vhost '/'"
    c.close()


def test_server_named_queue(broker):
    c = broker.connect()
    ch = c.channel()
    name = ch.queue_declare("", exclusive=True).method.queue
    assert name.startswith("amq.gen-") and len(name) > len("amq.gen-")
    c.close()


def test_bad_credentials_are_403(broker):
    with pytest.raises((ProbableAuthenticationError, ConnectionClosedByBroker)) as e:
        broker.connect(credentials=pika.PlainCredentials("guest", "nope"))
    assert "403" in str(e.value) or "ACCESS_REFUSED" in str(e.value)
    broker.connect().close()


def test_unknown_vhost_is_530(broker):
    with pytest.raises(Exception) as e:
        broker.connect(virtual_host="nowhere")
    assert "530" in str(e.value)
    broker.connect().close()


def test_round_robin_over_consumers_and_order_per_consumer(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("rr")
    got = {"a": [], "b": []}
    ch.basic_consume("rr", lambda _c, m, _p, b: got["a"].append(int(b)), auto_ack=True, consumer_tag="a")
    ch.basic_consume("rr", lambda _c, m, _p, b: got["b"].append(int(b)), auto_ack=True, consumer_tag="b")
    for i in range(20):
        ch.basic_publish("", "rr", str(i).encode())
    deadline = 200
    while len(got["a"]) + len(got["b"]) < 20 and deadline:
        c.process_data_events(time_limit=0.05)
        deadline -= 1
    assert sorted(got["a"] + got["b"]) == list(range(20))
    assert got["a"] == sorted(got["a"]) and got["b"] == sorted(got["b"])
    assert len(got["a"]) == 10 and len(got["b"]) == 10
    c.close()


def test_prefetch_limits_unacked_and_ack_multiple_releases(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("pf")
    for i in range(10):
        ch.basic_publish("", "pf", str(i).encode())
    ch.basic_qos(prefetch_count=3)
    got = []
    ch.basic_consume("pf", lambda _c, m, _p, b: got.append(m.delivery_tag))
    for _ in range(20):
        c.process_data_events(time_limit=0.05)
    assert len(got) == 3
    ch.basic_ack(got[-1], multiple=True)
    for _ in range(20):
        c.process_data_events(time_limit=0.05)
    assert len(got) == 6
    c.close()


def test_cancel_stops_deliveries(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("cancel")
    got = []
    tag = ch.basic_consume("cancel", lambda _c, m, _p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", "cancel", b"1")
    for _ in range(10):
        c.process_data_events(time_limit=0.05)
    ch.basic_cancel(tag)
    ch.basic_publish("", "cancel", b"2")
    for _ in range(10):
        c.process_data_events(time_limit=0.05)
    assert got == [b"1"]
    assert ch.queue_declare("cancel", passive=True).method.message_count == 1
    c.close()


def test_body_split_over_frames_arrives_whole(broker):
    c = broker.connect(frame_max=4096)
    ch = c.channel()
    ch.queue_declare("big")
    body = bytes(range(256)) * 1000
    ch.basic_publish("", "big", body)
    _m, _p, got = ch.basic_get("big", auto_ack=True)
    assert got == body
    c.close()


def test_unacked_messages_return_when_the_connection_closes(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("requeue")
    ch.basic_publish("", "requeue", b"x")
    m, _p, _b = ch.basic_get("requeue")
    assert m is not None and not m.redelivered
    c.close()
    c2 = broker.connect()
    ch2 = c2.channel()
    m2, _p, body = ch2.basic_get("requeue", auto_ack=True)
    assert body == b"x" and m2.redelivered
    c2.close()
