"""`variance-sync replay` mistakes that need no broker: one line on stderr, exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
