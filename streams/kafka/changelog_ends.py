"""Keep Faust's changelog recovery exact: every changelog partition ends in a record.

Faust's recovery reads a changelog partition up to the offset before its ListOffsets
answer, and waits until it has seen a record at that offset. Two brokers break that:

- Apache Kafka, where the tables are written in transactions: the last offset is a
  commit (or abort) marker, which no consumer ever sees. The worker ends each changelog
  partition with one plain record once it has claimed (fenced) the partition
  (`end_partitions`, from `streams.worker.changelog_writer`).
- Tansu, below.

Tansu (no transactions) keeps Faust's changelog recovery exact without one record per
producer batch.

Tansu answers ListOffsets with the last record batch's base offset + 1 (DESIGN section
9), and Faust's recovery reads a changelog only that far, so a partition that ends in a
multi-record batch loses its last records when a worker recovers it. Writing every
record as its own batch avoids that but costs about 40 % of the pipeline's throughput.
Instead, whenever a recovery may follow, each changelog partition whose ListOffsets
answer is short of the high watermark gets one more batch of a single record: a
tombstone for a key that no table uses, so recovering it changes nothing.

A recovery follows only a rebalance, and every rebalance starts by revoking partitions
on every member, after each has flushed its changelog writes; that is when this runs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from streams.config import KafkaConfig
from streams.kafka.broker import TABLES, BrokerError, changelog_topic, client_options
from streams.kafka.offsets import OffsetReader, tp_label

log = logging.getLogger(__name__)

# Faust's changelog keys are JSON strings; ours are "facility/product" or event ids.
END_MARKER_KEY = json.dumps("~changelog-end~").encode()


async def end_changelogs(kafka: KafkaConfig) -> None:
    """Run by every worker when partitions are revoked; a failure is only logged, since
    the rebalance must go on (and the next one tries again)."""
    topics = [changelog_topic(kafka.group_id, table) for table in TABLES]
    try:
        await seal_changelog_ends(kafka, topics)
    except BrokerError as exc:
        log.warning("could not end the changelogs before recovery: %s", exc)


async def seal_changelog_ends(kafka: KafkaConfig, topics: Sequence[str]) -> list[TopicPartition]:
    """End every short changelog partition with a single-record batch; return them."""
    async with OffsetReader(kafka) as reader:
        existing = set(await reader.topics())
        tps = await reader.partitions_of(topic for topic in topics if topic in existing)
        if not tps:
            return []
        marks = await reader.high_watermarks(tps)
        ends = await reader.consumer.end_offsets(tps)
    short = [tp for tp in tps if ends[tp] < marks[tp]]
    if short:
        await _write_markers(kafka, short)
        log.info("ended %s with a single-record batch", ", ".join(tp_label(tp) for tp in short))
    return short


async def end_partitions(kafka: KafkaConfig, tps: Sequence[TopicPartition]) -> None:
    """End each of `tps` with one plain record, outside any transaction."""
    await _write_markers(kafka, tps)


async def _write_markers(kafka: KafkaConfig, tps: Sequence[TopicPartition]) -> None:
    # acks="all": recovery reads the end right after; a marker a failed leader took alone
    # would leave it waiting for a record that never comes.
    producer = AIOKafkaProducer(**client_options(kafka), acks="all")
    try:
        await producer.start()
        for tp in tps:
            # One record in flight at a time: each is its own batch.
            await producer.send_and_wait(tp.topic, None, key=END_MARKER_KEY, partition=tp.partition)
    except KafkaError as exc:
        raise BrokerError(f"cannot end the changelog partitions: {exc}") from None
    finally:
        await producer.stop()
