"""Broker access shared by the worker, the producer and the ops tools.

Topics are created here, explicitly and with their intended partition counts, before any
worker starts: an auto-created topic would get the broker's default partition count and
break co-partitioning of a facility's events and its table rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, assert_never

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.conn import AIOKafkaConnection
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    ProducerFenced,
    RequestTimedOutError,
    SaslAuthenticationFailed,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.protocol.metadata import MetadataRequest

from schemas.models import EventKind
from sinks.feeds import FEEDS, AnyFeed
from streams.config import KafkaConfig
from streams.errors import StreamsError

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
# What a broker's authorizer answers when an ACL is missing.
AUTHORIZATION_ERRORS = (
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
)
_AUTHORIZATION_CODES = frozenset(error.errno for error in AUTHORIZATION_ERRORS)
METADATA_WAIT = 10.0
# The DLQ keeps rejected events whole, including oversized ones, so it accepts up to this.
DLQ_MAX_MESSAGE_BYTES = 32 * 1024 * 1024
# The topics the worker writes are stamped by the broker: Apache Kafka refuses records
# stamped more than an hour ahead of its own clock (log.message.timestamp.after.max.ms),
# and a worker whose clock runs ahead must not be stopped by that.
STAMPED_ON_ARRIVAL = {"message.timestamp.type": "LogAppendTime"}
# Status snapshots and lag-history samples are read back an hour at most (the console's
# history); a day keeps them for a look after an incident without a week of disk.
STATUS_RETENTION_MS = 24 * 3600 * 1000


# The worker's changelog-backed tables (`streams.worker.tables`).
INVENTORY_TABLE = "inventory"
PROGRESS_TABLE = "progress"
TABLES = (INVENTORY_TABLE, PROGRESS_TABLE)


def changelog_topic(group_id: str, table: str) -> str:
    """The name Faust gives a table's changelog topic (the app id is `group_id`)."""
    return f"{group_id}-{table}-changelog"


class BrokerFlavor(StrEnum):
    KAFKA = "kafka"
    TANSU = "tansu"


class BrokerError(StreamsError):
    """The broker is unreachable or its topics do not match what we need; one line.

    Retriable: the broker may come back, and a worker may create a missing topic.
    """

    retriable = True


@dataclass(frozen=True, slots=True)
class TopicNames:
    count_approved: str
    variance_logged: str
    dlq: str
    dlq_redrives: str
    status: str

    @classmethod
    def from_config(cls, kafka: KafkaConfig) -> TopicNames:
        t = kafka.topics
        return cls(t.count_approved, t.variance_logged, t.dlq, t.dlq_redrives, t.status)

    @property
    def inputs(self) -> tuple[str, str]:
        return (self.count_approved, self.variance_logged)

    @property
    def kinds(self) -> dict[str, EventKind]:
        return {
            self.count_approved: EventKind.COUNT_APPROVED,
            self.variance_logged: EventKind.VARIANCE_LOGGED,
        }

    def for_kind(self, kind: EventKind) -> str:
        match kind:
            case EventKind.COUNT_APPROVED:
                return self.count_approved
            case EventKind.VARIANCE_LOGGED:
                return self.variance_logged
            case _:
                assert_never(kind)

    @property
    def feeds(self) -> dict[str, tuple[AnyFeed, ...]]:
        """Which feeds each input topic can produce rows for: the feeds that take its
        kind of event (`FeedSpec.kinds`)."""
        return {topic: FEEDS.for_kind(kind) for topic, kind in self.kinds.items()}


async def _described(admin: AIOKafkaAdminClient, topics: list[str]) -> list[dict[str, Any]]:
    """The topics' metadata, once it lists their partitions: Apache Kafka answers a topic
    created a moment ago with none (or an error) until its metadata has spread."""
    deadline = time.monotonic() + METADATA_WAIT
    while True:
        described: list[dict[str, Any]] = await admin.describe_topics(topics)
        settled = all(t["partitions"] and not t.get("error_code") for t in described)
        if settled or time.monotonic() > deadline:
            return described
        await asyncio.sleep(0.1)


def client_options(kafka: KafkaConfig) -> dict[str, Any]:
    """Connection options for any aiokafka client, security included."""
    options: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": kafka.security_protocol,
    }
    context = ssl_context(kafka)
    if context is not None:
        options["ssl_context"] = context
    if kafka.security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = kafka.sasl_mechanism
        options["sasl_plain_username"] = kafka.sasl_username
        options["sasl_plain_password"] = sasl_password(kafka)
    return options


