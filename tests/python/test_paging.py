"""Backlogs larger than memory: past half of memory_limit, queues page their newest messages to
disk and read them back in order as they drain; publishers are not blocked and the broker's
memory stays bounded. Paged persistent messages survive a crash, and a purge of them sticks."""

import signal
import struct
import time

import pika

from conftest import Broker

LIMIT = 8 << 20  # paging from 4 MiB of queued messages
BODY = 1024


def rss_kib(b):
    with open(f"/proc/{b.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def body(i):
    return struct.pack(">Q", i) + bytes(BODY - 8)


# A queue that does not page fills memory until the alarm blocks the publisher; without this,
# pika would wait for the broker to read again forever.
UNBLOCKED = dict(blocked_connection_timeout=20)


def paging_broker(tmp_path, shards=2):
    config = tmp_path / "warren.toml"
    config.write_text(f"memory_limit = {LIMIT}\n")
    return Broker(shards=shards, extra=["--config", str(config)])


def wait_for_log(b, text, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(text in line for line in b.log):
            return True
        time.sleep(0.05)
    return False


def test_backlog_beyond_memory_pages_out_and_drains_in_order(tmp_path):
    b = paging_broker(tmp_path)
    try:
        ch = b.connect(**UNBLOCKED).channel()
        ch.queue_declare("backlog")
        before = rss_kib(b)
        total = 60_000  # ~60 MiB of bodies, 7.5 times the limit
        for i in range(total):
            ch.basic_publish("", "backlog", body(i))
        assert ch.queue_declare("backlog", passive=True).method.message_count == total
        # The queue's own line, written when it starts a page file; the shard's "paging new messages
        # to disk" says only that the threshold was crossed, not that this queue wrote anything out.
        assert wait_for_log(b, "queue 'backlog' in vhost '/': paging messages to disk"), b.log[-20:]
        assert not any("resource alarm on shard" in line for line in b.log), "paging should keep publishers unblocked"
        grown = rss_kib(b) - before
        assert grown < 32 << 10, f"RSS grew {grown} KiB for {total * BODY >> 10} KiB of messages"

        # basic.get takes the head; a requeued message returns to its place, marked redelivered.
        got = [ch.basic_get("backlog") for _ in range(3)]
        assert [struct.unpack(">Q", m[2][:8])[0] for m in got] == [0, 1, 2]
        ch.basic_nack(got[1][0].delivery_tag, requeue=True)
        ch.basic_ack(got[2][0].delivery_tag)
        ch.basic_ack(got[0][0].delivery_tag)

        ch.basic_qos(prefetch_count=500)
        seen = []
        for method, _props, data in ch.consume("backlog", inactivity_timeout=10):
            assert method is not None, f"stalled after {len(seen)} messages"
            seen.append((struct.unpack(">Q", data[:8])[0], method.redelivered))
            if len(seen) % 250 == 0:
                ch.basic_ack(method.delivery_tag, multiple=True)
            if len(seen) == total - 2:
                ch.basic_ack(method.delivery_tag, multiple=True)
                break
        ch.cancel()
        assert seen == [(1, True)] + [(i, False) for i in range(3, total)]
        assert ch.queue_declare("backlog", passive=True).method.message_count == 0
    finally:
        b.stop()


def test_paged_persistent_messages_survive_a_crash_and_a_purge_of_them_sticks(tmp_path):
    b = paging_broker(tmp_path)
    try:
        ch = b.connect(**UNBLOCKED).channel()
        ch.queue_declare("keep", durable=True)
        ch.confirm_delivery()
        total = 12_000
        persistent = pika.BasicProperties(delivery_mode=2)
        for i in range(total):
            ch.basic_publish("", "keep", body(i), persistent)
        assert wait_for_log(b, "queue 'keep' in vhost '/': paging messages to disk"), b.log[-20:]
        b.halt(signal.SIGKILL)
        b.start()
        ch = b.connect().channel()
        assert ch.queue_declare("keep", durable=True).method.message_count == total
        # Recovery pages too: read back in order across memory and disk.
        firsts = [struct.unpack(">Q", ch.basic_get("keep", auto_ack=True)[2][:8])[0] for _ in range(5)]
        assert firsts == list(range(5))
        assert ch.queue_purge("keep").method.message_count == total - 5
        b.halt()  # acks are not fsynced (as in RabbitMQ): a clean stop writes them out
        b.start()
        ch = b.connect().channel()
        assert ch.queue_declare("keep", durable=True).method.message_count == 0
    finally:
        b.stop()
