"""Fault points for crash tests: kill this process at a named step.

Off unless `VARIANCE_SYNC_FAULT_POINT` names a step; `VARIANCE_SYNC_FAULT_SKIP=N` lets
the first N passes through it live. The steps: of the publish protocol, `staged`,
`promoted`, `recorded` and `released` (docs/publish-protocol.md); of the table protocol,
`changelog-unsent` (a flush has taken its records and sent none yet) and `changelog-acked` (acks
applied to the local store, events not yet marked durable) (docs/table-protocol.md).
"""

from __future__ import annotations

import logging
import os
import signal

from sinks.feed_publisher import FaultHook, no_faults

log = logging.getLogger(__name__)

STEPS = ("staged", "promoted", "recorded", "released", "changelog-unsent", "changelog-acked")


def fault_hook_from_env() -> FaultHook:
    point = os.environ.get("VARIANCE_SYNC_FAULT_POINT", "")
    if not point:
        return no_faults
    if point not in STEPS:
        raise ValueError(
            f"VARIANCE_SYNC_FAULT_POINT must be one of {', '.join(STEPS)}, not {point!r}"
        )
    remaining = int(os.environ.get("VARIANCE_SYNC_FAULT_SKIP", "0"))
    log.warning("fault point armed: SIGKILL at %r after %d passes", point, remaining)

    async def hook(step: str) -> None:
        nonlocal remaining
        if step != point:
            return
        if remaining > 0:
            remaining -= 1
            return
        log.warning("fault point %r reached: killing this worker", step)
        os.kill(os.getpid(), signal.SIGKILL)

    return hook
