"""The worker's ingest on fakes: order, dedupe, dead letters, halts and pauses.

Every test drives records in an order Faust's stream can deliver them, and flushes as the
changelog writer's timer would; `tests/unit/ingest_stage.py` holds the fakes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from schemas.codec import encode_avro, encode_json
from sinks.feeds import ADJUSTMENT, TRANSFER
from sinks.source_partition import SourcePartition
from streams import metrics
from streams.core.dead_letter import ORIGINAL_SHA256, TRUNCATED_FROM
from streams.worker.changelog_writer import FLUSH_BYTES, ChangelogWriteFailed
from streams.worker.ordering import RESEEK_SECONDS
from streams.worker.tables import TableStopped
from tests.factories import count, line, variance
from tests.unit.ingest_stage import COUNTS, VARIANCES, Stage

SOURCE = SourcePartition(VARIANCES, 0)
BAD = b"\xc3\x01\x00"  # truncated Avro


@pytest.fixture(params=["transactions", "plain"])
def stage(request: pytest.FixtureRequest, tmp_path: Path) -> Stage:
    """Both ways of writing dead letters: in the partition's transaction (Apache Kafka),
    or after a durable pending mark (Tansu)."""
    return Stage(tmp_path, transactions=request.param == "transactions")


def lost(n: int, event_id: str | None = None) -> bytes:
    return encode_avro(variance(-n, "VAR_LOST", event_id=event_id))


async def test_a_count_updates_positions_and_is_acked_once_durable_and_published(
    stage: Stage,
) -> None:
    event = count(
        line("10017", "3410", counted=7, system=10), line("10018", "3411", counted=2, system=2)
    )
    held = await stage.send(COUNTS, encode_avro(event))
    assert stage.pending(COUNTS, ADJUSTMENT) == ["CC1001-10017"]
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
    assert stage.inventory["STORE_1/10018"]["last_counted_quantity"] == 2
    stage.publish(COUNTS)
    assert not held.acked  # published, but its writes are not durable yet
    assert stage.flush()
    assert held.acked


async def test_json_bodies_are_accepted_with_their_content_type(stage: Stage) -> None:
    body = encode_json(variance(-2, "VAR_DAMAGED", event_id="j1"))
    await stage.send(VARIANCES, body, headers=(("content-type", b"application/json"),))
    assert stage.pending(VARIANCES, TRANSFER) == ["VL-j1"]


async def test_a_record_delivered_again_counts_once_and_sends_the_consumer_on(
    stage: Stage,
) -> None:
    await stage.send(VARIANCES, lost(2, "r1"), offset=0)
    await stage.send(VARIANCES, lost(1, "r2"), offset=1)
    await stage.send(VARIANCES, lost(2, "r1"), offset=0)  # the consumer went back
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 1)
    await stage.send(VARIANCES, lost(1, "r2"), offset=1)
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-r1", "VL-r2"]


def events_counted() -> float:
    return sum(
        sample.value
        for family in metrics.EVENTS.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    )


async def test_events_taken_again_after_a_rewind_are_counted_once(stage: Stage) -> None:
    before = events_counted()
    for offset in (0, 1, 0, 1):  # the consumer went back after the first two
        await stage.send(VARIANCES, lost(1, f"m{offset}"), offset=offset)
    assert events_counted() - before == 2


async def test_a_batch_is_decided_in_order_and_acked_together(stage: Stage) -> None:
    before = events_counted()
    events = [stage.event(VARIANCES, lost(1, f"b{n}")) for n in range(4)]
    await stage.send_batch(*events)
    assert stage.inventory["STORE_1/10017"]["events_applied"] == 4
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-b0", "VL-b1", "VL-b2", "VL-b3"]
    assert events_counted() - before == 4
    assert stage.flush()
    assert not any(event.acked for event in events)  # their rows wait for publishing
    stage.publish(VARIANCES)
    assert all(event.acked for event in events)


async def test_a_batch_whose_writes_pile_up_lets_the_flusher_in_between_events(
    stage: Stage,
) -> None:
    seen: list[int | None] = []

    async def flusher() -> None:  # as the writer's flusher, woken by a full log
        seen.append(stage.state(VARIANCES).consumed_through)

    stage.log.waiting_bytes = FLUSH_BYTES  # every write leaves a flush's worth waiting
    waiting = asyncio.create_task(flusher())
    await stage.send_batch(*(stage.event(VARIANCES, lost(1, f"y{n}")) for n in range(3)))
    await waiting
    assert seen == [0]  # it ran after the first event, before the batch's end


async def test_a_record_delivered_again_inside_a_batch_rewinds_there(stage: Stage) -> None:
    first, second = stage.event(VARIANCES, lost(2, "r1")), stage.event(VARIANCES, lost(1, "r2"))
    again = stage.event(VARIANCES, lost(2, "r1"), offset=0)  # the consumer went back
    await stage.send_batch(first, second, again, stage.event(VARIANCES, lost(1, "r2")))
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 1)
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-r1", "VL-r2"]


async def test_a_failure_inside_a_batch_stops_its_partition_there_and_no_other(
    stage: Stage,
) -> None:
    stage.assign(SourcePartition(VARIANCES, 1))
    real_put = stage.inventory_table.put

    def refuse_f1(key: object, value: object, partition: int) -> None:
        if partition == 0 and stage.state(VARIANCES).consumed_through == 0:
            raise OSError("the changelog refused the write")
        real_put(key, value, partition)

    stage.inventory_table.put = refuse_f1  # type: ignore[method-assign]
    ours = [stage.event(VARIANCES, lost(1, f"f{n}")) for n in range(3)]
    theirs = [stage.event(VARIANCES, lost(1, f"o{n}"), partition=1) for n in range(2)]
    await stage.send_batch(ours[0], theirs[0], ours[1], ours[2], theirs[1])
    assert 0 in stage.sources.halts
    assert stage.state(VARIANCES).consumed_through == 0  # f0 taken, nothing past f1
    assert (VARIANCES, 0) in stage.consumer.paused  # f2 waits for the recovery
    assert stage.pending(VARIANCES, ADJUSTMENT, partition=1) == ["VL-o0", "VL-o1"]
    stage.inventory_table.put = real_put  # type: ignore[method-assign]
    await asyncio.sleep(0.1)  # rolled back to its last durable event, and consumed again
    assert 0 not in stage.sources.halts
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 0)
    again = [stage.event(VARIANCES, lost(1, f"f{n}"), offset=n) for n in range(3)]
    await stage.send_batch(*again)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-f0", "VL-f1", "VL-f2"]
    assert stage.inventory["STORE_1/10017"]["events_applied"] == 3


async def test_a_record_past_a_gap_is_refused_until_the_consumer_goes_back(stage: Stage) -> None:
    # Faust can hand over offset 3 before 2 (a stream restarted after an error, or stale
    # messages after a seek): taking 3 would let it be acked, and committed, past 2.
    await stage.send(VARIANCES, lost(1, "g0"), offset=0)
    await stage.send(VARIANCES, lost(1, "g1"), offset=1)
    skipped = await stage.send(VARIANCES, lost(1, "g3"), offset=3)
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 2)
    assert stage.state(VARIANCES).consumed_through == 1
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-g0", "VL-g1"]
    await stage.send(VARIANCES, lost(1, "g2"), offset=2)
    await stage.send(VARIANCES, lost(1, "g3"), offset=3)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-g0", "VL-g1", "VL-g2", "VL-g3"]
    stage.flush()
    stage.publish(VARIANCES)
    assert not skipped.acked  # only the copy taken in order is acked


async def test_a_run_of_stale_records_seeks_once_and_again_only_while_nothing_comes(
    stage: Stage,
) -> None:
    await stage.send(VARIANCES, lost(1, "s0"), offset=0)
    for offset in range(5, 40):  # queued before the seek took effect
        await stage.send(VARIANCES, lost(1, f"s{offset}"), offset=offset)
    assert stage.consumer.seeks == [(VARIANCES, 0, 1)]
    await asyncio.sleep(RESEEK_SECONDS * 1.5)  # the consumer did not come back: again
    assert stage.consumer.seeks == [(VARIANCES, 0, 1)] * 2
    await stage.send(VARIANCES, lost(1, "s1"), offset=1)
    await asyncio.sleep(RESEEK_SECONDS * 1.5)
    assert stage.consumer.seeks == [(VARIANCES, 0, 1)] * 2
    assert stage.state(VARIANCES).consumed_through == 1


async def test_a_gap_the_broker_holds_nothing_in_is_taken(stage: Stage) -> None:
    # Transaction markers and aborted records occupy offsets that no consumer sees.
    stage.broker.records[SOURCE] = {0, 1, 4, 5}
    await stage.send(VARIANCES, lost(1), offset=0)
    await stage.send(VARIANCES, lost(1), offset=1)
    await stage.send(VARIANCES, lost(1), offset=4)
    assert stage.state(VARIANCES).consumed_through == 4
    assert stage.consumer.seeks == []


async def test_a_gap_is_never_skipped_on_an_answer_from_before_its_records(stage: Stage) -> None:
    # A reader whose high watermark predates the records says "nothing at or after 0";
    # the broker delivering offset 2 proves that answer stale, so 0 and 1 must still come.
    stage.broker.records[SOURCE] = set()  # what a stale reader sees: nothing at all
    await stage.send(VARIANCES, lost(1, "f2"), offset=2)
    assert stage.state(VARIANCES).consumed_through == -1
    assert stage.consumer.seeks == [(VARIANCES, 0, 0)]
    stage.broker.records[SOURCE] = {0, 1, 2}  # asked again, the broker answers truly
    for offset in (0, 1, 2):
        await stage.send(VARIANCES, lost(1, f"f{offset}"), offset=offset)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-f0", "VL-f1", "VL-f2"]


async def asked(stage: Stage) -> None:
    """Until a question to the broker waits at the gate."""
    for _ in range(200):
        if stage.broker.asking:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("nothing asked the broker")


async def test_a_rollback_while_a_gap_is_looked_into_skips_nothing(stage: Stage) -> None:
    # Offset 1 is a transaction marker: 2 comes next. While the broker is asked, the
    # partition halts (its flush failed) and is rolled back to before 0, which is not
    # durable: the answer about the gap after 0 no longer says where 2 stands.
    stage.broker.records[SOURCE] = {0, 2, 3}
    await stage.send(VARIANCES, lost(1, "h0"), offset=0)
    stage.broker.gate = asyncio.Event()
    taking = asyncio.create_task(stage.send(VARIANCES, lost(1, "h2"), offset=2))
    await asked(stage)
    stage.log.failed[0] = "the leader went away"
    stage.flush()  # fails: the partition halts, and its recovery rolls it back
    await asyncio.sleep(0)
    stage.broker.gate.set()
    await taking
    state = stage.state(VARIANCES)
    assert state.consumed_through == -1  # 2 was not taken over 0's head
    assert "STORE_1/10017" not in stage.inventory
    await asyncio.sleep(0.1)  # recovered: consumed again from 0
    for offset, event_id in ((0, "h0"), (2, "h2")):
        await stage.send(VARIANCES, lost(1, event_id), offset=offset)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-h0", "VL-h2"]
    assert stage.inventory["STORE_1/10017"]["events_applied"] == 2


async def test_an_event_whose_partition_moved_while_it_awaited_writes_nothing(
    stage: Stage,
) -> None:
    # A rebalance while the first record of an assignment asks where the group resumes:
    # the partition comes straight back with a new state, which takes the record itself.
    stage.broker.gate = asyncio.Event()
    taking = asyncio.create_task(stage.send(VARIANCES, BAD, offset=0))
    await asked(stage)
    stage.revoke(SOURCE)
    stage.assign(SOURCE)
    stage.broker.gate.set()
    await taking
    assert stage.log.letters == {}  # no dead letter without its mark
    assert stage.state(VARIANCES).consumed_through is None
    assert 0 not in stage.sources.halts
    await stage.send(VARIANCES, BAD, offset=0)
    stage.flush()
    assert [offset for offset, _, _ in stage.dead_letters()] == ["0"]


async def test_the_first_record_of_an_assignment_starts_at_the_committed_offset(
    stage: Stage,
) -> None:
    stage.broker.starts[SOURCE] = 5
    await stage.send(VARIANCES, lost(1, "c7"), offset=7)  # stale, or ahead of the seek
    assert stage.state(VARIANCES).consumed_through == 4
    assert stage.consumer.seeks == [(VARIANCES, 0, 5)]
    for offset in (5, 6, 7):
        await stage.send(VARIANCES, lost(1, f"c{offset}"), offset=offset)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-c5", "VL-c6", "VL-c7"]


async def test_after_a_rebalance_a_redelivered_record_is_batched_but_not_reapplied(
    stage: Stage,
) -> None:
    await stage.send(VARIANCES, lost(2, "r2"), offset=0)
    stage.flush()
    stage.revoke(SOURCE)  # the unpublished row is dropped with the state
    stage.assign(SOURCE)
    await stage.send(VARIANCES, lost(2, "r2"), offset=0)
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -2
    assert stage.inventory["STORE_1/10017"]["events_applied"] == 1
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-r2"]


async def test_a_producer_duplicate_is_ignored_entirely(stage: Stage) -> None:
    await stage.send(VARIANCES, lost(2, "d1"))
    duplicate = await stage.send(VARIANCES, lost(2, "d1"))
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -2
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-d1"]
    stage.flush()
    assert not duplicate.acked  # held behind the first copy's unpublished row


async def test_a_producer_duplicate_of_a_count_is_ignored_on_every_line(stage: Stage) -> None:
    event = count(
        line("10017", "3410", counted=7, system=10), line("10018", "3411", counted=1, system=2)
    )
    await stage.send(COUNTS, encode_avro(event))
    await stage.send(COUNTS, encode_avro(event))
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
    assert stage.inventory["STORE_1/10018"]["net_variance"] == -1
    assert stage.pending(COUNTS, ADJUSTMENT) == ["CC1001-10017", "CC1001-10018"]


async def test_an_unsynced_reason_changes_the_table_and_is_acked_once_durable(
    stage: Stage,
) -> None:
    held = await stage.send(VARIANCES, encode_avro(variance(-4, "VAR_SAMPLE")))
    assert stage.inventory["STORE_1/10017"]["exported_variance"] == 0
    stage.flush()
    assert held.acked


@pytest.mark.parametrize(
    ("value", "key", "error_class", "reason"),
    [
        (BAD, b"STORE_1", "decode", "truncated"),
        (b"", b"STORE_1", "decode", ""),
        (
            encode_avro(variance(-1, facility="STORE_9")),
            b"STORE_9",
            "unroutable",
            "unknown facility 'STORE_9'",
        ),
        (encode_avro(variance(-1)), b"STORE_2", "invalid", "is not the facility_id 'STORE_1'"),
        (encode_avro(variance(-1)), None, "invalid", "message key 'null'"),
    ],
)
async def test_bad_records_are_dead_lettered_with_reason_and_coordinates(
    stage: Stage, value: bytes, key: bytes | None, error_class: str, reason: str
) -> None:
    held = await stage.send(VARIANCES, value, key=key)
    assert stage.flush()
    assert held.acked
    [(offset, found_class, found_reason)] = stage.dead_letters()
    assert (offset, found_class) == ("0", error_class)
    assert reason in found_reason
    assert stage.inventory == {}


async def test_a_rejected_event_delivered_again_is_dead_lettered_once(stage: Stage) -> None:
    await stage.send(VARIANCES, lost(1), offset=0)  # its row holds the acks
    await stage.send(VARIANCES, BAD, offset=1)
    await stage.send(VARIANCES, BAD, offset=1)  # the consumer went back
    stage.flush()
    stage.revoke(SOURCE)
    stage.assign(SOURCE)  # a new owner, from the same progress table
    await stage.send(VARIANCES, lost(1), offset=0)
    await stage.send(VARIANCES, BAD, offset=1)
    stage.flush()
    assert [offset for offset, _, _ in stage.dead_letters()] == ["1"]


@pytest.mark.parametrize("crash", ["before-letters", "after-letters"])
async def test_a_dead_letter_interrupted_by_a_crash_is_neither_lost_nor_doubled(
    tmp_path: Path, crash: str
) -> None:
    # Without transactions: the pending mark is durable before the send, and the next
    # owner looks in the DLQ from there before sending again.
    stage = Stage(tmp_path, transactions=False)
    await stage.send(VARIANCES, BAD, offset=0)
    stage.log.flush(0, crash=crash)
    stage.crash(SOURCE, SourcePartition(COUNTS, 0))
    again = await stage.send(VARIANCES, BAD, offset=0)
    stage.flush()
    assert [offset for offset, _, _ in stage.dead_letters()] == ["0"]
    assert again.acked


async def test_with_transactions_a_dead_letter_and_its_mark_are_written_together(
    tmp_path: Path,
) -> None:
    stage = Stage(tmp_path, transactions=True)
    await stage.send(VARIANCES, BAD, offset=0)
    stage.flush()
    marks = stage.progress_table.durable[f"{VARIANCES}:0"]["dead_letters"]
    assert marks == {"0": {"sent": True}}
    assert len(stage.log.dlq) == 1


async def test_a_dead_letter_too_large_for_the_dlq_is_cut_with_its_size_and_digest(
    stage: Stage,
) -> None:
    huge = b"\xc3\x01" + b"x" * 3_000_000
    await stage.send(VARIANCES, huge)
    stage.flush()
    [record] = stage.log.dlq
    headers = dict(record.headers)
    assert record.size <= 1_000_000
    assert headers[TRUNCATED_FROM] == str(len(huge)).encode()
    assert len(headers[ORIGINAL_SHA256]) == 64
    assert huge.startswith(record.value)


async def test_a_dlq_that_refuses_records_halts_the_partition_and_loses_nothing(
    stage: Stage,
) -> None:
    stage.log.refuse_letters = True
    good = await stage.send(VARIANCES, lost(1, "h0"), offset=0)
    await stage.send(VARIANCES, BAD, offset=1)
    after = await stage.send(VARIANCES, lost(1, "h2"), offset=2)
    assert not stage.flush()
    assert 0 in stage.sources.halts
    assert "refuses" in stage.sources.halts[0].reason
    assert (VARIANCES, 0) in stage.consumer.paused
    held = await stage.send(VARIANCES, lost(1, "h3"), offset=3)  # fetched before the pause
    await asyncio.sleep(0)  # the rollback, before the backoff
    assert stage.state(VARIANCES).consumed_through == -1  # back to the last durable event
    assert stage.inventory == {}
    # The cause goes away; after the backoff the partition is consumed again.
    stage.log.refuse_letters = False
    await asyncio.sleep(0.1)
    assert 0 not in stage.sources.halts
    assert (VARIANCES, 0) not in stage.consumer.paused
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 0)
    for offset, value in enumerate([lost(1, "h0"), BAD, lost(1, "h2"), lost(1, "h3")]):
        await stage.send(VARIANCES, value, offset=offset)
    assert stage.flush()
    stage.publish(VARIANCES)
    assert [offset for offset, _, _ in stage.dead_letters()] == ["1"]
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
    assert not any(event.acked for event in (good, after, held))  # earlier copies


async def test_a_table_that_cannot_be_read_halts_and_dead_letters_nothing(stage: Stage) -> None:
    readable = stage.inventory_table.get

    def unreadable(key: object, default: object = None) -> object:
        raise OSError("Input/output error")

    stage.inventory_table.get = unreadable  # type: ignore[method-assign]
    await stage.send(VARIANCES, lost(1, "r0"), offset=0)
    assert 0 in stage.sources.halts
    assert stage.log.letters == {}
    assert stage.state(VARIANCES).consumed_through == -1
    stage.inventory_table.get = readable  # type: ignore[method-assign]
    await asyncio.sleep(0.1)
    await stage.send(VARIANCES, lost(1, "r0"), offset=0)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-r0"]


async def test_once_the_tables_stop_no_event_is_taken_and_none_halts(stage: Stage) -> None:
    readable = stage.inventory_table.get

    def stopping(key: object, default: object = None) -> object:
        raise TableStopped("table inventory is stopping")

    first = stage.event(VARIANCES, lost(1, "s0"))
    await stage.send_batch(first)
    stage.inventory_table.get = stopping  # type: ignore[method-assign]
    later = [stage.event(VARIANCES, lost(1, f"s{n}")) for n in (1, 2)]
    await stage.send_batch(*later)
    stage.inventory_table.get = readable  # type: ignore[method-assign]
    await stage.send(VARIANCES, lost(1, "s3"), offset=3)  # still stopping: left alone
    assert stage.state(VARIANCES).consumed_through == 0
    assert stage.sources.halts == {}
    assert stage.flush()  # the final flush: only what was taken before
    stage.publish(VARIANCES)
    assert first.acked
    assert not any(event.acked for event in later)


async def test_a_halt_during_the_backoff_of_another_gets_a_rollback_of_its_own(
    stage: Stage,
) -> None:
    await stage.send(VARIANCES, lost(1, "b0"), offset=0)
    stage.ingest.failed(0, ChangelogWriteFailed("the leader went away"))
    await asyncio.sleep(0)  # rolled back; waiting out its backoff
    assert 0 not in stage.log.failed
    stage.ingest.failed(0, ChangelogWriteFailed("and again"))  # the writer fails anew
    assert "and again" in stage.log.failed[0]
    await asyncio.sleep(0.1)
    assert 0 not in stage.sources.halts
    assert 0 not in stage.log.failed  # never consuming again over a failed log
    await stage.send(VARIANCES, lost(1, "b0"), offset=0)
    assert stage.flush()
    assert stage.inventory["STORE_1/10017"]["events_applied"] == 1


async def test_an_error_carrying_an_event_out_halts_only_its_partition(stage: Stage) -> None:
    other = SourcePartition(VARIANCES, 1)
    stage.assign(other)
    broken = stage.inventory_table.put

    def refuse(key: object, value: object, partition: int) -> None:
        if partition == 0:
            raise OSError("the changelog refused the write")
        broken(key, value, partition)

    stage.inventory_table.put = refuse  # type: ignore[method-assign]
    await stage.send(VARIANCES, lost(1, "e0"), offset=0)
    assert 0 in stage.sources.halts
    assert stage.state(VARIANCES).consumed_through == -1  # nothing moved past it
    await stage.send(VARIANCES, lost(1, "e1"), offset=0, partition=1)
    assert stage.pending(VARIANCES, ADJUSTMENT, partition=1) == ["VL-e1"]
    stage.inventory_table.put = broken  # type: ignore[method-assign]
    await asyncio.sleep(0.1)
    await stage.send(VARIANCES, lost(1, "e0"), offset=0)
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-e0"]


async def test_a_fenced_partition_stays_halted_until_it_is_assigned_again(stage: Stage) -> None:
    await stage.send(VARIANCES, lost(1), offset=0)
    stage.log.fenced.add(0)
    stage.log.failed[0] = "fenced"
    assert not stage.flush()
    await asyncio.sleep(0.1)
    assert 0 in stage.sources.halts  # only a new assignment opens it again
    assert stage.consumer.rejoins == 1  # which it asks the group for
    stage.revoke(SOURCE, SourcePartition(COUNTS, 0))
    assert 0 not in stage.sources.halts


async def test_a_partition_whose_rows_pile_up_pauses_alone(tmp_path: Path) -> None:
    stage = Stage(tmp_path, extra="\n[batching]\nmax_pending_rows = 2\n")
    stage.assign(SourcePartition(VARIANCES, 1))
    for offset in range(3):
        await stage.send(VARIANCES, lost(1, f"p{offset}"), offset=offset)
    assert (VARIANCES, 0) in stage.consumer.paused
    for offset in range(3):
        await stage.send(VARIANCES, lost(1, f"q{offset}"), offset=offset, partition=1)
    assert (VARIANCES, 1) in stage.consumer.paused
    stage.publish(VARIANCES)
    await stage.ingest.published(stage.state(VARIANCES))
    assert (VARIANCES, 0) not in stage.consumer.paused
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 3)
    assert (VARIANCES, 1) in stage.consumer.paused


async def test_a_sealed_batch_that_needs_more_rows_lifts_the_row_bound_until_they_come(
    tmp_path: Path,
) -> None:
    # An earlier owner paused at offset 4 and sealed 0-4 before a rebalance; this owner
    # starts lower, pauses before 4 with more rows than the bound, and the seal waits.
    stage = Stage(tmp_path, extra="\n[batching]\nmax_pending_rows = 2\n")
    for offset in range(3):
        await stage.send(VARIANCES, lost(1, f"p{offset}"), offset=offset)
    state = stage.state(VARIANCES)
    assert (VARIANCES, 0) in stage.consumer.paused
    state.seal_ends[ADJUSTMENT] = 4  # what the publish loop learns from the ledger
    await stage.ingest.published(state)  # nothing published, yet it must go on
    assert (VARIANCES, 0) not in stage.consumer.paused
    await stage.send(VARIANCES, lost(1, "p3"), offset=3)
    assert (VARIANCES, 0) not in stage.consumer.paused  # the seal's rows come in
    await stage.send(VARIANCES, lost(1, "p4"), offset=4)
    assert (VARIANCES, 0) in stage.consumer.paused  # all in: the bound holds again
    assert stage.pending(VARIANCES, ADJUSTMENT) == [f"VL-p{n}" for n in range(5)]


async def test_a_pause_takes_hold_inside_a_batch(tmp_path: Path) -> None:
    stage = Stage(tmp_path, extra="\n[batching]\nmax_pending_rows = 2\n")
    events = [stage.event(VARIANCES, lost(1, f"p{n}")) for n in range(6)]
    await stage.send_batch(*events)
    assert (VARIANCES, 0) in stage.consumer.paused
    assert stage.state(VARIANCES).consumed_through == 2  # the third row crossed the bound
    assert stage.pending(VARIANCES, ADJUSTMENT) == ["VL-p0", "VL-p1", "VL-p2"]
    stage.publish(VARIANCES)
    await stage.ingest.published(stage.state(VARIANCES))
    assert stage.consumer.seeks[-1] == (VARIANCES, 0, 3)  # the rest is fetched again


async def test_when_the_flow_resumes_every_partition_is_sought_to_the_record_it_needs(
    stage: Stage,
) -> None:
    # Faust drops what it fetches while its flow is stopped (a rebalance) and marks it
    # read: the tail of a partition would never come, nothing later showing the gap.
    untouched, halted = SourcePartition(COUNTS, 0), SourcePartition(VARIANCES, 1)
    stage.assign(halted)
    stage.broker.starts[untouched] = 3
    await stage.send(VARIANCES, lost(1, "f0"), offset=0)
    await stage.send(VARIANCES, lost(1, "f1"), offset=1)
    stage.state(VARIANCES, 1).paused.add("halted")  # its own unpause seeks it
    stage.ingest.realign()
    await asyncio.sleep(0.05)
    assert sorted(stage.consumer.seeks) == [(COUNTS, 0, 3), (VARIANCES, 0, 2)]


async def test_events_of_revoked_partitions_are_left_alone(stage: Stage) -> None:
    stage.revoke(SOURCE)
    held = await stage.send(VARIANCES, lost(1))
    assert not held.acked
    assert stage.inventory == {}


async def test_an_event_that_comes_before_its_assignment_callback_is_taken(
    stage: Stage,
) -> None:
    early = SourcePartition(VARIANCES, 1)
    stage.assigned.add(early)
    await stage.send(VARIANCES, lost(1), partition=1)
    assert stage.sources.get(early) is not None
    assert stage.state(VARIANCES, 1).pending_rows == 1


async def test_events_below_the_floor_are_not_looked_at_again(stage: Stage) -> None:
    await stage.send(VARIANCES, BAD, offset=0)
    await stage.send(VARIANCES, encode_avro(variance(-4, "VAR_SAMPLE", event_id="f0")), offset=1)
    stage.flush()  # durable and acked: the floor rises to 2
    stage.flush()  # and is written
    assert stage.progress_table.durable[f"{VARIANCES}:0"]["floor"] == 2
    stage.crash(SOURCE)  # a replay from the start, by a new owner
    held = [await stage.send(VARIANCES, v, offset=n) for n, v in enumerate([b"x", lost(2)])]
    stage.flush()
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -4
    assert len(stage.log.dlq) == 1
    assert stage.pending(VARIANCES, ADJUSTMENT) == []
    assert all(event.acked for event in held)


async def test_positions_prune_only_by_a_floor_that_is_durable(tmp_path: Path) -> None:
    # An hour's horizon, events two hours apart: the first copy may be forgotten once
    # the floor above it is in the changelog, and not before (a kill in between would let
    # a re-delivery apply it again).
    stage = Stage(tmp_path, extra="\n[dedupe]\nhorizon_days = 0.04\n")
    hour = 3_600_000
    base = 1_709_229_600_000
    await stage.send(VARIANCES, lost(1, "a"), offset=0, timestamp_ms=base)
    stage.flush()
    stage.publish(VARIANCES)  # acked: the floor rises to 1 in memory
    await stage.send(VARIANCES, lost(1, "b"), offset=1, timestamp_ms=base + 2 * hour)
    assert "a" in stage.inventory["STORE_1/10017"]["applied_events"]
    stage.flush()  # the floor record goes out with this flush
    assert stage.log.prunes == 0
    await stage.send(VARIANCES, lost(1, "c"), offset=2, timestamp_ms=base + 4 * hour)
    assert "a" not in stage.inventory["STORE_1/10017"]["applied_events"]
    assert stage.log.prunes == 1  # the writer knows which flush carries it (a fault point)
    assert stage.inventory["STORE_1/10017"]["net_variance"] == -3
