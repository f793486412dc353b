"""JSON log lines: one object per record, with the event's source coordinates; and the
`--log-format` switch reaching the CLI, the worker and Faust's own logging setup."""

from __future__ import annotations

import json
import logging
import socket
import sys
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import pytest
from mode.utils.logging import setup_logging

from streams.cli import main
from streams.devstack.stack import start_worker
from streams.logs import (
    JsonFormatter,
    LogFormat,
    configure,
    coords,
    dict_config,
    level_number,
)
from streams.worker.run import faust_worker
from tests.factories import write_config


@pytest.fixture(autouse=True)
def _root_logging() -> Iterator[None]:
    """Each test leaves the process's logging as it found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def record(
    message: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    level: int = logging.WARNING,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    return logging.getLogger("streams.worker.ingest").makeRecord(
        "streams.worker.ingest", level, __file__, 1, message, args, exc_info, extra=extra
    )


def formatted(made: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_record_is_one_json_object_with_the_standard_fields() -> None:
    made = record()
    entry = formatted(made)
    assert set(entry) == {"time", "level", "logger", "message"}
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "streams.worker.ingest"
    assert entry["message"] == "hello world"
    assert entry["time"].endswith("Z")
    when = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    assert when.utcoffset() is not None
    assert abs(when.timestamp() - made.created) < 0.001


def test_the_event_coordinates_are_fields() -> None:
    entry = formatted(record(extra=coords("hotwax.inventory.variance-logged", 3, 41)))
    assert (entry["topic"], entry["partition"], entry["offset"]) == (
        "hotwax.inventory.variance-logged",
        3,
        41,
    )


def test_coords_leave_out_what_is_not_known() -> None:
    assert coords(None, 2) == {"partition": 2}
    assert coords(None, 0, 0) == {"partition": 0, "offset": 0}
    assert coords("t", 1, 5) == {"topic": "t", "partition": 1, "offset": 5}


def fail() -> None:
    raise ValueError("bad quantity\non two lines")


def test_the_exception_is_in_the_same_line() -> None:
    try:
        fail()
    except ValueError:
        made = record("while deciding", (), level=logging.ERROR, exc_info=sys.exc_info())
    entry = formatted(made)
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bad quantity\non two lines")


def test_a_message_with_newlines_stays_one_line() -> None:
    entry = formatted(record("first\nsecond\r\nthird %s", ("\n",)))
    assert entry["message"] == "first\nsecond\r\nthird \n"


def test_extras_that_json_cannot_hold_are_written_as_their_repr() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    extra = {"thing": Opaque(), "path": Path("/x"), "keys": {1: "a"}, "parts": {3}}
    entry = formatted(record(extra=extra))
    assert entry["thing"] == "<opaque>"
    assert entry["path"] == repr(Path("/x"))
    assert entry["keys"] == {"1": "a"}
    assert entry["parts"] == "{3}"


def test_what_orjson_refuses_still_makes_a_line() -> None:
    entry = formatted(record("odd %s", ("\udc80",), extra={"huge": 2**70}))
    assert entry["message"] == "odd \udc80"
    assert entry["huge"] == 2**70


def test_configure_json_writes_each_record_once_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("json")
    configure("json")  # again, as the worker does after the CLI: still one handler
    logging.getLogger("streams.ops.lag").warning("lag %d", 7, extra=coords("t", 0, 9))
    logging.getLogger("streams.ops.lag").info("not at the default level")
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert (entry["message"], entry["offset"]) == ("lag 7", 9)


def test_configure_json_turns_warnings_into_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure("json")
    with warnings.catch_warnings():  # pytest's own recording of warnings set aside
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["logger"] == "py.warnings"
    assert "UserWarning: careful" in entry["message"]


def test_configure_text_takes_the_json_handler_away(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    configure("text")
    assert not any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def test_configure_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown log format 'xml'"):
        configure("xml")


@pytest.mark.parametrize(
    ("level", "number"),
    [("info", logging.INFO), ("warn", logging.WARNING), ("ERROR", logging.ERROR), (10, 10)],
)
def test_level_names_as_the_config_has_them(level: str | int, number: int) -> None:
    assert level_number(level) == number


def test_an_unknown_level_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        level_number("loud")


def test_text_keeps_fausts_own_logging_setup() -> None:
    assert dict_config("text", "info") is None


def test_fausts_logging_setup_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    app = faust.App("logs-test", autodiscover=False, web_enabled=False)
    worker = faust_worker(app, "info", log_format="json")
    assert worker.quiet
    # What Faust's worker does with it when it starts (mode's `Worker._setup_logging`).
    setup_logging(loglevel="info", logging_config=worker.logging_config)
    logging.getLogger("faust.worker").info("Ready")
    logging.getLogger("aiokafka").debug("below the level")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["Ready"]


def test_bad_log_format_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--log-format", "xml", "lag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "argument --log-format: invalid choice: 'xml'" in err


def test_the_flag_reaches_the_worker_over_its_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the flag lost on the way, the worker would set up text and drop the JSON handler.
    config = write_config(tmp_path, '\n[worker]\nlog_format = "text"\n')
    with socket.socket() as taken:  # the worker stops at its web port, after configuring
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("VARIANCE_SYNC_WORKER__WEB_PORT", str(taken.getsockname()[1]))
        code = main(["--log-format", "json", "worker", "--config", str(config)])
    assert code == 2
    assert "web_port" in capsys.readouterr().err
    assert any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def test_the_worker_takes_the_format_from_its_config_without_the_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("VARIANCE_SYNC_WORKER__LOG_FORMAT", "json")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("VARIANCE_SYNC_WORKER__WEB_PORT", str(taken.getsockname()[1]))
        assert main(["worker", "--config", str(config)]) == 2
    assert any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)


def test_a_time_in_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/Chicago")
    made = record()
    made.created = datetime(2024, 2, 29, 18, 0, 0, 250_000, tzinfo=UTC).timestamp()
    assert formatted(made)["time"] == "2024-02-29T18:00:00.250Z"


@pytest.mark.parametrize(("log_format", "flag"), [("json", ["--log-format", "json"]), (None, [])])
def test_dev_passes_its_flag_to_the_worker_it_starts(
    tmp_path: Path, log_format: LogFormat | None, flag: list[str]
) -> None:
    # A config that is not there: the worker says so and exits at once.
    env = {"VARIANCE_SYNC_CONFIG": str(tmp_path / "missing.toml")}
    log_file = tmp_path / "worker.log"
    worker = start_worker(env, log_file, log_format)
    assert worker.wait(60) == 2
    assert isinstance(worker.args, list)
    assert worker.args[3:] == [*flag, "worker", "--config", env["VARIANCE_SYNC_CONFIG"]]
    assert log_file.read_text(encoding="utf-8").endswith("config file not found\n")
