"""Queue and message extensions as RabbitMQ 3.x has them (issue 17), through pika on 2 shards:
TTL, queue expiry, dead-lettering (x-death), length limits, priorities, single active consumer,
consumer priorities, validated user-id, quorum queue rules. Dead-letter targets sit on the other
shard than their source queue (placement read back from warrenctl list_queues)."""

import json
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker, NackError

from conftest import closed_with, ctl, wait


def shards_of(broker, names):
    """Which shard each of these queues lives on (declared, asked, deleted)."""
    c = broker.connect()
    ch = c.channel()
    for n in names:
        ch.queue_declare(n)
    out = ctl(broker, "list_queues", "--formatter", "json").stdout
    placed = {row["name"]: row["shard"] for row in json.loads(out) if row["name"] in names}
    for n in names:
        ch.queue_delete(n)
    c.close()
    return placed


def two_shards(broker, a, b):
    """Names `a-N` and `b-M` that live on different shards."""
    names = [f"{a}-{i}" for i in range(8)] + [f"{b}-{i}" for i in range(8)]
    placed = shards_of(broker, names)
    src = f"{a}-0"
    dst = next(f"{b}-{i}" for i in range(8) if placed[f"{b}-{i}"] != placed[src])
    return src, dst


def dead_letter_pair(broker, ch, src_args, a="src", b="dead", dlrk=None):
    """A source queue with these arguments dead-lettering through fanout exchange `dlx` into a
    queue on the other shard."""
    src, dst = two_shards(broker, a, b)
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(dst)
    ch.queue_bind(dst, "dlx")
    args = {"x-dead-letter-exchange": "dlx", **src_args}
    if dlrk:
        args["x-dead-letter-routing-key"] = dlrk
    ch.queue_declare(src, arguments=args)
    return src, dst


