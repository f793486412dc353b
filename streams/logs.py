"""Log output: Python's text lines (the default) or, on request, one JSON object per line.

A line about one event carries its source coordinates as structured fields, through
`extra=coords(...)`; in JSON they become the keys `topic`, `partition` and `offset`, so a
log search can go from a line straight to the record on the broker.

Where the format comes from: `variance-sync --log-format` for every command; without it
the worker (and `dev`) read `[worker] log_format` / `VARIANCE_SYNC_WORKER__LOG_FORMAT`.
The worker hands `dict_config` to Faust, which otherwise installs its own text handler
over whatever was set up before it. JSON lines go to stderr, where Faust's text lines
go; commands keep stdout for their output. Text leaves logging exactly as it was.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import orjson

LogFormat = Literal["text", "json"]
FORMATS: Final[tuple[str, ...]] = get_args(LogFormat)

# What every record has; anything else on a record came from `extra=` and is a field.
_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "taskName",  # Python 3.12 adds it to every record
}


def coords(topic: str | None, partition: int, offset: int | None = None) -> dict[str, Any]:
    """The `extra=` of a line about one event (or one partition's offset): the fields
    that locate it on the broker, leaving out the ones not known."""
    fields = {"topic": topic, "partition": partition, "offset": offset}
    return {name: value for name, value in fields.items() if value is not None}


class JsonFormatter(logging.Formatter):
    """One record as one line of JSON: `time` (ISO-8601 UTC), `level`, `logger`,
    `message`, `exception` and `stack` when there are, then the record's own fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for name, value in vars(record).items():
            if name not in _RECORD_ATTRIBUTES and name not in entry:
                entry[name] = value
        return _dumps(entry)


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _dumps(entry: dict[str, Any]) -> str:
    try:
        return orjson.dumps(entry, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()
    except orjson.JSONEncodeError:
        # What orjson refuses and repr() cannot mend: integers past 64 bits, strings with
        # lone surrogates. A log line must never be lost to its own formatting.
        return json.dumps(entry, default=repr, ensure_ascii=True, separators=(",", ":"))


def level_number(level: int | str) -> int:
    """`"info"`, `"warn"`, `"WARNING"` or a number, as the number `logging` uses."""
    if isinstance(level, int):
        return level
    try:
        return logging.getLevelNamesMapping()[level.upper()]
    except KeyError:
        raise ValueError(f"unknown log level {level!r}") from None


def dict_config(fmt: str, level: int | str) -> dict[str, Any] | None:
    """The `logging.config.dictConfig` that Faust's worker applies in place of its own,
    or None to keep Faust's (coloured text on stderr, as without this module)."""
    if fmt == "text":
        return None
    number = level_number(level)
    return {
        "version": 1,
        # Loggers made before Faust's setup (aiokafka's, ours) must keep logging.
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "level": number,
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": number, "handlers": ["default"]},
    }


def configure(fmt: str, level: int | str = logging.WARNING) -> None:
    """Send this process's log lines to stderr in format `fmt`. Text leaves logging as
    Python has it (warnings and errors on stderr, bare), so that commands print no more
    than before; it can be called again, and replaces its own handler."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; expected one of {', '.join(FORMATS)}")
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h.formatter, JsonFormatter)]:
        root.removeHandler(handler)
    if fmt == "text":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level_number(level))
    # `warnings.warn` would otherwise print two lines of text on stderr.
    logging.captureWarnings(True)
