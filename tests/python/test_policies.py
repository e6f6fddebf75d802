"""Policies (issue 17) through warrenctl, as rabbitmqctl set_policy / clear_policy /
list_policies: they apply to existing and new queues at once, the highest priority wins, queue
arguments win where RabbitMQ says so, they survive a restart and travel in the definitions."""

import json
import signal

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from conftest import ctl, wait


def depth(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def bodies(ch, q):
    out = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(body)


def test_a_policy_limits_existing_and_new_queues_at_once_and_clearing_it_lifts_the_limit(broker):
    c = broker.connect()
    ch = c.channel()
    ch.queue_declare("capped.old")
    for i in range(5):
        ch.basic_publish("", "capped.old", b"%d" % i)
    assert wait(lambda: depth(ch, "capped.old") == 5)
    ctl(broker, "set_policy", "cap", "^capped\\.", '{"max-length": 2}', "--apply-to", "queues")
    assert depth(ch, "capped.old") == 2, "applied to the existing queue at once (drop-head)"
    ch.queue_declare("capped.new")
    for i in range(4):
        ch.basic_publish("", "capped.new", b"%d" % i)
    assert wait(lambda: depth(ch, "capped.new") == 2)
    assert bodies(ch, "capped.new") == [b"2", b"3"]
    rows = json.loads(ctl(broker, "list_policies", "--formatter", "json").stdout)
    assert rows == [{"vhost": "/", "name": "cap", "pattern": "^capped\\.", "apply-to": "queues",
                     "definition": {"max-length": 2}, "priority": 0}]
    ctl(broker, "clear_policy", "cap")
    for i in range(4):
        ch.basic_publish("", "capped.new", b"%d" % i)
    assert wait(lambda: depth(ch, "capped.new") == 4)
    c.close()


def test_the_highest_priority_wins_and_the_lower_limit_of_argument_and_policy(broker):
    c = broker.connect()
    ch = c.channel()
    ctl(broker, "set_policy", "wide", ".*", '{"max-length": 1}', "--priority", "0")
    ctl(broker, "set_policy", "narrow", "^jobs$", '{"max-length": 3}', "--priority", "10")
    ch.queue_declare("jobs")
    ch.queue_declare("jobs-own", arguments={"x-max-length": 2})
    ch.queue_declare("other")
    for q in ["jobs", "jobs-own", "other"]:
        for i in range(6):
            ch.basic_publish("", q, b"%d" % i)
    assert wait(lambda: [depth(ch, q) for q in ["jobs", "jobs-own", "other"]] == [3, 1, 1])
    c.close()


def test_a_dead_letter_policy_with_ttl_moves_expired_messages(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("pol-dlx", "fanout")
    ch.queue_declare("graveyard")
    ch.queue_bind("graveyard", "pol-dlx")
    ctl(broker, "set_policy", "ttl-dlx", "^short-", '{"message-ttl": 100, "dead-letter-exchange": "pol-dlx"}',
        "--apply-to", "queues")
    for i in range(4):
        ch.queue_declare(f"short-{i}")
        ch.basic_publish("", f"short-{i}", b"x")
    assert wait(lambda: depth(ch, "graveyard") == 4, 10)
    m, props, _ = ch.basic_get("graveyard", auto_ack=True)
    assert props.headers["x-death"][0]["reason"] == "expired"
    c.close()


def test_an_alternate_exchange_policy_catches_unroutable_messages(broker):
    c = broker.connect()
    ch = c.channel()
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("unrouted")
    ch.queue_bind("unrouted", "ae")
    ch.exchange_declare("orders", "direct")
    ctl(broker, "set_policy", "ae", "^orders$", '{"alternate-exchange": "ae"}', "--apply-to", "exchanges")
    ch.basic_publish("orders", "nobody-binds-this", b"lost?")
    assert wait(lambda: depth(ch, "unrouted") == 1)
    c.close()


def test_bad_policies_are_refused(broker):
    for definition in ['{"max-lenght": 1}', '{"max-length": -1}', "not json", '{"overflow": "sideways"}']:
        p = ctl(broker, "set_policy", "bad", ".*", definition, ok=False)
        assert p.returncode != 0 and "Validation failed" in p.stderr, (definition, p.stderr)
    assert ctl(broker, "set_policy", "bad", "(", '{"max-length": 1}', ok=False).returncode != 0
    assert ctl(broker, "-p", "nowhere", "set_policy", "x", ".*", '{"max-length": 1}', ok=False).returncode != 0
    assert json.loads(ctl(broker, "list_policies", "--formatter", "json").stdout) == []


def test_policies_survive_a_restart_and_travel_in_the_definitions(broker, tmp_path):
    ctl(broker, "set_policy", "keep", "^kept$", '{"max-length": 1}', "--priority", "3", "--apply-to", "queues")
    c = broker.connect()
    c.channel().queue_declare("kept", durable=True)
    c.close()
    broker.halt(signal.SIGKILL)
    broker.start()
    c = broker.connect()
    ch = c.channel()
    for i in range(3):
        ch.basic_publish("", "kept", b"%d" % i)
    assert wait(lambda: depth(ch, "kept") == 1)
    out = tmp_path / "defs.json"
    ctl(broker, "export_definitions", str(out))
    policies = json.loads(out.read_text())["policies"]
    assert policies == [{"vhost": "/", "name": "keep", "pattern": "^kept$", "apply-to": "queues",
                         "definition": {"max-length": 1}, "priority": 3}]
    c.close()
