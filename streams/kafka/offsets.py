"""Offsets and timestamps as the ops tools need them, correct on Tansu and on Kafka.

DESIGN section 9 lists what Tansu gets wrong, and each method here avoids it:
- the latest offset comes from the high watermark of a Fetch response, never from
  ListOffsets (which answers the last batch's base offset + 1 on Tansu);
- a time becomes an offset by binary search over record timestamps, never through
  `offsets_for_times` (which answers 0 on Tansu);
- committed offsets are always asked for with an explicit partition list;
- groups are described one at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.errors import (
    GroupCoordinatorNotAvailableError,
    GroupLoadInProgressError,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    NotCoordinatorForGroupError,
    for_code,
)
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.group import LeaveGroupRequest

from streams.config import KafkaConfig
from streams.kafka.broker import BrokerError, client_options, detect_flavor, unreachable
from streams.kafka.traits import BrokerTraits

T = TypeVar("T")
FETCH_TIMEOUT = 10.0
UNKNOWN_MEMBER_ID = 25


@dataclass(frozen=True, slots=True)
class RecordInfo:
    offset: int
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class GroupState:
    state: str
    members: tuple[str, ...]

    @property
    def active(self) -> bool:
        return bool(self.members)


class OffsetReader:
    """An admin client and a group-less consumer, used together as one context."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self._kafka = kafka
        self._admin: AIOKafkaAdminClient | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._traits: BrokerTraits | None = None

    async def __aenter__(self) -> OffsetReader:
        options = client_options(self._kafka)
        admin = AIOKafkaAdminClient(**options, request_timeout_ms=15_000)
        # The broker holds a fetch of an empty partition for fetch_max_wait_ms (500 ms by
        # default), and high watermarks come only with fetch answers: every worker pays
        # that at each rebalance (`streams.kafka.changelog_ends`), as does every ops command.
        # Committed records only: the worker writes its changelogs and dead letters in
        # transactions where the broker has them, and an aborted write never happened.
        consumer = AIOKafkaConsumer(
            **options,
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
            isolation_level="read_committed",
        )
        try:
            await admin.start()
            await consumer.start()
        except KafkaConnectionError as exc:
            await _stop_consumer(consumer)
            await admin.close()
            raise BrokerError(await unreachable(self._kafka, exc)) from None
        self._admin, self._consumer = admin, consumer
        # Let the consumer's background tasks start: stopping it before they ever ran
        # makes aiokafka raise CancelledError out of stop(), hiding our own error.
        await asyncio.sleep(0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._consumer is not None:
            await _stop_consumer(self._consumer)
        if self._admin is not None:
            await self._admin.close()

    @property
    def admin(self) -> AIOKafkaAdminClient:
        assert self._admin is not None, "use OffsetReader as an async context manager"  # noqa: S101
        return self._admin

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use OffsetReader as an async context manager"  # noqa: S101
        return self._consumer

    def assign(self, tps: Sequence[TopicPartition]) -> None:
        """Point the consumer at `tps` (callers then seek). Re-assigning the very same
        partitions while a fetch is in flight leaves aiokafka unable to stop the consumer
        later (seen against Tansu), so an unchanged set is only resumed."""
        if self.consumer.assignment() != set(tps):
            self.consumer.assign(list(tps))
        else:
            self.consumer.resume(*tps)

    async def partitions(self, topic: str) -> list[TopicPartition]:
        # The listing first: describing an unknown topic creates it on Tansu.
        if topic not in await self.topics():
            raise BrokerError(f"unknown topic {topic!r}")
        described = await self.admin.describe_topics([topic])
        if not described or described[0].get("error_code"):
            raise BrokerError(f"unknown topic {topic!r}")
        numbers = sorted(p["partition"] for p in described[0]["partitions"])
        return [TopicPartition(topic, number) for number in numbers]

    async def partitions_of(self, topics: Iterable[str]) -> list[TopicPartition]:
        """Every partition of `topics`, topic by topic."""
        return [tp for topic in topics for tp in await self.partitions(topic)]

    async def topics(self) -> list[str]:
        return sorted(await _coordinated(self.admin.list_topics))

    async def groups(self) -> list[str]:
        listed = await _coordinated(self.admin.list_consumer_groups)
        return sorted(str(group[0]) for group in listed)

    async def group_state(self, group: str) -> GroupState:
        # One group per request: Tansu garbles a multi-group DescribeGroups answer.
        response = await _coordinated(lambda: self.admin.describe_consumer_groups([group]))
        for described in response[0].groups:
            error_code, name, state, _, _, members = described[:6]
            if name == group and not error_code:
                return GroupState(state=str(state), members=tuple(str(m[0]) for m in members))
        return GroupState(state="Dead", members=())

    async def group_exists(self, group: str, tps: Sequence[TopicPartition]) -> bool:
        """Listed, or with members, or with a committed offset on `tps`. Tansu lists a
        group only once it has committed, so the listing alone is not enough."""
        if group in await self.groups() or (await self.group_state(group)).active:
            return True
        return any(offset is not None for offset in (await self.committed(group, tps)).values())

    async def traits(self) -> BrokerTraits:
        """What the broker offers; its flavor is asked once per reader, when first needed."""
        if self._traits is None:
            self._traits = BrokerTraits.of(await detect_flavor(self.admin, self._kafka))
        return self._traits

    async def remove_members(self, group: str, members: Sequence[str]) -> None:
        """LeaveGroup on behalf of each member. Tansu never expires a member, and one whose
        worker stopped in generation 0 (Tansu's first) stays listed, because aiokafka
        leaves a group only from generation 1."""
        client = AIOKafkaClient(**client_options(self._kafka))
        try:
            await client.bootstrap()
            node = await client.coordinator_lookup(CoordinationType.GROUP, group)
            for member in members:
                response = await client.send(node, LeaveGroupRequest(group, member))
                code = response.error_code
                if code not in (0, UNKNOWN_MEMBER_ID):
                    raise BrokerError(
                        f"cannot remove member {member} of group {group}: error {code}"
                    )
        except KafkaError as exc:
            raise BrokerError(f"cannot remove the members of group {group}: {exc}") from None
        finally:
            await client.close()

    async def committed(
        self, group: str, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int | None]:
        answer = await _coordinated(lambda: self._fetch_offsets(group, tps))
        return {tp: offset if (offset := answer.get(tp, -1)) >= 0 else None for tp in tps}

    async def _fetch_offsets(
        self, group: str, tps: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """OffsetFetch, as aiokafka's `list_consumer_group_offsets` sends it, but raising
        the group-level error that it drops: a coordinator still loading its offsets
        after a broker restart answers with that error and no offsets, which aiokafka
        returns as "nothing committed"."""
        by_topic: dict[str, list[int]] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        request = OffsetFetchRequest(group, list(by_topic.items()))
        node = await self.admin.find_coordinator(group)
        # aiokafka's own method sends it so; no public call shows the group-level error.
        response = await self.admin._send_request(request, node)
        if code := getattr(response, "error_code", 0):
            raise for_code(code)(f"cannot fetch the offsets of group {group}")
        found: dict[TopicPartition, int] = {}
        for topic, partitions in response.topics:
            for partition, offset, _metadata, error_code in partitions:
                if error_code:
                    raise for_code(error_code)(f"cannot fetch the offset of {topic}[{partition}]")
                found[TopicPartition(topic, partition)] = offset
        return found

    async def log_starts(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        starts: Mapping[TopicPartition, int] = await self.consumer.beginning_offsets(list(tps))
        return dict(starts)

    async def high_watermarks(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        """The high watermark of each partition, as a Fetch response reports it."""
        consumer = self.consumer
        self.assign(tps)
        starts = await self.log_starts(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp])
        deadline = time.monotonic() + FETCH_TIMEOUT
        marks: dict[TopicPartition, int] = {}
        while len(marks) < len(tps):
            if time.monotonic() > deadline:
                missing = ", ".join(f"{tp.topic}[{tp.partition}]" for tp in tps if tp not in marks)
                raise BrokerError(f"no fetch answer for {missing} within {FETCH_TIMEOUT:.0f}s")
            pending = [tp for tp in tps if tp not in marks]
            # getmany sits out its whole timeout when the partitions are empty.
            await consumer.getmany(*pending, timeout_ms=50, max_records=1)
            for tp in pending:
                mark = consumer.highwater(tp)
                if mark is not None:
                    marks[tp] = mark
        return marks

    async def record_at(self, tp: TopicPartition, offset: int) -> RecordInfo | None:
        """The first record at or after `offset`, or None when there is none yet."""
        consumer = self.consumer
        self.assign([tp])
        consumer.seek(tp, offset)
        deadline = time.monotonic() + FETCH_TIMEOUT
        while time.monotonic() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=200, max_records=1)
            for record in batch.get(tp, []):
                return RecordInfo(record.offset, record.timestamp)
            mark = consumer.highwater(tp)
            if mark is not None and offset >= mark:
                return None
        raise BrokerError(f"no fetch answer for {tp.topic}[{tp.partition}] at offset {offset}")

    async def records(self, tp: TopicPartition, start: int, end: int) -> list[Any]:
        """Every record with an offset in [start, end), in order."""
        consumer = self.consumer
        self.assign([tp])
        consumer.seek(tp, start)
        found: list[Any] = []
        deadline = time.monotonic() + FETCH_TIMEOUT
        # The position, not the last offset seen, says when we are done: compacted or
        # transactional topics have gaps in their offsets.
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise BrokerError(f"reading {tp_label(tp)} stopped before offset {end}")
            batch = await consumer.getmany(tp, timeout_ms=200)
            found += [r for r in batch.get(tp, []) if r.offset < end]
            if batch.get(tp):
                deadline = time.monotonic() + FETCH_TIMEOUT
        return found

    async def offset_for_time(
        self, tp: TopicPartition, timestamp_ms: int, start: int, end: int
    ) -> int:
        """The first offset in [start, end) whose record is at or after `timestamp_ms`, or
        `end` when every record is older. Assumes timestamps grow with offsets, as with
        producer CreateTime from one clock; out-of-order stamps give a nearby offset."""
        low, high = start, end
        while low < high:
            middle = (low + high) // 2
            found = await self.record_at(tp, middle)
            if found is None:
                high = middle
            elif found.timestamp_ms < timestamp_ms:
                low = found.offset + 1
            else:
                high = middle
        return low

    async def commit(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        """Set a group's committed offsets without joining it (generation -1 commit);
        Kafka accepts this only while the group has no members."""
        consumer = AIOKafkaConsumer(
            **client_options(self._kafka), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(offsets))
            await consumer.commit(dict(offsets))
        except KafkaError as exc:
            raise BrokerError(f"cannot commit offsets for group {group}: {exc}") from None
        finally:
            await _stop_consumer(consumer)


async def _stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """`consumer.stop()`, through aiokafka's habit (aio-libs/aiokafka#647) of re-raising
    the CancelledError of a task that it cancelled itself, here a fetch waiting to retry
    a broker that went away. That error would end the caller's task, and stop() would
    leave the client open and retrying; a cancellation of the caller still propagates."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise
        await consumer._client.close()


async def _coordinated(call: Callable[[], Awaitable[T]]) -> T:
    """`call`, again while the broker is not ready for it: a node still starting, or a
    group coordinator not available, moved or still loading (a new Kafka cluster creates
    its offsets topic on the first question about any group, then loads it; a restarted
    one loads it again)."""
    deadline = time.monotonic() + FETCH_TIMEOUT
    while True:
        try:
            return await call()
        except (
            GroupCoordinatorNotAvailableError,
            GroupLoadInProgressError,
            NodeNotReadyError,
            NotCoordinatorForGroupError,
        ) as exc:
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"Kafka is still not ready after {FETCH_TIMEOUT:.0f}s: {exc}"
                ) from None
            await asyncio.sleep(0.2)


def tp_label(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


async def gather_records(
    reader: OffsetReader,
    tps: Iterable[TopicPartition],
    offsets: Mapping[TopicPartition, int | None],
) -> dict[TopicPartition, RecordInfo | None]:
    """The record at each partition's offset (the oldest unconsumed one for a group)."""
    found: dict[TopicPartition, RecordInfo | None] = {}
    for tp in tps:
        offset = offsets.get(tp)
        found[tp] = None if offset is None else await reader.record_at(tp, offset)
    return found
