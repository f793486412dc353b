"""A command whose reader goes away (`variance-sync dlq list --json | head -1`) ends
quietly: no traceback, exit 141 as for other Unix tools."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from streams.config import load_settings
from streams.devstack.broker import LocalBroker
from streams.kafka.broker import prepare_broker
from tests.factories import write_config


def test_a_closed_pipe_ends_the_command_quietly(tmp_path: Path, tansu_broker: LocalBroker) -> None:
    config = write_config(tmp_path, f'\n[kafka]\nbootstrap = "{tansu_broker.bootstrap}"\n')
    asyncio.run(prepare_broker(load_settings(config).kafka))
    command = [
        sys.executable,
        "-m",
        "streams.cli",
        "dlq",
        "list",
        "--json",
        "--config",
        str(config),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    process.stdout.close()  # before the command has written anything: `head` that left
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err.decode()) == (141, "")
