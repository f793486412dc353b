"""How `dev` hears a stop, and the exit code it ends with; the servers' lifeline is tested
with a real killed parent, on Linux, where it exists."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from streams.devstack.lifeline import die_with_parent
from streams.devstack.stopping import StopRequest, exit_code, signals_to_catch
from tests.fixtures.proc import running


@pytest.mark.parametrize(
    ("received", "code"),
    [(None, 0), (signal.SIGHUP, 129), (signal.SIGINT, 130), (signal.SIGTERM, 143)],
)
def test_the_exit_code_is_128_plus_the_signal_as_a_shell_reports_it(
    received: signal.Signals | None, code: int
) -> None:
    assert exit_code(received) == code


def test_signals_ignored_at_the_start_stay_ignored() -> None:
    # `nohup` ignores SIGHUP; a shell ignores SIGINT for a background job.
    ignored = {signal.SIGHUP, signal.SIGINT}

    def current(sig: signal.Signals) -> object:
        return signal.SIG_IGN if sig in ignored else signal.SIG_DFL

    assert signals_to_catch(current) == [signal.SIGTERM]
    assert signals_to_catch(lambda _: signal.SIG_DFL) == [
        signal.SIGINT,
        signal.SIGTERM,
        signal.SIGHUP,
    ]


def test_the_first_stop_signal_is_the_one_reported() -> None:
    async def scenario() -> tuple[bool, signal.Signals | None, bool]:
        stop = StopRequest.installed()
        before = await stop.wait(seconds=0.01)
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal, through the loop's handler
        asked = await stop.wait(seconds=5)
        stop.receive(signal.SIGINT)  # a second Ctrl-C while stopping changes nothing
        return before, stop.received, asked

    assert asyncio.run(scenario()) == (False, signal.SIGTERM, True)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the lifeline is Linux's")
def test_a_child_with_the_lifeline_dies_with_its_killed_parent(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    # A parent that starts a long sleep with the lifeline, says its pid, and waits to be killed.
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time\n"
            "from streams.devstack.lifeline import die_with_parent\n"
            "child = subprocess.Popen(['sleep', '600'], preexec_fn=die_with_parent())\n"
            f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
            "time.sleep(600)\n",
        ]
    )
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the parent did not start its child"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert running(child)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while running(child):
        assert time.monotonic() < deadline, "the child outlived its killed parent"
        time.sleep(0.05)


def test_the_lifeline_is_refused_off_the_main_thread() -> None:
    # The kernel would signal the child when that thread ends, not when the process does.
    errors: list[BaseException] = []

    def attempt() -> None:
        try:
            die_with_parent()
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert len(errors) == (1 if sys.platform.startswith("linux") else 0)
