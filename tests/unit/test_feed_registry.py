"""Feeds are an open registry: a feed defined only in the tests (`DAMAGE`) takes the rows
it claims once registered, leaves every other row where it went, and a registry refuses a
second feed of the same folder or file label. (End to end: tests/integration/
test_added_feed.py.)"""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from schemas.codec import encode_avro
from schemas.models import EventKind
from sinks.csv_render import render
from sinks.feeds import ADJUSTMENT, FEEDS, TRANSFER, FeedRegistry
from sinks.naming import batch_file_name, parse_batch_file_name
from sinks.source_partition import SourcePartition
from streams.config import NetSuiteConfig
from streams.core.dead_letter import SourceRecord
from streams.core.decision import Apply, Rules, decide
from streams.core.progress import Progress
from streams.core.routing import UnroutableEvent, route_count, route_variance
from tests.factories import count, line, make_settings, variance
from tests.integration.damage_feed import DAMAGE, DamageRow

BUILT_IN = (ADJUSTMENT, TRANSFER)


@pytest.fixture
def netsuite(tmp_path: Path) -> NetSuiteConfig:
    return make_settings(tmp_path).netsuite


def with_damage() -> FeedRegistry:
    return FeedRegistry(*BUILT_IN, DAMAGE)


def test_a_registered_feed_takes_the_rows_it_claims_in_its_own_shape(
    netsuite: NetSuiteConfig,
) -> None:
    event = variance(-2, "VAR_DAMAGED", description="Crushed", event_id="d1")
    (export,) = route_variance(event, netsuite, feeds=with_damage()).exports
    assert export.feed is DAMAGE
    assert export.row == DamageRow(
        "VL-d1", "254", "3410", -2, date(2024, 2, 29), "Crushed", "1", "927"
    )
    assert render(DAMAGE, [export.row]) == (
        b"Damage Ref,Store,Item,Qty,Day,Note,Subsidiary,Account\r\n"
        b"VL-d1,254,3410,-2,02/29/2024,Crushed,1,927\r\n"
    )


def test_every_other_row_goes_where_it_went_without_the_feed(netsuite: NetSuiteConfig) -> None:
    built_in = FeedRegistry(*BUILT_IN)
    for reason in ("VAR_LOST", "VAR_FOUND", "VAR_STOLEN", "VAR_SAMPLE"):
        event = variance(3 if reason == "VAR_FOUND" else -1, reason)
        assert route_variance(event, netsuite, feeds=with_damage()) == route_variance(
            event, netsuite, feeds=built_in
        ), reason
    counted = count(line("10017", "3410", counted=7, system=10))
    routed = route_count(counted, netsuite, feeds=with_damage())
    assert routed == route_count(counted, netsuite, feeds=built_in)
    assert [export.feed for export in routed.exports] == [ADJUSTMENT]


def test_unregistered_damage_goes_to_the_built_in_feeds(netsuite: NetSuiteConfig) -> None:
    assert tuple(FEEDS) == BUILT_IN, "a test left a feed registered in FEEDS"
    event = variance(-2, "VAR_DAMAGED")
    # The sample config gives VAR_DAMAGED a variance location: a transfer...
    assert [e.feed for e in route_variance(event, netsuite).exports] == [TRANSFER]
    # ...and without one, an adjustment.
    no_location = netsuite.model_copy(update={"variance_locations": {}})
    assert [e.feed for e in route_variance(event, no_location).exports] == [ADJUSTMENT]


def test_a_second_feed_of_the_same_folder_or_label_is_refused() -> None:
    registry = with_damage()
    same_folder = dataclasses.replace(DAMAGE, file_label="DamagedAgainFeed")
    same_label = dataclasses.replace(DAMAGE, name="inventorydamage2")
    for clash in (DAMAGE, same_folder, same_label, dataclasses.replace(ADJUSTMENT)):
        with pytest.raises(ValueError, match="clashes"):
            registry.register(clash)
    assert tuple(registry) == (*BUILT_IN, DAMAGE)


def test_a_row_no_feed_claims_is_unroutable(netsuite: NetSuiteConfig) -> None:
    only_damage = FeedRegistry(DAMAGE)
    assert route_variance(variance(-1, "VAR_DAMAGED"), netsuite, feeds=only_damage).exports
    with pytest.raises(UnroutableEvent, match=r"no NetSuite feed takes VL-\S+ \(reason VAR_LOST\)"):
        route_variance(variance(-1, "VAR_LOST"), netsuite, feeds=only_damage)
    # The damage feed takes logged variances only: count lines are not its kind.
    with pytest.raises(UnroutableEvent, match="reason CYCLE_COUNT"):
        route_count(count(), netsuite, feeds=only_damage)


def test_the_worker_decision_and_file_names_follow_the_process_registry(
    tmp_path: Path,
) -> None:
    """`decide` and the file-name parser read `FEEDS` itself, as a worker does."""
    rules = Rules.from_settings(make_settings(tmp_path))
    value = encode_avro(variance(-1, "VAR_DAMAGED"))
    record = SourceRecord("hotwax.inventory.variance-logged", 0, 7, None, b"STORE_1", value)
    source = SourcePartition("hotwax.inventory.variance-logged", 0)
    name = batch_file_name("acme", DAMAGE, datetime(2024, 2, 29, tzinfo=UTC), source, 7, 7)
    assert name.startswith("acme_InventoryDamageFeed_2024-02-29-")

    def routed_to() -> list[str]:
        decision = decide(
            record,
            EventKind.VARIANCE_LOGGED,
            progress=Progress(),
            positions={},
            floors={},
            rules=rules,
        )
        assert isinstance(decision, Apply), decision
        return [feed.name for feed in decision.rows]

    with FEEDS.registered(DAMAGE):
        assert routed_to() == [DAMAGE.name]
        parsed = parse_batch_file_name(name)
        assert parsed is not None
        assert parsed.feed is DAMAGE
    assert routed_to() == [TRANSFER.name]
    assert parse_batch_file_name(name) is None
