"""The per-record decision is a function of the record, its partition's progress, the
positions it touches and the config: never of the clock of the machine deciding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.codec import encode_avro
from schemas.models import EventKind
from streams.core.dead_letter import ErrorClass, SourceRecord
from streams.core.decision import Apply, Outcome, Reject, Rules, Skip, decide
from streams.core.progress import DeadLetterMark, Progress
from tests.factories import make_settings, variance

TOPIC = "hotwax.inventory.variance-logged"
JSON_HEADERS = (("content-type", b"application/json"),)
LIMIT = timedelta(minutes=10)  # validation.max_future_seconds


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Rules:
    return Rules.from_settings(make_settings(tmp_path_factory.mktemp("rules")))


def at(moment: datetime, event_id: str = "f") -> bytes:
    """A logged variance that happened at `moment`, as Avro (built without the model's own
    check, which judges against this machine's clock, as a producer would)."""
    event = variance(-1, "VAR_LOST", event_id=event_id)
    return encode_avro(event.model_copy(update={"occurred_at": moment}))


def record(value: bytes, timestamp_ms: int | None, offset: int = 0) -> SourceRecord:
    return SourceRecord(TOPIC, 0, offset, timestamp_ms, b"STORE_1", value)


def decided(rules: Rules, record: SourceRecord, progress: Progress | None = None) -> object:
    return decide(
        record,
        EventKind.VARIANCE_LOGGED,
        progress=progress or Progress(),
        positions={},
        floors={},
        rules=rules,
    )


# Record times from 2001 to 2099, far from today either way: a decision that read this
# machine's clock would refuse the late ones or take the early ones wrongly. (Whole
# workers under a faked clock: tests/faults/test_time.py.)
@settings(max_examples=60, deadline=None)
@given(
    sent=st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1)),
    lead_seconds=st.integers(min_value=-86_400, max_value=86_400),
)
def test_the_future_is_judged_against_the_record_time_alone(
    rules: Rules, sent: datetime, lead_seconds: int
) -> None:
    sent = sent.replace(tzinfo=UTC, microsecond=0)
    value = at(sent + timedelta(seconds=lead_seconds))
    decision = decided(rules, record(value, round(sent.timestamp() * 1000)))
    if timedelta(seconds=lead_seconds) > LIMIT:
        assert isinstance(decision, Reject)
        assert decision.letter.error_class is ErrorClass.INVALID
        assert "occurred_at" in decision.letter.reason
    else:
        assert isinstance(decision, Apply)


def test_a_record_without_a_usable_timestamp_is_not_judged_for_the_future(rules: Rules) -> None:
    value = at(datetime(2099, 1, 1, tzinfo=UTC))
    for stamp in (None, -1, 0):
        assert isinstance(decided(rules, record(value, stamp)), Apply)


def test_progress_decides_before_anything_is_read(rules: Rules) -> None:
    garbage = record(b"\\xc3\\x01\\x00", 1, offset=5)
    assert decided(rules, garbage, Progress(floor=6)) == Skip(Outcome.PROCESSED_BEFORE)
    sent = Progress(dead_letters={5: DeadLetterMark(with_transaction=True)})
    assert decided(rules, garbage, sent) == Skip(Outcome.DEAD_LETTERED_BEFORE)
    pending = decided(rules, garbage, Progress(dead_letters={5: DeadLetterMark(pending_from=9)}))
    assert isinstance(pending, Reject)
    assert pending.pending_from == 9


class Unreadable:
    """A store that fails to read (a disk error, a closed RocksDB)."""

    def get(self, key: str, /) -> object:
        raise OSError("Input/output error")


@pytest.mark.parametrize(
    ("positions", "error"),
    [(Unreadable(), OSError), ({"STORE_1/10017": {"not": "a position"}}, TypeError)],
    ids=["io", "corrupt"],
)
def test_a_store_that_cannot_be_read_is_raised_never_dead_lettered(
    rules: Rules, positions: object, error: type[Exception]
) -> None:
    # The event is good: a dead letter would move past it for good, for the store's fault.
    good = record(at(datetime(2024, 2, 29, 18, 0, tzinfo=UTC)), 1_709_229_600_000)
    with pytest.raises(error):
        decide(
            good,
            EventKind.VARIANCE_LOGGED,
            progress=Progress(),
            positions=positions,  # type: ignore[arg-type]
            floors={},
            rules=rules,
        )


def test_a_bug_deciding_an_event_is_an_internal_dead_letter(
    rules: Rules, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr("streams.core.decision._apply_to", broken)
    good = record(at(datetime(2024, 2, 29, 18, 0, tzinfo=UTC)), 1_709_229_600_000)
    decision = decided(rules, good)
    assert isinstance(decision, Reject)
    assert decision.letter.error_class is ErrorClass.INTERNAL
    assert "ZeroDivisionError: a bug" in decision.letter.reason


def test_a_transfer_from_a_location_to_itself_is_unroutable(rules: Rules) -> None:
    # NetSuite refuses such a transfer, and the whole file with it.
    event = variance(-1, "VAR_DAMAGED", location="1099")  # the damaged stock's location
    decision = decided(rules, record(encode_avro(event), 1_709_229_600_000))
    assert isinstance(decision, Reject)
    assert decision.letter.error_class is ErrorClass.UNROUTABLE
    assert "a transfer needs two locations" in decision.letter.reason


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+01:00", "0001-01-01T05:00:00Z", "9999-12-31T23:00:00Z"]
)
def test_a_date_no_calendar_can_hold_is_invalid_not_internal(rules: Rules, moment: str) -> None:
    body = variance(-1, "VAR_LOST").model_dump(mode="json") | {"occurred_at": moment}
    value = json.dumps(body).encode()
    json_record = SourceRecord(TOPIC, 0, 0, -1, b"STORE_1", value, JSON_HEADERS)
    decision = decided(rules, json_record)
    assert isinstance(decision, Reject)
    assert decision.letter.error_class is ErrorClass.INVALID
    assert "outside the dates a calendar can hold" in decision.letter.reason


def test_a_record_time_past_year_9999_is_no_usable_time(rules: Rules) -> None:
    decision = decided(rules, record(at(datetime(2024, 2, 29, tzinfo=UTC)), 10**15))
    assert isinstance(decision, Apply)
