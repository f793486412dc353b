"""`variance-sync worker`: prepare the broker, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging

import faust

from streams.app import build_runtime
from streams.config import Settings
from streams.destinations import make_destination
from streams.faults import fault_hook_from_env
from streams.kafka import prepare_broker

log = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    """Blocks until SIGINT/SIGTERM; Faust's worker then stops cleanly and exits."""
    destination = make_destination(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    flavor = loop.run_until_complete(prepare_broker(settings.kafka))
    runtime = build_runtime(settings, flavor, destination, faults=fault_hook_from_env())
    log.info(
        "worker for group %s on %s (%s) publishing to %s",
        settings.kafka.group_id,
        settings.kafka.bootstrap,
        flavor.value,
        destination.description,
    )
    worker = faust.Worker(runtime.app, loglevel=settings.worker.log_level, loop=loop)
    worker.execute_from_commandline()
