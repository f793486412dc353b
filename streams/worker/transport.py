"""Faust's aiokafka transport, reading committed records only; and asking for a new
assignment.

Where the broker has transactions the worker writes its changelogs and dead letters in
them (`streams.worker.changelog_writer`), and a fenced owner's aborted writes must never
reach a table. Faust reads committed records only in its own exactly-once mode, which
also turns on its transactional producer, commits and recovery waits that the worker does
not use; and it picks the isolation level where it builds its consumer. So this module
gives the app the same transport with one difference: the consumer it builds reads
committed (`isolation.level=read_committed`). For topics written without transactions
(Tansu, and producers that use none) it reads exactly what it read before.
"""

from __future__ import annotations

from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver


class _CommittedReadThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka only when it starts, which is after this returns.
        consumer._isolation_level = "read_committed"
        return consumer


class _CommittedReadConsumer(driver.Consumer):
    def _new_consumer_thread(self) -> Any:
        return _CommittedReadThread(self, loop=self.loop, beacon=self.beacon)


class CommittedReadTransport(driver.Transport):
    Consumer = _CommittedReadConsumer


def read_committed(app: faust.App) -> None:
    """Give `app` the transport above (before its consumer is built)."""
    app.transport = CommittedReadTransport(app.conf.broker_consumer, app)


async def rejoin_group(app: faust.App) -> None:
    """Ask the group coordinator for a new assignment (a rebalance), as a change of
    subscription would. A partition whose transactional producer was fenced or failed
    can be written again only by a producer opened at its next assignment
    (`streams.worker.changelog_writer`), and a worker must not open one on its own: it may
    have lost the partition already, and would fence its new owner."""
    thread: Any = app.consumer._thread  # type: ignore[attr-defined]

    async def request() -> None:
        thread._ensure_consumer()._coordinator.request_rejoin()

    await thread.call_thread(request)
