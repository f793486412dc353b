"""`variance-sync dev` never leaves a server behind, however it ends.

Ctrl-C in a real terminal, `kill` (SIGTERM) and closing the terminal (SIGHUP) take one
path, the ordered stop, and end with 128 + the signal. When `dev` itself is killed
(SIGKILL), the kernel stops what it started (the parent-death signal). Every case runs on
free ports only, and checks the processes `dev` started, found in /proc before the
signal, and the ports they held.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from streams.devstack.local_broker import free_port, port_open
from streams.devstack.local_kafka import default_jars, missing_parts
from tests.fixtures.ci import require
from tests.fixtures.proc import command_line, descendants, running

BANNER = b"variance-sync dev is running"
# The ordered stop takes seconds (5 measured for Ctrl-C on a busy stack); the kernel's
# SIGTERM to a worker whose broker died with it takes longer, as Faust gives up on it.
STOP_WITHIN = 60.0


def read_until(fd: int, needle: bytes, seen: bytearray, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                return needle in seen
            if not chunk:
                break
            seen += chunk
    return needle in seen


class DevOnTerminal:
    """`variance-sync dev` on a terminal of its own, as `make run` is, on free ports."""

    def __init__(self, data: Path, broker: str) -> None:
        if broker == "kafka" and (problem := missing_parts(default_jars())) is not None:
            require(f"Apache Kafka: {problem}")
        self.data = data
        self.ports = {"kafka": free_port(), "sftp": free_port(), "web": free_port()}
        argv = [
            sys.executable,
            "-m",
            "streams.cli",
            "dev",
            *("--broker", broker, "--data-dir", str(data), "--window-seconds", "1"),
            *("--kafka-port", str(self.ports["kafka"]), "--sftp-port", str(self.ports["sftp"])),
        ]
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: dev on the terminal
            os.environ["VARIANCE_SYNC_WORKER__WEB_PORT"] = str(self.ports["web"])
            os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module
        self.seen = bytearray()
        self.status: int | None = None

    def wait_up(self) -> set[int]:
        """Until the banner is out and the worker answers; what `dev` runs by then."""
        assert read_until(self.fd, BANNER, self.seen, 120), self.output()
        deadline = time.monotonic() + 60
        while not port_open("127.0.0.1", self.ports["web"]):
            assert time.monotonic() < deadline, self.output()
            time.sleep(0.2)
        return descendants(self.pid)

    def close_terminal(self) -> None:
        os.close(self.fd)
        self.fd = -1

    def wait_exit(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = status
                break
            assert time.monotonic() < deadline, f"dev still runs: {self.output()}"
            if self.fd >= 0:
                read_until(self.fd, b"\0", self.seen, 0.2)  # keep the terminal drained
            else:
                time.sleep(0.2)
        return os.waitstatus_to_exitcode(self.status)

    def output(self) -> str:
        return self.seen.decode(errors="replace")

    def close(self, started: set[int]) -> None:
        """Whatever the test's outcome, leave nothing running."""
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        for pid in started:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        if self.fd >= 0:
            os.close(self.fd)


def servers(started: set[int]) -> dict[str, bool]:
    """Which servers are among `started`, by command line."""
    commands = [command_line(pid) for pid in started]
    return {
        "broker": any("tansu" in c or "kafka.Kafka" in c for c in commands),
        "worker": any("streams.cli" in c and " worker " in c for c in commands),
    }


def assert_all_gone(dev: DevOnTerminal, started: set[int]) -> None:
    deadline = time.monotonic() + STOP_WITHIN
    while left := {pid: command_line(pid) for pid in started if running(pid)}:
        assert time.monotonic() < deadline, f"still running after {STOP_WITHIN:g} s: {left}"
        time.sleep(0.2)
    taken = {name: port for name, port in dev.ports.items() if port_open("127.0.0.1", port)}
    assert taken == {}


def test_ctrl_c_stops_the_whole_stack_in_order_without_errors(tmp_path: Path) -> None:
    """The terminal sends SIGINT to the whole foreground process group, so the stack's
    servers must not be in it, or the broker dies first under a running worker."""
    dev = DevOnTerminal(tmp_path, "tansu")
    started: set[int] = set()
    try:
        started = dev.wait_up()
        assert servers(started) == {"broker": True, "worker": True}
        csv = tmp_path / "sftp" / "netsuite" / "inventoryadjustment" / "csv"
        deadline = time.monotonic() + 60
        while not any(csv.glob("*.csv")) and time.monotonic() < deadline:
            time.sleep(0.5)  # traffic flows and the worker publishes: a busy stack
        os.write(dev.fd, b"\x03")  # the terminal turns it into SIGINT for the process group
        # Within seconds (5 measured), not the 30 s of a broker killed under the worker.
        assert read_until(dev.fd, b"variance-sync dev: stopped", dev.seen, 10), dev.output()
        assert dev.wait_exit(10) == 128 + signal.SIGINT
        assert_all_gone(dev, started)
    finally:
        dev.close(started)
    log = (tmp_path / "logs" / "worker.log").read_text(encoding="utf-8", errors="replace")
    stop = log.find("Stopping")  # Faust's first line of the shutdown
    after = log[stop if stop >= 0 else 0 :]
    assert "Traceback" not in after
    assert "[ERROR]" not in after


@pytest.mark.parametrize(
    ("broker", "sig"),
    [
        ("tansu", signal.SIGHUP),
        ("tansu", signal.SIGTERM),
        ("tansu", signal.SIGKILL),
        # A JVM left behind is the worst orphan: it holds two ports and half a gigabyte.
        ("kafka", signal.SIGHUP),
        ("kafka", signal.SIGKILL),
    ],
    ids=["tansu-hangup", "tansu-term", "tansu-kill", "kafka-hangup", "kafka-kill"],
)
def test_nothing_dev_started_outlives_it(tmp_path: Path, broker: str, sig: signal.Signals) -> None:
    dev = DevOnTerminal(tmp_path, broker)
    started: set[int] = set()
    try:
        started = dev.wait_up()
        assert servers(started) == {"broker": True, "worker": True}
        if sig is signal.SIGHUP:
            dev.close_terminal()  # the terminal window closes: the kernel hangs up
        else:
            os.kill(dev.pid, sig)
        # SIGKILL ends `dev` at once; the others end it after the ordered stop.
        expected = -signal.SIGKILL if sig is signal.SIGKILL else 128 + sig
        assert dev.wait_exit(STOP_WITHIN) == expected
        assert_all_gone(dev, started)
    finally:
        dev.close(started)
    if sig is not signal.SIGKILL:  # the ordered stop: the worker stopped cleanly
        log = (tmp_path / "logs" / "worker.log").read_text(encoding="utf-8", errors="replace")
        after = log[max(log.find("Stopping"), 0) :]
        assert "Traceback" not in after
