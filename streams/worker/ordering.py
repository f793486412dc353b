"""Offset order per input partition: which delivered record is the next one to take, and
where the consumer must go when it is not (docs/event-protocol.md).

A record seen before rewinds the partition to it; a record past a gap is refused until the
broker shows that nothing consumable lies in the gap (transaction markers, aborted
records). Faust's stream may deliver either at any time: after a rebalance, after a seek,
or a stale fetch behind later ones.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiokafka.errors import IllegalStateError

from sinks.source_partition import SourcePartition
from streams.core.dead_letter import SourceRecord
from streams.core.pending import Delivery, SourceRegistry, SourceState
from streams.logs import coords
from streams.worker.ingest_ports import Broker, Consumer

log = logging.getLogger(__name__)

# How long a refused gap waits for the consumer to come back before it is sought again.
RESEEK_SECONDS = 0.5

Halt = Callable[[int, int, BaseException], None]


class Ordering:
    """Keeps each partition's records in offset order; `halt` stops a partition whose
    seek failed (a broker question on the way), as any failure in the event path does."""

    def __init__(
        self, sources: SourceRegistry, broker: Broker, consumer: Consumer, halt: Halt
    ) -> None:
        self._sources = sources
        self._broker = broker
        self._consumer = consumer
        self._halt = halt
        self._realigning: asyncio.Task[None] | None = None
        # Per partition with a refused gap: the offset it waits for, and who seeks it again.
        self._gap_watches: dict[SourcePartition, tuple[int, asyncio.Task[None]]] = {}

    async def in_order(self, state: SourceState, record: SourceRecord) -> bool:
        """Whether `record` is the next one to take; else make the consumer go where the
        next one is, and say no."""
        # After every await here the state is looked at again: a rebalance or a halt's
        # rollback may have changed it meanwhile, and the record then comes again.
        delivery = state.delivery(record.offset)
        if delivery is Delivery.FIRST:
            epoch = state.epoch
            start = await self._broker.start_of(state.source)
            if not self._sources.unchanged(state, epoch):
                return False
            state.start_at(min(start, record.offset))
            delivery = state.delivery(record.offset)
        if delivery is Delivery.AGAIN:
            # The consumer went back (as Faust does after every rebalance), or one stale
            # message came through after later ones. Take the events again from here, and
            # make sure the consumer goes on from here: after a stale message it would go
            # on after the last one, and the events in between would never come back.
            state.rewind(record.offset)
            epoch = state.epoch
            await self._consumer.seek(state.source, record.offset + 1)
            return self._sources.unchanged(state, epoch)
        if delivery is Delivery.AHEAD:
            return await self._past_gap(state, record)
        return True

    async def _past_gap(self, state: SourceState, record: SourceRecord) -> bool:
        """A record after offsets that were not delivered: taken only if the broker holds
        nothing consumable in between."""
        expected = state.next_offset
        assert expected is not None  # noqa: S101 - AHEAD implies a known start
        awaiting = state.awaiting
        if awaiting is None or awaiting[0] != expected:
            epoch = state.epoch
            first = await self._broker.first_record_at(state.source, expected)
            if not self._sources.unchanged(state, epoch):
                return False  # rolled back meanwhile: `expected` is not the next any more
            state.awaiting = awaiting = (expected, first)
            log.info(
                "%s[%d]: offset %d came before %d (the first record there is %s)",
                record.topic,
                record.partition,
                record.offset,
                expected,
                first,
                extra=coords(record.topic, record.partition, record.offset),
            )
        first = awaiting[1]
        if first is None:
            # The broker delivered `record`, so something consumable lies at or before it:
            # "nothing there" is an answer from before it arrived. Never skip on it; go
            # back to `expected` and ask again at the next record past the gap.
            state.awaiting = None
            log.warning(
                "%s[%d]: the broker said nothing lies at or after %d, yet delivered %d; "
                "not skipping: going back to %d",
                record.topic,
                record.partition,
                expected,
                record.offset,
                expected,
                extra=coords(record.topic, record.partition, record.offset),
            )
            await self._consumer.seek(state.source, expected)
            return False
        if first >= record.offset:
            state.skip_to(record.offset)
            return True
        # Faust passes on no record below the last one it delivered, and every stale
        # record that comes through moves that mark up again: the consumer is sought back
        # to `expected` now and then again, until it delivers from there. Not at every
        # stale record: thousands may be queued, and each seek restarts the fetch.
        watching = self._gap_watches.get(state.source)
        if watching is None or watching[0] != expected:
            if watching is not None:
                watching[1].cancel()
            await self._consumer.seek(state.source, expected)
            watch = asyncio.create_task(self._reseek(state, expected))
            self._gap_watches[state.source] = (expected, watch)
        return False

    async def _reseek(self, state: SourceState, expected: int) -> None:
        """Seek `state` back to `expected` every `RESEEK_SECONDS` until it takes it."""
        try:
            while True:
                await asyncio.sleep(RESEEK_SECONDS)
                waiting = state.next_offset == expected and state.awaiting is not None
                if not waiting or state.paused or not self._sources.owns(state):
                    return
                await self._consumer.seek(state.source, expected)
        except IllegalStateError:
            return  # revoked meanwhile: the next owner starts where the group resumes
        except Exception as exc:
            self._halt(state.source.partition, expected, exc)
        finally:
            if self._gap_watches.get(state.source, (None,))[0] == expected:
                del self._gap_watches[state.source]

    def realign(self) -> None:
        """The flow resumed after a rebalance: make every owned partition deliver from
        the next record it needs. Records Faust dropped while its flow was stopped would
        otherwise come back only once a later record showed the gap, and never for a
        partition that receives nothing more."""
        if self._realigning is not None:
            self._realigning.cancel()
        self._realigning = asyncio.create_task(self._realign())

    async def _realign(self) -> None:
        for state in list(self._sources):
            if state.paused or not self._sources.owns(state):
                continue  # its unpause seeks it
            try:
                await seek_to_next(state, self._sources, self._broker, self._consumer)
            except IllegalStateError:
                return  # rebalancing again: the flow resumes, and this runs, once more
            except Exception as exc:
                self._halt(state.source.partition, state.next_offset or 0, exc)

    def close(self) -> None:
        if self._realigning is not None:
            self._realigning.cancel()
        for _, task in self._gap_watches.values():
            task.cancel()


async def seek_to_next(
    state: SourceState, sources: SourceRegistry, broker: Broker, consumer: Consumer
) -> None:
    """Seek to the record after the last one taken, or before anything was taken, to where
    the group resumes."""
    offset = state.next_offset
    if offset is None:
        offset = await broker.start_of(state.source)
    if sources.owns(state):
        await consumer.seek(state.source, offset)
