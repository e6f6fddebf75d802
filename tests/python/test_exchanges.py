"""Exchanges, bindings and queue lifecycle with pika, each reply code as RabbitMQ sends it."""

import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker, UnroutableError

from conftest import closed_with, wait


def drain(conn, secs=0.3):
    deadline = time.time() + secs
    while time.time() < deadline:
        conn.process_data_events(time_limit=0.05)


def test_redeclare_exchange_with_other_type_is_406(broker):
    c = broker.connect()
    c.channel().exchange_declare("x406", "direct")
    text = closed_with(406, c.channel().exchange_declare, "x406", "fanout")
    assert "inequivalent arg 'type'" in text
    closed_with(406, c.channel().exchange_declare, "x406", "direct", durable=True)
    c.channel().exchange_declare("x406", "direct")


def test_reserved_amq_prefix_is_403(broker):
    c = broker.connect()
    closed_with(403, c.channel().exchange_declare, "amq.mine", "direct")
    closed_with(403, c.channel().queue_declare, "amq.myqueue")


def test_passive_declare_of_missing_exchange_is_404(broker):
    c = broker.connect()
    text = closed_with(404, c.channel().exchange_declare, "nope", passive=True)
    assert text == "NOT_FOUND - no exchange 'nope' in vhost '/'"
    c.channel().exchange_declare("amq.topic", passive=True)


def test_publish_to_missing_exchange_is_404(broker):
    c = broker.connect()
    ch = c.channel()
    ch.basic_publish("missing-exchange", "k", b"x")
    text = closed_with(404, ch.queue_declare, "after")
    assert "no exchange 'missing-exchange'" in text


