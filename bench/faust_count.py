"""B1b's subject: the naive Faust agent, counting every input message into a Table.

**Frozen** (issue 22): B2/B1b is compared across sessions and commits, so this agent, its
settings and the backlog (`bench.workload`) stay as they are; a change to either starts a
new series in docs/performance.md and says so there.

Run as a child process by `bench.throughput`; it touches a marker file once it has
counted the whole backlog. It uses the same Faust settings as our worker on the same
broker (Tansu's only on Tansu), and the same worker (without Faust's start-up spinner,
see `streams.worker`), so the ratio against it measures our pipeline, not the platform.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import faust

from streams.config import KafkaConfig
from streams.kafka.broker import TopicNames
from streams.worker.app import TANSU_SETTINGS
from streams.worker.run import faust_worker


def main() -> None:
    expect = int(os.environ["BENCH_EXPECT"])
    marker = Path(os.environ["BENCH_MARKER"])
    kafka = KafkaConfig(bootstrap=os.environ["BENCH_BOOTSTRAP"])
    app = faust.App(
        os.environ["BENCH_GROUP"],
        broker=f"kafka://{kafka.bootstrap}",
        store="memory://",
        datadir=os.environ["BENCH_DATADIR"],
        topic_partitions=kafka.partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        autodiscover=False,
        **(TANSU_SETTINGS if os.environ.get("BENCH_BROKER", "tansu") == "tansu" else {}),
    )
    counts = app.Table("counts", default=int, partitions=kafka.partitions)
    topics = app.topic(
        *TopicNames.from_config(kafka).inputs,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    seen = 0

    async def count(stream: Any) -> None:
        nonlocal seen
        async for key, _value in stream.items():
            counts[key.decode()] += 1
            seen += 1
            if seen == expect:
                await asyncio.to_thread(marker.touch)

    app.agent(topics, name="count")(count)
    faust_worker(app, "warning").execute_from_commandline()


if __name__ == "__main__":
    main()
