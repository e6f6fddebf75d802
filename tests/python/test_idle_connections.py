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
    c = broker.connect(heartbeat=2)
    ch = c.channel()
    ch.queue_declare("burst")
    for _ in range(4):
        ch.basic_publish("", "burst", b"x" * MIB)
    ch.basic_qos(prefetch_count=4)
    got = []
    ch.basic_consume("burst", lambda ch_, m, p, body: got.append(len(body)), auto_ack=True)
    while len(got) < 4:
        c.process_data_events(time_limit=1)
    assert got == [MIB] * 4
    [during] = buffer_bytes(broker)
    assert during >= MIB, f"the burst should have grown the output buffer, it holds {during} bytes"
    c.sleep(3)  # idle for more than a heartbeat tick (half the interval)
    [idle] = buffer_bytes(broker)
    assert idle <= 32 << 10, f"an idle connection still holds {idle} bytes of output buffers"
    assert c.is_open
