"""Committed offsets while the group coordinator is still loading them.

aiokafka's admin call drops OffsetFetch's group-level error, so a broker that had just
restarted answered "nothing committed" (seen in CI). The answers below are the broker's
as the protocol states them; only the transport is replaced."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import TopicPartition

from streams.config import KafkaConfig
from streams.kafka import offsets
from streams.kafka.broker import BrokerError
from streams.kafka.offsets import OffsetReader

COORDINATOR_LOAD_IN_PROGRESS = 14
TP = TopicPartition("hotwax.inventory.variance-logged", 2)


@dataclass
class Answer:
    error_code: int
    topics: list[Any]


@dataclass
class LoadingCoordinator:
    """Answers COORDINATOR_LOAD_IN_PROGRESS, with no offsets, `loading` times."""

    loading: int
    requests: list[Any] = field(default_factory=list)

    async def find_coordinator(self, group: str) -> int:
        return 1

    async def _send_request(self, request: Any, node: int) -> Answer:
        self.requests.append(request)
        if len(self.requests) <= self.loading:
            return Answer(COORDINATOR_LOAD_IN_PROGRESS, [])
        return Answer(0, [(TP.topic, [(TP.partition, 7, "", 0), (3, -1, "", 0)])])


def reader_on(admin: LoadingCoordinator) -> OffsetReader:
    reader = OffsetReader(KafkaConfig(bootstrap="127.0.0.1:9"))
    reader._admin = admin  # only the transport is replaced
    return reader


async def test_a_loading_coordinator_is_asked_again_not_taken_for_no_commits() -> None:
    admin = LoadingCoordinator(loading=2)
    other = TopicPartition(TP.topic, 3)
    assert await reader_on(admin).committed("variance-sync", [TP, other]) == {TP: 7, other: None}
    assert len(admin.requests) == 3


async def test_a_coordinator_that_never_loads_is_one_broker_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A raw KafkaError would be a traceback in the CLI and, once, ended the worker."""
    monkeypatch.setattr(offsets, "FETCH_TIMEOUT", 0.5)
    admin = LoadingCoordinator(loading=1_000)
    with pytest.raises(BrokerError, match=r"still not ready after .*GroupLoadInProgress"):
        await reader_on(admin).committed("variance-sync", [TP])
    assert len(admin.requests) > 1
