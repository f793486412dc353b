"""`variance-sync replay` against real brokers (Tansu, Apache Kafka): exact plans on a
known backlog, execution, the export/rollback round trip, refusal while members are
active, and one-line errors. The CLI runs in-process, as an operator would run it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from streams.cli import main
from streams.config import KafkaConfig
from streams.devstack.local_broker import LocalBroker
from streams.kafka.offsets import OffsetReader
from tests.factories import write_config
from tests.fixtures.broker import broker

__all__ = ["broker"]

TOPIC, GROUP = "replay-events", "replay-test"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
BASE_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
REFUSAL = f"group {GROUP} has 1 active member(s); stop its workers before replaying"

Row = tuple[int | None, int, int, bool]  # committed, new, re-read, clamped


async def fill(bootstrap: str, committed: Mapping[TopicPartition, int]) -> None:
    """Partition 0: offsets 0-19 stamped BASE + 0 s .. 19 s; partition 1: offsets 0-4
    stamped BASE + 5 s .. 9 s. Then the group commits `committed`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, 2, 1)])
    await admin.close()
    # Sent without waiting, so records share batches: the case Tansu's ListOffsets gets wrong.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        stamps = [(0, BASE_MS + i * 1000) for i in range(20)]
        stamps += [(1, BASE_MS + 5000 + i * 1000) for i in range(5)]
        sent = [await producer.send(TOPIC, b"x", partition=p, timestamp_ms=ms) for p, ms in stamps]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        await reader.commit(GROUP, committed)


async def committed(bootstrap: str) -> dict[TopicPartition, int | None]:
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        return await reader.committed(GROUP, [P0, P1])


@pytest.fixture
def backlog(broker: LocalBroker) -> str:
    asyncio.run(fill(broker.bootstrap, {P0: 15}))
    return broker.bootstrap


@pytest.fixture
def tansu_backlog(tansu_broker: LocalBroker) -> str:
    """For Tansu's own group behaviour: it never expires a member by its session timeout."""
    asyncio.run(fill(tansu_broker.bootstrap, {P0: 15}))
    return tansu_broker.bootstrap


def replay(bootstrap: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    argv = ["replay", "--bootstrap", bootstrap, *args]
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def plan_of(out: str) -> tuple[dict[str, Any], dict[int, Row]]:
    document = json.loads(out)
    rows = {
        p["partition"]: (p["committed"], p["new"], p["reread"], p["clamped"])
        for p in document["partitions"]
    }
    return document, rows


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # 16:13:26.5 at -06:00 is BASE + 6.5 s: the first record at or after it.
        (
            ["--to-datetime", "2023-11-14T16:13:26.500-06:00"],
            {0: (15, 7, 8, False), 1: (None, 2, -2, False)},
        ),
        (
            ["--to-datetime", "2023-11-14T22:13:26Z"],
            {0: (15, 6, 9, False), 1: (None, 1, -1, False)},
        ),
        (
            ["--to-datetime", "2023-11-14T22:00:00Z"],
            {0: (15, 0, 15, False), 1: (None, 0, 0, False)},
        ),
        (
            ["--to-datetime", "2023-11-14T23:00:00Z"],
            {0: (15, 20, -5, False), 1: (None, 5, -5, False)},
        ),
        (["--to-offset", "3"], {0: (15, 3, 12, False), 1: (None, 3, -3, False)}),
        (["--to-offset", "99"], {0: (15, 20, -5, True), 1: (None, 5, -5, True)}),
        (["--to-earliest"], {0: (15, 0, 15, False), 1: (None, 0, 0, False)}),
        (["--to-latest"], {0: (15, 20, -5, False), 1: (None, 5, -5, False)}),
        (["--shift-by", "-4"], {0: (15, 11, 4, False), 1: (None, 0, 0, True)}),
        (["--shift-by", "3"], {0: (15, 18, -3, False), 1: (None, 3, -3, False)}),
        (["--to-earliest", "--partition", "1"], {1: (None, 0, 0, False)}),
    ],
)
def test_a_dry_run_plans_exactly_and_changes_nothing(
    backlog: str, capsys: pytest.CaptureFixture[str], target: list[str], expected: dict[int, Row]
) -> None:
    code, out, err = replay(backlog, capsys, "--group", GROUP, "--topic", TOPIC, "--json", *target)
    assert (code, err) == (0, "")
    document, rows = plan_of(out)
    assert rows == expected
    assert document["executed"] is False
    assert asyncio.run(committed(backlog)) == {P0: 15, P1: None}


