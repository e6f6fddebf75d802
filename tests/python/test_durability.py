"""Durability with pika: durable definitions and persistent messages survive a clean stop and a
SIGKILL; transient ones do not; a torn log tail loses only what came after the tear."""

import glob
import os
import signal
import struct
import subprocess
import time

import pika
import pytest

from conftest import BINARY, Broker

PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def durable_broker():
    b = Broker(shards=2)
    yield b
    b.stop()


def drain(ch, queue):
    """Every message in the queue via basic.get, acked: [(body, redelivered)]."""
    out = []
    while True:
        method, _, body = ch.basic_get(queue)
        if method is None:
            return out
        out.append((body, method.redelivered))
        ch.basic_ack(method.delivery_tag)


def publish_confirmed(b, exchange, keys_bodies, props=PERSISTENT):
    c = b.connect()
    ch = c.channel()
    ch.confirm_delivery()
    for key, body in keys_bodies:
        ch.basic_publish(exchange, key, body, props, mandatory=True)
    c.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean-stop", "kill-9"])
def test_durable_definitions_and_persistent_messages_survive(durable_broker, sig):
    b = durable_broker
    ch = b.connect().channel()
    ch.exchange_declare("dx", "topic", durable=True)
    ch.exchange_declare("tx", "fanout", durable=False)
    for q in ("dq1", "dq2"):
        ch.queue_declare(q, durable=True, arguments={"x-max-length": 100000})
        ch.queue_bind(q, "dx", routing_key="a.#")
    ch.queue_declare("tq", durable=False)
    ch.queue_bind("tq", "dx", routing_key="a.#")
    publish_confirmed(b, "dx", [("a.b", f"p{i}".encode()) for i in range(200)])
    publish_confirmed(b, "dx", [("a.b", b"transient")], pika.BasicProperties(delivery_mode=1))
    # Some messages taken and acked before the stop must not come back.
    taken = ch.basic_get("dq1")
    ch.basic_ack(taken[0].delivery_tag)
    b.halt(sig)

    b.start()
    ch = b.connect().channel()
    ch.exchange_declare("dx", "topic", durable=True, passive=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare("tx", "fanout", passive=True)
    assert e.value.reply_code == 404
    ch = b.connect().channel()
    got1, got2 = drain(ch, "dq1"), drain(ch, "dq2")
    # The ack is written without waiting for fsync (as in RabbitMQ): after a clean stop it holds;
    # after a SIGKILL right behind it the message may come back, marked redelivered.
    first = 1 if sig == signal.SIGTERM or got1[0][0] != b"p0" else 0
    assert [m for m, _ in got1] == [f"p{i}".encode() for i in range(first, 200)]
    assert all(redelivered for _, redelivered in got1 + got2)
    assert [m for m, _ in got2] == [f"p{i}".encode() for i in range(200)]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("tq", passive=True)
    assert e.value.reply_code == 404
    # Redeclaring with other arguments still fails as before the restart: the arguments came back.
    ch = b.connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("dq1", durable=True)
    assert e.value.reply_code == 406
    # The binding came back too: a new publish routes to both durable queues.
    ch = b.connect().channel()
    ch.confirm_delivery()
    ch.basic_publish("dx", "a.c", b"after", PERSISTENT, mandatory=True)
    assert [m for m, _ in drain(ch, "dq1")] == [b"after"]


def test_deleted_durable_queue_stays_deleted_and_its_messages_go(durable_broker):
    b = durable_broker
    ch = b.connect().channel()
    ch.queue_declare("gone", durable=True)
    publish_confirmed(b, "", [("gone", b"x")] * 10)
    ch.queue_delete("gone")
    ch.queue_declare("kept", durable=True)
    publish_confirmed(b, "", [("kept", b"y")])
    b.halt(signal.SIGKILL)
    b.start()
    ch = b.connect().channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare("gone", passive=True)
    ch = b.connect().channel()
    assert drain(ch, "kept") == [(b"y", True)]


def test_purged_and_requeued_messages_recover_as_they_stood(durable_broker):
    b = durable_broker
    ch = b.connect().channel()
    ch.queue_declare("p", durable=True)
    ch.queue_declare("r", durable=True)
    publish_confirmed(b, "", [("p", b"purged")] * 5 + [("r", f"r{i}".encode()) for i in range(5)])
    ch.queue_purge("p")
    # r0 delivered twice and rejected with requeue: it keeps its place.
    for _ in range(2):
        m = ch.basic_get("r")[0]
        ch.basic_reject(m.delivery_tag, requeue=True)
    # then nacked without requeue: gone. r1 stays unacked when the broker stops.
    m = ch.basic_get("r")[0]
    ch.basic_nack(m.delivery_tag, requeue=False)
    assert ch.basic_get("r")[2] == b"r1"
    # Acks are written without waiting for fsync (as in RabbitMQ): a clean stop writes them all.
    b.halt(signal.SIGTERM)
    b.start()
    ch = b.connect().channel()
    assert drain(ch, "p") == []
    assert drain(ch, "r") == [(b"r1", True), (b"r2", True), (b"r3", True), (b"r4", True)]


def test_a_torn_log_tail_loses_only_what_follows_it(durable_broker):
    b = durable_broker
    ch = b.connect().channel()
    ch.queue_declare("t", durable=True)
    publish_confirmed(b, "", [("t", f"m{i}".encode() * 50) for i in range(20)])
    b.halt(signal.SIGTERM)
    segs = [s for s in glob.glob(os.path.join(b.data.name, "msgs", "shard-*", "*.seg")) if os.path.getsize(s) > 0]
    assert len(segs) == 1, segs
    size = os.path.getsize(segs[0])
    with open(segs[0], "r+b") as f:
        f.truncate(size - 100)  # the last record loses its end, as in a crash mid-write
    b.start()
    ch = b.connect().channel()
    got = [m for m, _ in drain(ch, "t")]
    assert got == [f"m{i}".encode() * 50 for i in range(19)]
    assert any("dropped a torn tail" in line for line in b.log), b.log[-20:]


def test_a_corrupt_record_in_an_older_segment_stops_the_start_and_keeps_the_file(tmp_path):
    """Bug: recovery cut every segment at its first bad record, so a flipped byte in an older,
    fsynced segment silently lost the confirmed messages after it and the broker started anyway.
    Only the newest segment can end torn; damage before it must stop the start."""
    config = tmp_path / "warren.toml"
    config.write_text("segment_bytes = 4096\n")
    b = Broker(shards=2, extra=["--config", str(config)])
    try:
        names = [f"c{i}" for i in range(8)]
        for n in names:
            b.connect().channel().queue_declare(n, durable=True)
        publish_confirmed(b, "", [(n, b"z" * 1000) for _ in range(8) for n in names])
        b.halt(signal.SIGTERM)
        # Shard 1 starts after shard 0 is up: its failure must still stop the whole broker.
        segs = sorted(glob.glob(os.path.join(b.data.name, "msgs", "shard-1", "*.seg")))
        assert len(segs) >= 3, segs
        oldest = segs[0]
        data = bytearray(open(oldest, "rb").read())
        second = 8 + struct.unpack_from("<I", data, 0)[0]  # where the second record starts
        assert second < len(data)
        data[second + 8 + 20] ^= 0x01  # inside its payload: its CRC no longer matches
        with open(oldest, "wb") as f:
            f.write(data)
        proc = subprocess.Popen(
            [BINARY, "--listen", "127.0.0.1:0", "--management-listen", "off", "--prometheus-listen", "off", "--shards", "2", "--data-dir", b.data.name, "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "warren=info"},
        )
        started = proc.stdout.readline()  # the listening line, or "" once it exits
        if started:
            proc.kill()
        _, stderr = proc.communicate(timeout=30)
        assert not started, f"the broker started on a corrupt log: {started!r}"
        assert proc.returncode == 1, (proc.returncode, stderr)
        assert "panicked" not in stderr, stderr
        assert f"{oldest}: corrupt record at byte offset {second} " in stderr, stderr
        assert open(oldest, "rb").read() == bytes(data)
    finally:
        b.stop()


def small_segments(tmp_path):
    """A one-shard broker with 4 KiB log segments and a durable queue "s"; returns it and a channel."""
    config = tmp_path / "warren.toml"
    config.write_text("segment_bytes = 4096\n")
    b = Broker(shards=1, extra=["--config", str(config)])
    ch = b.connect().channel()
    ch.queue_declare("s", durable=True)
    return b, ch


def segment_files(b):
    return glob.glob(os.path.join(b.data.name, "msgs", "shard-0", "*.seg"))


def wait_for_segments(b, at_most, tick=lambda: None, timeout=10):
    """Waits until the log has at most `at_most` segment files, calling `tick` between looks."""
    deadline = time.time() + timeout
    while len(segment_files(b)) > at_most and time.time() < deadline:
        tick()
        time.sleep(0.05)
    assert len(segment_files(b)) <= at_most, segment_files(b)


def crash_and_drain(b, queue):
    """SIGKILL, restart, and what the queue holds after recovery (drained, acked)."""
    b.halt(signal.SIGKILL)
    b.start()
    return drain(b.connect().channel(), queue)


def test_acked_segments_are_deleted(tmp_path):
    b, ch = small_segments(tmp_path)
    try:
        publish_confirmed(b, "", [("s", b"z" * 1000)] * 100)
        assert len(segment_files(b)) >= 20
        assert len(drain(ch, "s")) == 100
        # The acks reach the log with the next write; a confirmed publish forces one.
        publish_confirmed(b, "", [("s", b"last")])
        wait_for_segments(b, 2)
        assert crash_and_drain(b, "s") == [(b"last", True)]
    finally:
        b.stop()


def test_a_long_unacked_message_does_not_pin_the_log(tmp_path):
    """One message a consumer never acks sits in the oldest segment; deletion goes oldest first, so
    without compaction every newer segment would stay on disk. Its live message is copied forward."""
    b, ch = small_segments(tmp_path)
    try:
        publish_confirmed(b, "", [("s", b"stuck")])
        held, _, body = ch.basic_get("s")  # kept unacked
        assert body == b"stuck"
        for _ in range(4):
            publish_confirmed(b, "", [("s", b"z" * 1000)] * 20)
            drain(ch, "s")

        def tick():
            publish_confirmed(b, "", [("s", b"tick")])  # acks reach the log with the next write
            drain(ch, "s")
            time.sleep(0.15)

        wait_for_segments(b, 3, tick)
        assert any("compacted log segment" in line for line in b.log)
        assert crash_and_drain(b, "s") == [(b"stuck", True)]
    finally:
        b.stop()


def test_messages_follow_their_queues_when_the_shard_count_changes(durable_broker):
    b = durable_broker
    names = [f"q{i}" for i in range(8)]
    for n in names:
        b.connect().channel().queue_declare(n, durable=True)
    publish_confirmed(b, "", [(n, f"{n}-{j}".encode()) for n in names for j in range(5)])
    for shards in (1, 3):
        b.halt()
        b.shards = shards
        b.start()
        ch = b.connect().channel()
        counts = {n: ch.queue_declare(n, durable=True).method.message_count for n in names}
        assert counts == {n: 5 for n in names}, shards
    ch = b.connect().channel()
    for n in names:
        assert drain(ch, n) == [(f"{n}-{j}".encode(), True) for j in range(5)]
    assert any("message logs rewritten from 1 to 3 shards: 40 messages of 8 queues" in line for line in b.log)
