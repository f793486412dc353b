"""Children that die with `dev`: Linux's parent-death signal, armed between fork and exec.

`dev` stops what it started, in order, on SIGINT, SIGTERM and SIGHUP. This is for when
it cannot: killed by SIGKILL, or crashed. The kernel then sends each armed child SIGTERM
itself. The setting survives exec, so it holds for Tansu and the JVM, which are not our
code and watch no pipe.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A `preexec_fn` after which the child gets `sig` when this process dies.

    None where there is no such signal (not Linux): the children then outlive a killed
    `dev`, as any process's do. The kernel sends it when the *thread* that forked the
    child ends, so only the main thread, which lives as long as the process, may use it.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("a child tied to its parent must be started from the main thread")
    # Looked up here: between fork and exec the child should only call, not load.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def arm() -> None:
        if prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
        # The parent may have died between fork and prctl: no signal would come then.
        if os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return arm
