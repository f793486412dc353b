from __future__ import annotations

from collections import Counter

import pytest

from streams.netsuite.ledger import Transaction
from streams.ops.reconcile_model import NetSuiteSide, expected_from_positions, reconcile


def adjustment(
    reference: str, quantity: int, location: str = "254", item: str = "3410"
) -> Transaction:
    return Transaction(
        "adjustment", reference, item, location, None, quantity, "02/29/2024", "m", "f.csv"
    )


def transfer(
    reference: str, quantity: int, source: str, target: str, item: str = "3410"
) -> Transaction:
    return Transaction(
        "transfer", reference, item, source, target, quantity, "02/29/2024", "m", "f.csv"
    )


EXPECTED = Counter({("254", "3410"): -8, ("254", "3411"): 2})
IMPORTED = [
    adjustment("CC1-10017", -3),
    transfer("VL-a", 5, "254", "1099"),
    transfer("VL-b", 2, "1099", "254", "3411"),
]


def test_matching_books_are_clean_and_variance_locations_are_ignored() -> None:
    report = reconcile(EXPECTED, NetSuiteSide(IMPORTED, acknowledged=frozenset({"CC1"})))
    assert report.clean
    assert report.matched == 2
    assert report.acknowledged_counts == 1
    assert report.unacknowledged_counts == ()


@pytest.mark.parametrize(
    ("side", "cause"),
    [
        (NetSuiteSide(IMPORTED[1:], pending=IMPORTED[:1]), "pending: in csv/"),
        (
            NetSuiteSide(IMPORTED[1:], failed=IMPORTED[:1]),
            "failed: in a file NetSuite moved to failed/",
        ),
        (NetSuiteSide([*IMPORTED, IMPORTED[0]]), "double import"),
        (NetSuiteSide([*IMPORTED, adjustment("CC9-1", -1)]), "extra in NetSuite"),
        (NetSuiteSide(IMPORTED[1:]), "missing row"),
    ],
)
def test_each_difference_gets_its_likely_cause(side: NetSuiteSide, cause: str) -> None:
    report = reconcile(EXPECTED, side)
    assert not report.clean
    (difference,) = report.differences
    assert (difference.location, difference.item) == ("254", "3410")
    assert difference.cause.startswith(cause)


def test_rows_in_open_batches_explain_a_shortfall() -> None:
    report = reconcile(EXPECTED, NetSuiteSide(IMPORTED[1:]), unpublished_rows=4)
    assert report.differences[0].cause == "not published yet: 4 row(s) wait in open batches"
    assert report.drift_units == 3


def test_double_imports_are_listed_by_reference() -> None:
    report = reconcile(EXPECTED, NetSuiteSide([*IMPORTED, IMPORTED[1]]))
    assert report.double_imports == {"VL-a": 2}
    assert report.to_json()["drift_positions"] == 1


def test_unacknowledged_counts_are_reported() -> None:
    report = reconcile(EXPECTED, NetSuiteSide(IMPORTED))
    assert report.unacknowledged_counts == ("CC1",)


def test_expected_comes_from_exported_variance_per_location_and_item() -> None:
    positions = [
        {"netsuite_location_id": "254", "netsuite_item_id": "3410", "exported_variance": -3},
        {"netsuite_location_id": "254", "netsuite_item_id": "3410", "exported_variance": -5},
        {"netsuite_location_id": "255", "netsuite_item_id": "3410", "exported_variance": 0},
    ]
    assert expected_from_positions(positions) == Counter({("254", "3410"): -8, ("255", "3410"): 0})
