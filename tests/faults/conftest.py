"""Fault-injection tier: real broker and sshd, workers killed and servers stopped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devstack.broker import LocalBroker
from tests.faults.harness import FaultStack
from tests.fixtures.broker import broker
from tests.fixtures.sshd import SSHDServer, sshd

__all__ = ["broker", "sshd"]

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
