"""Apache Kafka that loses a port between its pick and its bind: one clear error, nothing
left open, and the tests' brokers start again on other ports."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devstack.local_broker import PortInUseError, free_port
from streams.devstack.local_kafka import KafkaBroker
from tests.fixtures.broker import QUICK_START, on_fresh_ports
from tests.fixtures.proc import open_fd_targets


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port bound but not listening: the start's check passes, Kafka's bind fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port()))
        yield sock.getsockname()[1]


def copy_of(template: Path, folder: Path) -> Path:
    shutil.copytree(template, folder)
    return folder


def test_a_controller_port_taken_before_the_bind_is_a_port_in_use_error(
    kafka_template: Path, tmp_path: Path, held_port: int
) -> None:
    folder = copy_of(kafka_template, tmp_path / "kafka")
    kafka = KafkaBroker(free_port(), folder, controller_port=held_port, jvm_options=QUICK_START)
    with pytest.raises(PortInUseError, match=f"127.0.0.1:{held_port}"):
        kafka.start()
    assert not kafka.running
    assert str(folder / "kafka.log") not in open_fd_targets()


def test_the_tests_broker_starts_again_on_fresh_ports(
    kafka_template: Path, tmp_path: Path, held_port: int
) -> None:
    folder = copy_of(kafka_template, tmp_path / "kafka")
    ports = iter([held_port])

    def make() -> KafkaBroker:
        controller = next(ports, None) or free_port()
        return KafkaBroker(free_port(), folder, controller_port=controller, jvm_options=QUICK_START)

    kafka = on_fresh_ports(make)
    try:
        assert kafka.running
        assert kafka.controller_port != held_port
    finally:
        kafka.stop()
