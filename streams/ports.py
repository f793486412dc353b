"""Whether a TCP port can be listened on: commands check theirs first, so that a port in
use is one line naming the setting, not a traceback from deep inside a server."""

from __future__ import annotations

import socket


def bind_problem(host: str, port: int) -> str | None:
    """Why `port` on `host` cannot be listened on, or None when it can (or is 0: any)."""
    if port == 0:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind: a port left in TIME_WAIT by an earlier run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
