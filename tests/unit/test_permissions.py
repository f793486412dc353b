"""The permission gate: a variance logged by a role below the minimum, by an unknown role,
or (when the config says so) by no role is dead-lettered as `permission`, naming the role;
nothing of it reaches the table or NetSuite. Counts are not checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from schemas.codec import encode_avro, encode_json
from schemas.models import VarianceLogged
from sinks.feeds import TRANSFER
from streams.config import ConfigError, PermissionsConfig
from streams.core.dead_letter import ErrorClass
from streams.core.permissions import permission_problem
from tests.factories import count, make_settings, variance
from tests.unit.ingest_stage import COUNTS, VARIANCES, Stage

ROLES = ("STORE_ASSOCIATE", "FACILITY_MANAGER", "REGIONAL_MANAGER", "ADMIN")
BELOW = "permission: role STORE_ASSOCIATE may not log a variance; FACILITY_MANAGER or higher may"
RULES = PermissionsConfig(roles=ROLES, log_variance_min_role="FACILITY_MANAGER")
SECTION = """
[permissions]
roles = ["STORE_ASSOCIATE", "FACILITY_MANAGER", "REGIONAL_MANAGER", "ADMIN"]
log_variance_min_role = "FACILITY_MANAGER"
missing_role = "{missing}"
"""


def by(role: str | None) -> VarianceLogged:
    return variance(-2, "VAR_DAMAGED").model_copy(update={"logged_by_role": role})


@pytest.mark.parametrize("role", ["FACILITY_MANAGER", "REGIONAL_MANAGER", "ADMIN", None])
def test_managers_and_above_may_log(role: str | None) -> None:
    assert permission_problem(by(role), RULES) is None


@pytest.mark.parametrize(
    ("role", "reason"),
    [
        ("STORE_ASSOCIATE", BELOW),
        ("JANITOR", "permission: role 'JANITOR' is not one of [permissions] roles"),
    ],
)
def test_lower_and_unknown_roles_may_not(role: str, reason: str) -> None:
    assert permission_problem(by(role), RULES) == reason


def test_a_missing_role_is_refused_only_when_configured() -> None:
    strict = RULES.model_copy(update={"missing_role": "reject"})
    assert permission_problem(by(None), strict) == (
        "permission: the variance names no logged_by_role, and missing_role is 'reject'"
    )


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            '\n[permissions]\nroles = ["A", "B"]\nlog_variance_min_role = "C"\n',
            "permissions: log_variance_min_role 'C' is not one of roles",
        ),
        (
            '\n[permissions]\nroles = ["A", "A"]\nlog_variance_min_role = "A"\n',
            "permissions: roles must not repeat a role",
        ),
        (
            '\n[permissions]\nroles = ["A"]\nlog_variance_min_role = "A"\nmissing_role = "deny"\n',
            "permissions.missing_role: Input should be 'allow' or 'reject'",
        ),
    ],
)
def test_bad_permission_settings_are_one_line(tmp_path: Path, section: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_settings(tmp_path, extra=section)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def refusals(role: str) -> float:
    value = REGISTRY.get_sample_value("variance_sync_permission_refusals_total", {"role": role})
    return value or 0.0


async def test_a_refused_variance_is_dead_lettered_and_changes_nothing(tmp_path: Path) -> None:
    harness = Stage(tmp_path, extra=SECTION.format(missing="reject"))
    before = refusals("STORE_ASSOCIATE"), refusals("(none)")
    held = await harness.send(VARIANCES, encode_avro(by("STORE_ASSOCIATE")))
    # JSON bodies carry the role too.
    await harness.send(
        VARIANCES,
        encode_json(by(None)),
        headers=(("content-type", b"application/json"),),
    )
    harness.flush()
    assert held.acked
    assert harness.dead == [
        (ErrorClass.PERMISSION, BELOW),
        (
            ErrorClass.PERMISSION,
            "permission: the variance names no logged_by_role, and missing_role is 'reject'",
        ),
    ]
    assert harness.inventory == {}
    assert harness.pending(VARIANCES, TRANSFER) == []
    assert (refusals("STORE_ASSOCIATE"), refusals("(none)")) == (before[0] + 1, before[1] + 1)


async def test_counts_and_permitted_variances_go_through(tmp_path: Path) -> None:
    harness = Stage(tmp_path, extra=SECTION.format(missing="reject"))
    allowed = by("FACILITY_MANAGER")
    await harness.send(VARIANCES, encode_avro(allowed))
    await harness.send(COUNTS, encode_avro(count()))
    assert harness.dead == []
    assert harness.pending(VARIANCES, TRANSFER) == [f"VL-{allowed.event_id}"]


async def test_without_a_permissions_section_nothing_is_checked(tmp_path: Path) -> None:
    harness = Stage(tmp_path)
    await harness.send(VARIANCES, encode_avro(by("STORE_ASSOCIATE")))
    assert harness.dead == []