def depth(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def get(ch, q):
    m, props, body = ch.basic_get(q, auto_ack=True)
    return m, props, body


def test_expired_messages_are_dead_lettered_to_another_shard_with_x_death(broker):
    c = broker.connect()
    ch = c.channel()
    src, dst = dead_letter_pair(broker, ch, {"x-message-ttl": 200})
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", src, f"m{i}".encode(), pika.BasicProperties(headers={"n": i}))
    assert wait(lambda: depth(ch, dst) == 3, 10)
    assert depth(ch, src) == 0
    m, props, body = get(ch, dst)
    assert body == b"m0" and m.exchange == "dlx" and m.routing_key == src
    death = props.headers["x-death"][0]
    assert death["reason"] == "expired" and death["queue"] == src and death["count"] == 1
    assert death["exchange"] == "" and death["routing-keys"] == [src]
    assert abs(death["time"].timestamp() - time.time()) < 60
    assert props.headers["x-first-death-reason"] == "expired"
    assert props.headers["x-first-death-queue"] == src
    assert props.headers["n"] == 0
    c.close()


def test_per_message_expiration_lower_wins_and_is_removed_when_dead_lettered(broker):
    c = broker.connect()
    ch = c.channel()
    src, dst = dead_letter_pair(broker, ch, {"x-message-ttl": 60000})
    ch.basic_publish("", src, b"short", pika.BasicProperties(expiration="100"))
    ch.basic_publish("", src, b"long", pika.BasicProperties(expiration="600000"))
    # "short" expires at the head; "long" (queue TTL 60 s) stays.
    assert wait(lambda: depth(ch, dst) == 1, 10)
    assert depth(ch, src) == 1
    _, props, body = get(ch, dst)
    assert body == b"short" and props.expiration is None
    assert props.headers["x-death"][0]["original-expiration"] == "100"
    c.close()


def test_expiration_zero_reaches_only_a_waiting_consumer(broker):
    c = broker.connect()
    ch = c.channel()
    src, dst = dead_letter_pair(broker, ch, {})
    ch.confirm_delivery()
    ch.basic_publish("", src, b"nobody", pika.BasicProperties(expiration="0"))
    assert wait(lambda: depth(ch, dst) == 1, 10)
    assert get(ch, src)[0] is None
    got = []
    ch.basic_consume(src, lambda c_, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", src, b"taken", pika.BasicProperties(expiration="0"))
    assert wait(lambda: (c.process_data_events(0.05), got)[1] == [b"taken"], 10)
    c.close()


def test_invalid_arguments_and_expirations_get_rabbitmqs_406(broker):
    c = broker.connect()
    cases = [
        ({"x-message-ttl": -1}, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'bad' in vhost '/': {value_negative,-1}"),
        ({"x-expires": 0}, "PRECONDITION_FAILED - invalid arg 'x-expires' for queue 'bad' in vhost '/': {value_zero,0}"),
        ({"x-max-length": "x"}, "PRECONDITION_FAILED - invalid arg 'x-max-length' for queue 'bad' in vhost '/': \"expected integer, got longstr\""),
        ({"x-overflow": "foo"}, "PRECONDITION_FAILED - invalid arg 'x-overflow' for queue 'bad' in vhost '/': invalid_overflow"),
        ({"x-max-priority": 256}, "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'bad' in vhost '/': {max_value_exceeded,256}"),
        ({"x-queue-type": "foo"}, "PRECONDITION_FAILED - invalid arg 'x-queue-type' for queue 'bad' in vhost '/': \"unsupported queue type 'foo'\""),
        ({"x-dead-letter-routing-key": "k"}, "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue 'bad' in vhost '/': routing_key_but_no_dlx_defined"),
        ({"x-delivery-limit": 3}, "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'bad' in vhost '/' of queue type rabbit_classic_queue"),
    ]
    for args, text in cases:
        assert closed_with(406, c.channel().queue_declare, "bad", arguments=args) == text
    for exp, why in [("-1", "{value_negative,-1}"), ("abc", "no_integer"), ("1.5", '{leftover_string,".5"}')]:
        ch = c.channel()
        ch.queue_declare("ok")
        ch.basic_publish("", "ok", b"x", pika.BasicProperties(expiration=exp))
        with pytest.raises(ChannelClosedByBroker) as e:
            ch.queue_declare("ok", passive=True)
        assert (e.value.reply_code, e.value.reply_text) == (406, f"PRECONDITION_FAILED - invalid expiration '{exp}': {why}")
    # Redeclaring with another TTL is inequivalent.
    ch = c.channel()
    ch.queue_declare("ttl", arguments={"x-message-ttl": 100})
    assert "inequivalent arg 'x-message-ttl'" in closed_with(406, ch.queue_declare, "ttl", arguments={"x-message-ttl": 200})
    c.close()


def test_an_unused_queue_expires_and_one_with_a_consumer_stays(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("fleeting", arguments={"x-expires": 300})
    ch.queue_declare("watched", arguments={"x-expires": 300})
    ch.basic_consume("watched", lambda *a: None)
    ch.basic_publish("", "fleeting", b"lost with it")

    def gone(q):
        try:
            c.channel().queue_declare(q, passive=True)
            return False
        except ChannelClosedByBroker as e:
            assert e.reply_code == 404
            return True

    # Looking (a passive declare) counts as use, as in RabbitMQ: look once, after the period.
    time.sleep(1.0)
    assert gone("fleeting")
    assert not gone("watched")
    c.close()


def test_rejected_messages_are_dead_lettered_with_the_routing_key_given(broker):
    c = broker.connect()
    ch = c.channel()
    src, dst = two_shards(broker, "work", "retry")
    ch.exchange_declare("dlx-direct", "direct")
    ch.queue_declare(dst)
    ch.queue_bind(dst, "dlx-direct", "to-retry")
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": "dlx-direct", "x-dead-letter-routing-key": "to-retry"})
    for i in range(2):
        ch.basic_publish("", src, f"r{i}".encode())
    m1, _, _ = ch.basic_get(src)
    ch.basic_reject(m1.delivery_tag, requeue=False)
    m2, _, _ = ch.basic_get(src)
    ch.basic_nack(m2.delivery_tag, requeue=True)
    assert wait(lambda: depth(ch, dst) == 1, 10)
    m, props, body = get(ch, dst)
    assert (body, m.routing_key) == (b"r0", "to-retry")
    assert props.headers["x-death"][0]["reason"] == "rejected"
    assert depth(ch, src) == 1, "the requeued one stays"
    c.close()


def test_a_dead_letter_cycle_without_rejection_drops_the_message(broker):
    c = broker.connect()
    ch = c.channel()
    # Expired messages go back to the same queue through the default exchange: a cycle.
    ch.queue_declare("loop", arguments={"x-message-ttl": 50, "x-dead-letter-exchange": ""})
    ch.basic_publish("", "loop", b"x")
    assert wait(lambda: depth(ch, "loop") == 0, 10)
    time.sleep(0.3)
    assert depth(ch, "loop") == 0
    c.close()


def test_max_length_drops_the_head_into_the_dead_letter_exchange(broker):
    c = broker.connect()
    ch = c.channel()
    src, dst = dead_letter_pair(broker, ch, {"x-max-length": 2})
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", src, f"{i}".encode())
    assert ch.queue_declare(src, arguments={"x-dead-letter-exchange": "dlx", "x-max-length": 2}).method.message_count == 2
    assert [get(ch, src)[2] for _ in range(2)] == [b"3", b"4"]
    assert wait(lambda: depth(ch, dst) == 3, 10)
    assert get(ch, dst)[1].headers["x-death"][0]["reason"] == "maxlen"
    c.close()


def test_reject_publish_nacks_confirms_and_reject_publish_dlx_dead_letters(broker):
    c = broker.connect()
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare("full", arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    ch.basic_publish("", "full", b"12345")
    ch.basic_publish("", "full", b"12345")
    with pytest.raises(NackError):
        ch.basic_publish("", "full", b"1")
    assert depth(ch, "full") == 2
    # After a nack, confirms go on.
    ch.basic_get("full", auto_ack=True)
    ch.basic_publish("", "full", b"1")

    src, dst = dead_letter_pair(broker, ch, {"x-max-length": 1, "x-overflow": "reject-publish-dlx"}, a="rpd", b="rpd-dead")
    ch.basic_publish("", src, b"kept")
    with pytest.raises(NackError):
        ch.basic_publish("", src, b"refused")
    assert wait(lambda: depth(ch, dst) == 1, 10)
    assert get(ch, dst)[2] == b"refused"
    assert get(ch, src)[2] == b"kept"
    c.close()


def test_priorities_deliver_highest_first_fifo_within(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("prio", arguments={"x-max-priority": 5})
    sent = [("p0-a", 0), ("p9-capped", 9), ("p3-a", 3), ("none", None), ("p3-b", 3), ("p5", 5)]
    for body, p in sent:
        ch.basic_publish("", "prio", body.encode(), pika.BasicProperties(priority=p))
    got = []
    ch.basic_qos(prefetch_count=1)

    def on(ch_, m, p, b):
        got.append(b.decode())
        ch_.basic_ack(m.delivery_tag)

    ch.basic_consume("prio", on)
    assert wait(lambda: (c.process_data_events(0.05), len(got))[1] == 6, 10)
    assert got == ["p9-capped", "p5", "p3-a", "p3-b", "p0-a", "none"]
    c.close()


def test_single_active_consumer_takes_over_in_registration_order(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("sac", arguments={"x-single-active-consumer": True})
    got = {"a": [], "b": []}
    ch.basic_consume("sac", lambda c_, m, p, b: got["a"].append(b), auto_ack=True, consumer_tag="a")
    ch.basic_consume("sac", lambda c_, m, p, b: got["b"].append(b), auto_ack=True, consumer_tag="b")
    for i in range(4):
        ch.basic_publish("", "sac", b"%d" % i)
    assert wait(lambda: (c.process_data_events(0.05), len(got["a"]))[1] == 4, 10)
    ch.basic_cancel("a")
    ch.basic_publish("", "sac", b"next")
    assert wait(lambda: (c.process_data_events(0.05), got["b"])[1] == [b"next"], 10)
    c.close()


def test_consumer_priorities_prefer_the_higher_while_it_has_credit(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("cp")
    ch.basic_qos(prefetch_count=2)
    got = []
    ch.basic_consume("cp", lambda c_, m, p, b: got.append("low"), consumer_tag="low")
    ch.basic_consume("cp", lambda c_, m, p, b: got.append("high"), consumer_tag="high", arguments={"x-priority": 10})
    for i in range(4):
        ch.basic_publish("", "cp", b"%d" % i)
    assert wait(lambda: (c.process_data_events(0.05), len(got))[1] == 4, 10)
    assert sorted(got[:2]) == ["high", "high"] and got.count("low") == 2
    text = closed_with(406, c.channel().basic_consume, "cp", lambda *a: None, arguments={"x-priority": "x"})
    assert text == "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'cp' in vhost '/': \"expected integer, got longstr\""
    c.close()


def test_a_user_id_other_than_the_login_is_406(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("uid")
    ch.basic_publish("", "uid", b"ok", pika.BasicProperties(user_id="guest"))
    ch.basic_publish("", "uid", b"forged", pika.BasicProperties(user_id="admin"))
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("uid", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - user_id property set to 'admin' but authenticated user was 'guest'")
    assert depth(c.channel(), "uid") == 1
    c.close()
    # A user tagged impersonator may publish as anyone.
    ctl(broker, "add_user", "imp", "pw")
    ctl(broker, "set_user_tags", "imp", "impersonator")
    ctl(broker, "set_permissions", "imp", ".*", ".*", ".*")
    c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", broker.port, "/", pika.PlainCredentials("imp", "pw")))
    ch = c.channel()
    ch.basic_publish("", "uid", b"as someone", pika.BasicProperties(user_id="someone"))
    assert depth(ch, "uid") == 2
    c.close()


def test_quorum_queues_refuse_transient_declares_and_dead_letter_past_the_delivery_limit(broker):
    c = broker.connect()
    text = closed_with(406, c.channel().queue_declare, "qq", arguments={"x-queue-type": "quorum"})
    assert text == "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq' in vhost '/'"
    ch = c.channel()
    src, dst = two_shards(broker, "qq", "qq-dead")
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(dst)
    ch.queue_bind(dst, "dlx")
    ch.queue_declare(src, durable=True, arguments={
        "x-queue-type": "quorum", "x-delivery-limit": 1, "x-dead-letter-exchange": "dlx"})
    ch.confirm_delivery()
    ch.basic_publish("", src, b"poison")
    m, props, _ = ch.basic_get(src)
    assert not (props.headers or {}).get("x-delivery-count")
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, props, _ = ch.basic_get(src)
    assert m.redelivered and props.headers["x-delivery-count"] == 1
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert wait(lambda: depth(ch, dst) == 1, 10)
    assert get(ch, dst)[1].headers["x-death"][0]["reason"] == "delivery_limit"
    c.close()


def test_direct_reply_to_reaches_the_requester_without_a_queue(broker):
    requester = broker.connect()
    ch = requester.channel()
    ch.queue_declare("rpc")
    replies = []
    ch.basic_consume("amq.rabbitmq.reply-to", lambda c_, m, p, b: replies.append((b, m.routing_key)), auto_ack=True)
    for i in range(4):
        ch.basic_publish("", "rpc", b"q%d" % i, pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    # Four responders, on whichever shards their connections land.
    for i in range(4):
        responder = broker.connect()
        rch = responder.channel()
        assert wait(lambda: rch.queue_declare("rpc", passive=True).method.message_count > 0, 10)
        m, props, body = rch.basic_get("rpc", auto_ack=True)
        assert props.reply_to.startswith("amq.rabbitmq.reply-to.") and props.reply_to != "amq.rabbitmq.reply-to"
        rch.basic_publish("", props.reply_to, b"answer to " + body)
        responder.close()
    assert wait(lambda: (requester.process_data_events(0.05), len(replies))[1] == 4, 10)
    assert sorted(b for b, _ in replies) == [b"answer to q%d" % i for i in range(4)]
    requester.close()


def test_direct_reply_to_errors_are_rabbitmqs(broker):
    c = broker.connect()
    text = closed_with(406, c.channel().basic_consume, "amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
    assert text == "PRECONDITION_FAILED - reply consumer cannot acknowledge"
    ch = c.channel()
    ch.basic_publish("", "anywhere", b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    with pytest.raises(ChannelClosedByBroker) as e:
        ch.queue_declare("anything", passive=True)
    assert (e.value.reply_code, e.value.reply_text) == (406, "PRECONDITION_FAILED - fast reply consumer does not exist")
    c.close()


def test_cc_and_bcc_headers_add_routing_keys_and_bcc_is_not_delivered(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("ssd", "direct")
    for q in ["ssd-a", "ssd-b", "ssd-c"]:
        ch.queue_declare(q)
        ch.queue_bind(q, "ssd", q)
    ch.confirm_delivery()
    ch.basic_publish("ssd", "ssd-a", b"m", pika.BasicProperties(headers={"CC": ["ssd-b"], "BCC": ["ssd-c", "ssd-a"]}))
    got = {q: get(ch, q) for q in ["ssd-a", "ssd-b", "ssd-c"]}
    for q, (m, props, body) in got.items():
        assert body == b"m", q
        assert props.headers.get("CC") == ["ssd-b"] and "BCC" not in props.headers, (q, props.headers)
    assert all(get(ch, q)[0] is None for q in ["ssd-a", "ssd-b", "ssd-c"]), "each queue once"
    # Dead-lettered without a routing key of its own, it goes by all its keys (CC too).
    ch.exchange_declare("ssd-dlx", "direct")
    ch.queue_declare("ssd-dead-b")
    ch.queue_bind("ssd-dead-b", "ssd-dlx", "ssd-b")
    ch.queue_declare("ssd-src", arguments={"x-dead-letter-exchange": "ssd-dlx"})
    ch.basic_publish("", "ssd-src", b"d", pika.BasicProperties(headers={"CC": ["ssd-b"]}))
    m, _, _ = ch.basic_get("ssd-src")
    ch.basic_reject(m.delivery_tag, requeue=False)
    assert wait(lambda: depth(ch, "ssd-dead-b") == 1, 10)
    assert get(ch, "ssd-dead-b")[1].headers["x-death"][0]["routing-keys"] == ["ssd-src", "ssd-b"]
    c.close()
