"""Running it as a service (issue 19): --version, the systemd unit, log lines that name their
shard (text and JSON), and the file descriptor limit raised at start."""

import json
import pathlib
import resource
import shutil
import subprocess

import pytest

from conftest import BINARY, ROOT, Broker, wait


def wait_for_line(b, predicate, timeout=10):
    return wait(lambda: any(predicate(line) for line in b.log), timeout)


def test_version():
    out = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 0
    assert out.stdout.startswith("warren ")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "config" / "warren.service").read_text()
    # The unit names the installed path; point it at the binary under test.
    unit = unit.replace("/usr/local/bin/warren", str(pathlib.Path(BINARY).resolve()))
    path = tmp_path / "warren.service"
    path.write_text(unit)
    p = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and "warren.service" not in p.stderr, p.stderr


def test_text_log_lines_carry_time_level_and_shard():
    b = Broker(shards=2)
    try:
        c = b.connect()
        c.channel().queue_declare("logged")
        c.close()
        assert wait_for_line(b, lambda line: " INFO  [shard " in line and "accepting AMQP connection" in line), b.log
        assert all(line[:4].isdigit() and line[10] == "T" for line in b.log if line), b.log
    finally:
        b.stop()


def test_json_log_lines(tmp_path):
    config = tmp_path / "warren.toml"
    config.write_text('log_format = "json"\n')
    b = Broker(shards=2, extra=["--config", str(config)])
    try:
        b.connect().close()
        assert wait_for_line(b, lambda line: "accepting AMQP connection" in line), b.log
        records = [json.loads(line) for line in b.log if line]
        assert all({"ts", "level", "thread", "target", "msg"} <= r.keys() for r in records), records
        accepted = [r for r in records if "accepting AMQP connection" in r["msg"]]
        assert accepted[0]["level"] == "INFO" and accepted[0]["thread"] in ("shard 0", "shard 1")
    finally:
        b.stop()


def test_soft_file_descriptor_limit_is_raised_to_the_hard_limit(tmp_path, monkeypatch):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard <= 1024:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    # Start the broker as a shell with the common default soft limit would.
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        b = Broker(shards=1)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        want = f"file descriptor limit: {hard} (soft limit was 1024"
        assert wait_for_line(b, lambda line: want in line), b.log
    finally:
        b.stop()
