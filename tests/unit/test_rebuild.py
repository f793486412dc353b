"""rebuild-table's view of Faust's storage: changelog encoding and folding, the guard, and
the local RocksDB folders. Faust itself encodes the records and names the paths here, so
these tests fail if a Faust upgrade changes either."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import faust
import pytest

from streams.cli import main
from streams.config import KafkaConfig, WorkerConfig
from streams.core.pending import SourceRegistry
from streams.errors import UsageError
from streams.kafka.broker import INVENTORY_TABLE, PROGRESS_TABLE, BrokerFlavor, changelog_topic
from streams.kafka.changelog import (
    PartitionRead,
    RebuiltTable,
    drop_local_state,
    held_by_another_process,
    local_state,
    tables_dir,
)
from streams.kafka.traits import BrokerTraits
from streams.worker.changelog_writer import ChangelogWriter
from streams.worker.tables import register_tables
from tests.factories import write_config


def faust_tables(data_dir: Path, partitions: int = 2) -> tuple[Any, Any]:
    app = faust.App("variance-sync", datadir=str(data_dir), store="rocksdb://")
    # Never started: these tables are only named and serialized here, never written.
    writer = ChangelogWriter(KafkaConfig(), SourceRegistry({}), BrokerTraits.of(BrokerFlavor.KAFKA))
    return register_tables(app, partitions, writer)


def as_faust_writes(table: Any, key: str, value: Any) -> tuple[bytes, bytes | None]:
    """Key and value bytes exactly as the table's changelog topic serializes them."""
    serializers = table.app.serializers
    raw_key = serializers.dumps_key(table.key_type, key, serializer=table.key_serializer)
    if value is None:  # a deleted key: Faust sends a null value
        return raw_key, None
    return raw_key, serializers.dumps_value(
        table.value_type, value, serializer=table.value_serializer
    )


def test_changelog_topics_are_named_as_faust_names_them(tmp_path: Path) -> None:
    inventory, progress = faust_tables(tmp_path)
    assert inventory.changelog_topic_name == changelog_topic("variance-sync", INVENTORY_TABLE)
    assert progress.changelog_topic_name == changelog_topic("variance-sync", PROGRESS_TABLE)


def test_the_last_value_wins_a_tombstone_deletes_and_partitions_combine(tmp_path: Path) -> None:
    inventory, _ = faust_tables(tmp_path)
    records = [
        (0, "STORE_1/1", {"net_variance": -1, "applied_events": {"e0": ["t", 0, 1]}}),
        (1, "STORE_2/1", {"net_variance": 4}),
        (0, "STORE_1/2", {"net_variance": 7}),
        (0, "STORE_1/1", {"net_variance": -3, "applied_events": {"e5": ["t", 5, 1]}}),
        (0, "STORE_1/2", None),
        (1, "STORE_2/9", {"net_variance": 2}),
    ]
    rebuilt = RebuiltTable(INVENTORY_TABLE)
    for offset, (partition, key, value) in enumerate(records):
        rebuilt.apply(partition, offset, *as_faust_writes(inventory, key, value))
    assert rebuilt.values == {
        "STORE_1/1": {"net_variance": -3, "applied_events": {"e5": ["t", 5, 1]}},
        "STORE_2/1": {"net_variance": 4},
        "STORE_2/9": {"net_variance": 2},
    }
    assert rebuilt.partition_of == {"STORE_1/1": 0, "STORE_2/1": 1, "STORE_2/9": 1}


def test_progress_values_are_floors_and_dead_letters(tmp_path: Path) -> None:
    _, progress = faust_tables(tmp_path)
    value = {"floor": 17, "dead_letters": {"18": {"dlq_offset": 3}}}
    rebuilt = RebuiltTable(PROGRESS_TABLE)
    rebuilt.apply(3, 0, *as_faust_writes(progress, "hotwax.inventory.variance-logged:3", value))
    assert rebuilt.values == {"hotwax.inventory.variance-logged:3": value}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (b'"STORE_1/1"', b"\xc3\x01not json", "inventory changelog[2]@7: not a JSON record"),
        (b"STORE_1/1", b"{}", "inventory changelog[2]@7: not a JSON record"),
        (b"12", b"{}", "inventory changelog[2]@7: key 12 is not a string"),
    ],
)
def test_a_record_faust_did_not_write_is_a_one_line_error(
    key: bytes, value: bytes, message: str
) -> None:
    with pytest.raises(UsageError, match=r"^" + message.replace("[", r"\[")):
        RebuiltTable(INVENTORY_TABLE).apply(2, 7, key, value)


@pytest.mark.parametrize(
    ("list_offsets_end", "high_watermark", "tripped", "at_risk"),
    [
        (1, 5, True, 4),  # Tansu: the base offset + 1 of a five-record batch
        (5, 5, False, 0),
        (6, 5, False, 0),  # a worker wrote between the two questions: not Tansu's bug
        (0, 0, False, 0),
    ],
)
def test_the_guard_trips_only_when_list_offsets_answers_short(
    list_offsets_end: int, high_watermark: int, tripped: bool, at_risk: int
) -> None:
    read = PartitionRead("t", 0, 0, high_watermark, list_offsets_end, high_watermark)
    assert (read.guard_tripped, read.at_risk) == (tripped, at_risk)
    table = RebuiltTable(INVENTORY_TABLE, partitions=[read])
    assert table.tripped == ([read] if tripped else [])


def test_local_state_is_exactly_the_folders_faust_keeps_for_our_tables(tmp_path: Path) -> None:
    data_dir = tmp_path / "worker"
    inventory, progress = faust_tables(data_dir)
    assert inventory.app.conf.tabledir == tables_dir(data_dir)
    # Faust's RocksDB store creates its backups folder when built, the databases on use.
    databases = [table.data.partition_path(p) for table in (inventory, progress) for p in (0, 1)]
    for database in databases:
        database.mkdir()
        (database / "LOCK").touch()
    unrelated = [tables_dir(data_dir) / name for name in ("other-0.db", "inventory-old")]
    for path in unrelated:
        path.mkdir()
    backups = [tables_dir(data_dir) / f"{name}-backups" for name in ("inventory", "progress")]
    worker = WorkerConfig(store="rocksdb", data_dir=data_dir)

    assert local_state(worker) == sorted(databases + backups)
    assert local_state(WorkerConfig(store="memory", data_dir=data_dir)) == []
    assert drop_local_state(worker) == sorted(databases + backups)
    assert all(path.is_dir() for path in unrelated)
    assert local_state(worker) == []


def test_an_open_rocksdb_database_is_held_by_its_process(tmp_path: Path) -> None:
    database = tmp_path / "inventory-0.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, rocksdict; db = rocksdict.Rdict(sys.argv[1]); print('open', flush=True);"
            " sys.stdin.read()",
            str(database),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "open\n"
        assert held_by_another_process(database)
    finally:
        holder.communicate("", timeout=30)
    assert not held_by_another_process(database)
    assert not held_by_another_process(tmp_path / "never-opened.db")


def test_an_unreachable_broker_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    code = main(["rebuild-table", "--config", str(config), "--bootstrap", "127.0.0.1:9"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "cannot reach Kafka at 127.0.0.1:9" in err
