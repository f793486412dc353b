"""The ingest agent: one stream over both input topics, in offset order per partition.

Acks are manual (`noack`): `streams.core.pending` acks an event only once every row it
produced is published, so Faust never commits an offset past an unpublished row.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from aiokafka.errors import IllegalStateError

from sinks.source_partition import SourcePartition
from streams.core.dead_letter import SourceRecord, decode_headers
from streams.kafka.broker import BrokerFlavor
from streams.kafka.changelog_ends import end_changelogs

if TYPE_CHECKING:
    from streams.worker.app import Runtime


def to_record(event: Any) -> SourceRecord:
    message = event.message
    timestamp = message.timestamp
    return SourceRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        timestamp_ms=round(timestamp * 1000) if timestamp is not None else None,
        key=event.key,
        value=event.value if event.value is not None else b"",
        headers=decode_headers(_header_pairs(message.headers)),
    )


def _header_pairs(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return [(str(k), v) for k, v in headers]


def register_ingest_agent(runtime: Runtime) -> None:
    app, topics, sources, pipeline = runtime.app, runtime.topics, runtime.sources, runtime.pipeline
    writer = runtime.writer
    limit = runtime.settings.batching.max_pending_rows
    channel = app.topic(
        *topics.inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def ingest(stream: Any) -> None:
        async for event in stream.noack().events():
            # Both producers are started on assignment; an event can come first.
            await writer.start()
            await runtime.dead_letters.start()
            await pipeline.handle(to_record(event), event)
            await sources.wait_below(limit)
            await writer.throttle()

    app.agent(channel, name="ingest")(ingest)

    async def on_assigned(_app: Any, assigned: Any, **_: Any) -> None:
        # Before any await: recovery may resume the stream while the producers connect.
        sources.assign([SourcePartition(tp.topic, tp.partition) for tp in assigned])
        await writer.start()
        await runtime.dead_letters.start()

    async def on_revoked(_app: Any, revoked: Any, **_: Any) -> None:
        # Forget the partitions first, so that nothing writes their tables any more; then
        # flush what was written: the next owner recovers from the changelog, and the
        # changelog ends are sealed after the flush.
        await sources.revoke([SourcePartition(tp.topic, tp.partition) for tp in revoked])
        await writer.flush()
        if runtime.flavor is BrokerFlavor.TANSU:
            await end_changelogs(runtime.settings.kafka)

    async def on_rebalance_complete(_app: Any, **_: Any) -> None:
        # Sent just before Faust seeks each partition back to its committed offset, which
        # re-delivers events the stream dropped while recovery held it. aiokafka skips
        # that seek where the committed offset is 0 or missing, so those events would
        # never come back: start such partitions from the beginning here, and let
        # Faust's seek move the others on to their committed offsets.
        consumer = app.consumer
        for tp in consumer.assignment():
            if tp.topic in topics.inputs:
                with contextlib.suppress(IllegalStateError):  # rebalancing again
                    await consumer.seek(tp, 0)

    # Faust's signal and task signatures are looser than mypy can see through.
    assigned_signal: Any = app.on_partitions_assigned
    revoked_signal: Any = app.on_partitions_revoked
    assigned_signal.connect(on_assigned)
    revoked_signal.connect(on_revoked)
    complete_signal: Any = app.on_rebalance_complete
    complete_signal.connect(on_rebalance_complete)

    async def on_shutdown(_app: Any, **_: Any) -> None:
        await runtime.dead_letters.stop()

    shutdown_signal: Any = app.on_before_shutdown
    shutdown_signal.connect(on_shutdown)
    tasks: Any = app
    tasks.task(writer.run)
    tasks.task(runtime.publish_loop.run)
    tasks.task(runtime.monitor.run)
    tasks.task(runtime.rejections.run)
