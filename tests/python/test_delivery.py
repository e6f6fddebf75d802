"""Delivery guarantees with pika: acks, nacks, rejects, redelivery, prefetch, basic.get, recover,
exclusive consumers, confirms and transactions, each with RabbitMQ's reply codes."""

import os
import signal
import subprocess
import sys
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, ConnectionClosedByBroker


def drain(conn, secs=0.3):
    deadline = time.time() + secs
    while time.time() < deadline:
        conn.process_data_events(time_limit=0.05)


def fill(ch, queue, n):
    ch.queue_declare(queue)
    for i in range(n):
        ch.basic_publish("", queue, str(i).encode())


def test_unknown_delivery_tag_is_406(broker):
    c = broker.connect()
    ch = c.channel()
    ch.basic_ack(99)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("x")
    assert e.value.reply_code == 406
    assert "unknown delivery tag 99" in e.value.reply_text


def test_double_ack_is_406(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "dbl", 1)
    m, _, _ = ch.basic_get("dbl")
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("dbl")
    assert e.value.reply_code == 406


def test_nack_multiple_requeues_in_original_order_marked_redelivered(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "nack", 5)
    tags = [ch.basic_get("nack")[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=True)
    got = [ch.basic_get("nack", auto_ack=True) for _ in range(5)]
    assert [b for _, _, b in got] == [b"0", b"1", b"2", b"3", b"4"]
    assert [m.redelivered for m, _, _ in got] == [True, True, True, False, False]


def test_reject_requeue_and_reject_drop(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "rej", 2)
    m0 = ch.basic_get("rej")[0]
    m1 = ch.basic_get("rej")[0]
    ch.basic_reject(m0.delivery_tag, requeue=False)
    ch.basic_reject(m1.delivery_tag, requeue=True)
    m, _, body = ch.basic_get("rej", auto_ack=True)
    assert body == b"1" and m.redelivered
    assert ch.basic_get("rej")[0] is None


def test_get_ok_carries_message_count_and_get_empty(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "getq", 3)
    m, _, _ = ch.basic_get("getq", auto_ack=True)
    assert m.message_count == 2
    ch.basic_get("getq", auto_ack=True)
    ch.basic_get("getq", auto_ack=True)
    assert ch.basic_get("getq") == (None, None, None)


def test_unacked_go_back_when_channel_closes_and_reach_the_next_consumer(broker):
    c = broker.connect()
    ch1 = c.channel()
    fill(ch1, "handover", 3)
    ch1.basic_qos(prefetch_count=10)
    seen1 = []
    ch1.basic_consume("handover", lambda _c, m, _p, b: seen1.append(b))
    drain(c)
    assert seen1 == [b"0", b"1", b"2"]
    ch2 = c.channel()
    seen2 = []
    ch2.basic_consume("handover", lambda _c, m, _p, b: seen2.append((b, m.redelivered)))
    ch1.close()
    drain(c)
    assert seen2 == [(b"0", True), (b"1", True), (b"2", True)]


CONSUMER = """
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', int(sys.argv[1])))
ch = c.channel()
ch.basic_qos(prefetch_count=5)
def cb(_c, m, _p, b):
    print(b.decode(), flush=True)
ch.basic_consume('dropped', cb)
ch.start_consuming()
"""


def test_unacked_go_back_when_the_socket_drops(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "dropped", 5)
    p = subprocess.Popen([sys.executable, "-u", "-c", CONSUMER, str(broker.port)], stdout=subprocess.PIPE, text=True)
    got = [p.stdout.readline().strip() for _ in range(5)]
    assert got == ["0", "1", "2", "3", "4"]
    p.send_signal(signal.SIGKILL)
    p.wait()
    deadline = time.time() + 5
    while ch.queue_declare("dropped", passive=True).method.message_count < 5 and time.time() < deadline:
        time.sleep(0.05)
    m, _, body = ch.basic_get("dropped", auto_ack=True)
    assert body == b"0" and m.redelivered


def test_global_prefetch_limits_the_channel_across_queues_on_both_shards(broker):
    c = broker.connect()
    ch = c.channel()
    queues = [f"g{i}" for i in range(6)]
    for q in queues:
        fill(ch, q, 5)
    ch.basic_qos(prefetch_count=4, global_qos=True)
    got = []
    for q in queues:
        ch.basic_consume(q, lambda _c, m, _p, b: got.append(m.delivery_tag))
    drain(c, 0.5)
    assert len(got) == 4
    ch.basic_ack(got[1], multiple=True)
    drain(c, 0.5)
    assert len(got) == 6
    ch.basic_ack(0, multiple=True)
    drain(c, 0.5)
    assert len(got) == 10


def test_per_consumer_prefetch(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "pc1", 5)
    fill(ch, "pc2", 5)
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume("pc1", lambda _c, m, _p, b: got.append(("pc1", b)))
    ch.basic_consume("pc2", lambda _c, m, _p, b: got.append(("pc2", b)))
    drain(c)
    assert sorted(got) == [("pc1", b"0"), ("pc1", b"1"), ("pc2", b"0"), ("pc2", b"1")]


def test_prefetch_size_is_refused(broker):
    c = broker.connect()
    ch = c.channel()
    with pytest.raises(ConnectionClosedByBroker) as e:
        ch.basic_qos(prefetch_size=1024)
    assert e.value.reply_code == 540


def test_recover_requeues_unacked(broker):
    c = broker.connect()
    ch = c.channel()
    fill(ch, "rec", 2)
    ch.basic_get("rec")
    ch.basic_get("rec")
    ch.basic_recover(requeue=True)
    got = [ch.basic_get("rec", auto_ack=True) for _ in range(2)]
    assert [(b, m.redelivered) for m, _, b in got] == [(b"0", True), (b"1", True)]


def test_exclusive_consumer_excludes_others_403(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("exq")
    ch.basic_consume("exq", lambda *a: None, exclusive=True)
    with pytest.raises(ChannelClosedByBroker) as e:
        c.channel().basic_consume("exq", lambda *a: None)
    assert e.value.reply_code == 403
    ch2 = c.channel()
    ch2.queue_declare("exq2")
    ch2.basic_consume("exq2", lambda *a: None)
    with pytest.raises(ChannelClosedByBroker) as e:
        c.channel().basic_consume("exq2", lambda *a: None, exclusive=True)
    assert e.value.reply_code == 403


def test_reused_consumer_tag_is_530(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("tagq")
    ch.basic_consume("tagq", lambda *a: None, consumer_tag="same")
    # pika refuses a duplicate tag locally; send the method through the channel implementation.
    ch._impl._rpc(pika.spec.Basic.Consume(queue="tagq", consumer_tag="same"), None, [pika.spec.Basic.ConsumeOk])
    with pytest.raises(ConnectionClosedByBroker) as e:
        drain(c, 1)
    assert e.value.reply_code == 530


def test_channel_flow(broker):
    c = broker.connect()
    ch = c.channel()
    assert ch.flow(True) is True
    with pytest.raises(ConnectionClosedByBroker) as e:
        ch.flow(False)
    assert e.value.reply_code == 540


def test_confirms_ack_every_publish(broker):
    c = broker.connect()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("conf")
    for i in range(50):
        ch.basic_publish("", "conf", str(i).encode())
    assert ch.queue_declare("conf", passive=True).method.message_count == 50


def test_tx_commit_and_rollback(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("txq")
    ch.tx_select()
    ch.basic_publish("", "txq", b"a")
    time.sleep(0.1)
    assert c.channel().queue_declare("txq", passive=True).method.message_count == 0
    ch.tx_commit()
    assert c.channel().queue_declare("txq", passive=True).method.message_count == 1
    ch.basic_publish("", "txq", b"b")
    ch.tx_rollback()
    assert c.channel().queue_declare("txq", passive=True).method.message_count == 1
    m, _, _ = ch.basic_get("txq")
    ch.basic_ack(m.delivery_tag)
    ch.tx_rollback()
    other = c.channel()
    # Rolled back ack: the message is still unacked, not gone; closing the channel requeues it.
    ch.close()
    assert other.queue_declare("txq", passive=True).method.message_count == 1
    ch2 = c.channel()
    ch2.tx_select()
    m, _, _ = ch2.basic_get("txq")
    ch2.basic_ack(m.delivery_tag)
    ch2.tx_commit()
    ch2.close()
    assert other.queue_declare("txq", passive=True).method.message_count == 0


def test_tx_and_confirm_modes_exclude_each_other_406(broker):
    c = broker.connect()
    ch = c.channel()
    ch.confirm_delivery()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.tx_select()
    assert e.value.reply_code == 406
    ch2 = c.channel()
    ch2.tx_select()
    with pytest.raises(ChannelClosedByBroker) as e:
        ch2.confirm_delivery()
    assert e.value.reply_code == 406


def test_large_bodies_arrive_whole_and_in_order_to_a_consumer_that_reads_late(broker):
    """Bodies of 4 KiB and more are spliced into the socket write, not copied (net/io.rs
    write_spliced): several frame sizes, a body split over many frames, and a consumer that stops
    reading until the socket is full, so the broker's writes come back short and the rest waits."""
    import random

    rng = random.Random(7)
    sizes = [4095, 4096, 4097, 131064, 131065, 300_000, 1, 70_000] * 24
    bodies = [rng.randbytes(n) for n in sizes]
    for frame_max in (4096, 131072):
        c = broker.connect(frame_max=frame_max)
        ch = c.channel()
        q = f"large-{frame_max}"
        ch.queue_declare(q)
        got = []
        ch.basic_consume(q, lambda _c, m, _p, b: got.append((m.delivery_tag, b)), auto_ack=True)
        pub = broker.connect()
        pch = pub.channel()
        for b in bodies:
            pch.basic_publish("", q, b)
        pub.close()
        # Not read for a while: the broker fills the socket and waits for room.
        time.sleep(1.0)
        deadline = time.time() + 20
        while len(got) < len(bodies) and time.time() < deadline:
            c.process_data_events(time_limit=0.1)
        assert [t for t, _ in got] == list(range(1, len(bodies) + 1))
        assert [b for _, b in got] == bodies
        c.close()
