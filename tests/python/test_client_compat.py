"""Answers that client libraries' own test suites rely on, where Warren used to differ from RabbitMQ
3.10 (issue 15). Each is checked with pika and with py-amqp (the client under kombu and Celery)."""

import amqp
import pika
import pytest

from conftest import closed_with


@pytest.fixture
def py_amqp(broker):
    conns = []

    def connect():
        c = amqp.Connection(f"127.0.0.1:{broker.port}", userid="guest", password="guest", connect_timeout=5)
        c.connect()
        conns.append(c)
        return c

    yield connect
    for c in conns:
        try:
            c.close()
        except Exception:
            pass


# aio-pika's fixtures unbind in teardown after auto-delete exchanges went away; Warren answered 404.
def test_unbind_of_what_is_missing_is_ok(broker):
    ch = broker.connect().channel()
    ch.queue_unbind("no-such-queue", "no-such-exchange", "k")
    ch.queue_declare("ub-q")
    ch.queue_unbind("ub-q", "no-such-exchange", "k")
    ch.exchange_declare("ub-x", "direct")
    ch.queue_unbind("ub-q", "ub-x", "never-bound")
    ch.exchange_unbind("no-such-dest", "no-such-source", "k")
    ch.exchange_unbind("ub-x", "no-such-source", "k")
    # The channel is still open, and a real unbind still unbinds.
    ch.queue_bind("ub-q", "ub-x", "k")
    ch.queue_unbind("ub-q", "ub-x", "k")
    ch.basic_publish("ub-x", "k", b"dropped")
    assert ch.queue_declare("ub-q", passive=True).method.message_count == 0


def test_unbind_of_what_is_missing_is_ok_py_amqp(py_amqp):
    ch = py_amqp().channel()
    ch.queue_unbind("no-such-queue", "no-such-exchange", "k")
    ch.exchange_unbind("no-such-dest", "no-such-source", "k")
    ch.queue_declare("ub-q2")
    assert ch.is_open


# RabbitMQ's strict exclusive check: a redeclare with another exclusive flag is 405, not 406.
def test_exclusive_flag_mismatch_is_405_even_for_the_owner(broker):
    c = broker.connect()
    c.channel().queue_declare("ex-q", exclusive=True)
    text = closed_with(405, c.channel().queue_declare, "ex-q", exclusive=False)
    assert text.startswith("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex-q'")
    c.channel().queue_declare("shared-q")
    closed_with(405, c.channel().queue_declare, "shared-q", exclusive=True)
    # The owner can still redeclare it as it is.
    c.channel().queue_declare("ex-q", exclusive=True)


def test_exclusive_flag_mismatch_is_405_py_amqp(py_amqp):
    ch = py_amqp().channel()
    ch.queue_declare("ex-q2", exclusive=True)
    with pytest.raises(amqp.exceptions.ResourceLocked):
        ch.queue_declare("ex-q2", exclusive=False)


def test_passive_declare_of_the_default_exchange_is_403(broker):
    c = broker.connect()
    text = closed_with(403, c.channel().exchange_declare, "", passive=True)
    assert text == "ACCESS_REFUSED - operation not permitted on the default exchange"
    c.channel().exchange_declare("amq.direct", passive=True)


def test_passive_declare_of_the_default_exchange_is_403_py_amqp(py_amqp):
    ch = py_amqp().channel()
    with pytest.raises(amqp.exceptions.AccessRefused):
        ch.exchange_declare("", "direct", passive=True)


# With channel_max negotiated, RabbitMQ opens any channel number; it counts open channels.
def test_channel_numbers_above_channel_max_open(broker):
    c = broker.connect(channel_max=16)
    chans = [c.channel(n) for n in (65535, 4000, 17)]
    for ch in chans:
        ch.queue_declare("", exclusive=True)


def test_channel_max_counts_open_channels_py_amqp(py_amqp):
    c = py_amqp()
    ch = c.channel(65535)
    ch.queue_declare("", exclusive=True)
    assert ch.channel_id == 65535


# kombu (py-amqp) raised ConsumerCancelled while waiting for delete-ok: the cancel came first.
def test_deleting_a_consumed_queue_answers_delete_ok_before_cancel_py_amqp(py_amqp):
    c = py_amqp()
    ch = c.channel()
    for i in range(5):
        q = f"del-{i}"
        events = []
        ch.queue_declare(q)
        tag = ch.basic_consume(q, callback=lambda m: None, on_cancel=lambda t: events.append(("cancel", t)))
        # py-amqp waits for delete-ok here: a cancel that came first would be handled during it.
        ch.queue_delete(q)
        events.append("delete-ok")
        c.drain_events(timeout=2)
        assert events == ["delete-ok", ("cancel", tag)]


def test_deleting_a_consumed_queue_tells_the_consumer(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("del-p")
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
    tag = ch.basic_consume("del-p", lambda *a: None)
    ch.queue_delete("del-p")
    c.process_data_events(time_limit=0.5)
    assert cancelled == [tag]


def test_refused_login_reads_as_access_refused(broker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        broker.connect(credentials=pika.PlainCredentials("guest", "wrong"))


def test_refused_login_reads_as_access_refused_py_amqp(broker):
    c = amqp.Connection(f"127.0.0.1:{broker.port}", userid="guest", password="wrong", connect_timeout=5)
    with pytest.raises(amqp.exceptions.AccessRefused):
        c.connect()
