"""Short strings are bytes (issue 14), seen from pika, which sends `bytes` as they are and hands back
what is not UTF-8 as `bytes`. Warren decoded short strings lossily: a routing key of 253 'a' and two
0xFF came back as 253 'a', and after a kill -9 recovery dropped it with the confirmed messages
behind it. As RabbitMQ 3.10, routing keys, table keys and the short-string properties travel byte for byte. (pika
sends no names that are not UTF-8: tests/short_strings.rs checks the 501 for those.)"""

import signal

import pika

KEY = b"a" * 253 + b"\xff\xff"


def test_pika_gets_a_routing_key_and_properties_that_are_not_utf8_back_as_sent(broker):
    ch = broker.connect().channel()
    ch.queue_declare("bytes")
    ch.queue_bind("bytes", "amq.topic", routing_key="#")
    props = pika.BasicProperties(message_id=b"id\xfe", correlation_id=b"\xc3", app_id="app", headers={b"h\xff": "v"})
    ch.basic_publish("amq.topic", KEY, b"body", props)
    method, got, body = next(ch.consume("bytes", auto_ack=True, inactivity_timeout=5))
    assert method is not None, "nothing delivered"
    assert (method.routing_key, body) == (KEY, b"body")
    assert (got.message_id, got.correlation_id, got.app_id, got.headers) == (b"id\xfe", b"\xc3", "app", {b"h\xff": "v"})


def test_pika_routing_keys_that_are_not_utf8_survive_kill_9(broker):
    ch = broker.connect().channel()
    ch.queue_declare("kept", durable=True)
    ch.queue_bind("kept", "amq.topic", routing_key="#")
    ch.confirm_delivery()
    keys = [KEY if i % 2 else f"k.{i}.".encode() + b"\xfe" for i in range(20)]
    for i, key in enumerate(keys):
        ch.basic_publish("amq.topic", key, str(i).encode(), pika.BasicProperties(delivery_mode=2))
    broker.halt(signal.SIGKILL)
    broker.start()
    ch = broker.connect().channel()
    back = []
    while True:
        method, _, body = ch.basic_get("kept", auto_ack=True)
        if method is None:
            break
        back.append((int(body), method.routing_key))
    assert back == list(enumerate(keys))