def test_publish_to_internal_exchange_is_403(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("inner", "fanout", internal=True)
    ch.basic_publish("inner", "", b"x")
    closed_with(403, ch.queue_declare, "after")


def test_default_exchange_cannot_be_bound_or_deleted(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("dq")
    closed_with(403, ch.queue_bind, "dq", "")
    closed_with(403, c.channel().exchange_delete, "")
    closed_with(403, c.channel().exchange_delete, "amq.direct")


def test_delete_if_unused_of_bound_exchange_is_406(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("used", "fanout")
    ch.queue_declare("usedq")
    ch.queue_bind("usedq", "used")
    closed_with(406, c.channel().exchange_delete, "used", if_unused=True)
    ch2 = c.channel()
    ch2.exchange_delete("used")
    closed_with(404, c.channel().exchange_declare, "used", passive=True)


def test_auto_delete_exchange_goes_with_its_last_binding(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("ad", "direct", auto_delete=True)
    ch.queue_declare("adq")
    ch.queue_bind("adq", "ad", "k")
    ch.queue_unbind("adq", "ad", "k")
    closed_with(404, c.channel().exchange_declare, "ad", passive=True)


def test_queue_delete_if_unused_and_if_empty_are_406_and_counts_returned(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("del")
    for _ in range(3):
        ch.basic_publish("", "del", b"x")
    closed_with(406, c.channel().queue_delete, "del", if_empty=True)
    ch2 = c.channel()
    ch2.basic_consume("del", lambda *a: None)
    closed_with(406, c.channel().queue_delete, "del", if_unused=True)
    ch3 = c.channel()
    ch3.queue_declare("purge")
    for _ in range(4):
        ch3.basic_publish("", "purge", b"x")
    assert ch3.queue_purge("purge").method.message_count == 4
    ch3.basic_publish("", "purge", b"x")
    assert ch3.queue_delete("purge").method.message_count == 1
    closed_with(404, c.channel().queue_declare, "purge", passive=True)


def test_auto_delete_queue_goes_with_its_last_consumer(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("adq2", auto_delete=True)
    tag = ch.basic_consume("adq2", lambda *a: None)
    ch.basic_cancel(tag)
    closed_with(404, c.channel().queue_declare, "adq2", passive=True)


def test_exclusive_queue_is_locked_to_its_connection_and_removed_with_it(broker):
    owner = broker.connect()
    owner.channel().queue_declare("mine", exclusive=True)
    other = broker.connect()
    text = closed_with(405, other.channel().queue_declare, "mine", passive=True)
    assert "RESOURCE_LOCKED" in text
    closed_with(405, other.channel().basic_consume, "mine", lambda *a: None)
    owner.close()

    def gone():
        try:
            other.channel().queue_declare("mine", passive=True)
        except pika.exceptions.ChannelClosedByBroker as e:
            assert e.reply_code in (404, 405), e
            return e.reply_code == 404
        return False

    assert wait(gone), "the exclusive queue outlived its connection"


def test_deleting_a_queue_cancels_its_consumers(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("doomed")
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("doomed", lambda *a: None)
    other = broker.connect()
    other.channel().queue_delete("doomed")
    drain(c)
    assert cancelled == [tag]


def test_mandatory_unroutable_is_returned_with_312(broker):
    c = broker.connect()
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(UnroutableError) as e:
        ch.basic_publish("amq.direct", "nobody", b"lost", mandatory=True)
    assert e.value.messages[0].method.reply_code == 312
    assert e.value.messages[0].method.reply_text == "NO_ROUTE"
    # The same publish without mandatory is dropped and confirmed.
    ch.basic_publish("amq.direct", "nobody", b"lost")


def test_mandatory_to_default_exchange_without_queue_is_returned(broker):
    c = broker.connect()
    ch = c.channel()
    returned = []
    ch.add_on_return_callback(lambda _ch, method, _p, body: returned.append((method.reply_code, body)))
    ch.basic_publish("", "no-such-queue", b"r", mandatory=True)
    drain(c)
    assert returned == [(312, b"r")]


def test_alternate_exchange_takes_unroutable_messages(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("unrouted")
    ch.queue_bind("unrouted", "ae")
    ch.exchange_declare("main", "direct", arguments={"alternate-exchange": "ae"})
    ch.queue_declare("routed")
    ch.queue_bind("routed", "main", "good")
    # Confirmed once every queue it was routed to has it.
    ch.confirm_delivery()
    ch.basic_publish("main", "good", b"1")
    ch.basic_publish("main", "bad", b"2")
    assert ch.basic_get("routed", auto_ack=True)[2] == b"1"
    assert ch.basic_get("unrouted", auto_ack=True)[2] == b"2"
    assert ch.basic_get("unrouted", auto_ack=True)[0] is None


def test_exchange_to_exchange_cycle_delivers_once_per_queue(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("e1", "fanout")
    ch.exchange_declare("e2", "fanout")
    ch.exchange_bind("e2", "e1")
    ch.exchange_bind("e1", "e2")
    ch.queue_declare("cyc")
    ch.queue_bind("cyc", "e1")
    ch.queue_bind("cyc", "e2")
    ch.confirm_delivery()
    ch.basic_publish("e1", "", b"once")
    assert ch.queue_declare("cyc", passive=True).method.message_count == 1
    ch.exchange_unbind("e2", "e1")
    ch.queue_unbind("cyc", "e1")
    ch.basic_publish("e1", "", b"none")
    assert ch.queue_declare("cyc", passive=True).method.message_count == 1


@pytest.mark.parametrize(
    "x_match,binding,headers,routed",
    [
        ("all", {"a": 1, "b": "x"}, {"a": 1, "b": "x", "c": 0}, True),
        ("all", {"a": 1, "b": "x"}, {"a": 1}, False),
        ("any", {"a": 1, "b": "x"}, {"b": "x"}, True),
        ("any", {"a": 1, "b": "x"}, {"c": 1}, False),
        ("all", {"x-k": "v"}, {}, True),
        ("all-with-x", {"x-k": "v"}, {}, False),
        ("any-with-x", {"x-k": "v"}, {"x-k": "v"}, True),
        ("all", {"n": 5}, {"n": 5}, True),
        ("all", {"n": 5}, {"n": "5"}, False),
    ],
)
def test_headers_exchange(broker, x_match, binding, headers, routed):
    c = broker.connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.headers", arguments={"x-match": x_match, **binding})
    ch.confirm_delivery()
    ch.basic_publish("amq.headers", "", b"h", pika.BasicProperties(headers=headers))
    got = ch.basic_get(q, auto_ack=True)[0] is not None
    assert got == routed


@pytest.mark.parametrize(
    "pattern,key,routed",
    [
        ("a.*.c", "a.b.c", True),
        ("a.*.c", "a.c", False),
        ("a.#.c", "a.c", True),
        ("#", "", True),
        ("#.#", "a.b", True),
        ("*", "", False),
        ("a..b", "a..b", True),
        ("a.*.b", "a..b", True),
        (".a", ".a", True),
        ("a.", "a.", True),
    ],
)
def test_topic_edge_cases(broker, pattern, key, routed):
    c = broker.connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", pattern)
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", key, b"t")
    assert (ch.basic_get(q, auto_ack=True)[0] is not None) == routed
