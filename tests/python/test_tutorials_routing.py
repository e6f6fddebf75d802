"""RabbitMQ's Python tutorials 3 (publish/subscribe), 4 (routing), 5 (topics) and 6 (RPC), run
unchanged against Warren with 2 shards."""


def waiting(script):
    return script.wait_for(lambda ls: any("Waiting for logs" in l for l in ls))


def test_tutorial_3_publish_subscribe(run_script):
    receivers = [run_script("receive_logs.py") for _ in range(3)]
    for r in receivers:
        assert waiting(r), r.lines
    s = run_script("emit_log.py", "info:", "fanned", "out")
    assert s.finish() == 0
    for r in receivers:
        assert r.wait_for(lambda ls: " [x] b'info: fanned out'" in ls), r.lines


def test_tutorial_4_routing(run_script):
    errors = run_script("receive_logs_direct.py", "error")
    all_ = run_script("receive_logs_direct.py", "info", "warning", "error")
    assert waiting(errors) and waiting(all_)
    for sev, msg in [("error", "disk full"), ("info", "hello"), ("warning", "careful"), ("debug", "nobody")]:
        assert run_script("emit_log_direct.py", sev, msg).finish() == 0
    assert all_.wait_for(lambda ls: all(f" [x] {s}:b'{m}'" in ls for s, m in
                                        [("error", "disk full"), ("info", "hello"), ("warning", "careful")])), all_.lines
    assert errors.wait_for(lambda ls: " [x] error:b'disk full'" in ls), errors.lines
    assert not any("hello" in l or "careful" in l or "nobody" in l for l in errors.lines)
    assert not any("nobody" in l for l in all_.lines)


def test_tutorial_5_topics(run_script):
    kern = run_script("receive_logs_topic.py", "kern.*")
    crit = run_script("receive_logs_topic.py", "*.critical")
    every = run_script("receive_logs_topic.py", "#")
    both = run_script("receive_logs_topic.py", "kern.*", "*.critical")
    for r in (kern, crit, every, both):
        assert waiting(r), r.lines
    sent = ["kern.critical", "kern.info", "cron.critical", "cron.info.deep"]
    for key in sent:
        assert run_script("emit_log_topic.py", key, "msg-" + key).finish() == 0

    def got(r):
        return sorted(l.split(":", 1)[0][len(" [x] "):] for l in r.lines if l.startswith(" [x] "))

    assert every.wait_for(lambda ls: len([l for l in ls if l.startswith(" [x] ")]) == 4), every.lines
    assert both.wait_for(lambda ls: len([l for l in ls if l.startswith(" [x] ")]) == 3), both.lines
    assert kern.wait_for(lambda ls: len([l for l in ls if l.startswith(" [x] ")]) == 2), kern.lines
    assert crit.wait_for(lambda ls: len([l for l in ls if l.startswith(" [x] ")]) == 2), crit.lines
    assert got(kern) == ["kern.critical", "kern.info"]
    assert got(crit) == ["cron.critical", "kern.critical"]
    # kern.critical matches both bindings of `both` but is delivered once.
    assert got(both) == ["cron.critical", "kern.critical", "kern.info"]
    assert got(every) == sorted(sent)


def test_tutorial_6_rpc(run_script):
    server = run_script("rpc_server.py")
    assert server.wait_for(lambda ls: " [x] Awaiting RPC requests" in ls), server.lines
    client = run_script("rpc_client.py")
    assert client.finish(timeout=60) == 0, client.lines
    assert client.lines == [" [x] Requesting fib(30)", " [.] Got 832040"]
    assert " [.] fib(30)" in server.lines
