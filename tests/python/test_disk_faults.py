"""A full disk under the message log (issue 14): publishers are blocked and confirms withheld, the
broker keeps running, and once space returns it goes on; no confirmed message is lost to a kill -9.
The disk is a small tmpfs mounted for the test (needs root, as CI runs; skipped otherwise)."""

import os
import signal
import subprocess
import threading
import time

import pika
import pytest

from conftest import Broker, settled, wait

FS_BYTES = 32 << 20
BODY = 16 << 10
PERSISTENT = pika.BasicProperties(delivery_mode=2)


@pytest.fixture
def small_disk(tmp_path):
    mnt = tmp_path / "disk"
    mnt.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mnt)], capture_output=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {p.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path, leave):
    """Writes a file that leaves about `leave` bytes free on its filesystem."""
    st = os.statvfs(path.parent)
    size = max(0, st.f_bavail * st.f_frsize - leave)
    with open(path, "wb") as f:
        f.write(b"\0" * size)


class Publisher(threading.Thread):
    """Publishes numbered persistent messages with confirms, one at a time, until told to stop."""

    def __init__(self, broker):
        super().__init__(daemon=True)
        self.conn = pika.BlockingConnection(broker.params())
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.ch.queue_declare("full", durable=True)
        self.confirmed = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            i = 0
            while not self.stop.is_set() and i < 20_000:
                self.ch.basic_publish("", "full", i.to_bytes(8, "big") * (BODY // 8), PERSISTENT)
                self.confirmed.append(i)
                i += 1
        except Exception as e:  # reported by the test
            self.error = e


def test_full_disk_blocks_publishers_withholds_confirms_and_recovers(small_disk):
    config = small_disk.parent / "warren.toml"
    # The free-space check would block publishers only once the disk is completely full (0 < 1).
    config.write_text("disk_free_limit = 1\n")
    b = Broker(shards=2, extra=["--config", str(config)], data_dir=str(small_disk))
    try:
        filler = small_disk / "filler"
        fill(filler, leave=6 << 20)
        pub = Publisher(b)
        pub.start()
        assert wait(lambda: any("confirms withheld" in line for line in b.log), timeout=20), "the log never hit the full disk"
        stuck = len(pub.confirmed)
        time.sleep(1)
        assert len(pub.confirmed) == stuck, "a confirm came while the log could not write"
        assert b.proc.poll() is None, "the broker died on a full disk"
        assert pub.error is None, pub.error
        # A consumer still gets messages while publishers are blocked.
        reader = b.connect().channel()
        method, _, body = reader.basic_get("full")
        assert method is not None and body[:8] == (0).to_bytes(8, "big")
        reader.basic_nack(method.delivery_tag, requeue=True)

        filler.unlink()
        assert wait(lambda: len(pub.confirmed) > stuck + 50, timeout=20), "publishing did not resume once space returned"
        assert any("writing again" in line for line in b.log)
        pub.stop.set()
        pub.join(timeout=20)
        assert pub.error is None, pub.error
        confirmed = set(pub.confirmed)

        b.halt(signal.SIGKILL)
        b.start()
        ch = b.connect().channel()
        got = set()
        while True:
            method, _, body = ch.basic_get("full", auto_ack=True)
            if method is None:
                break
            got.add(int.from_bytes(body[:8], "big"))
        assert confirmed <= got, f"{len(confirmed - got)} confirmed messages lost, e.g. {sorted(confirmed - got)[:5]}"
    finally:
        b.stop()


def test_a_page_file_on_a_full_disk_stops_paging_and_blocks_publishers_without_losing_messages(small_disk):
    """Bug: a page file write that failed (a full disk) aborted the broker, losing every message of
    every queue. Now the shard stops paging, what was not written stays in memory, and the memory
    alarm blocks publishers from half the limit; consumers get every message back, in order, once."""
    config = small_disk.parent / "warren.toml"
    limit = 8 << 20  # paging from 4 MiB of queued messages
    config.write_text(f"memory_limit = {limit}\ndisk_free_limit = 0\n")
    b = Broker(shards=2, extra=["--config", str(config)], data_dir=str(small_disk))
    try:
        fill(small_disk / "filler", leave=2 << 20)
        pub = b.connect()
        events = []
        pub.add_on_connection_blocked_callback(lambda _c, m: events.append(m.method.reason))
        ch = pub.channel()
        ch.queue_declare("paged")
        sent = 0
        # Transient messages (nothing goes to the message log): ~4 MiB stay in memory, the rest is
        # paged to a disk with 2 MiB free, where writing fails.
        while not events and sent < 30_000:
            ch.basic_publish("", "paged", sent.to_bytes(8, "big") + bytes(1016))
            sent += 1
            if sent % 100 == 0:
                pub.process_data_events(time_limit=0)
            if sent % 2000 == 0:
                time.sleep(0.1)  # the monitor looks every 100 ms
        assert wait(lambda: pub.process_data_events(time_limit=0.05) or events, timeout=20), f"never blocked after {sent}"
        assert events[0] == "low on memory", events
        assert b.proc.poll() is None, "the broker died when a page file could not be written"
        assert any("paging stopped on this shard" in line for line in b.log), b.log[-20:]

        other = b.connect().channel()
        depth = lambda: other.queue_declare("paged", passive=True).method.message_count
        held = settled(depth, lambda: pub.process_data_events(time_limit=0.05))
        assert held > 0
        # Blocked: what the publisher sends now is not taken, so memory stays bounded.
        for _ in range(20):
            ch.basic_publish("", "paged", sent.to_bytes(8, "big") + bytes(1016))
            sent += 1
        pub.process_data_events(time_limit=0.3)
        assert depth() == held, "a blocked publisher's messages were still taken"

        got = []
        deadline = time.time() + 60
        while len(got) < sent and time.time() < deadline:
            method, _, body = other.basic_get("paged", auto_ack=True)
            if method is None:
                pub.process_data_events(time_limit=0.05)
                continue
            got.append(int.from_bytes(body[:8], "big"))
        assert got == list(range(sent)), f"{len(got)} of {sent} back; first wrong at {next((i for i, (g, w) in enumerate(zip(got, range(sent))) if g != w), None)}"
        assert b.proc.poll() is None
    finally:
        b.stop()


def test_a_durable_declare_on_a_full_disk_is_answered_541_and_works_once_space_returns(small_disk):
    """Bug: a definitions save that failed (a full disk) was retried every second forever, and the
    client that declared a durable queue waited for its declare-ok as long. Now it hears 541
    INTERNAL_ERROR at once; once space returns, the declare succeeds and survives a kill -9."""
    config = small_disk.parent / "warren.toml"
    config.write_text("disk_free_limit = 0\n")
    b = Broker(shards=2, extra=["--config", str(config)], data_dir=str(small_disk))
    try:
        filler = small_disk / "filler"
        fill(filler, leave=0)
        ch = b.connect().channel()
        answer = {}

        def declare():
            try:
                ch.queue_declare("kept", durable=True)
                answer["ok"] = True
            except Exception as e:  # checked below
                answer["error"] = e

        t = threading.Thread(target=declare, daemon=True)
        t.start()
        t.join(timeout=10)
        assert not t.is_alive(), "a durable queue.declare on a full disk got no answer"
        error = answer.get("error")
        assert isinstance(error, pika.exceptions.ConnectionClosedByBroker), answer
        assert error.reply_code == 541, error
        assert "INTERNAL_ERROR - cannot save the definition of queue 'kept'" in error.reply_text, error
        assert b.proc.poll() is None

        filler.unlink()
        ch = b.connect().channel()
        ch.queue_declare("kept", durable=True)  # the queue stayed; its definition is saved now
        ch.queue_declare("new", durable=True)
        b.halt(signal.SIGKILL)
        b.start()
        ch = b.connect().channel()
        ch.queue_declare("kept", passive=True)
        ch.queue_declare("new", passive=True)
    finally:
        b.stop()
