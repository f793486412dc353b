"""Faust's aiokafka transport, reading committed records only, seeking in the consumer's
own thread, telling when the flow of records resumes after a rebalance; asking for a
new assignment; and `GroupConsumer`, the one handle ingest steers partitions with.

Where the broker has transactions the worker writes its changelogs and dead letters in
them (`streams.worker.changelog_writer`), and a fenced owner's aborted writes must never
reach a table. Faust reads committed records only in its own exactly-once mode, which
also turns on its transactional producer, commits and recovery waits that the worker does
not use; and it picks the isolation level where it builds its consumer. So this module
gives the app the same transport, whose consumer reads committed
(`isolation.level=read_committed`). For topics written without transactions (Tansu, and
producers that use none) it reads exactly what it read before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import faust
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from sinks.source_partition import SourcePartition


class _CommittedReadThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Read by aiokafka only when it starts, which is after this returns.
        consumer._isolation_level = "read_committed"
        return consumer

    async def on_start(self) -> None:
        await super().on_start()
        # aiokafka builds its fetcher in `start`, before any partition is assigned.
        _refresh_metadata_on_stale_leader(self._ensure_consumer()._fetcher)


def _refresh_metadata_on_stale_leader(fetcher: Any) -> None:
    """Make `fetcher` refresh its metadata when a ListOffsets answer says its leader is
    stale, as the Java consumer does (KAFKA-9535).

    aiokafka resets a partition without a committed offset (the `__assignor-__leader`
    partition at every assignment, a new input partition) with ListOffsets to the leader
    in its metadata, and on "not leader" only logs and asks the same node again 100 ms
    later (`Fetcher._update_fetch_positions`), until the metadata ages out (5 minutes).
    Meanwhile it fetches nothing from that node: after a leader moved away from a node
    that came back, table recovery waited minutes for changelog records that never came.
    """
    request = fetcher._proc_offset_request

    async def proc_offset_request(node_id: int, topic_data: Any) -> Any:
        try:
            return await request(node_id, topic_data)
        except KafkaError as exc:
            if exc.invalid_metadata:
                fetcher._client.force_metadata_update()
            raise

    fetcher._proc_offset_request = proc_offset_request


class _CommittedReadConsumer(driver.Consumer):
    #: Called each time the flow resumes after a rebalance (`on_flow_resumed`).
    flow_resumed: Callable[[], None] | None = None

    def _new_consumer_thread(self) -> Any:
        return _CommittedReadThread(self, loop=self.loop, beacon=self.beacon)

    def resume_flow(self) -> None:
        super().resume_flow()
        if self.flow_resumed is not None:
            self.flow_resumed()

    async def _seek(self, partition: TP, offset: int) -> None:
        # Faust seeks aiokafka's consumer from the app's thread, while the consumer's own
        # thread may be draining the fetched records that a seek discards: aiokafka then
        # raised KeyError there, and the worker crashed. Seek on the consumer's own loop,
        # as soon as it is idle; not through Faust's request queue, which would wait for
        # the fetch in progress to end.
        thread: Any = self._thread
        done = asyncio.run_coroutine_threadsafe(
            _seek_on(thread, partition, offset), thread.thread_loop
        )
        await asyncio.wrap_future(done)


async def _seek_on(thread: Any, partition: TP, offset: int) -> None:
    thread.seek(partition, offset)


class CommittedReadTransport(driver.Transport):
    Consumer = _CommittedReadConsumer


def read_committed(app: faust.App) -> None:
    """Give `app` the transport above (before its consumer is built)."""
    app.transport = CommittedReadTransport(app.conf.broker_consumer, app)


def on_flow_resumed(app: faust.App, callback: Callable[[], None]) -> None:
    """Call `callback` whenever `app`'s consumer lets records through again after a
    rebalance. While the flow is stopped Faust fetches and drops records, and marks them
    read; its seek back to the committed offsets misses partitions with none committed,
    and records of an earlier fetch can still be dropped after that seek. Only once the
    flow runs again can a seek bring them back for certain."""
    consumer: Any = app.consumer
    consumer.flow_resumed = callback


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


class GroupConsumer:
    """`app`'s consumer as ingest steers it (`streams.worker.ingest_ports.Consumer`). Looked up
    at each call: Faust builds its consumer only when the worker starts."""

    def __init__(self, app: faust.App) -> None:
        self._app = app

    def assigned(self, source: SourcePartition) -> bool:
        return _tp(source) in self._app.consumer.assignment()

    async def seek(self, source: SourcePartition, offset: int) -> None:
        await self._app.consumer.seek(_tp(source), offset)

    def pause(self, source: SourcePartition) -> None:
        self._app.consumer.pause_partitions([_tp(source)])

    def resume(self, source: SourcePartition) -> None:
        self._app.consumer.resume_partitions([_tp(source)])

    async def rejoin(self) -> None:
        await rejoin_group(self._app)


def _tp(source: SourcePartition) -> TP:
    # Faust's own tuple: its consumer checks for it.
    return TP(source.topic, source.partition)
