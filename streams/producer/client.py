"""`VarianceProducer`: how an OMS service publishes events, without running a Faust app.

    async with VarianceProducer("kafka:9092") as producer:
        await producer.publish(CountApproved(...))

Each event is validated with the same rules the worker applies (an invalid event raises
`InvalidEvent` and is not sent), Avro-encoded in single-object encoding, keyed by its
facility id, and `publish` returns only once the broker has acknowledged it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from schemas.codec import encode_avro, encode_json
from schemas.models import (
    CountApproved,
    EventKind,
    ValidationLimits,
    VarianceLogged,
    validate_event,
)
from streams.config import KafkaConfig
from streams.errors import StreamsError
from streams.kafka.broker import (
    AUTHORIZATION_ERRORS,
    BrokerFlavor,
    TopicNames,
    client_options,
    denied,
    detect_flavor,
    unreachable,
)
from streams.kafka.traits import BrokerTraits

Event = CountApproved | VarianceLogged
JSON_HEADERS = [("content-type", b"application/json")]


class PublishFailed(StreamsError):
    """The broker did not acknowledge the event; it may or may not have been written.
    Retriable: sending it again is safe, since the worker dedupes by event_id."""

    retriable = True


class PublishRefused(PublishFailed):
    """The broker refused the write (no ACL for it), or the producer is not started:
    sending the same again fails the same way."""

    retriable = False


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    topic: str
    partition: int
    offset: int


def kind_of(event: Event) -> EventKind:
    return event.KIND


class VarianceProducer:
    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        kafka: KafkaConfig | None = None,
        limits: ValidationLimits | None = None,
        encoding: Literal["avro", "json"] = "avro",
    ) -> None:
        config = kafka or KafkaConfig()
        if bootstrap is not None:
            config = config.model_copy(update={"bootstrap": bootstrap})
        self._config = config
        self._topics = TopicNames.from_config(config)
        self._limits = limits or ValidationLimits()
        self._encoding = encoding
        self._producer: AIOKafkaProducer | None = None
        self._idempotent = False

    async def __aenter__(self) -> VarianceProducer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def idempotent(self) -> bool:
        """Whether the broker deduplicates this producer's retries (Apache Kafka only)."""
        return self._idempotent

    async def start(self) -> None:
        try:
            # Idempotent where the broker can, so that a retry after a lost acknowledgement
            # does not store the event twice. Elsewhere (Tansu, `BrokerTraits`) a duplicate
            # is harmless all the same: the worker dedupes by event_id.
            self._idempotent = (await self._traits()).idempotence
            producer = AIOKafkaProducer(
                **client_options(self._config),
                acks="all",
                linger_ms=5,
                enable_idempotence=self._idempotent,
            )
            try:
                await producer.start()
            except KafkaError:
                await producer.stop()
                raise
        except AUTHORIZATION_ERRORS:
            # The one authorized request in start(): InitProducerId, for idempotence.
            action = "produce (an idempotent producer needs Write on a topic)"
            raise PublishRefused(denied(self._config, action)) from None
        except (KafkaError, KafkaConnectionError) as exc:
            raise PublishFailed(await unreachable(self._config, exc)) from None
        self._producer = producer

    async def _traits(self) -> BrokerTraits:
        if self._config.flavor != "auto":
            return BrokerTraits.of(BrokerFlavor(self._config.flavor))
        admin = AIOKafkaAdminClient(**client_options(self._config), request_timeout_ms=15_000)
        try:
            await admin.start()
            return BrokerTraits.of(await detect_flavor(admin, self._config))
        finally:
            await admin.close()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    def validate(self, kind: EventKind, data: Mapping[str, Any]) -> Event:
        """Validate a JSON-shaped event; raises `InvalidEvent` with every problem."""
        return validate_event(kind, data, self._limits, datetime.now(UTC))

    async def publish(self, event: Event) -> Delivery:
        """Validate, encode and send one event; return where the broker stored it."""
        kind = kind_of(event)
        checked = self.validate(kind, event.model_dump(mode="json"))
        return await self._send(kind, checked)

    async def publish_many(self, events: Iterable[Event]) -> list[Delivery]:
        """Validate every event first, so that an invalid one means nothing is sent."""
        checked = [
            (kind_of(e), self.validate(kind_of(e), e.model_dump(mode="json"))) for e in events
        ]
        futures = [await self._enqueue(kind, event) for kind, event in checked]
        return [
            await self._delivered(event, future)
            for (_, event), future in zip(checked, futures, strict=True)
        ]

    async def _send(self, kind: EventKind, event: Event) -> Delivery:
        return await self._delivered(event, await self._enqueue(kind, event))

    async def _enqueue(self, kind: EventKind, event: Event) -> Any:
        if self._encoding == "json":
            value, headers = encode_json(event), JSON_HEADERS
        else:
            value, headers = encode_avro(event), []
        if self._producer is None:
            raise PublishRefused("the producer is not started; use `async with` or start()")
        topic = self._topics.for_kind(kind)
        try:
            return await self._producer.send(
                topic, value=value, key=event.facility_id.encode(), headers=headers
            )
        except AUTHORIZATION_ERRORS:
            raise PublishRefused(denied(self._config, f"write to topic {topic}")) from None
        except KafkaError as exc:
            raise PublishFailed(f"event {event.event_id}: {exc}") from None

    async def _delivered(self, event: Event, future: Any) -> Delivery:
        try:
            metadata = await future
        except AUTHORIZATION_ERRORS:
            topic = self._topics.for_kind(kind_of(event))
            raise PublishRefused(denied(self._config, f"write to topic {topic}")) from None
        except KafkaError as exc:
            raise PublishFailed(f"event {event.event_id}: {exc}") from None
        return Delivery(event.event_id, metadata.topic, metadata.partition, metadata.offset)
