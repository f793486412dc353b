"""Ports for local servers are picked below the kernel's ephemeral range, where no
outgoing connection can take one before its server binds it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.devstack.local_broker import IANA_EPHEMERAL_LOW, PICK_FROM, ephemeral_low, free_port
from streams.devstack.local_kafka import bind_failure


def test_the_ephemeral_range_is_read_from_the_kernel_file(tmp_path: Path) -> None:
    range_file = tmp_path / "ip_local_port_range"
    range_file.write_text("40000\t60999\n")
    assert ephemeral_low(range_file) == 40_000


def test_without_the_kernel_file_the_iana_range_is_assumed(tmp_path: Path) -> None:
    assert ephemeral_low(tmp_path / "absent") == IANA_EPHEMERAL_LOW
    (tmp_path / "garbled").write_text("\n")
    assert ephemeral_low(tmp_path / "garbled") == IANA_EPHEMERAL_LOW


def test_a_picked_port_is_below_the_ephemeral_range_and_can_be_bound() -> None:
    for _ in range(50):
        port = free_port()
        assert PICK_FROM <= port < ephemeral_low()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_that_is_held_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        picks = iter([taken - PICK_FROM, taken - PICK_FROM, 5])
        monkeypatch.setattr("secrets.randbelow", lambda _n: next(picks))
        monkeypatch.setattr("streams.devstack.local_broker.ephemeral_low", lambda: taken + 1)
        assert free_port() == PICK_FROM + 5


def test_kafkas_bind_failure_names_the_address() -> None:
    line = (
        "org.apache.kafka.common.KafkaException: Socket server failed to bind to "
        "127.0.0.1:37815: Address already in use."
    )
    assert bind_failure(f"[INFO] starting\n{line}\n") == "127.0.0.1:37815"
    assert bind_failure("[ERROR] Exiting Kafka due to fatal exception\n") is None
