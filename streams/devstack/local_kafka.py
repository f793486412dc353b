"""Apache Kafka 4.x as a local broker: one KRaft node (broker and controller) in a JVM.

The jars come from Maven Central (`make kafka` copies them into `var/kafka/libs`; the pom
is beside this module). The log dir is formatted once and kept, so a broker started again
on the same folder keeps its topics, groups and offsets, unlike Tansu.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO

from streams.devstack.lifeline import die_with_parent
from streams.devstack.local_broker import (
    BrokerStartError,
    PortInUseError,
    free_port,
    port_open,
    stop_process,
)

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"  # as pinned in kafka/pom.xml
POM = Path(__file__).parent / "kafka" / "pom.xml"
# Small enough for a 2-core test machine beside workers, Tansu and sshd.
HEAP = "-Xmx512m"
# How Kafka's SocketServer reports a listener whose port another socket holds.
_BIND_FAILURE = re.compile(r"failed to bind to (\S+?): Address already in use")
_LOG4J = """\
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        Pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.storage
        level: WARN
"""


def default_jars() -> Path:
    return Path(os.environ.get("VARIANCE_SYNC_KAFKA_JARS") or Path("var") / "kafka" / "libs")


def missing_parts(jars: Path) -> str | None:
    """What is missing to run the broker, as one line naming the fix; None when nothing."""
    if shutil.which("java") is None:
        return "no `java` on PATH: Apache Kafka 4 needs Java 17 or later"
    if not any(jars.glob("kafka_2.13-*.jar")):
        return f"no Apache Kafka jars in {jars}: run `make kafka` first"
    return None


def server_properties(data_dir: Path, port: int, controller_port: int, host: str) -> str:
    """The broker's settings; docker-compose.yml sets the same through KAFKA_* variables."""
    return "\n".join(
        [
            "process.roles=broker,controller",
            "node.id=1",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            # A static voter: no endpoint is written into the formatted log, so a broker may
            # move to other ports (a formatted folder can be copied, as the tests do).
            f"controller.quorum.voters=1@{host}:{controller_port}",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "num.partitions=1",
            *single_node_settings(data_dir),
        ]
    )


def single_node_settings(data_dir: Path) -> list[str]:
    """What every one-node broker here shares, secured or not: its log dir, replication
    factors of 1, no join delay, no topic auto-creation; ends the file."""
    return [
        f"log.dirs={data_dir / 'logs'}",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "",
    ]


class KafkaBroker:
    """Start and stop one local Apache Kafka node; `data_dir` holds its config and logs."""

    def __init__(
        self,
        port: int,
        data_dir: Path,
        *,
        controller_port: int | None = None,
        jars: Path | None = None,
        host: str = "127.0.0.1",
        log_file: Path | None = None,
        jvm_options: tuple[str, ...] = (),
        properties: str | None = None,
        format_args: tuple[str, ...] = (),
        cluster_id: str | None = None,
        lifeline: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.controller_port = controller_port or free_port()
        self._jvm_options = jvm_options
        # The whole server.properties, when the caller brings its own (listening on `port`).
        self._properties = properties
        # More for `kafka-storage format`, such as `--add-scram` users for a secured broker.
        self._format_args = format_args
        # The nodes of one cluster share it; a lone node makes up its own.
        self._cluster_id = cluster_id
        # The JVM dies with this process (see lifeline.py). Off by default: tests start
        # nodes from worker threads, whose end would then stop them.
        self._lifeline = lifeline
        self.jars = jars or default_jars()
        self._log_file = log_file or data_dir / "kafka.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log_start = 0  # where this start's output begins in an appended log

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    def prepare(self) -> None:
        """Write the config and format the log dir, once: a formatted one is kept."""
        problem = missing_parts(self.jars)
        if problem is not None:
            raise BrokerStartError(problem)
        self._write_config()
        self._format()

    def start(self, timeout: float = 60.0) -> None:
        for port in (self.port, self.controller_port):
            if port_open(self.host, port):
                raise BrokerStartError(f"port {port} on {self.host} is already in use")
        self.prepare()
        self._log_handle = self._log_file.open("ab")
        self._log_start = self._log_handle.tell()
        self._process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [*self._java(), "kafka.Kafka", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            # Its own session: a terminal's Ctrl-C reaches only `dev`, which stops the
            # stack in order, the broker last.
            start_new_session=True,
            preexec_fn=die_with_parent() if self._lifeline else None,  # noqa: PLW1509 - see lifeline.py
        )
        self._wait_listening(timeout)
        log.info("Apache Kafka %s listening on %s", KAFKA_VERSION, self.bootstrap)

    def stop(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        # A controlled shutdown first: the log is clean for a restart.
        stop_process(process, timeout)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self.stop()

    def tool(self, main_class: str, *args: str, timeout: float = 60.0) -> str:
        """Run one of Kafka's own command-line tools from the same jars; its stdout."""
        done = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*self._java(), main_class, *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerStartError(
                f"{main_class} exited {done.returncode}: {done.stderr.decode(errors='replace')}"
            )
        return done.stdout.decode()

    def _java(self) -> list[str]:
        return [
            "java",
            HEAP,
            *self._jvm_options,
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.yaml'}",
            "-cp",
            f"{self.jars.resolve()}/*",
        ]

    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = self._properties or server_properties(
            self.data_dir, self.port, self.controller_port, self.host
        )
        self.config_file.write_text(settings, encoding="utf-8")
        (self.data_dir / "log4j2.yaml").write_text(_LOG4J, encoding="utf-8")

    def _format(self) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return  # formatted before: keep the cluster, its topics and offsets
        cluster_id = self._cluster_id or new_cluster_id()
        self.tool(
            "kafka.tools.StorageTool",
            "format",
            # One argument: an id that starts with "-" (1 in 64) is not taken for an option.
            f"--cluster-id={cluster_id}",
            *("-c", str(self.config_file)),
            *self._format_args,
        )

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            process = self._process
            if process is not None and process.poll() is not None:
                self.stop()
                raise self._exit_error(process.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerStartError(
                    f"Apache Kafka did not listen on {self.bootstrap} within {timeout:.0f}s; "
                    f"see {self._log_file}"
                )
            time.sleep(0.1)

    def _exit_error(self, code: int) -> BrokerStartError:
        with self._log_file.open("rb") as log_file:
            log_file.seek(self._log_start)
            output = log_file.read().decode(errors="replace")
        address = bind_failure(output)
        if address is not None:
            return PortInUseError(
                f"Apache Kafka could not listen on {address}: another socket holds the port; "
                f"see {self._log_file}"
            )
        return BrokerStartError(f"Apache Kafka exited with code {code}; see {self._log_file}")


def new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def bind_failure(output: str) -> str | None:
    """The host:port that Kafka could not bind, from its log; None when that is not why."""
    match = _BIND_FAILURE.search(output)
    return match[1] if match else None
