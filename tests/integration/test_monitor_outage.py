"""The worker's lag monitor only observes, so a broker that is away for longer than any
one wait for it must not end it: once, its raw NodeNotReadyError crashed the worker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from pathlib import Path

from sinks.feed_publisher import PublisherOptions
from sinks.local import LocalDestination
from sinks.retry import Backoff
from streams.config import KafkaConfig
from streams.core.batching import WindowPolicy
from streams.core.lag_status import LagPolicy
from streams.core.pending import SourceRegistry
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import BrokerError, prepare_broker
from streams.kafka.offsets import FETCH_TIMEOUT
from streams.worker.monitor import Monitor
from streams.worker.publish_loop import PublishLoop
from tests.fixtures.broker import broker

__all__ = ["broker"]


def monitor_on(kafka: KafkaConfig, tmp_path: Path, sent: list[bytes]) -> Monitor:
    sources = SourceRegistry({})
    loop = PublishLoop(
        sources,
        LocalDestination(tmp_path / "netsuite"),
        PublisherOptions(file_prefix="acme", max_rows=100),
        WindowPolicy(window_seconds=60, max_rows=100),
        Backoff(initial=1, maximum=30, jitter=0),
    )

    async def send_status(key: bytes, value: bytes) -> None:
        sent.append(value)

    return Monitor(kafka, sources, loop, send_status, policy=LagPolicy.for_window(60), interval=0.2)


async def until(check: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_the_lag_monitor_outlasts_a_broker_that_stays_away(
    broker: LocalBroker, tmp_path: Path
) -> None:
    kafka = KafkaConfig(bootstrap=broker.bootstrap)
    await prepare_broker(kafka)
    sent: list[bytes] = []
    monitor = monitor_on(kafka, tmp_path, sent)
    task = asyncio.create_task(monitor.run())
    try:
        await until(lambda: monitor.report is not None, 60, "a first report")
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(FETCH_TIMEOUT + 5)
        assert not task.done(), task.exception()
        monitor.report, reported = None, len(sent)
        await asyncio.to_thread(broker.start)
        # Apache Kafka keeps its topics; Tansu keeps none, and the monitor only lists them
        # (it never creates one), so create them as a starting worker does. A read still in
        # flight may have had Tansu create one by its name first: either way they exist.
        with contextlib.suppress(BrokerError):
            await prepare_broker(kafka)
        await until(
            lambda: monitor.report is not None and len(sent) > reported + 1,  # a whole round
            60,
            "a report and a status after the outage",
        )
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