def test_the_table_names_each_partition_and_sums_up(
    backlog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = replay(backlog, capsys, "--group", GROUP, "--topic", TOPIC, "--to-offset", "17")
    assert code == 0
    for text in ("partition", "current", "re-read", TOPIC, "none", "skips 2", "asked 17, kept in"):
        assert text in out
    assert out.splitlines()[-1] == (
        f"dry run: 2 of 2 partition(s) of group {GROUP} would move to offset 17; 0 event(s) to "
        "re-read, 7 unread event(s) skipped and never processed (add --execute to apply)"
    )


def test_execute_moves_the_committed_offsets_exactly(
    backlog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    at = "2023-11-14T16:13:26.500-06:00"
    code, out, _ = replay(
        backlog, capsys, "--group", GROUP, "--topic", TOPIC, "--to-datetime", at, "--execute"
    )
    assert code == 0
    assert out.splitlines()[-1].startswith(
        f"applied and verified: 2 of 2 partition(s) of group {GROUP} moved to 2023-11-14T16:13:26"
    )
    assert asyncio.run(committed(backlog)) == {P0: 7, P1: 2}

    args = ("--group", GROUP, "--topic", TOPIC, "--partition", "0", "--shift-by", "5")
    code, out, _ = replay(backlog, capsys, *args, "--execute", "--json")
    assert code == 0
    assert plan_of(out)[0]["executed"] is True
    assert asyncio.run(committed(backlog)) == {P0: 12, P1: 2}


def test_an_export_undoes_the_move_with_from_file(
    broker: LocalBroker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(broker.bootstrap, {P0: 15, P1: 4}))
    bootstrap, group_topic = broker.bootstrap, ("--group", GROUP, "--topic", TOPIC)
    # A dry run exports too, and moves nothing.
    dry = tmp_path / "dry.json"
    assert replay(bootstrap, capsys, *group_topic, "--to-latest", "--export", str(dry))[0] == 0
    assert asyncio.run(committed(bootstrap)) == {P0: 15, P1: 4}
    assert json.loads(dry.read_text())["offsets"] == [
        {"topic": TOPIC, "partition": 0, "offset": 15},
        {"topic": TOPIC, "partition": 1, "offset": 4},
    ]

    back = tmp_path / "back.json"
    code, _, err = replay(
        bootstrap, capsys, *group_topic, "--to-earliest", "--execute", "--export", str(back)
    )
    assert code == 0
    assert err == f"saved the current offsets to {back}; undo with --from-file {back}\n"
    assert asyncio.run(committed(bootstrap)) == {P0: 0, P1: 0}
    saved = json.loads(back.read_text())
    assert saved["group"] == GROUP
    assert saved["offsets"] == json.loads(dry.read_text())["offsets"]

    code, out, _ = replay(bootstrap, capsys, "--from-file", str(back), "--json")
    assert code == 0
    assert plan_of(out)[1] == {0: (0, 15, -15, False), 1: (0, 4, -4, False)}
    code, _, _ = replay(bootstrap, capsys, "--from-file", str(back), "--execute")
    assert code == 0
    assert asyncio.run(committed(bootstrap)) == {P0: 15, P1: 4}


async def wait_for_members(bootstrap: str, expected: int) -> None:
    async with OffsetReader(KafkaConfig(bootstrap=bootstrap)) as reader:
        for _ in range(100):
            if len((await reader.group_state(GROUP)).members) == expected:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"group {GROUP} never had {expected} member(s)")


def member(bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=GROUP,
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=2000,
    )


async def test_execute_is_refused_while_a_member_is_active(
    backlog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--group", GROUP, "--topic", TOPIC, "--to-earliest")
    consumer = member(backlog)
    await consumer.start()
    try:
        await wait_for_members(backlog, 1)
        code, out, err = await asyncio.to_thread(replay, backlog, capsys, *args, "--execute")
        assert (code, out) == (2, "")
        assert err.count("\n") == 1
        assert err.startswith(f"variance-sync: error: {REFUSAL}")

        code, out, err = await asyncio.to_thread(replay, backlog, capsys, *args, "--json")
        assert code == 0
        assert plan_of(out)[0]["active_members"] == 1
        assert err == (
            f"warning: group {GROUP} has 1 active member(s); --execute refuses until its "
            "workers stop\n"
        )
        assert await committed(backlog) == {P0: 15, P1: None}
    finally:
        await consumer.stop()


async def test_a_stopped_first_generation_member_lingers_on_tansu_until_removed(
    tansu_backlog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backlog = tansu_backlog
    # Tansu numbers generations from 0, aiokafka sends LeaveGroup only from generation 1,
    # and Tansu never expires a member by its session timeout: the member stays listed.
    consumer = member(backlog)
    await consumer.start()
    await wait_for_members(backlog, 1)
    await consumer.stop()
    await asyncio.sleep(8)  # longer than the 6 s session timeout

    args = ("--group", GROUP, "--topic", TOPIC, "--to-earliest", "--execute")
    code, _, err = await asyncio.to_thread(replay, backlog, capsys, *args)
    assert code == 2
    assert err == (
        f"variance-sync: error: {REFUSAL} (Tansu keeps members of stopped workers listed: "
        "once every worker is stopped, add --remove-stale-members)\n"
    )
    code, _, err = await asyncio.to_thread(replay, backlog, capsys, *args, "--remove-stale-members")
    assert (code, err) == (0, f"removed 1 stale member(s) from group {GROUP}\n")
    assert await committed(backlog) == {P0: 0, P1: 0}
    await wait_for_members(backlog, 0)


async def test_removing_a_live_member_by_mistake_still_refuses(
    tansu_backlog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backlog = tansu_backlog
    consumer = member(backlog)
    await consumer.start()

    async def consume() -> None:  # as a worker does: it notices the removal and rejoins
        while True:
            await consumer.getmany(timeout_ms=200)

    polling = asyncio.create_task(consume())
    try:
        await wait_for_members(backlog, 1)
        args = ("--group", GROUP, "--topic", TOPIC, "--to-earliest", "--execute")
        code, out, err = await asyncio.to_thread(
            replay, backlog, capsys, *args, "--remove-stale-members"
        )
        assert (code, out) == (2, "")
        assert err == (
            f"variance-sync: error: group {GROUP} has members again after removing 1: a worker "
            "is running; stop it before replaying\n"
        )
        assert await committed(backlog) == {P0: 15, P1: None}
    finally:
        polling.cancel()
        await consumer.stop()


def test_mistakes_against_the_broker_are_one_line(
    backlog: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def error(*args: str) -> str:
        code, out, err = replay(backlog, capsys, *args)
        assert (code, out) == (2, "")
        assert err.count("\n") == 1, err
        return err.removeprefix("variance-sync: error: ").rstrip("\n")

    assert error("--group", "nobody", "--topic", TOPIC, "--to-earliest") == (
        f"unknown consumer group 'nobody' (no members, no offsets on {TOPIC})"
    )
    assert error("--group", GROUP, "--topic", "nope", "--to-earliest") == (
        "unknown topic 'nope' (the input topics are hotwax.inventory.count-approved and "
        "hotwax.inventory.variance-logged)"
    )
    assert error("--group", GROUP, "--topic", TOPIC, "--partition", "2", "--to-earliest") == (
        f"topic {TOPIC} has 2 partition(s) (0-1); there is no partition 2"
    )
    kafka = write_config(tmp_path, '\n[kafka]\nflavor = "kafka"\n')
    assert (
        error(
            "--config",
            str(kafka),
            "--group",
            GROUP,
            "--topic",
            TOPIC,
            "--to-earliest",
            "--execute",
            "--remove-stale-members",
        )
        == "--remove-stale-members is for Tansu; Kafka expires stale members"
    )

    async def topics() -> list[str]:
        async with OffsetReader(KafkaConfig(bootstrap=backlog)) as reader:
            return await reader.topics()

    # Looking an unknown topic up must not create it (Tansu creates topics on describe).
    assert "nope" not in asyncio.run(topics())
