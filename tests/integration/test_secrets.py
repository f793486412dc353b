"""Passwords and private keys never reach logs, errors or the settings dump."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from streams.cli import main
from streams.devstack.local_broker import LocalBroker
from tests.fixtures.broker import broker
from tests.fixtures.sshd import SSHDServer
from tests.fixtures.worker import WorkerProcess, wait_for
from tests.integration.test_pipeline_e2e import (
    publish_variances,
    read_rows,
    worker_config,
)

__all__ = ["broker"]

SFTP_PASSWORD = "sftp-PASSWORD-9f3e"  # noqa: S105 - a marker to search logs for, not a secret
SASL_PASSWORD = "sasl-PASSWORD-71ac"  # noqa: S105 - likewise


def secret_config(tmp_path: Path, broker: LocalBroker, sshd: SSHDServer, base_dir: str) -> Path:
    path = worker_config(tmp_path, broker, sshd, base_dir)
    text = path.read_text(encoding="utf-8")
    text = text.replace("[sftp]\n", f'[sftp]\npassword = "{SFTP_PASSWORD}"\n')
    text = text.replace(
        "[kafka]\n", f'[kafka]\nsasl_username = "svc"\nsasl_password = "{SASL_PASSWORD}"\n'
    )
    path.write_text(text, encoding="utf-8")
    return path


def key_material(sshd: SSHDServer) -> str:
    lines = sshd.params.client_keys[0].read_text().splitlines()
    return lines[1]  # a line of the base64 private key body


def test_a_running_worker_never_logs_secrets(
    tmp_path: Path, broker: LocalBroker, sshd: SSHDServer
) -> None:
    base_dir = f"secrets-{uuid.uuid4().hex[:8]}"
    worker = WorkerProcess(
        secret_config(tmp_path, broker, sshd, base_dir),
        tmp_path / "worker.log",
        {"VARIANCE_SYNC_WORKER__LOG_LEVEL": "debug"},
    ).start()
    try:
        worker.wait_ready()
        asyncio.run(publish_variances(broker.bootstrap, "s", 3))
        csv_dir = sshd.root / base_dir / "inventoryadjustment" / "csv"
        wait_for(lambda: len(read_rows(csv_dir)[1]) == 3, 30, "rows", worker)
        sshd.stop()  # errors while the server is down must not reveal them either
        try:
            asyncio.run(publish_variances(broker.bootstrap, "t", 2))
            wait_for(lambda: "keeping the batch" in worker.log(), 30, "a publish error", worker)
        finally:
            sshd.start()
    finally:
        worker.stop()
    log = worker.log_file.read_text(encoding="utf-8", errors="replace")
    for secret in (SFTP_PASSWORD, SASL_PASSWORD, key_material(sshd)):
        assert secret not in log


def test_config_errors_do_not_echo_secret_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.factories import write_config

    config = write_config(
        tmp_path, f'\n[kafka]\nsasl_password = "{SASL_PASSWORD}"\npartitions = "many"\n'
    )
    assert main(["worker", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "kafka.partitions" in err
    assert SASL_PASSWORD not in err
