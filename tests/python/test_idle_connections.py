"""What an idle connection costs (issue 20): buffers that a burst grew are given back once the
connection is idle."""

import json
import pathlib
import subprocess

from conftest import BINARY

CTL = str(pathlib.Path(BINARY).parent / "warrenctl")
MIB = 1 << 20


def buffer_bytes(b):
    p = subprocess.run([CTL, "--data-dir", b.data.name, "list_connections", "--formatter", "json"],
                       capture_output=True, text=True, timeout=30, check=True)
    return [row["buffer_bytes"] for row in json.loads(p.stdout)]


# Regression: a connection's output buffers kept whatever size a burst grew them to (and each
# connection started with 128 KiB of them), so 10,000 idle connections held 264 KiB each.
def test_output_buffers_shrink_once_the_connection_is_idle(broker):
    # Small bodies are copied into the output buffer (4 KiB and more are spliced into the write
    # instead, net/delivery.rs), so a burst of them grows it.
    c = broker.connect(heartbeat=2)
    ch = c.channel()
    ch.queue_declare("burst")
    n = 4000
    for _ in range(n):
        ch.basic_publish("", "burst", b"x" * 1000)
    got = []
    ch.basic_consume("burst", lambda ch_, m, p, body: got.append(len(body)), auto_ack=True)
    while len(got) < n:
        c.process_data_events(time_limit=1)
    assert got == [1000] * n
    [during] = buffer_bytes(broker)
    assert during >= 64 << 10, f"the burst should have grown the output buffer, it holds {during} bytes"
    c.sleep(3)  # idle for more than a heartbeat tick (half the interval)
    [idle] = buffer_bytes(broker)
    assert idle <= 32 << 10, f"an idle connection still holds {idle} bytes of output buffers"
    assert c.is_open


# Regression (issue 14): a consumer that stopped reading, with no prefetch limit, got its whole queue
# encoded into its connection's output buffer, memory that no gauge saw. The buffer now stops
# taking deliveries past a window; the rest waits as messages until the client reads again.
def test_a_consumer_that_stops_reading_holds_a_bounded_output_buffer(broker):
    slow = broker.connect()
    sch = slow.channel()
    sch.queue_declare("stalled")
    got = []
    sch.basic_consume("stalled", lambda ch_, m, p, body: got.append(body), auto_ack=True)
    pub = broker.connect()
    pch = pub.channel()
    pch.confirm_delivery()
    count = 40
    for i in range(count):
        pch.basic_publish("", "stalled", i.to_bytes(4, "big") * (MIB // 4))
    # The slow consumer has read nothing since it subscribed; the kernel holds a few MiB for it.
    held = max(buffer_bytes(broker))
    assert held <= 4 * MIB, f"the stalled consumer's output buffers hold {held} bytes"
    while len(got) < count:
        slow.process_data_events(time_limit=1)
    assert [b[:4] for b in got] == [i.to_bytes(4, "big") for i in range(count)]
    assert all(len(b) == MIB for b in got)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


# Regression: a shard handed freed memory back to the OS (mi_collect) only when its count of open
# connections fell, but a closed connection's memory is freed later, once its socket stopped
# lingering (2 s after the close): 10,000 closed connections kept their ~120 MiB for good.
def test_closed_connections_give_their_memory_back(broker):
    import asyncio
    import importlib.util
    import resource

    spec = importlib.util.spec_from_file_location("idle", pathlib.Path(__file__).parents[2] / "scripts" / "idle-connections.py")
    idle = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(idle)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = min(3000, hard - 200)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pid = broker.proc.pid

    async def run():
        before = rss_kib(pid)
        conns = [idle.Conn(0) for _ in range(n)]
        gate = asyncio.Semaphore(100)

        async def open_one(c):
            async with gate:
                await asyncio.wait_for(c.open(broker.port, 1), 30)

        await asyncio.gather(*(open_one(c) for c in conns))
        opened = rss_kib(pid)
        for c in conns:
            c.close()
        await asyncio.wait_for(asyncio.gather(*(c.expect(10, 51) for c in conns)), 30)
        for c in conns:
            c.w.close()
        added = opened - before
        for _ in range(100):
            await asyncio.sleep(0.1)
            if rss_kib(pid) - before < added / 4:
                break
        return before, opened, rss_kib(pid)

    try:
        before, opened, after = asyncio.run(run())
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert opened - before > n * 4, f"{n} connections should cost some memory: {before} -> {opened} KiB"
    assert after - before < (opened - before) / 4, f"RSS {before} KiB before, {opened} open, {after} 10 s after closing"
