"""The permission gate: only facility managers or higher may log a variance directly.

HotWax enforces it in its app; variance-sync refuses what breaks it too, so that a
misconfigured or compromised publisher cannot move NetSuite inventory. Pure: the event's
`logged_by_role` against `[permissions]`. Cycle counts are not checked: a manager
approves them."""

from __future__ import annotations

from schemas.models import VarianceLogged
from streams.config import PermissionsConfig

MISSING = "(none)"  # the role label of a variance that names no role


def permission_problem(event: VarianceLogged, rules: PermissionsConfig) -> str | None:
    """Why `event` may not be logged under `rules`, as the DLQ reason; None if it may."""
    role = event.logged_by_role
    lowest = rules.log_variance_min_role
    if role is None:
        if rules.missing_role == "allow":
            return None
        return "permission: the variance names no logged_by_role, and missing_role is 'reject'"
    rank = rules.rank(role)
    if rank is None:
        return f"permission: role {role!r} is not one of [permissions] roles"
    if rank < rules.roles.index(lowest):
        return f"permission: role {role} may not log a variance; {lowest} or higher may"
    return None


def role_label(event: VarianceLogged) -> str:
    return event.logged_by_role or MISSING
