"""The producers the changelog writer sends through, and the ends it writes after a claim.

Where the broker has transactions each partition number has its own transactional
producer (`<group>.changelog.p<N>`); opening it fences every earlier owner. Without them
one shared producer sends everything. Either way a batch is at most
`MAX_BATCH_BYTES` and a request at most the DLQ's largest message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.structs import TopicPartition

from streams.config import KafkaConfig
from streams.kafka.broker import (
    DLQ_MAX_MESSAGE_BYTES,
    BrokerError,
    client_options,
    transactional_prefix,
)
from streams.kafka.changelog_ends import end_partitions
from streams.worker.changelog_pending import MAX_BATCH_BYTES

log = logging.getLogger(__name__)

# An open transaction of a failed producer blocks committed readers until it ends.
ABANDON_SECONDS = 3.0
ENDING_RETRY_SECONDS = 2.0


async def started_producer(
    kafka: KafkaConfig, request_timeout_ms: int, partition: int | None = None
) -> AIOKafkaProducer:
    """Partition number `partition`'s transactional producer, or the shared one."""
    transactional = {}
    if partition is not None:
        transactional["transactional_id"] = f"{transactional_prefix(kafka)}p{partition}"
    producer = AIOKafkaProducer(
        **client_options(kafka),
        **transactional,
        acks="all",
        max_batch_size=MAX_BATCH_BYTES,
        max_request_size=DLQ_MAX_MESSAGE_BYTES,
        request_timeout_ms=request_timeout_ms,
    )
    await producer.start()
    return producer


async def abandon(producer: AIOKafkaProducer) -> None:
    """Abort and close a producer whose transaction failed, without waiting for it."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(ABANDON_SECONDS):
            await producer.abort_transaction()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(ABANDON_SECONDS):
            await producer.stop()


class ChangelogEnds:
    """Ends claimed changelog partitions with one plain record each, so that Faust's
    recovery (which reads up to the last offset, a commit marker here) finds a record
    there. While the broker refuses (a Write ACL taken away) it keeps trying in the
    background rather than stop the worker: recovery waits for it, and `/ready` says the
    worker is not recovered."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka
        self._ending: set[asyncio.Task[None]] = set()

    async def end(self, tps: Sequence[TopicPartition]) -> None:
        try:
            await end_partitions(self._kafka, tps)
        except BrokerError as exc:
            log.warning("%s; recovery waits until they are ended, trying again", exc)
            self._ending.add(asyncio.create_task(self._end_until_done(tps)))

    async def _end_until_done(self, tps: Sequence[TopicPartition]) -> None:
        while True:
            await asyncio.sleep(ENDING_RETRY_SECONDS)
            try:
                await end_partitions(self._kafka, tps)
            except BrokerError as exc:
                log.warning("%s; trying again", exc)
            else:
                log.info("ended the changelog partitions; recovery goes on")
                return

    def cancel(self) -> None:
        """Stop trying: the next claim ends its partitions anew."""
        for task in self._ending:
            task.cancel()
        self._ending.clear()
