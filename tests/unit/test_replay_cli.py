"""`variance-sync replay` mistakes that need no broker: one line on stderr, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from streams.kafka.offsets import GroupState
from tests.unit.cli_run import run

# Port 9 (discard) is closed: a command that got as far as the broker would say so.
NOWHERE = ["--bootstrap", "127.0.0.1:9"]
BASE = ["replay", *NOWHERE, "--group", "g", "--topic", "t"]


def one_line_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code, out, err = run(argv, capsys)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            ["--to-datetime", "2024-02-29T12:00:00"],
            "argument --to-datetime: '2024-02-29T12:00:00' has no UTC offset; add one, "
            "e.g. 2024-02-29T12:00:00Z or 2024-02-29T12:00:00-06:00",
        ),
        (
            ["--to-datetime", "last tuesday"],
            "argument --to-datetime: 'last tuesday' is not an ISO-8601 date-time",
        ),
        (
            ["--to-offset", "5", "--to-earliest"],
            "argument --to-earliest: not allowed with argument --to-offset",
        ),
        (["--to-offset", "-1"], "argument --to-offset: '-1' is not a whole number >= 0"),
        (["--to-earliest", "--partition", "x"], "argument --partition: 'x' is not a whole number"),
        (
            [],
            "one of the arguments --to-datetime --to-offset --to-earliest --to-latest "
            "--shift-by --from-file is required",
        ),
        (["--to-earliest", "--remove-stale-members"], "only applies with --execute"),
    ],
)
def test_bad_replay_arguments_get_one_line(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in one_line_error([*BASE, *extra], capsys)


def test_group_and_topic_are_required_without_a_rollback_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    err = one_line_error(["replay", *NOWHERE, "--topic", "t", "--to-earliest"], capsys)
    assert (
        err == "variance-sync: error: --group is required (or --from-file, which names the group)\n"
    )
    err = one_line_error(["replay", *NOWHERE, "--group", "g", "--to-earliest"], capsys)
    assert "--topic is required" in err


def test_export_never_overwrites_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    earlier = tmp_path / "back.json"
    earlier.write_text("{}", encoding="utf-8")
    err = one_line_error([*BASE, "--to-earliest", "--export", str(earlier)], capsys)
    assert (
        err == f"variance-sync: error: {earlier} already exists; --export never overwrites a file\n"
    )
    assert earlier.read_text(encoding="utf-8") == "{}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read it (No such file or directory)"),
        ("not json", "not JSON; expected a file written by --export"),
        ('{"group": "g"}', "not a replay export (needs 'group' and 'offsets')"),
    ],
)
def test_a_bad_rollback_file_is_named_in_one_line(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "back.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    err = one_line_error(["replay", *NOWHERE, "--from-file", str(path)], capsys)
    assert err == f"variance-sync: error: {path}: {message}\n"


def test_a_rollback_file_supplies_group_and_topics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "back.json"
    offsets = [{"topic": "t", "partition": 0, "offset": 3}]
    path.write_text(json.dumps({"group": "g", "offsets": offsets}), encoding="utf-8")
    # Everything checks out, so it goes on to the (closed) broker.
    err = one_line_error(["replay", *NOWHERE, "--from-file", str(path)], capsys)
    assert "cannot reach Kafka at 127.0.0.1:9" in err


def test_an_unreachable_broker_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert "cannot reach Kafka at 127.0.0.1:9" in one_line_error([*BASE, "--to-earliest"], capsys)


class Joining:
    """An offset reader whose group has no member when first asked, and one (a worker that
    started meanwhile) when asked again."""

    def __init__(self, _kafka: object) -> None:
        self.asked = 0
        self.commits: list[object] = []

    async def __aenter__(self) -> Joining:
        return self

    async def __aexit__(self, *_: object) -> None:
        pass

    async def topics(self) -> list[str]:
        return ["t"]

    async def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, 0)]

    async def group_exists(self, group: str, tps: object) -> bool:
        return True

    async def group_state(self, group: str) -> GroupState:
        self.asked += 1
        return GroupState("Stable", () if self.asked == 1 else ("worker-1",))

    async def log_starts(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)

    async def high_watermarks(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 10)

    async def committed(self, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 10)

    async def commit(self, group: str, offsets: object) -> None:
        self.commits.append(offsets)


def test_a_worker_that_joins_while_the_replay_plans_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readers: list[Joining] = []

    def reader(kafka: object) -> Joining:
        readers.append(Joining(kafka))
        return readers[-1]

    monkeypatch.setattr("streams.ops.replay.OffsetReader", reader)
    err = one_line_error([*BASE, "--to-earliest", "--execute"], capsys)
    assert "group g has 1 active member(s); stop its workers before replaying" in err
    assert readers[0].commits == []
