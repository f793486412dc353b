"""Fault-injection tier: real broker and sshd, workers killed and servers stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devstack.local_broker import LocalBroker
from streams.devstack.local_kafka import KafkaBroker
from tests.faults.harness import FaultStack
from tests.fixtures.broker import broker, kafka_broker
from tests.fixtures.sshd import SSHDServer, sshd

__all__ = ["broker", "kafka_broker", "sshd"]

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(_HERE):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def stack(tmp_path: Path, broker: LocalBroker, sshd: SSHDServer) -> Iterator[FaultStack]:
    faults = FaultStack(tmp_path, broker, sshd)
    try:
        yield faults
    finally:
        faults.stop_all()


@pytest.fixture
def kafka_stack(
    tmp_path: Path, kafka_broker: KafkaBroker, sshd: SSHDServer
) -> Iterator[FaultStack]:
    """The stage on Apache Kafka alone: for what needs its transactions (fencing)."""
    faults = FaultStack(tmp_path, kafka_broker, sshd)
    try:
        yield faults
    finally:
        faults.stop_all()
