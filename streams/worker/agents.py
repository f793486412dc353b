"""The ingest agent: one stream over both input topics, in offset order per partition.

Acks are manual (`noack`): `streams.core.pending` acks an event only once every row it
produced is published and its writes are durable, so Faust never commits an offset past
an unpublished row. Each event's decision is carried out by `streams.worker.ingest`,
which never lets an error move the stream past an event.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sinks.source_partition import SourcePartition
from streams.kafka.changelog_ends import end_changelogs
from streams.worker.transport import on_flow_resumed

if TYPE_CHECKING:
    from streams.worker.app import Runtime


def register_ingest_agent(runtime: Runtime) -> None:
    app, topics, sources, ingest = runtime.app, runtime.topics, runtime.sources, runtime.ingest
    writer = runtime.writer
    channel = app.topic(
        *topics.inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def ingest_agent(stream: Any) -> None:
        async for event in stream.noack().events():
            await ingest.take(event)

    app.agent(channel, name="ingest")(ingest_agent)

    async def on_assigned(_app: Any, assigned: Any, **_: Any) -> None:
        sources.assign([SourcePartition(tp.topic, tp.partition) for tp in assigned])

    async def on_revoked(_app: Any, revoked: Any, **_: Any) -> None:
        # Forget the partitions first, so that nothing writes their tables any more; then
        # flush what was written: the next owner recovers from the changelog (on Tansu,
        # whose ListOffsets answers are short, after the changelog ends are sealed).
        gone = [SourcePartition(tp.topic, tp.partition) for tp in revoked]
        sources.revoke(gone)
        await writer.release({s.partition for s in gone if s.topic in topics.inputs})
        if not runtime.traits.exact_list_offsets:
            await end_changelogs(runtime.settings.kafka)

    # Faust's signal and task signatures are looser than mypy can see through.
    assigned_signal: Any = app.on_partitions_assigned
    revoked_signal: Any = app.on_partitions_revoked
    assigned_signal.connect(on_assigned)
    revoked_signal.connect(on_revoked)
    on_flow_resumed(app, ingest.realign)

    async def on_shutdown(_app: Any, **_: Any) -> None:
        await ingest.close()
        await writer.stop()

    shutdown_signal: Any = app.on_before_shutdown
    shutdown_signal.connect(on_shutdown)
    tasks: Any = app
    tasks.task(runtime.publish_loop.run)
    tasks.task(runtime.monitor.run)
    tasks.task(runtime.rejections.run)