def ssl_context(kafka: KafkaConfig) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL, verifying against `ssl_cafile` if given."""
    if kafka.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)


def sasl_password(kafka: KafkaConfig) -> str | None:
    return kafka.sasl_password.get_secret_value() if kafka.sasl_password else None


async def unreachable(kafka: KafkaConfig, exc: Exception) -> str:
    """Why no connection to the broker could be made, as one line.

    aiokafka's bootstrap error says only "Unable to bootstrap": the cause that a secured
    broker gives (a refused password, an untrusted certificate) is logged, not raised. One
    direct connection to the first bootstrap address asks again and keeps the cause."""
    reason = await connection_problem(kafka)
    return f"cannot reach Kafka at {kafka.bootstrap}: {reason or exc}"


CLOSE_WAIT = 5.0  # seconds a probe waits for its TLS connection to finish closing


async def connection_problem(kafka: KafkaConfig) -> str | None:
    """What a direct connection to the first bootstrap address runs into; None if none.

    The connection is closed before this returns, TLS shutdown included: the CLI ends its
    event loop right after, and a socket left mid-shutdown would outlive the loop."""
    host, _, port = kafka.bootstrap.split(",")[0].strip().rpartition(":")
    options = client_options(kafka)
    del options["bootstrap_servers"]
    made: list[AIOKafkaConnection] = []  # aiokafka calls on_close only once it has a socket
    conn = AIOKafkaConnection(
        host.strip("[]"),
        int(port),
        request_timeout_ms=10_000,
        on_close=lambda opened, _reason: made.append(opened),
        **options,
    )
    try:
        await conn.connect()
    except (TimeoutError, OSError, ValueError, KafkaError) as exc:
        return _explained(kafka, exc)
    finally:
        closing = conn.close()
        if made:
            # A peer that never answers TLS's close_notify must not hold the caller.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(closing), CLOSE_WAIT)
    return None


def _explained(kafka: KafkaConfig, exc: Exception) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"its TLS certificate is not trusted ({exc.verify_message}); "
            "kafka.ssl_cafile must name the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}); is kafka.security_protocol right?"
    if isinstance(exc, SaslAuthenticationFailed):
        return (
            f"it refused SASL user {kafka.sasl_username!r} ({kafka.sasl_mechanism}): "
            "check kafka.sasl_username and kafka.sasl_password"
        )
    return str(exc) or type(exc).__name__


def denied(kafka: KafkaConfig, action: str) -> str:
    """One line for an ACL refusal, naming who was refused what."""
    who = f"SASL user {kafka.sasl_username!r}" if kafka.sasl_username else "this client"
    return f"Kafka at {kafka.bootstrap} does not allow {who} to {action}: an ACL is missing"


STARTING_BROKER_ATTEMPTS = 10


async def started_admin(kafka: KafkaConfig) -> AIOKafkaAdminClient:
    """An admin client on the broker. A broker that is still starting takes connections
    and closes them: while a direct connection succeeds, try again for a few seconds; any
    other failure is one line at once."""
    attempts = 0
    while True:
        attempts += 1
        admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=15_000)
        try:
            await admin.start()
        except KafkaConnectionError as exc:
            await admin.close()
            problem = await connection_problem(kafka)
            if problem is not None or attempts == STARTING_BROKER_ATTEMPTS:
                raise BrokerError(
                    f"cannot reach Kafka at {kafka.bootstrap}: {problem or exc}"
                ) from None
            log.info("Kafka at %s is not answering yet (%s); trying again", kafka.bootstrap, exc)
            await asyncio.sleep(1.0)
        else:
            return admin


async def prepare_broker(kafka: KafkaConfig) -> BrokerFlavor:
    """Detect the broker flavor and make sure every topic exists with the right partitions."""
    admin = await started_admin(kafka)
    try:
        flavor = await detect_flavor(admin, kafka)
        names = TopicNames.from_config(kafka)
        wanted = dict.fromkeys(names.inputs, kafka.partitions)
        # One partition each: dead letters are few, and `dlq show N` names them by offset;
        # re-drive records and worker status snapshots are small and read whole.
        wanted.update(dict.fromkeys((names.dlq, names.dlq_redrives, names.status), 1))
        changelogs = [changelog_topic(kafka.group_id, table) for table in TABLES]
        wanted.update(dict.fromkeys(changelogs, kafka.partitions))
        configs = {
            names.dlq: {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES), **STAMPED_ON_ARRIVAL},
            names.dlq_redrives: STAMPED_ON_ARRIVAL,
            names.status: {"retention.ms": str(STATUS_RETENTION_MS), **STAMPED_ON_ARRIVAL},
            **{key: {"cleanup.policy": "compact", **STAMPED_ON_ARRIVAL} for key in changelogs},
        }
        await ensure_topics(admin, kafka, wanted, configs)
    except AUTHORIZATION_ERRORS:
        raise BrokerError(denied(kafka, "describe the cluster and its topics")) from None
    except KafkaError as exc:
        raise BrokerError(f"Kafka at {kafka.bootstrap}: {exc}") from None
    finally:
        await admin.close()
    return flavor


def transactional_prefix(kafka: KafkaConfig) -> str:
    """What every transactional id of this worker group starts with (an ACL prefix)."""
    return f"{kafka.group_id}.changelog."


async def check_transactions(kafka: KafkaConfig) -> None:
    """Open and close a transactional producer under the group's prefix, so that a
    missing TransactionalId ACL stops the worker with one line, not a traceback later."""
    producer = AIOKafkaProducer(
        **client_options(kafka), transactional_id=f"{transactional_prefix(kafka)}check"
    )
    try:
        await producer.start()
    except TransactionalIdAuthorizationFailed:
        raise BrokerError(
            denied(kafka, f"use transactional ids {transactional_prefix(kafka)}*")
        ) from None
    except ProducerFenced:
        pass  # another worker starting at the same moment: the ACL is there
    except KafkaError as exc:
        raise BrokerError(f"Kafka at {kafka.bootstrap}: {exc}") from None
    finally:
        with contextlib.suppress(KafkaError):
            await producer.stop()


async def detect_flavor(admin: AIOKafkaAdminClient, kafka: KafkaConfig) -> BrokerFlavor:
    """The configured flavor, or for "auto" Tansu when its cluster id says so."""
    if kafka.flavor != "auto":
        return BrokerFlavor(kafka.flavor)
    cluster = await _describe_cluster(admin)
    cluster_id = str(cluster.get("cluster_id") or "")
    return BrokerFlavor.TANSU if "tansu" in cluster_id.lower() else BrokerFlavor.KAFKA


async def _describe_cluster(admin: AIOKafkaAdminClient) -> dict[str, Any]:
    """aiokafka's `describe_cluster` asks one node at random, so a cluster with one node
    down failed it as often as that node was drawn; ask every known node in turn."""
    error: KafkaError | None = None
    for node in [None, *(b.nodeId for b in admin._client.cluster.brokers())]:
        try:
            # aiokafka's own request, sent to the node we pick (no public call takes one).
            response = await admin._send_request(MetadataRequest(None), node)
        except (KafkaConnectionError, NodeNotReadyError, RequestTimedOutError) as exc:
            error = exc
            continue
        described: dict[str, Any] = response.to_object()
        return described
    assert error is not None  # noqa: S101 - the first attempt always runs
    raise error


async def ensure_topics(
    admin: AIOKafkaAdminClient,
    kafka: KafkaConfig,
    wanted: Mapping[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    configs = configs or {}
    rf = kafka.replication_factor
    new = [
        NewTopic(name, count, rf, topic_configs=dict(configs.get(name, {})))
        for name, count in wanted.items()
    ]
    response = await admin.create_topics(new)
    for topic, code, message in response.topic_errors:
        if code in _AUTHORIZATION_CODES:
            raise BrokerError(denied(kafka, f"create topic {topic}"))
        if code not in (0, TOPIC_ALREADY_EXISTS):
            raise BrokerError(f"cannot create topic {topic}: {message or code}")
        if code == 0:
            log.info("created topic %s with %d partitions", topic, wanted[topic])
    for topic in await _described(admin, list(wanted)):
        actual = len(topic["partitions"])
        expected = wanted[topic["topic"]]
        if actual != expected:
            raise BrokerError(
                f"topic {topic['topic']} has {actual} partitions but kafka.partitions is "
                f"{expected}; input topics must share one partition count"
            )


@dataclass(frozen=True, slots=True)
class DlqLimits:
    """What the DLQ topic keeps: `retention.ms` (-1: forever) and `max.message.bytes`;
    None where the broker will not say (Tansu)."""

    retention_ms: int | None = None
    max_message_bytes: int | None = None

    @property
    def max_record_bytes(self) -> int:
        """The largest dead letter to write: what the topic takes, within our producer's,
        less room for the batch and request around it."""
        limit = min(self.max_message_bytes or DLQ_MAX_MESSAGE_BYTES, DLQ_MAX_MESSAGE_BYTES)
        return max(limit - min(64 * 1024, limit // 8), 1024)


async def dlq_limits(kafka: KafkaConfig) -> DlqLimits:
    admin = AIOKafkaAdminClient(**client_options(kafka), request_timeout_ms=15_000)
    resource = ConfigResource(ConfigResourceType.TOPIC, kafka.topics.dlq)
    try:
        await admin.start()
        responses = await admin.describe_configs([resource])
    except (KafkaError, OSError):
        return DlqLimits()
    finally:
        await admin.close()
    found: dict[str, int] = {}
    for response in responses:
        for described in response.resources:
            for name, value, *_ in described[4]:
                if str(value).lstrip("-").isdigit():
                    found[name] = int(value)
    return DlqLimits(found.get("retention.ms"), found.get("max.message.bytes"))
