#!/usr/bin/env python3
"""Holds many idle AMQP connections against a running broker (Warren or RabbitMQ) and reports what
they cost: RSS per open connection, heartbeat frames the broker sends per connection per minute,
the round trip of a publish/consume on another connection while they are open, and RSS after they
are all closed.

    .venv/bin/python scripts/idle-connections.py --port 5672 --pid $(pgrep -x warren) [-n 10000]

--pid is the broker's process (for RabbitMQ, its beam.smp). Only 127.0.0.1 is ever contacted; every
phase is bounded in time and the script stops by itself. Needs pika (the test venv has it).
"""

import argparse
import asyncio
import resource
import struct
import sys
import time

FRAME_END = b"\xce"


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def shortstr(s):
    b = s.encode()
    return bytes([len(b)]) + b


def method(channel, class_id, method_id, args=b""):
    payload = struct.pack(">HH", class_id, method_id) + args
    return struct.pack(">BHI", 1, channel, len(payload)) + payload + FRAME_END


HEARTBEAT = struct.pack(">BHI", 8, 0, 0) + FRAME_END


class Conn:
    """One raw AMQP connection: handshake, channels, then it only counts heartbeats and sends its own."""

    def __init__(self, heartbeat):
        self.heartbeat = heartbeat
        self.beats = []  # arrival times of the broker's heartbeat frames
        self.closed = asyncio.Event()

    async def frame(self):
        head = await self.r.readexactly(7)
        kind, channel, size = struct.unpack(">BHI", head)
        payload = await self.r.readexactly(size + 1)
        return kind, channel, payload[:-1]

    async def expect(self, class_id, method_id):
        while True:
            kind, _, payload = await self.frame()
            if kind == 1:
                got = struct.unpack(">HH", payload[:4])
                if got != (class_id, method_id):
                    raise RuntimeError(f"expected {(class_id, method_id)}, got {got}")
                return payload[4:]

    async def open(self, port, channels):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        self.w.write(b"AMQP\x00\x00\x09\x01")
        await self.expect(10, 10)
        response = b"\x00guest\x00guest"
        start_ok = b"\x00\x00\x00\x00" + shortstr("PLAIN") + struct.pack(">I", len(response)) + response
        self.w.write(method(0, 10, 11, start_ok + shortstr("en_US")))
        tune = await self.expect(10, 30)
        channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
        self.w.write(method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, self.heartbeat)))
        self.w.write(method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))
        await self.expect(10, 41)
        for ch in range(1, channels + 1):
            self.w.write(method(ch, 20, 10, shortstr("")))
            await self.expect(20, 11)

    async def hold(self):
        """Reads until connection.close-ok (or EOF), noting heartbeats; sends one each half interval."""

        async def beat():
            while not self.closed.is_set():
                await asyncio.sleep(self.heartbeat / 2)
                self.w.write(HEARTBEAT)

        sender = asyncio.ensure_future(beat())
        try:
            while True:
                kind, _, payload = await self.frame()
                if kind == 8:
                    self.beats.append(time.monotonic())
                elif kind == 1 and payload[:4] == struct.pack(">HH", 10, 51):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.closed.set()
            sender.cancel()

    def close(self):
        self.w.write(method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)))


def round_trips(port, count):
    import pika

    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    times = []
    consume = ch.consume(q, auto_ack=True, inactivity_timeout=5)
    for i in range(count):
        t = time.perf_counter()
        ch.basic_publish("", q, b"x" * 16)
        m, _, _ = next(consume)
        if m is None:
            raise RuntimeError("round trip timed out")
        times.append(time.perf_counter() - t)
    ch.cancel()
    conn.close()
    times.sort()
    return times[len(times) // 2] * 1e6, times[int(len(times) * 0.99)] * 1e6


async def main(args):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.n + 100 > hard:
        sys.exit(f"need {args.n + 100} file descriptors, the hard limit is {hard}")
    start_rss = rss_kib(args.pid)
    conns = [Conn(args.heartbeat) for _ in range(args.n)]
    gate = asyncio.Semaphore(args.concurrency)

    async def open_one(c):
        async with gate:
            await asyncio.wait_for(c.open(args.port, args.channels), 60)

    t0 = time.monotonic()
    await asyncio.gather(*(open_one(c) for c in conns))
    opened = time.monotonic() - t0
    holders = [asyncio.ensure_future(c.hold()) for c in conns]
    await asyncio.sleep(2)
    open_rss = rss_kib(args.pid)
    print(f"connections: {args.n} with {args.channels} channels each, heartbeat {args.heartbeat} s")
    print(f"all handshakes done: {opened:.1f} s")
    print(f"RSS: {start_rss >> 10} MiB before, {open_rss >> 10} MiB open: "
          f"{(open_rss - start_rss) / args.n:.1f} KiB per connection")

    window_start = time.monotonic()
    p50, p99 = await asyncio.get_running_loop().run_in_executor(None, round_trips, args.port, args.round_trips)
    print(f"publish/consume round trip while open: p50 {p50:.0f} us, p99 {p99:.0f} us ({args.round_trips} messages)")
    rest = args.hold - (time.monotonic() - window_start)
    if rest > 0:
        await asyncio.sleep(rest)
    window_end = time.monotonic()
    beats = sum(1 for c in conns for t in c.beats if window_start <= t < window_end)
    minutes = (window_end - window_start) / 60
    print(f"heartbeat frames from the broker: {beats / args.n / minutes:.1f} per connection per minute "
          f"(over {window_end - window_start:.0f} s)")
    lost = sum(1 for h in holders if h.done())
    if lost:
        print(f"connections closed by the broker while held: {lost}")

    for c in conns:
        c.close()
    await asyncio.wait_for(asyncio.gather(*holders, return_exceptions=True), 60)
    for c in conns:
        c.w.close()
    closed = time.monotonic()
    for wait in (1, 5, 30):
        await asyncio.sleep(closed + wait - time.monotonic())
        print(f"RSS {wait} s after closing them all: {rss_kib(args.pid) >> 10} MiB")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=5672)
    p.add_argument("--pid", type=int, required=True, help="the broker's process id, for RSS")
    p.add_argument("-n", type=int, default=10_000, help="connections to hold")
    p.add_argument("--channels", type=int, default=2)
    p.add_argument("--heartbeat", type=int, default=15)
    p.add_argument("--hold", type=float, default=60, help="seconds to count heartbeats over")
    p.add_argument("--round-trips", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=200, help="handshakes in flight at once")
    asyncio.run(main(p.parse_args()))
