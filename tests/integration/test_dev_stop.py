"""Ctrl-C in a real terminal stops `variance-sync dev` in order and at once: the terminal
sends SIGINT to the whole foreground process group, so the stack's servers must not be
in it, or the broker dies first under a running worker."""

from __future__ import annotations

import os
import pty
import select
import signal
import sys
import time
from pathlib import Path

from streams.devstack.broker import free_port, port_open

BANNER = b"variance-sync dev is running"


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


def test_ctrl_c_stops_the_whole_stack_in_order_without_errors(tmp_path: Path) -> None:
    ports = {"kafka": free_port(), "sftp": free_port(), "web": free_port()}
    argv = [
        sys.executable,
        "-m",
        "streams.cli",
        "dev",
        *("--data-dir", str(tmp_path), "--window-seconds", "1"),
        *("--kafka-port", str(ports["kafka"]), "--sftp-port", str(ports["sftp"])),
    ]
    pid, fd = pty.fork()
    if pid == 0:  # the child: dev on the terminal, as `make run` is
        os.environ["VARIANCE_SYNC_WORKER__WEB_PORT"] = str(ports["web"])
        os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter and module
    seen = bytearray()
    try:
        assert read_until(fd, BANNER, seen, 90), seen.decode(errors="replace")
        csv = tmp_path / "sftp" / "netsuite" / "inventoryadjustment" / "csv"
        deadline = time.monotonic() + 60
        while not any(csv.glob("*.csv")) and time.monotonic() < deadline:
            time.sleep(0.5)  # traffic flows and the worker publishes: a busy stack
        os.write(fd, b"\x03")  # the terminal turns it into SIGINT for the process group
        # Within seconds (5 measured), not the 30 s of a broker killed under the worker.
        assert read_until(fd, b"variance-sync dev: stopped", seen, 10), seen.decode()
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
    gone = {name: not port_open("127.0.0.1", port) for name, port in ports.items()}
    assert gone == {"kafka": True, "sftp": True, "web": True}
    log = (tmp_path / "logs" / "worker.log").read_text(encoding="utf-8", errors="replace")
    stop = log.find("Stopping")  # Faust's first line of the shutdown
    after = log[stop if stop >= 0 else 0 :]
    assert "Traceback" not in after
    assert "[ERROR]" not in after
