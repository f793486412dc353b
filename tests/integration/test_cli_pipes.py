"""Commands in pipes. One whose reader goes away (`variance-sync dlq list --json | head -1`)
ends quietly: no traceback, exit 141 as for other Unix tools. `publish -` reads its events
from standard input (`produce-events | variance-sync publish --topic ... -`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition

from schemas.codec import decode_event
from schemas.models import EventKind, ValidationLimits
from streams.config import load_settings
from streams.devstack.local_broker import LocalBroker
from streams.kafka.broker import prepare_broker
from streams.kafka.offsets import OffsetReader
from tests.factories import variance, write_config


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


def test_publish_reads_standard_input(tmp_path: Path, tansu_broker: LocalBroker) -> None:
    topics = '\n[kafka.topics]\nvariance_logged = "acme.variances"\n'
    kafka = f'\n[kafka]\nbootstrap = "{tansu_broker.bootstrap}"\n'
    config = write_config(tmp_path, kafka + topics)
    settings = load_settings(config)
    asyncio.run(prepare_broker(settings.kafka))
    events = [variance(-1, event_id="stdin-1"), variance(-2, event_id="stdin-2")]
    lines = "".join(json.dumps(event.model_dump(mode="json")) + "\n" for event in events)
    # The configured full name works as the short one does.
    command = [sys.executable, "-m", "streams.cli", "publish", "--topic", "acme.variances"]
    done = subprocess.run(
        [*command, "--config", str(config), "--json", "-"],
        input=lines,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    result = json.loads(done.stdout)
    assert (result["topic"], result["sent"]) == ("acme.variances", 2)

    async def read_back() -> list[str]:
        found = []
        async with OffsetReader(settings.kafka) as reader:
            for delivery in result["deliveries"]:
                tp = TopicPartition(delivery["topic"], delivery["partition"])
                (record,) = await reader.records(tp, delivery["offset"], delivery["offset"] + 1)
                event, _ = decode_event(
                    record.value,
                    EventKind.VARIANCE_LOGGED,
                    None,
                    ValidationLimits(),
                    datetime.now(UTC),
                )
                found.append(event.event_id)
        return found

    assert asyncio.run(read_back()) == ["stdin-1", "stdin-2"]


def test_publish_names_standard_input_in_its_line_problems(tmp_path: Path) -> None:
    # Port 9 (discard) is closed: an exit of 1, not 2, shows that nothing was sent.
    command = [sys.executable, "-m", "streams.cli", "publish", "--topic", "variance-logged"]
    done = subprocess.run(
        [*command, "--bootstrap", "127.0.0.1:9", "-"],
        input="not json\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("<stdin>:1: not JSON")
