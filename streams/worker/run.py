"""`variance-sync worker`: prepare the broker, then run the Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging

import faust

from sinks.feed_publisher import FaultHook, no_faults
from streams.config import Settings
from streams.core.positions import horizon_warning
from streams.destination_factory import make_destination
from streams.errors import UsageError
from streams.kafka.broker import check_transactions, dlq_limits, prepare_broker
from streams.kafka.traits import BrokerTraits
from streams.logs import LogFormat, configure, dict_config
from streams.ports import bind_problem
from streams.worker.app import build_app

log = logging.getLogger(__name__)


def run_worker(
    settings: Settings, *, faults: FaultHook = no_faults, log_format: LogFormat | None = None
) -> None:
    """Blocks until SIGINT/SIGTERM; Faust's worker then stops cleanly and exits.
    `log_format` (the `--log-format` flag) overrides `[worker] log_format`."""
    log_format = log_format or settings.worker.log_format
    # Before Faust sets up logging, so that the lines of the start are in the format too.
    configure(log_format, settings.worker.log_level)
    web = settings.worker
    if (problem := bind_problem(web.web_host, web.web_port)) is not None:
        raise UsageError(
            f"worker.web_port {web.web_port} on {web.web_host}: {problem}; set another with "
            "[worker] web_port or VARIANCE_SYNC_WORKER__WEB_PORT"
        )
    destination = make_destination(settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    flavor = loop.run_until_complete(prepare_broker(settings.kafka))
    traits = BrokerTraits.of(flavor)
    if traits.transactions:
        loop.run_until_complete(check_transactions(settings.kafka))
    dlq = loop.run_until_complete(dlq_limits(settings.kafka))
    if (warning := horizon_warning(dlq.retention_ms, settings.dedupe.horizon_days)) is not None:
        log.warning("%s", warning)
    app = build_app(
        settings, traits, destination, faults=faults, max_dead_letter_bytes=dlq.max_record_bytes
    )
    # The monitor points one reader at the status, DLQ and re-drive topics in turn every
    # few seconds; aiokafka logs each change of topics at INFO, tens of thousands a day.
    logging.getLogger("aiokafka.consumer.subscription_state").setLevel(logging.WARNING)
    log.info(
        "worker for group %s on %s (%s) publishing to %s",
        settings.kafka.group_id,
        settings.kafka.bootstrap,
        flavor.value,
        destination.description,
    )
    faust_worker(
        app, settings.worker.log_level, loop, log_format=log_format
    ).execute_from_commandline()


def faust_worker(
    app: faust.App,
    loglevel: str,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    log_format: LogFormat = "text",
) -> faust.Worker:
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        loop=loop,
        logging_config=dict_config(log_format, loglevel),
        # Faust's few bare prints (a newline at an early stop) would break the JSON lines.
        quiet=log_format == "json",
    )
    # At "warn" and above Faust's start-up spinner lowers the root logger to DEBUG, so
    # that every debug call of aiokafka, asyncssh and Faust builds a record for it: 5 %
    # of the worker's time under load. A service has no terminal to spin on.
    worker.spinner = None
    return worker
