"""A position reset told "not leader" refreshes the consumer's metadata.

aiokafka's fetcher asked the stale leader again every 100 ms until its metadata aged out
(5 minutes), and fetched nothing else from that node meanwhile: after a leader moved, the
worker's table recovery waited minutes (tests/faults/test_cluster.py). Only aiokafka's
ListOffsets request is replaced here; its answer is the broker's."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.consumer.fetcher import Fetcher as AiokafkaFetcher
from aiokafka.consumer.fetcher import OffsetResetStrategy
from aiokafka.errors import NotLeaderForPartitionError, RequestTimedOutError

from streams.worker.transport import _refresh_metadata_on_stale_leader

TP = TopicPartition("variance-sync-__assignor-__leader", 0)


class Client:
    def __init__(self) -> None:
        self.refreshes = 0

    def force_metadata_update(self) -> None:
        self.refreshes += 1


class Fetcher:
    def __init__(self, error: Exception | None) -> None:
        self._client = Client()
        self.error = error

    async def _proc_offset_request(self, node_id: int, topic_data: Any) -> Any:
        if self.error is not None:
            raise self.error
        return {TP: (7, None)}


async def test_not_leader_refreshes_the_metadata_and_still_fails_the_attempt() -> None:
    fetcher = Fetcher(NotLeaderForPartitionError(TP))
    _refresh_metadata_on_stale_leader(fetcher)
    with pytest.raises(NotLeaderForPartitionError):
        await fetcher._proc_offset_request(3, {TP.topic: [(0, -2)]})
    assert fetcher._client.refreshes == 1


async def test_other_answers_leave_the_metadata_alone() -> None:
    fetcher = Fetcher(None)
    _refresh_metadata_on_stale_leader(fetcher)
    assert await fetcher._proc_offset_request(1, {TP.topic: [(0, -2)]}) == {TP: (7, None)}
    fetcher.error = RequestTimedOutError()
    with pytest.raises(RequestTimedOutError):
        await fetcher._proc_offset_request(1, {TP.topic: [(0, -2)]})
    assert fetcher._client.refreshes == 0


class ResetState:
    """A partition waiting for its position (no committed offset), as aiokafka keeps it."""

    has_valid_position = False
    awaiting_reset = True
    reset_strategy = OffsetResetStrategy.EARLIEST


class Assignment:
    def state_value(self, tp: TopicPartition) -> ResetState:
        return ResetState()


async def test_aiokafkas_position_reset_goes_through_the_refresh() -> None:
    """aiokafka's own reset path (which only logs the error) asks the replaced request."""
    fetcher = Fetcher(NotLeaderForPartitionError(TP))
    fetcher._retry_backoff = 0  # type: ignore[attr-defined]
    _refresh_metadata_on_stale_leader(fetcher)
    await AiokafkaFetcher._update_fetch_positions(fetcher, Assignment(), 3, [TP])
    assert fetcher._client.refreshes == 1
