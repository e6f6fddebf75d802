"""Resource alarms. Memory: past memory_limit bytes of queued messages, connections that publish get
connection.blocked and are not read; once consumers drain the queues they get connection.unblocked
and what they sent meanwhile arrives. Disk: under disk_free_limit free bytes, the same with
"low on disk"."""


import pika

from conftest import Broker, settled, wait


def test_publishers_are_blocked_over_the_limit_and_unblocked_after_draining(tmp_path):
    config = tmp_path / "warren.toml"
    config.write_text("memory_limit = 32768\n")
    b = Broker(shards=2, extra=["--config", str(config)])
    try:
        pub = b.connect()
        events = []
        pub.add_on_connection_blocked_callback(lambda _c, m: events.append(("blocked", m.method.reason)))
        pub.add_on_connection_unblocked_callback(lambda _c, _m: events.append(("unblocked", None)))
        ch = pub.channel()
        ch.queue_declare("m")

        def pumped(pred):
            return wait(lambda: pub.process_data_events(time_limit=0.05) or pred())

        for _ in range(100):
            ch.basic_publish("", "m", b"x" * 1024)
        assert pumped(lambda: ("blocked", "low on memory") in events), events
        other = b.connect().channel()
        depth = lambda: other.queue_declare("m", passive=True).method.message_count
        # What the broker took before it blocked the connection may still be crossing to the
        # queue's shard: wait until the depth stops changing.
        held = settled(depth, lambda: pub.process_data_events(time_limit=0.05))
        assert held <= 100
        # Sent while blocked: read from the socket perhaps, but not taken until the alarm clears.
        for _ in range(20):
            ch.basic_publish("", "m", b"y" * 1024)
        pub.process_data_events(time_limit=0.5)
        assert depth() == held, "a blocked publisher's messages were still taken"

        got = 0
        while got < 120:
            method, _, _ = other.basic_get("m", auto_ack=True)
            if method is None:
                assert pumped(lambda: depth() > 0), f"the rest never arrived after {got}"
                continue
            got += 1
        assert pumped(lambda: ("unblocked", None) in events), events
        assert any("resource alarm on shard" in line and "low on memory" in line for line in b.log)
    finally:
        b.stop()


def test_publishers_are_blocked_when_disk_space_is_under_the_limit(tmp_path):
    config = tmp_path / "warren.toml"
    config.write_text("disk_free_limit = 1000000000000000000\n")  # no disk has an exabyte free
    b = Broker(shards=2, extra=["--config", str(config)])
    try:
        # Not closed by the test: a blocked connection is not read, so it would never see close-ok.
        pub = pika.BlockingConnection(b.params())
        events = []
        pub.add_on_connection_blocked_callback(lambda _c, m: events.append(m.method.reason))
        ch = pub.channel()
        ch.queue_declare("d")
        ch.basic_publish("", "d", b"first")
        assert wait(lambda: pub.process_data_events(time_limit=0.05) or events == ["low on disk"]), events
        for _ in range(10):
            ch.basic_publish("", "d", b"more")
        pub.process_data_events(time_limit=0.3)
        other = b.connect().channel()
        assert other.queue_declare("d", passive=True).method.message_count <= 1
        assert any("disk alarm on shard" in line for line in b.log)
    finally:
        b.stop()
