"""The group console's view: the liveness rule, merging workers' snapshots, lag history
buckets, and status records that older and newer workers write during a rolling upgrade."""

from __future__ import annotations

import itertools
import json
import socket

from streams.core.batch_status import (
    DeadLetterSummary,
    HeldPartition,
    OpenBatch,
    WorkerStatus,
    WriterSnapshot,
    latest_per_worker,
    web_address,
)
from streams.core.group_view import (
    HISTORY_KEY,
    LagPoint,
    PartitionLag,
    StatusRecords,
    bucket,
    group_view,
    history,
    history_json,
    is_live,
    sample_due,
)
from streams.core.lag_status import Sample

NOW = 1_765_000_000.0
COUNTS = "hotwax.inventory.count-approved"
VARIANCES = "hotwax.inventory.variance-logged"


def status(worker: str, at: float, *held: tuple[str, int], **more: object) -> WorkerStatus:
    partitions = tuple(HeldPartition(topic, partition) for topic, partition in held)
    return WorkerStatus(worker, at, partitions=partitions, **more)  # type: ignore[arg-type]


def point(at: float, *lags: int) -> LagPoint:
    return LagPoint(at, tuple(PartitionLag(COUNTS, n, lag, None) for n, lag in enumerate(lags)))


def test_a_worker_is_live_up_to_the_expiry_and_gone_after_it() -> None:
    assert is_live(NOW - 15.0, NOW, expiry=15.0)
    assert not is_live(NOW - 15.001, NOW, expiry=15.0)
    # A sender whose clock runs ahead of the reader's is live, not gone.
    assert is_live(NOW + 3.0, NOW, expiry=15.0)


def test_a_gone_worker_is_listed_as_gone_and_holds_nothing() -> None:
    view = group_view(
        [status("a:1", NOW - 2, (COUNTS, 0)), status("b:2", NOW - 40, (COUNTS, 1))],
        NOW,
        expiry=15.0,
        forget_after=3600.0,
    )
    assert [(w["worker"], w["state"]) for w in view["workers"]] == [
        ("a:1", "live"),
        ("b:2", "gone"),
    ]
    assert view["workers"][1]["partitions"] == [{"topic": COUNTS, "partition": 1}]
    assert view["partitions"] == [{"topic": COUNTS, "partition": 0, "workers": ["a:1"]}]


def test_a_worker_silent_past_forget_after_is_dropped() -> None:
    view = group_view([status("old:9", NOW - 3601)], NOW, expiry=15.0, forget_after=3600.0)
    assert view["workers"] == []


def test_the_newest_snapshot_of_each_worker_wins_whatever_the_order() -> None:
    snapshots = [
        status("a:1", NOW - 9, (COUNTS, 0), (COUNTS, 1)),
        status("a:1", NOW - 1, (COUNTS, 1)),
        status("b:2", NOW - 1, (VARIANCES, 0), (COUNTS, 0)),
    ]
    views = [group_view(order, NOW) for order in itertools.permutations(snapshots)]
    assert all(view == views[0] for view in views)
    assert views[0]["partitions"] == [
        {"topic": COUNTS, "partition": 0, "workers": ["b:2"]},
        {"topic": COUNTS, "partition": 1, "workers": ["a:1"]},
        {"topic": VARIANCES, "partition": 0, "workers": ["b:2"]},
    ]
    # Each worker's own list is sorted, not in the order it was reported.
    assert views[0]["workers"][1]["partitions"] == [
        {"topic": COUNTS, "partition": 0},
        {"topic": VARIANCES, "partition": 0},
    ]


def test_two_live_workers_claiming_one_partition_are_both_shown() -> None:
    """Mid-rebalance, the old owner's last snapshot still names the partition."""
    view = group_view([status("a:1", NOW - 1, (COUNTS, 0)), status("b:2", NOW, (COUNTS, 0))], NOW)
    assert view["partitions"] == [{"topic": COUNTS, "partition": 0, "workers": ["a:1", "b:2"]}]


def test_the_view_carries_writers_batches_and_dead_letters() -> None:
    writer = WriterSnapshot("adjustment", COUNTS, 0, "retrying", "denied", (4, 9))
    batch = OpenBatch("adjustment", COUNTS, 0, rows=3, first_offset=4, age_seconds=1.5)
    letters = DeadLetterSummary(total=3, redriven=1, by_class={"decode": 3})
    view = group_view(
        [
            status(
                "a:1",
                NOW - 1,
                (COUNTS, 0),
                writers=(writer,),
                open_batches=(batch,),
                dead_letters=letters,
                web="127.0.0.1:6066",
            )
        ],
        NOW,
    )
    shown = view["workers"][0]
    assert shown["writers"] == [
        {
            "feed": "adjustment",
            "topic": COUNTS,
            "partition": 0,
            "state": "retrying",
            "error": "denied",
            "sealed": (4, 9),
        }
    ]
    assert shown["open_batches"][0]["rows"] == 3
    assert shown["dead_letters"] == {"total": 3, "redriven": 1, "by_class": {"decode": 3}}
    assert shown["web"] == "127.0.0.1:6066"
    assert shown["age_seconds"] == 1.0


