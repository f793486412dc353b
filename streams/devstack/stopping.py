"""How `dev` is asked to stop: Ctrl-C (SIGINT), `kill` (SIGTERM) and a closed terminal
(SIGHUP) take one path, the ordered stop, and the exit code says which, as a shell's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def exit_code(received: signal.Signals | None) -> int:
    """128 + the signal that stopped `dev`, as a shell reports a command a signal ended;
    0 when none did (the worker stopped on its own)."""
    return 0 if received is None else 128 + received


def signals_to_catch(current: Callable[[signal.Signals], object]) -> list[signal.Signals]:
    """The stop signals to catch: not those ignored when `dev` started, as `nohup` ignores
    SIGHUP and a shell ignores SIGINT for a background job."""
    return [sig for sig in STOP_SIGNALS if current(sig) is not signal.SIG_IGN]


class StopRequest:
    """The first stop signal received; later ones change nothing while `dev` stops."""

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._event = asyncio.Event()

    @classmethod
    def installed(cls) -> StopRequest:
        """One that catches the stop signals on the running loop from now on."""
        request = cls()
        loop = asyncio.get_running_loop()
        for sig in signals_to_catch(signal.getsignal):
            loop.add_signal_handler(sig, request.receive, sig)
        return request

    def receive(self, sig: signal.Signals) -> None:
        if self.received is None:
            self.received = sig
            if sig is signal.SIGHUP:
                leave_terminal()
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Whether a stop was asked for within `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        return self._event.is_set()


def leave_terminal() -> None:
    """The terminal hung up: what `dev` still writes (its last line, the exit flush) goes
    to /dev/null instead of failing with EIO, and the stop is not cut short."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
