"""`variance-sync dev`: the whole loop on one machine, in the foreground.

Starts a broker (Tansu, in memory; or with `--broker kafka` Apache Kafka, keeping its data
in DATA/kafka) and asyncssh's SFTP server (rooted at DATA/sftp, NetSuite tree under
DATA/sftp/netsuite), creates the topics, then a worker process, sample traffic and the
NetSuite simulator (`netsuite-sim`, booking into DATA/netsuite-sim.sqlite).
SIGINT, SIGTERM or SIGHUP stops everything it started, in order (stopping.py); if `dev`
is killed outright, the kernel stops its child processes (lifeline.py). `DATA/stack.env`
holds the environment a separately started `variance-sync worker` needs to join this
stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sinks.feeds import FEEDS
from sinks.layout import ensure_layout
from sinks.local import LocalDestination
from sinks.sftp import SFTPDestination
from streams.config import DEFAULT_CONFIG, Settings, load_settings
from streams.devstack import netsuite_sim
from streams.devstack.lifeline import die_with_parent
from streams.devstack.local_broker import EmbeddedBroker, LocalBroker
from streams.devstack.local_kafka import KafkaBroker
from streams.devstack.sample import Catalog, SampleGenerator, run_sample_traffic
from streams.devstack.sftp_server import EmbeddedSFTPServer
from streams.devstack.stopping import StopRequest, exit_code
from streams.errors import UsageError
from streams.kafka.broker import prepare_broker
from streams.logs import JsonFormatter, LogFormat
from streams.ports import bind_problem
from streams.producer.client import VarianceProducer

log = logging.getLogger(__name__)

NETSUITE_DIR = "netsuite"
# Short, so a new user sees files move to archive/ soon after they land in csv/.
NETSUITE_SIM_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class DevOptions:
    data_dir: Path
    broker: Literal["tansu", "kafka"]
    kafka_port: int
    sftp_port: int
    config: Path | None
    window_seconds: float | None
    sample: bool
    worker: bool
    netsuite: bool = True
    log_format: LogFormat | None = None  # `--log-format`, else the config's


def worker_environment(
    options: DevOptions, sftp: EmbeddedSFTPServer, config: Path
) -> dict[str, str]:
    """What a worker needs to join this stack, as `VARIANCE_SYNC_*` variables."""
    data = options.data_dir.resolve()
    env = {
        "VARIANCE_SYNC_KAFKA__BOOTSTRAP": f"127.0.0.1:{options.kafka_port}",
        "VARIANCE_SYNC_KAFKA__FLAVOR": options.broker,
        "VARIANCE_SYNC_PUBLISH__DESTINATION": "sftp",
        "VARIANCE_SYNC_SFTP__HOST": "127.0.0.1",
        "VARIANCE_SYNC_SFTP__PORT": str(sftp.port),
        "VARIANCE_SYNC_SFTP__USERNAME": sftp.username,
        "VARIANCE_SYNC_SFTP__BASE_DIR": NETSUITE_DIR,
        "VARIANCE_SYNC_SFTP__PRIVATE_KEY": str(sftp.client_key),
        "VARIANCE_SYNC_SFTP__KNOWN_HOSTS": str(sftp.known_hosts),
        # Tansu forgets everything on restart, so local table state must not outlive it;
        # Apache Kafka keeps its data, and the worker runs as in production.
        "VARIANCE_SYNC_WORKER__STORE": "memory" if options.broker == "tansu" else "rocksdb",
        "VARIANCE_SYNC_WORKER__DATA_DIR": str(data / "worker"),
        "VARIANCE_SYNC_CONFIG": str(config.resolve()),
    }
    if options.window_seconds is not None:
        env["VARIANCE_SYNC_BATCHING__WINDOW_SECONDS"] = str(options.window_seconds)
    return env


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """Whole or not at all: a `source` (or a test) reading it meanwhile sees no half file."""
    lines = [f"export {key}={value!r}" for key, value in sorted(env.items())]
    partial = path.with_name(f".{path.name}.part")
    partial.write_text("\n".join(lines) + "\n", encoding="utf-8")
    partial.replace(path)


async def run_dev(options: DevOptions) -> int:
    config = options.config or DEFAULT_CONFIG
    data = options.data_dir
    netsuite_root = data / "sftp" / NETSUITE_DIR
    # Fail fast, with one line, on a bad config. The worker gets the SFTP settings from
    # the environment below; this process only needs the routing and Kafka sections.
    settings = load_settings(
        config, {"publish": {"destination": "local", "local_dir": str(netsuite_root)}}
    )
    if options.worker:
        check_web_port(settings)
    (data / "logs").mkdir(parents=True, exist_ok=True)
    netsuite_root.mkdir(parents=True, exist_ok=True)
    await ensure_layout(LocalDestination(netsuite_root))

    # Caught from here on: a signal during the start lets it finish, then stops in order.
    stop = StopRequest.installed()
    broker = local_broker(options)
    broker.start()
    sftp = EmbeddedSFTPServer(root=data / "sftp", state_dir=data / "ssh", port=options.sftp_port)
    worker: subprocess.Popen[bytes] | None = None
    traffic: asyncio.Task[None] | None = None
    importer: asyncio.Task[None] | None = None
    try:
        await sftp.start()
        kafka = settings.kafka.model_copy(
            update={"bootstrap": broker.bootstrap, "flavor": options.broker}
        )
        await prepare_broker(kafka)
        env = worker_environment(options, sftp, config)
        write_env_file(data / "stack.env", env)
        if options.worker:
            worker = start_worker(env, data / "logs" / "worker.log", options.log_format)
        producer = VarianceProducer(kafka=kafka)
        if options.sample:
            await producer.start()
            rng = random.Random()  # noqa: S311 - sample data, not security
            generator = SampleGenerator(
                Catalog.build(dict(settings.netsuite.facilities), 200, rng), rng
            )
            traffic = asyncio.create_task(run_sample_traffic(producer, generator))
        if options.netsuite:
            importer = asyncio.create_task(
                run_netsuite_sim(sftp, data, options.log_format or settings.worker.log_format)
            )
        print_banner(options, broker, sftp, netsuite_root, settings)
        await wait_for_stop(worker, stop)
    finally:
        # In dependency order: what feeds the worker, the worker, what reads its files,
        # the SFTP server they go to, and the broker under all of it.
        if traffic is not None:
            traffic.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await traffic
            await producer.stop()
        stop_worker(worker)
        if importer is not None:
            importer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await importer
        await sftp.stop()
        broker.stop()
    print("variance-sync dev: stopped", flush=True)
    return exit_code(stop.received)


def check_web_port(settings: Settings) -> None:
    web = settings.worker
    if (problem := bind_problem(web.web_host, web.web_port)) is not None:
        raise UsageError(
            f"the worker's web port {web.web_port}: {problem}; set another with "
            "VARIANCE_SYNC_WORKER__WEB_PORT or [worker] web_port in --config"
        )


def local_broker(options: DevOptions) -> LocalBroker:
    logs = options.data_dir / "logs"
    if options.broker == "tansu":
        return EmbeddedBroker(options.kafka_port, log_file=logs / "tansu.log", lifeline=True)
    return KafkaBroker(
        options.kafka_port, options.data_dir / "kafka", log_file=logs / "kafka.log", lifeline=True
    )


async def run_netsuite_sim(
    sftp: EmbeddedSFTPServer, data: Path, log_format: LogFormat = "text"
) -> None:
    """The simulator on this event loop, reading the SFTP folders as NetSuite would."""
    handler = logging.FileHandler(data / "logs" / "netsuite-sim.log", encoding="utf-8")
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    sim_log = logging.getLogger(netsuite_sim.__name__)
    sim_log.addHandler(handler)
    sim_log.setLevel(logging.INFO)
    # Its own file only: failed imports must not interleave with the banner.
    sim_log.propagate = False
    destination = SFTPDestination(sftp.sftp_params(NETSUITE_DIR))
    try:
        await netsuite_sim.serve(destination, data / "netsuite-sim.sqlite", NETSUITE_SIM_INTERVAL)
    except Exception as exc:
        # Say so and leave the rest of the stack running: it is still useful without it.
        sim_log.exception("netsuite-sim stopped")
        print(f"variance-sync dev: the NetSuite simulator stopped: {exc}", flush=True)
    finally:
        sim_log.removeHandler(handler)
        handler.close()


def start_worker(
    env: dict[str, str], log_file: Path, log_format: LogFormat | None = None
) -> subprocess.Popen[bytes]:
    # Without the flag the worker reads `log_format` from the same config and environment.
    flag = ["--log-format", log_format] if log_format is not None else []
    with log_file.open("ab") as handle:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module, no shell
            [
                sys.executable,
                "-m",
                "streams.cli",
                *flag,
                "worker",
                "--config",
                env["VARIANCE_SYNC_CONFIG"],
            ],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stopped by `dev` in order, not by the terminal
            preexec_fn=die_with_parent(),  # noqa: PLW1509 - see lifeline.py
        )


def stop_worker(worker: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    if worker is None or worker.poll() is not None:
        return
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def wait_for_stop(worker: subprocess.Popen[bytes] | None, stop: StopRequest) -> None:
    """Until a stop signal, or until the worker dies (then say so and stop too)."""
    while not await stop.wait(seconds=1.0):
        if worker is not None and worker.poll() is not None:
            print(
                f"variance-sync dev: the worker exited with code {worker.returncode}; see its log",
                flush=True,
            )
            return


def print_banner(
    options: DevOptions,
    broker: LocalBroker,
    sftp: EmbeddedSFTPServer,
    root: Path,
    settings: Settings,
) -> None:
    data = options.data_dir
    window = options.window_seconds or settings.batching.window_seconds
    web = f"http://{settings.worker.web_host}:{settings.worker.web_port}"
    kind = "Tansu, in memory" if options.broker == "tansu" else f"Apache Kafka, {data / 'kafka'}"
    lines = [
        "variance-sync dev is running (Ctrl-C, SIGTERM or closing the terminal stops everything)",
        f"  Kafka broker             : {broker.bootstrap} ({kind})",
        f"  SFTP (asyncssh)          : {sftp.username}@127.0.0.1:{sftp.port}, root {data / 'sftp'}",
        *(f"  {feed.name + ' CSVs':<25}: {root / feed.csv_dir}" for feed in FEEDS),
        f"  batch manifests          : {root / 'variance-sync' / 'manifests'}",
        f"  logs                     : {data / 'logs'}",
        f"  worker environment       : {data / 'stack.env'}",
        "  worker                   : "
        + (
            f"{web}/console (operator console), /ready, /batches, /lag, /metrics; first "
            f"CSVs due about {window:g} s "
            "after the first events (the batch window)"
            if options.worker
            else "off (--no-worker)"
        ),
        f"  sample traffic           : {'on' if options.sample else 'off (--no-sample)'}",
    ]
    if options.netsuite:
        ledger = data / "netsuite-sim.sqlite"
        lines += [
            f"  NetSuite simulator       : imports csv/ into archive/ every "
            f"{NETSUITE_SIM_INTERVAL:g} s; log {data / 'logs' / 'netsuite-sim.log'}",
            f"  NetSuite books (SQLite)  : {ledger}; see them with: "
            f"variance-sync netsuite-sim --ledger {ledger} --report",
        ]
    else:
        lines.append("  NetSuite simulator       : off (--no-netsuite)")
    print("\n".join(lines), flush=True)
