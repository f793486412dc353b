"""The worker assembled: each part built once and handed only what it uses, and Faust's
settings.

This is the one place that wires Faust to the pure core: the tables, the ingest agent, the
web views and `/metrics`, the background tasks (publish loop, monitor, rejection watch)
and the shutdown hook. docs/architecture.md follows one event through the files.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import faust

from sinks.destination import Destination
from sinks.feed_publisher import FaultHook, PublisherOptions, no_faults
from sinks.retry import Backoff
from streams.config import KafkaConfig, Settings
from streams.core.batch_status import web_address
from streams.core.batching import WindowPolicy
from streams.core.decision import Rules
from streams.core.lag_status import LagPolicy
from streams.core.pending import SourceRegistry
from streams.kafka.broker import DLQ_MAX_MESSAGE_BYTES, TopicNames, sasl_password, ssl_context
from streams.kafka.changelog_ends import end_changelogs
from streams.kafka.traits import BrokerTraits
from streams.worker.agents import register_ingest_agent
from streams.worker.broker_reads import BrokerReads
from streams.worker.changelog_writer import ChangelogWriter
from streams.worker.ingest import Ingest
from streams.worker.monitor import Monitor, SendStatus
from streams.worker.publish_loop import PublishLoop
from streams.worker.rejection_watch import RejectionWatch
from streams.worker.tables import TableProgress, register_tables
from streams.worker.transport import GroupConsumer, read_committed
from streams.worker.web import register_metrics, register_views

# DESIGN section 9: Tansu's group joins wait the full rebalance timeout, so dev and tests
# shorten it. Its wrong ListOffsets answers are handled by `streams.kafka.changelog_ends`.
TANSU_SETTINGS: dict[str, Any] = {
    "broker_rebalance_timeout": 2,
    "broker_session_timeout": 6,
    "broker_heartbeat_interval": 1,
}
# How soon a halted partition is consumed again, doubling while it keeps failing.
HALT_BACKOFF = Backoff(initial=1.0, maximum=30.0)


def build_app(
    settings: Settings,
    traits: BrokerTraits,
    destination: Destination,
    faults: FaultHook = no_faults,
    *,
    max_dead_letter_bytes: int = DLQ_MAX_MESSAGE_BYTES,
) -> faust.App:
    app = faust.App(settings.kafka.group_id, **faust_settings(settings, traits))
    read_committed(app)
    topics = TopicNames.from_config(settings.kafka)
    sources = SourceRegistry(topics.feeds, durable_gate=True)
    writer = ChangelogWriter(
        settings.kafka,
        sources,
        traits,
        dlq_topic=topics.dlq,
        dlq_max_bytes=max_dead_letter_bytes,
        request_timeout_ms=round(settings.kafka.produce_timeout_seconds * 1000),
        faults=faults,
    )
    inventory, progress = register_tables(app, settings.kafka.partitions, writer, topics.inputs)
    sources.use_progress(TableProgress(progress))

    ingest = Ingest(
        rules=Rules.from_settings(settings),
        kinds=topics.kinds,
        sources=sources,
        inventory=inventory,
        progress=progress,
        writer=writer,
        traits=traits,
        broker=BrokerReads(settings.kafka, topics.dlq),
        consumer=GroupConsumer(app),
        max_pending_rows=settings.batching.max_pending_rows,
        max_dead_letter_bytes=max_dead_letter_bytes,
        backoff=HALT_BACKOFF,
    )
    writer.watch(ingest)
    publish_loop = new_publish_loop(settings, sources, destination, faults, ingest)
    monitor = Monitor(
        settings.kafka,
        sources,
        publish_loop,
        status_sender(app, topics.status),
        policy=LagPolicy.for_window(settings.batching.window_seconds),
        web=web_address(settings.worker.web_host, settings.worker.web_port),
    )
    rejections = RejectionWatch(destination, settings.worker.rejections_check_seconds)

    # Tansu's ListOffsets answers are short: its changelogs are ended on every revoke.
    seal = None if traits.exact_list_offsets else partial(end_changelogs, settings.kafka)
    register_ingest_agent(app, topics.inputs, ingest, sources, writer, seal_changelogs=seal)
    register_views(
        app,
        sources=sources,
        publish_loop=publish_loop,
        inventory=inventory,
        monitor=monitor,
        rejections=rejections,
    )
    register_metrics(app, monitor)
    # Faust's task and signal signatures are looser than mypy can see through.
    tasks: Any = app
    for task in (publish_loop.run, monitor.run, rejections.run):
        tasks.task(task)

    async def on_shutdown(_app: Any, **_: Any) -> None:
        await ingest.close()
        await writer.stop()

    shutdown_signal: Any = app.on_before_shutdown
    shutdown_signal.connect(on_shutdown)
    return app


def new_publish_loop(
    settings: Settings,
    sources: SourceRegistry,
    destination: Destination,
    faults: FaultHook,
    ingest: Ingest,
) -> PublishLoop:
    return PublishLoop(
        sources,
        destination,
        PublisherOptions(
            file_prefix=settings.netsuite.file_prefix,
            max_rows=settings.batching.max_rows,
            verify_checksum=settings.publish.verify_checksum,
            park_after_seconds=settings.publish.park_after_seconds,
        ),
        WindowPolicy(settings.batching.window_seconds, settings.batching.max_rows),
        Backoff(settings.publish.retry_initial_seconds, settings.publish.retry_max_seconds),
        faults=faults,
        on_published=ingest.published,
    )


def status_sender(app: faust.App, topic: str) -> SendStatus:
    """How the monitor sends this worker's status records (raw bytes, keyed by worker)."""
    status = app.topic(
        topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def send(key: bytes, value: bytes) -> None:
        await status.send(key=key, value=value)

    return send


def faust_settings(settings: Settings, traits: BrokerTraits) -> dict[str, Any]:
    kafka, worker = settings.kafka, settings.worker
    options: dict[str, Any] = {
        "broker": [f"kafka://{host.strip()}" for host in kafka.bootstrap.split(",")],
        "store": f"{worker.store}://",
        "datadir": str(worker.data_dir),
        "topic_partitions": kafka.partitions,
        "topic_replication_factor": kafka.replication_factor,
        "consumer_auto_offset_reset": "earliest",
        # We ack events ourselves once their batch is published; waiting for every
        # unacked event on rebalance would stall it for a whole batch window.
        "stream_wait_empty": False,
        "autodiscover": False,
        "web_enabled": True,
        "web_bind": worker.web_host,
        "web_host": worker.web_host,
        "web_port": worker.web_port,
        "web_in_thread": False,
        # Room for dead-lettering any event the broker accepted, oversized ones included.
        "producer_max_request_size": DLQ_MAX_MESSAGE_BYTES,
        "consumer_max_fetch_size": DLQ_MAX_MESSAGE_BYTES,
    }
    credentials = broker_credentials(kafka)
    if credentials is not None:
        options["broker_credentials"] = credentials
    if traits.slow_group_joins:
        options.update(TANSU_SETTINGS)
    timing = {
        "broker_session_timeout": kafka.session_timeout_seconds,
        "broker_heartbeat_interval": kafka.heartbeat_interval_seconds,
        "broker_rebalance_timeout": kafka.rebalance_timeout_seconds,
    }
    options.update({name: value for name, value in timing.items() if value is not None})
    return options


def broker_credentials(kafka: KafkaConfig) -> Any:
    """Faust's form of the options that `client_options` gives aiokafka clients."""
    context = ssl_context(kafka)
    if kafka.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=sasl_password(kafka),
            mechanism=kafka.sasl_mechanism,
            ssl_context=context,
        )
    return context
