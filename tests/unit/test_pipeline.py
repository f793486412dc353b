"""The per-record path with plain dicts for tables: no broker, no Faust."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from schemas.codec import encode_avro, encode_json
from schemas.models import EventKind
from sinks.feeds import Feed
from sinks.source_partition import SourcePartition
from streams.core.dead_letter import DeadLetter, ErrorClass, SourceRecord
from streams.core.pending import MemoryProgress, SourceRegistry
from streams.core.pipeline import EventPipeline
from tests.factories import DeadLetterLog, count, line, make_settings, variance

COUNTS, VARIANCES = "counts", "variances"


@dataclass
class Event:
    acked: bool = False

    def ack(self) -> bool:
        self.acked = True
        return True


class Harness:
    def __init__(self, tmp_path: Path, extra: str = "") -> None:
        self.inventory: dict[str, Any] = {}
        self.dlq = DeadLetterLog()
        self.progress = MemoryProgress()
        self.sources = SourceRegistry(
            {COUNTS: (Feed.ADJUSTMENT,), VARIANCES: (Feed.ADJUSTMENT, Feed.TRANSFER)},
            progress=self.progress,
        )
        self.sources.assign([SourcePartition(COUNTS, 0), SourcePartition(VARIANCES, 0)])
        self.offsets = {COUNTS: 0, VARIANCES: 0}
        self.flushes = 0

        async def durable() -> None:
            self.flushes += 1

        kinds = {COUNTS: EventKind.COUNT_APPROVED, VARIANCES: EventKind.VARIANCE_LOGGED}
        self.pipeline = EventPipeline(
            make_settings(tmp_path, extra=extra),
            kinds,
            self.inventory,
            self.sources,
            dead_letters=self.dlq,
            durable=durable,
        )

    @property
    def dead(self) -> list[DeadLetter]:
        return self.dlq.letters

    async def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = b"STORE_1",
        offset: int | None = None,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> Event:
        if offset is None:
            offset = self.offsets[topic]
            self.offsets[topic] += 1
        event = Event()
        record = SourceRecord(topic, 0, offset, 1_709_229_600_000, key, value, headers)
        await self.pipeline.handle(record, event)
        return event

    def pending(self, topic: str, feed: Feed) -> list[str]:
        state = self.sources.get(SourcePartition(topic, 0))
        assert state is not None
        return [
            getattr(r.row, "reference_no", getattr(r.row, "external_id", ""))
            for r in state.batchers[feed].rows_through(10**9)
        ]


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


async def test_a_count_updates_positions_and_waits_in_the_adjustment_batch(
    harness: Harness,
) -> None:
    event = count(
        line("10017", "3410", counted=7, system=10), line("10018", "3411", counted=2, system=2)
    )
    held = await harness.send(COUNTS, encode_avro(event))
    assert not held.acked  # its row is not published yet
    assert harness.pending(COUNTS, Feed.ADJUSTMENT) == ["CC1001-10017"]
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -3
    assert harness.inventory["STORE_1/10018"]["last_counted_quantity"] == 2


async def test_json_bodies_are_accepted_with_their_content_type(harness: Harness) -> None:
    event = variance(-2, "VAR_DAMAGED", event_id="j1")
    await harness.send(
        VARIANCES, encode_json(event), headers=(("content-type", b"application/json"),)
    )
    assert harness.pending(VARIANCES, Feed.TRANSFER) == ["VL-j1"]


async def test_a_record_delivered_again_to_one_owner_counts_once(harness: Harness) -> None:
    payload = encode_avro(variance(-2, "VAR_LOST", event_id="r1"))
    await harness.send(VARIANCES, payload, offset=0)
    again = await harness.send(VARIANCES, payload, offset=0)
    assert not again.acked
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -2
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-r1"]


async def test_a_rewind_brings_back_records_the_stream_skipped(harness: Harness) -> None:
    # Faust can drop events while recovery holds the stream, then seek back to the
    # committed offset: the state must take the events again, not skip them as seen.
    payloads = [encode_avro(variance(-1, "VAR_LOST", event_id=f"w{n}")) for n in range(4)]
    for offset in (2, 3):
        await harness.send(VARIANCES, payloads[offset], offset=offset)
    events = [await harness.send(VARIANCES, payloads[n], offset=n) for n in range(4)]
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-w0", "VL-w1", "VL-w2", "VL-w3"]
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -4
    assert not any(event.acked for event in events)


async def test_after_a_rebalance_a_redelivered_record_is_batched_but_not_reapplied(
    harness: Harness,
) -> None:
    payload = encode_avro(variance(-2, "VAR_LOST", event_id="r2"))
    await harness.send(VARIANCES, payload, offset=0)
    source = SourcePartition(VARIANCES, 0)
    await harness.sources.revoke([source])  # the unpublished row is dropped with the state
    harness.sources.assign([source])
    await harness.send(VARIANCES, payload, offset=0)
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -2
    assert harness.inventory["STORE_1/10017"]["events_applied"] == 1
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-r2"]


async def test_a_producer_duplicate_is_ignored_entirely(harness: Harness) -> None:
    payload = encode_avro(variance(-2, "VAR_LOST", event_id="d1"))
    await harness.send(VARIANCES, payload)
    duplicate = await harness.send(VARIANCES, payload)
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -2
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-d1"]
    assert not duplicate.acked  # held behind the first copy's unpublished row


async def test_an_unsynced_reason_changes_the_table_and_is_acked_at_once(harness: Harness) -> None:
    held = await harness.send(VARIANCES, encode_avro(variance(-4, "VAR_SAMPLE")))
    assert held.acked
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -4
    assert harness.inventory["STORE_1/10017"]["exported_variance"] == 0


@pytest.mark.parametrize(
    ("value", "key", "error_class", "reason"),
    [
        (b"\xc3\x01\x00", b"STORE_1", ErrorClass.DECODE, "truncated"),
        (b"", b"STORE_1", ErrorClass.DECODE, ""),
        (
            encode_avro(variance(-1, facility="STORE_9")),
            b"STORE_9",
            ErrorClass.UNROUTABLE,
            "unknown facility 'STORE_9'",
        ),
        (
            encode_avro(variance(-1)),
            b"STORE_2",
            ErrorClass.INVALID,
            "is not the facility_id 'STORE_1'",
        ),
        (encode_avro(variance(-1)), None, ErrorClass.INVALID, "message key 'null'"),
    ],
)
async def test_bad_records_are_dead_lettered_with_reason_and_coordinates(
    harness: Harness, value: bytes, key: bytes | None, error_class: ErrorClass, reason: str
) -> None:
    held = await harness.send(VARIANCES, value, key=key)
    assert held.acked
    assert len(harness.dead) == 1
    letter = harness.dead[0]
    assert letter.error_class is error_class
    assert reason in letter.reason
    headers = dict(letter.headers())
    assert headers["variance-sync.source-topic"] == b"variances"
    assert headers["variance-sync.source-offset"] == b"0"
    assert harness.inventory == {}


async def test_invalid_json_event_lists_every_problem(harness: Harness) -> None:
    body = b'{"event_id": "", "quantity": 0}'
    await harness.send(VARIANCES, body, headers=(("content-type", b"application/json"),))
    letter = harness.dead[0]
    assert letter.error_class is ErrorClass.INVALID
    assert "event_id" in letter.reason
    assert "quantity" in letter.reason


async def test_events_of_revoked_partitions_are_left_alone(harness: Harness) -> None:
    await harness.sources.revoke([SourcePartition(VARIANCES, 0)])
    held = await harness.send(VARIANCES, encode_avro(variance(-1, "VAR_LOST")))
    assert not held.acked
    assert harness.inventory == {}


async def test_more_than_sixteen_events_on_a_position_out_of_order_apply_once(
    harness: Harness,
) -> None:
    # Offsets 10-25 first, then a never-applied 9 (rebalances and seeks produce such
    # orders), then everything again: each event counts exactly once.
    payloads = {n: encode_avro(variance(-1, "VAR_LOST", event_id=f"o{n}")) for n in range(9, 26)}
    for offset in range(10, 26):
        await harness.send(VARIANCES, payloads[offset], offset=offset)
    await harness.send(VARIANCES, payloads[9], offset=9)
    position = harness.inventory["STORE_1/10017"]
    assert position["net_variance"] == -17
    for offset in range(9, 26):
        await harness.send(VARIANCES, payloads[offset], offset=offset)
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -17
    assert harness.inventory["STORE_1/10017"]["events_applied"] == 17


async def test_events_below_the_floor_are_not_looked_at_again(harness: Harness) -> None:
    source = SourcePartition(VARIANCES, 0)
    lost = encode_avro(variance(-2, "VAR_LOST", event_id="f1"))
    await harness.send(VARIANCES, b"\xc3\x01\x00", offset=0)
    await harness.send(VARIANCES, encode_avro(variance(-4, "VAR_SAMPLE", event_id="f0")), offset=1)
    assert harness.sources.save_floors() == 1
    assert harness.progress.saved[source]["floor"] == 2
    # A replay from the start: nothing applied twice, no row, no second dead letter.
    await harness.sources.revoke([source])
    harness.sources.assign([source])
    held = [await harness.send(VARIANCES, value, offset=n) for n, value in enumerate([b"x", lost])]
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -4
    assert len(harness.dead) == 1
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == []
    assert all(event.acked for event in held)


async def test_a_rejected_event_delivered_again_is_dead_lettered_once(harness: Harness) -> None:
    source = SourcePartition(VARIANCES, 0)
    await harness.send(VARIANCES, encode_avro(variance(-1, "VAR_LOST")), offset=0)  # holds acks
    await harness.send(VARIANCES, b"\xc3\x01\x00", offset=1)
    await harness.send(VARIANCES, b"\xc3\x01\x00", offset=1)  # a rewind, as after a seek
    await harness.sources.revoke([source])
    harness.sources.assign([source])  # a new owner, from the same progress table
    await harness.send(VARIANCES, b"\xc3\x01\x00", offset=1)
    assert [letter.record.offset for letter in harness.dead] == [1]
    assert harness.flushes == 1  # the pending mark was made durable before the send


class DiesWhileSending(DeadLetterLog):
    """A DLQ whose first send kills the worker, after or before the broker took it."""

    def __init__(self, reached_the_broker: bool) -> None:
        super().__init__()
        self.reached_the_broker = reached_the_broker
        self.dead = False

    async def send(self, letter: DeadLetter) -> int:
        if self.dead:
            return await super().send(letter)
        self.dead = True
        if self.reached_the_broker:
            await super().send(letter)
        raise SystemExit("killed")


@pytest.mark.parametrize("reached_the_broker", [True, False])
async def test_a_dead_letter_interrupted_mid_send_is_neither_lost_nor_doubled(
    harness: Harness, reached_the_broker: bool
) -> None:
    dlq = DiesWhileSending(reached_the_broker)
    harness.pipeline._dead_letters = dlq
    source = SourcePartition(VARIANCES, 0)
    with pytest.raises(SystemExit):
        await harness.send(VARIANCES, b"\xc3\x01\x00", offset=0)
    await harness.sources.revoke([source])
    harness.sources.assign([source])
    await harness.send(VARIANCES, b"\xc3\x01\x00", offset=0)
    assert [letter.record.offset for letter in dlq.letters] == [0]
    marks = harness.progress.saved[source]["dead_letters"]
    assert marks == {"0": {"dlq_offset": 0}}


async def test_a_producer_duplicate_of_a_count_is_ignored_on_every_line(harness: Harness) -> None:
    event = count(
        line("10017", "3410", counted=7, system=10), line("10018", "3411", counted=1, system=2)
    )
    await harness.send(COUNTS, encode_avro(event))
    duplicate = await harness.send(COUNTS, encode_avro(event))
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -3
    assert harness.inventory["STORE_1/10018"]["net_variance"] == -1
    assert harness.pending(COUNTS, Feed.ADJUSTMENT) == ["CC1001-10017", "CC1001-10018"]
    assert not duplicate.acked


async def test_an_event_that_comes_before_its_assignment_callback_is_taken(
    tmp_path: Path,
) -> None:
    # Faust can resume the stream while the assignment callback still waits for the
    # producers; dropping that event would let later ones be acked, and committed, past it.
    harness = Harness(tmp_path)
    early = SourcePartition(VARIANCES, 1)
    harness.pipeline._assigned = lambda source: source == early
    first = Event()
    await harness.pipeline.handle(
        SourceRecord(VARIANCES, 1, 0, 1, b"STORE_1", encode_avro(variance(-1, "VAR_LOST"))), first
    )
    state = harness.sources.get(early)
    assert state is not None
    assert state.pending_rows == 1
    assert not first.acked
    gone = Event()
    record = SourceRecord(VARIANCES, 2, 0, 1, b"STORE_1", encode_avro(variance(-1, "VAR_LOST")))
    await harness.pipeline.handle(record, gone)  # not assigned: revoked while in flight
    assert harness.sources.get(SourcePartition(VARIANCES, 2)) is None


async def test_a_stale_message_after_later_ones_sends_the_consumer_back(tmp_path: Path) -> None:
    # 0, 1, 2, then a stale copy of 1: the rewind forgets 2, so the consumer must be told
    # to go on from 2, or it would go on from 3 and offset 2's row would be lost.
    harness = Harness(tmp_path)
    sought: list[tuple[SourcePartition, int]] = []

    async def seek(source: SourcePartition, offset: int) -> None:
        sought.append((source, offset))

    harness.pipeline._seek = seek
    payloads = [encode_avro(variance(-1, "VAR_LOST", event_id=f"s{n}")) for n in range(4)]
    for offset in (0, 1, 2, 1):
        await harness.send(VARIANCES, payloads[offset], offset=offset)
    assert sought == [(SourcePartition(VARIANCES, 0), 2)]
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-s0", "VL-s1"]
    for offset in (2, 3):  # what the consumer delivers after the seek
        await harness.send(VARIANCES, payloads[offset], offset=offset)
    assert harness.pending(VARIANCES, Feed.ADJUSTMENT) == ["VL-s0", "VL-s1", "VL-s2", "VL-s3"]
    assert harness.inventory["STORE_1/10017"]["net_variance"] == -4
