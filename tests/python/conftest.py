"""Fixtures: the real warren binary on a free port (port 0, read back from its first line)."""

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("WARREN_BIN", str(ROOT / "target" / "debug" / "warren"))
TUTORIALS = pathlib.Path(__file__).resolve().parent / "tutorials"


CTL = str(pathlib.Path(BINARY).parent / "warrenctl")


def ctl(b, *args, ok=True):
    """warrenctl against broker `b`'s data dir; with `ok`, it must succeed."""
    p = subprocess.run([CTL, "--data-dir", b.data.name, *args], capture_output=True, text=True, timeout=30)
    if ok:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def wait(predicate, timeout=10):
    """Whether `predicate` came true within `timeout` seconds (looked at every 50 ms)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def settled(read, pump=lambda: time.sleep(0.05), timeout=10):
    """What `read()` gives once it gives the same twice in a row, `pump()` between the two reads
    (e.g. a queue's depth while messages a blocked publisher sent are still landing)."""
    last = read()
    deadline = time.time() + timeout
    while time.time() < deadline:
        pump()
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError(f"still changing after {timeout} s: {last}")


def closed_with(code, fn, *args, **kw):
    """Runs `fn`, which must make the broker close the channel with `code`; returns the reply text."""
    with pytest.raises(ChannelClosedByBroker) as e:
        fn(*args, **kw)
    assert e.value.reply_code == code, e.value.reply_text
    return e.value.reply_text


class Broker:
    def __init__(self, shards=2, extra=(), data_dir=None, http=False):
        """`http`: also serve the management API and /metrics, each on a free port (`mgmt_port`,
        `prometheus_port`); off otherwise, so brokers never contend for the default ports."""
        self.data = tempfile.TemporaryDirectory(prefix="warren-pytest-", dir=data_dir)
        self.shards, self.extra, self.http = shards, list(extra), http
        self.conns = []
        self.start()

    def start(self):
        """Starts the broker on this data dir (again, after `halt`), on a new free port."""
        listen = "127.0.0.1:0" if self.http else "off"
        http = ["--management-listen", listen, "--prometheus-listen", listen]
        self.proc = subprocess.Popen(
            [BINARY, "--listen", "127.0.0.1:0", *http, "--shards", str(self.shards), "--data-dir", self.data.name, *self.extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "RUST_LOG": "warren=info"},
        )
        line = self.proc.stdout.readline()
        if not line.startswith("warren listening on "):
            self.proc.kill()
            raise RuntimeError(f"warren did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line.split()[3].rsplit(":", 1)[1])
        if self.http:
            # The lines after the first name the HTTP listeners.
            self.mgmt_port = int(self.proc.stdout.readline().split()[-1].rsplit(":", 1)[1])
            self.prometheus_port = int(self.proc.stdout.readline().split()[-1].rsplit(":", 1)[1])
        self.log = []
        threading.Thread(target=self._drain, args=(self.proc, self.log), daemon=True).start()

    @staticmethod
    def _drain(proc, log):
        for line in proc.stderr:
            log.append(line.rstrip())

    def params(self, **kw):
        return pika.ConnectionParameters("127.0.0.1", self.port, **kw)

    def connect(self, **kw):
        c = pika.BlockingConnection(self.params(**kw))
        self.conns.append(c)
        return c

    def halt(self, sig=signal.SIGTERM):
        """Stops the process (SIGTERM: a clean stop; SIGKILL: a crash), keeping the data dir."""
        # Close what the test left open, so shutdown does not wait for unanswered close handshakes.
        if sig == signal.SIGTERM:
            for c in self.conns:
                try:
                    if c.is_open:
                        c.close()
                except Exception:
                    pass
        self.conns = []
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self):
        self.halt()
        self.data.cleanup()


@pytest.fixture
def broker():
    b = Broker(shards=2)
    yield b
    b.stop()


class Script:
    """A tutorial script run unchanged as its own process; only pika's default port is pointed at
    the test broker (the tutorials connect to localhost's default port)."""

    def __init__(self, broker, name, *args):
        runner = (
            "import os, runpy, sys, pika.connection\n"
            "pika.connection.Parameters.DEFAULT_PORT = int(os.environ['WARREN_PORT'])\n"
            "sys.argv = sys.argv[1:]\n"
            "runpy.run_path(sys.argv[0], run_name='__main__')\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-c", runner, str(TUTORIALS / name), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "WARREN_PORT": str(broker.port)},
        )
        self.lines = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate(self.lines):
                return True
            time.sleep(0.05)
        return False

    def finish(self, timeout=15):
        self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return self.proc.returncode

    def interrupt(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def run_script(broker):
    started = []

    def start(name, *args):
        s = Script(broker, name, *args)
        started.append(s)
        return s

    yield start
    for s in started:
        s.interrupt()
