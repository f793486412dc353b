"""The Faust app: topics, tables, the ingest agent, the publish loop and web views.

This is the one place that wires Faust to the pure core; docs/architecture.md follows one
event through the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from sinks.destination import Destination
from sinks.feed_publisher import FaultHook, PublisherOptions, no_faults
from sinks.retry import Backoff
from sinks.source_partition import SourcePartition
from streams.config import KafkaConfig, Settings
from streams.core.batch_status import web_address
from streams.core.batching import WindowPolicy
from streams.core.decision import Rules
from streams.core.lag_status import LagPolicy
from streams.core.pending import SourceRegistry
from streams.kafka.broker import (
    DLQ_MAX_MESSAGE_BYTES,
    BrokerFlavor,
    TopicNames,
    sasl_password,
    ssl_context,
)
from streams.kafka.traits import BrokerTraits
from streams.worker.agents import register_ingest_agent
from streams.worker.broker_reads import BrokerReads
from streams.worker.changelog_writer import ChangelogWriter
from streams.worker.ingest import Ingest
from streams.worker.monitor import Monitor
from streams.worker.publish_loop import PublishLoop
from streams.worker.rejection_watch import RejectionWatch
from streams.worker.tables import TableProgress, WrittenThroughTable, register_tables
from streams.worker.transport import read_committed, rejoin_group
from streams.worker.web import register_views

# DESIGN section 9: Tansu's group joins wait the full rebalance timeout, so dev and tests
# shorten it. Its wrong ListOffsets answers are handled by `streams.kafka.changelog_ends`.
TANSU_SETTINGS: dict[str, Any] = {
    "broker_rebalance_timeout": 2,
    "broker_session_timeout": 6,
    "broker_heartbeat_interval": 1,
}
# How soon a halted partition is consumed again, doubling while it keeps failing.
HALT_BACKOFF = Backoff(initial=1.0, maximum=30.0)


@dataclass
class Runtime:
    """Everything one worker runs; the web views and tests reach in through it."""

    app: faust.App
    settings: Settings
    topics: TopicNames
    traits: BrokerTraits
    sources: SourceRegistry
    ingest: Ingest
    publish_loop: PublishLoop
    destination: Destination
    monitor: Monitor
    rejections: RejectionWatch
    writer: ChangelogWriter
    inventory: WrittenThroughTable
    progress: WrittenThroughTable


def build_runtime(
    settings: Settings,
    flavor: BrokerFlavor,
    destination: Destination,
    faults: FaultHook = no_faults,
    *,
    max_dead_letter_bytes: int = DLQ_MAX_MESSAGE_BYTES,
) -> Runtime:
    app = faust.App(settings.kafka.group_id, **faust_settings(settings, flavor))
    read_committed(app)
    traits = BrokerTraits.of(flavor)
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

    def assigned(source: SourcePartition) -> bool:
        return TP(source.topic, source.partition) in app.consumer.assignment()

    ingest = Ingest(
        rules=Rules.from_settings(settings),
        kinds=topics.kinds,
        sources=sources,
        inventory=inventory,
        progress=progress,
        writer=writer,
        traits=traits,
        broker=BrokerReads(settings.kafka, topics.dlq),
        consumer=lambda: app.consumer,
        assigned=assigned,
        max_pending_rows=settings.batching.max_pending_rows,
        max_dead_letter_bytes=max_dead_letter_bytes,
        backoff=HALT_BACKOFF,
        rejoin=lambda: rejoin_group(app),
    )
    writer.watch(ingest)
    publish_loop = PublishLoop(
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
    status = app.topic(
        topics.status,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def send_status(key: bytes, value: bytes) -> None:
        await status.send(key=key, value=value)

    monitor = Monitor(
        settings.kafka,
        sources,
        publish_loop,
        send_status,
        policy=LagPolicy.for_window(settings.batching.window_seconds),
        web=web_address(settings.worker.web_host, settings.worker.web_port),
    )
    runtime = Runtime(
        app,
        settings,
        topics,
        traits,
        sources,
        ingest,
        publish_loop,
        destination,
        monitor,
        RejectionWatch(destination, settings.worker.rejections_check_seconds),
        writer,
        inventory,
        progress,
    )
    register_ingest_agent(runtime)
    register_views(runtime)
    serve_metrics(runtime)
    return runtime


def serve_metrics(runtime: Runtime) -> None:
    """`/metrics` with our registry only: Faust's sensors are left out (docs/monitoring.md).
    A revoked partition's series go at once, so that its next owner is its only source."""
    app, monitor = runtime.app, runtime.monitor

    @app.page("/metrics")
    async def metrics_page(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def on_revoked(_app: Any, revoked: Any, **_: Any) -> None:
        monitor.forget([(tp.topic, tp.partition) for tp in revoked])

    revoked_signal: Any = app.on_partitions_revoked
    revoked_signal.connect(on_revoked)


def faust_settings(settings: Settings, flavor: BrokerFlavor) -> dict[str, Any]:
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
    if flavor is BrokerFlavor.TANSU:
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
