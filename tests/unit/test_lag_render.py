"""`variance-sync lag` at 80 columns: topic names and batch sources are never cut."""

from __future__ import annotations

from rich.console import Console

from streams.core.batch_status import BatchHealth, OpenBatch, WorkerStatus
from streams.core.lag_status import Sample, Status
from streams.kafka.lag_report import GroupReport
from streams.ops.lag import render

TOPICS = ("hotwax.inventory.count-approved", "hotwax.inventory.variance-logged")
NOW = 1_000_000.0


def report() -> GroupReport:
    partitions = {
        (topic, p): Sample(NOW, 1_000_000 + p, 1_000_250 + p, 0, int((NOW - 12) * 1000))
        for topic in TOPICS
        for p in range(4)
    }
    batch = OpenBatch("inventoryadjustment", TOPICS[1], 3, 123, 1_000_123, 4.5)
    worker = WorkerStatus("sync-host-03:412345", NOW, open_batches=(batch,))
    statuses = dict.fromkeys(partitions, Status.OK)
    health = BatchHealth(workers=(worker,), at=NOW)
    return GroupReport("variance-sync", partitions, statuses, health, ("inventoryadjustment",))


def shown(width: int) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(render(report()))
    return console.export_text()


def test_eighty_columns_cut_nothing() -> None:
    text = shown(80)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    for topic in TOPICS:
        assert topic in text
    assert "variance-logged[3]@1000123" in text
    assert "sync-host-03:412345" in text
