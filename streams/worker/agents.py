"""The ingest agent: one stream over both input topics, in offset order per partition,
taken in batches.

A batch is at most `BATCH_EVENTS` events, or what came within `BATCH_SECONDS`: large
enough that per-batch work (acks, counts, one changelog record per position) is spread
over many events, short enough that a lone event waits no longer than a tick of
the changelog writer. Acks are manual: `noack_take` never acks (Faust's `take_events`
acks every event in a `finally`, even when the agent raises), and `streams.core.pending`
acks an event only once every row it produced is published and its writes are durable,
so Faust never commits an offset past an unpublished row. Each event's decision is
carried out by `streams.worker.ingest`, which never lets an error move the stream past
an event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import faust

from sinks.source_partition import SourcePartition
from streams.core.pending import SourceRegistry
from streams.worker.changelog_writer import ChangelogWriter
from streams.worker.ingest import Ingest
from streams.worker.transport import on_flow_resumed

BATCH_EVENTS = 500
BATCH_SECONDS = 0.05


def register_ingest_agent(
    app: faust.App,
    inputs: tuple[str, ...],
    ingest: Ingest,
    sources: SourceRegistry,
    writer: ChangelogWriter,
    *,
    seal_changelogs: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Consume `inputs` into `ingest`, and follow the assignment. `seal_changelogs`, for a
    broker whose ListOffsets answers are short, ends the changelogs once a revoke is
    flushed, so that the next owner's recovery reads to their true ends."""
    channel = app.topic(
        *inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def ingest_agent(stream: Any) -> None:
        async for events in stream.noack_take(BATCH_EVENTS, within=BATCH_SECONDS):
            await ingest.take_batch(events)

    app.agent(channel, name="ingest")(ingest_agent)

    async def on_assigned(_app: Any, assigned: Any, **_: Any) -> None:
        sources.assign([SourcePartition(tp.topic, tp.partition) for tp in assigned])

    async def on_revoked(_app: Any, revoked: Any, **_: Any) -> None:
        # Forget the partitions first, so that nothing writes their tables any more; then
        # flush what was written: the next owner recovers from the changelog.
        gone = [SourcePartition(tp.topic, tp.partition) for tp in revoked]
        sources.revoke(gone)
        await writer.release({s.partition for s in gone if s.topic in inputs})
        if seal_changelogs is not None:
            await seal_changelogs()

    # Faust's signal signatures are looser than mypy can see through.
    assigned_signal: Any = app.on_partitions_assigned
    revoked_signal: Any = app.on_partitions_revoked
    assigned_signal.connect(on_assigned)
    revoked_signal.connect(on_revoked)
    on_flow_resumed(app, ingest.realign)
