from __future__ import annotations

from streams.core.progress import DeadLetterMark, Progress


def test_the_floor_only_rises_and_takes_the_dead_letters_below_it_along() -> None:
    progress = Progress(
        floor=3, dead_letters={3: DeadLetterMark(dlq_offset=7), 9: DeadLetterMark(pending_from=8)}
    )
    assert not progress.advance(2)
    assert progress.floor == 3
    assert progress.advance(5)
    assert progress.dead_letters == {9: DeadLetterMark(pending_from=8)}
    assert progress.processed(4)
    assert not progress.processed(5)


def test_progress_stays_bounded_over_a_long_stream() -> None:
    progress = Progress()
    for offset in range(0, 100_000, 10):
        progress.dead_letters[offset] = DeadLetterMark(dlq_offset=offset // 10)
        progress.advance(offset - 50)  # the floor trails what is consumed
    assert len(progress.dead_letters) == 6


def test_progress_round_trips_through_json() -> None:
    progress = Progress(12, {12: DeadLetterMark(dlq_offset=4), 15: DeadLetterMark(pending_from=5)})
    data = progress.to_json()
    assert data == {
        "floor": 12,
        "dead_letters": {"12": {"dlq_offset": 4}, "15": {"pending_from": 5}},
    }
    assert Progress.from_json(data) == progress
    assert progress.highest_dlq_offset() == 4
