"""Fault points for crash and pause tests: stop this process at a named step.

Off unless `VARIANCE_SYNC_FAULT_POINT` names a step; `VARIANCE_SYNC_FAULT_SKIP=N` lets
the first N passes through it live. `VARIANCE_SYNC_FAULT_ACTION` says what happens
there: `kill` (SIGKILL, the default) or `stop` (SIGSTOP: the process freezes, as in a long
GC pause or a frozen VM, until someone sends it SIGCONT; it goes on from the very step).

The steps: of the publish protocol, `staged`, `promoting` (an upload is named in the
ledger, not yet renamed into `csv/`), `promoted`, `recorded` and `released`
(docs/publish-protocol.md); of the table protocol, `changelog-unsent` (a flush has taken
its records and sent none yet), `changelog-sent` (in a transaction: sent, not committed)
and `changelog-acked` (acks applied to the local store, events not yet marked durable)
(docs/table-protocol.md); and, for a flush that carries a position write which forgot a
named event, `pruning` (taken, not sent) and `pruned` (durable, not yet marked so)
(docs/table-protocol.md, "Exact dedupe").
"""

from __future__ import annotations

import logging
import os
import signal

from sinks.feed_publisher import FaultHook, no_faults

log = logging.getLogger(__name__)

STEPS = (
    "staged",
    "promoting",
    "promoted",
    "recorded",
    "released",
    "changelog-unsent",
    "changelog-sent",
    "changelog-acked",
    "pruning",
    "pruned",
)
ACTIONS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


def fault_hook_from_env() -> FaultHook:
    point = os.environ.get("VARIANCE_SYNC_FAULT_POINT", "")
    if not point:
        return no_faults
    if point not in STEPS:
        raise ValueError(
            f"VARIANCE_SYNC_FAULT_POINT must be one of {', '.join(STEPS)}, not {point!r}"
        )
    action = os.environ.get("VARIANCE_SYNC_FAULT_ACTION", "kill")
    if action not in ACTIONS:
        raise ValueError(
            f"VARIANCE_SYNC_FAULT_ACTION must be one of {', '.join(ACTIONS)}, not {action!r}"
        )
    remaining = int(os.environ.get("VARIANCE_SYNC_FAULT_SKIP", "0"))
    log.warning("fault point armed: %s at %r after %d passes", action, point, remaining)

    async def hook(step: str) -> None:
        nonlocal remaining
        if step != point or remaining < 0:
            return
        if remaining > 0:
            remaining -= 1
            return
        remaining = -1  # once: a stopped worker goes on after SIGCONT
        log.warning("fault point %r reached: %s this worker", step, action)
        os.kill(os.getpid(), ACTIONS[action])

    return hook
