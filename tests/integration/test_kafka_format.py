"""Formatting a KRaft log dir with Kafka's own StorageTool, from the fetched jars."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from streams.devstack.local_broker import free_port
from streams.devstack.local_kafka import KafkaBroker

# A random cluster id starts with "-" once in 64 formats; CI met one.
DASHED = "-krbxPDGRAW0ucOGDGaXKw"


def test_a_cluster_id_that_looks_like_an_option_still_formats(
    kafka_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dashed = uuid.UUID(bytes=base64.urlsafe_b64decode(DASHED + "=="))
    monkeypatch.setattr(uuid, "uuid4", lambda: dashed)
    KafkaBroker(free_port(), tmp_path).prepare()
    meta = (tmp_path / "logs" / "meta.properties").read_text(encoding="utf-8")
    assert f"cluster.id={DASHED}" in meta.splitlines()