def test_a_status_survives_its_wire_form() -> None:
    sent = status(
        "a:1",
        NOW,
        (COUNTS, 2),
        writers=(WriterSnapshot("transfer", VARIANCES, 2, "idle", None, (1, 5)),),
        dead_letters=DeadLetterSummary(2, 0, {"validation": 2}),
        web="10.0.0.5:6066",
    )
    assert WorkerStatus.from_bytes(sent.to_bytes()) == sent


def test_an_older_workers_record_reads_with_nothing_reported() -> None:
    """A rolling upgrade: the record of a worker from before the group console."""
    old = json.dumps({"worker": "a:1", "at": NOW, "open_batches": [], "last_publish": {}})
    found = WorkerStatus.from_bytes(old.encode())
    assert (found.partitions, found.writers, found.dead_letters, found.web) == (
        None,
        None,
        None,
        None,
    )
    shown = group_view([found], NOW)["workers"][0]
    assert shown["partitions"] is None
    assert shown["writers"] is None


def test_a_newer_workers_extra_fields_are_ignored() -> None:
    raw = json.loads(status("a:1", NOW, (COUNTS, 0)).to_bytes())
    raw["from_the_future"] = 1
    raw["partitions"][0]["leader_epoch"] = 7
    found = WorkerStatus.from_bytes(json.dumps(raw).encode())
    assert found.partitions == (HeldPartition(COUNTS, 0),)


def test_lag_samples_under_their_key_are_not_mistaken_for_workers() -> None:
    records = StatusRecords()
    records.add(HISTORY_KEY, point(NOW, 3).to_bytes())
    records.add(b"a:1", status("a:1", NOW).to_bytes())
    records.add(b"junk", b"not json")
    records.add(b"a:1", None)
    assert list(records.statuses) == ["a:1"]
    assert records.points == [point(NOW, 3)]
    assert records.last_point_at == NOW
    # The older readers of `/lag` skip the samples too.
    assert [s.worker for s in latest_per_worker([point(NOW, 3).to_bytes()], NOW, 15)] == []


def test_pruning_forgets_what_no_view_shows() -> None:
    records = StatusRecords()
    records.add(b"a:1", status("a:1", NOW - 4000).to_bytes())
    records.add(b"b:2", status("b:2", NOW - 10).to_bytes())
    records.add(HISTORY_KEY, point(NOW - 3600, 1).to_bytes())
    records.add(HISTORY_KEY, point(NOW - 30, 2).to_bytes())
    records.prune(NOW, forget_after=3600.0, span=3600.0)
    assert list(records.statuses) == ["b:2"]
    assert records.points == [point(NOW - 30, 2)]


def test_a_sample_is_due_once_per_bucket() -> None:
    start = bucket(NOW, 30.0) * 30.0
    assert sample_due(None, start, 30.0)
    assert not sample_due(start, start + 29.9, 30.0)
    assert sample_due(start + 29.9, start + 30.0, 30.0)


def test_history_keeps_the_earliest_sample_of_each_bucket_in_the_last_span() -> None:
    start = bucket(NOW, 30.0) * 30.0
    racing = [point(start + 1, 5), point(start + 0.5, 7), point(start + 31, 2)]
    stale = point(start - 3600, 9)
    assert history([*racing, stale], start + 59, span=3600.0, step=30.0) == [
        point(start + 0.5, 7),
        point(start + 31, 2),
    ]
    # Every reader picks the same point, whichever arrived first.
    assert history(list(reversed(racing)), start + 59, 3600.0, 30.0) == history(
        racing, start + 59, 3600.0, 30.0
    )


def test_equal_times_in_one_bucket_resolve_by_content_not_arrival() -> None:
    twins = [point(NOW, 1), point(NOW, 2)]
    assert history(twins, NOW) == history(list(reversed(twins)), NOW)


def test_history_json_totals_each_point() -> None:
    body = history_json([point(NOW - 10, 2, 3)], NOW, span=3600.0, step=30.0)
    assert body["span_seconds"] == 3600.0
    assert [(p["at"], p["total_lag"]) for p in body["points"]] == [(NOW - 10, 5)]


def test_a_point_from_a_group_sample() -> None:
    samples = {
        (VARIANCES, 0): Sample(
            NOW,
            committed=4,
            high_watermark=10,
            log_start=0,
            oldest_timestamp_ms=int((NOW - 8) * 1000),
        ),
        (COUNTS, 1): Sample(
            NOW, committed=None, high_watermark=3, log_start=1, oldest_timestamp_ms=None
        ),
    }
    found = LagPoint.of(samples, NOW)
    assert found.partitions == (
        PartitionLag(COUNTS, 1, 2, None),
        PartitionLag(VARIANCES, 0, 6, 8.0),
    )
    assert found.total == 8
    assert LagPoint.from_bytes(found.to_bytes()) == found


def test_a_wildcard_bind_is_reported_under_the_machines_name() -> None:
    assert web_address("127.0.0.1", 6066) == "127.0.0.1:6066"
    assert web_address("0.0.0.0", 8080) == f"{socket.gethostname()}:8080"  # noqa: S104
    assert web_address("::1", 6066) == "[::1]:6066"
