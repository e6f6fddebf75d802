"""RabbitMQ's Python tutorials 1 (hello world) and 2 (work queues), run unchanged against Warren."""


def test_tutorial_1_hello_world(run_script):
    receiver = run_script("receive.py")
    assert receiver.wait_for(lambda ls: any("Waiting for messages" in l for l in ls))
    sender = run_script("send.py")
    assert sender.finish() == 0
    assert " [x] Sent 'Hello World!'" in sender.lines
    assert receiver.wait_for(lambda ls: " [x] Received b'Hello World!'" in ls), receiver.lines


def test_tutorial_2_work_queues_fair_dispatch(run_script):
    workers = [run_script("worker.py") for _ in range(2)]
    for w in workers:
        assert w.wait_for(lambda ls: any("Waiting for messages" in l for l in ls)), w.lines
    tasks = ["First message.", "Second message.", "Third message.", "Fourth message.", "Fifth message.", "Sixth."]
    for t in tasks:
        s = run_script("new_task.py", *t.split())
        assert s.finish() == 0
        assert f" [x] Sent {t}" in s.lines

    def received(w):
        return [l[len(" [x] Received "):] for l in w.lines if l.startswith(" [x] Received ")]

    def all_done(_):
        return sum(w.lines.count(" [x] Done") for w in workers) == len(tasks)

    assert workers[0].wait_for(all_done, timeout=30), [w.lines for w in workers]
    got = received(workers[0]) + received(workers[1])
    assert sorted(got) == sorted(tasks), got
    # prefetch_count=1: each worker holds one task at a time, so both take part.
    assert received(workers[0]) and received(workers[1])
