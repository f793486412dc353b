"""`variance-sync netsuite-sim`: NetSuite's scheduled import scripts, simulated.

Every pass lists each feed's `csv/` (DESIGN section 5), checks every file whole against
its import map (`streams.netsuite.import_rules`), books valid files in a SQLite
ledger (`streams.netsuite.books`) and moves them to `archive/`; a rejected
file goes to `failed/`, after its `fileName,errorMessage` CSV is written to `error/`.
For imported adjustment files with count rows it writes the cycle-count
acknowledgement (`workEffortId,externalId`) to `inventoryadjustment/cycle_count/`.
It never deletes anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from schemas.models import EventKind
from sinks.destination import Destination
from sinks.exceptions import SinkError
from sinks.feeds import ADJUSTMENT, FEEDS, AnyFeed
from streams.config import load_settings
from streams.destination_factory import make_destination
from streams.devstack import netsuite_report
from streams.errors import UsageError
from streams.netsuite.books import (
    open_books,
    open_ledger,
    record_failure,
    record_import,
    transactions,
    transfer_exists,
)
from streams.netsuite.import_rules import (
    ACK_DIR,
    FileRejected,
    cycle_count_id,
    parse_import_file,
    render_ack,
    render_errors,
)
from streams.netsuite.saved_search import render_export

log = logging.getLogger(__name__)

DEFAULT_LEDGER = Path("var/netsuite-sim.sqlite")
DEFAULT_INTERVAL = 15.0
# NetSuite's own outputs are staged here and renamed into place, so that the OMS (or
# our monitor) never reads half an acknowledgement or error file.
TEMP_DIR = ".netsuite-sim"


@dataclass
class PassResult:
    imported: int = 0
    rows: int = 0
    failed: int = 0


class Importer:
    """One NetSuite account's import scripts, over `dest`, booking into `ledger`.

    SQLite calls run on the event loop's thread: the connection is bound to the thread
    that opened it, and one file's booking takes milliseconds.
    """

    def __init__(
        self,
        dest: Destination,
        ledger: sqlite3.Connection,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._dest = dest
        self._ledger = ledger
        self._clock = clock

    async def run_pass(self) -> PassResult:
        result = PassResult()
        for feed in FEEDS:
            # Our batch names carry the first event's UTC time right after the feed
            # label, so name order is time order: NetSuite's "list by date".
            names = sorted(await self._dest.list_dir(feed.csv_dir))
            if names:
                for folder in (feed.archive_dir, feed.failed_dir, feed.error_dir, ACK_DIR):
                    await self._dest.makedirs(folder)
                await self._dest.makedirs(f"{feed.name}/{TEMP_DIR}")
            for name in names:
                await self._import(feed, name, result)
        return result

    async def _import(self, feed: AnyFeed, name: str, result: PassResult) -> None:
        source = f"{feed.csv_dir}/{name}"
        data = await self._dest.read(source)
        if data is None:
            return  # moved away since the listing
        archived = f"{feed.archive_dir}/{name}"
        if await self._dest.exists(archived):
            problem = f"{archived} already exists: this file was imported before (double publish)"
            await self._fail(feed, name, (problem,))
            result.failed += 1
            return
        if _last_outcome(self._ledger, feed, name) == "archived":
            # An earlier pass booked it but could not move it (SFTP down, or killed):
            # finish that import instead of booking the file twice.
            log.info("%s: booked by an earlier pass; archiving it now", source)
            rows = len(_booked(self._ledger, feed, name))
        else:
            try:
                booked = parse_import_file(
                    feed, name, data, lambda ext: transfer_exists(self._ledger, ext)
                )
            except FileRejected as exc:
                await self._fail(feed, name, exc.problems)
                result.failed += 1
                return
            # Booked before the move, so a pass that dies in between is finished above.
            record_import(self._ledger, booked, file=name, feed=feed.name, at=self._now())
            rows = len(booked)
        if EventKind.COUNT_APPROVED in feed.kinds:
            await self._acknowledge(feed, name)
        if not await self._dest.rename_noreplace(source, archived):
            log.warning("%s: %s appeared meanwhile; left in csv/", source, archived)
            return
        log.info("%s: imported %d rows, archived", source, rows)
        result.imported += 1
        result.rows += rows

    async def _acknowledge(self, feed: AnyFeed, name: str) -> None:
        """NetSuite's acknowledgement of the cycle counts that file `name` booked; it
        writes them beside the adjustment feed, whichever feed took the count rows."""
        acks = [
            (count, tid)
            for tid, ref in _booked(self._ledger, feed, name)
            if (count := cycle_count_id(ref))
        ]
        if acks:
            target = f"{ACK_DIR}/{PurePosixPath(name).stem}_ack.csv"
            await self._write_atomically(ADJUSTMENT, target, render_ack(acks))

    async def _fail(self, feed: AnyFeed, name: str, problems: tuple[str, ...]) -> None:
        source = f"{feed.csv_dir}/{name}"
        failed_name = await self._free_failed_name(feed, name)
        # The error file first: whoever sees the file in failed/ finds its reason ready.
        error_file = f"{feed.error_dir}/{PurePosixPath(failed_name).stem}_error.csv"
        await self._write_atomically(feed, error_file, render_errors(name, problems))
        if not await self._dest.rename_noreplace(source, f"{feed.failed_dir}/{failed_name}"):
            log.warning("%s: failed/%s appeared meanwhile; retrying next pass", source, failed_name)
            return
        summary = FileRejected(problems).summary
        record_failure(self._ledger, file=name, feed=feed.name, error=summary, at=self._now())
        log.warning("%s: failed: %s", source, summary)

    async def _free_failed_name(self, feed: AnyFeed, name: str) -> str:
        """`name`, or `<stem>~N<suffix>` when failed/ already holds a file of that name.

        Nothing in failed/ is ever replaced: it is the evidence of an earlier rejection.
        """
        path, candidate, attempt = PurePosixPath(name), name, 1
        while await self._dest.exists(f"{feed.failed_dir}/{candidate}"):
            attempt += 1
            candidate = f"{path.stem}~{attempt}{path.suffix}"
        return candidate

    async def _write_atomically(self, feed: AnyFeed, target: str, data: bytes) -> None:
        temp = f"{feed.name}/{TEMP_DIR}/{PurePosixPath(target).name}"
        await self._dest.write(temp, data)
        await self._dest.rename_replace(temp, target)

    def _now(self) -> str:
        return self._clock().isoformat(timespec="seconds")


def _last_outcome(ledger: sqlite3.Connection, feed: AnyFeed, name: str) -> str | None:
    row = ledger.execute(
        "SELECT outcome FROM imports WHERE feed = ? AND file = ? ORDER BY rowid DESC LIMIT 1",
        (feed.name, name),
    ).fetchone()
    return None if row is None else str(row[0])


def _booked(ledger: sqlite3.Connection, feed: AnyFeed, name: str) -> list[tuple[int, str]]:
    """(transaction id, Reference No or External Id) of what file `name` booked."""
    rows = ledger.execute(
        "SELECT id, reference FROM transactions WHERE kind = ? AND file = ? ORDER BY id",
        (feed.record.value, name),
    )
    return [(int(tid), str(reference)) for tid, reference in rows]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "netsuite-sim", help="import csv/ like NetSuite's scheduled scripts, into a SQLite ledger"
    )
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="the worker's TOML ([sftp] or local [publish])"
    )
    parser.add_argument(
        "--ledger",
        type=Path,
        default=DEFAULT_LEDGER,
        metavar="FILE",
        help="SQLite books (default %(default)s)",
    )
    parser.add_argument(
        "--interval",
        type=_seconds,
        default=DEFAULT_INTERVAL,
        metavar="SECONDS",
        help="between passes (default %(default)g)",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass over every feed, then exit")
    mode.add_argument(
        "--report", action="store_true", help="summarise the books (--full: every line)"
    )
    mode.add_argument(
        "--export",
        metavar="PATH",
        help="write the books as NetSuite's saved-search export, to PATH under the base folder",
    )
    parser.add_argument(
        "--full", action="store_true", help="with --report: every balance and the import log"
    )
    parser.add_argument("--json", action="store_true", help="with --report: print JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.report:
        return netsuite_report.report(args.ledger, full=args.full, as_json=args.json)
    if args.full or args.json:
        raise UsageError("--full and --json go with --report")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # asyncssh logs every channel at INFO; one line per file is what a reader wants here.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    settings = load_settings(args.config)
    dest = make_destination(settings)
    if args.export is not None:
        return asyncio.run(_export(dest, args.ledger, args.export))
    if not args.once:
        asyncio.run(_serve_until_signalled(dest, args.ledger, args.interval))
        return 0
    try:
        result = asyncio.run(_one_pass(dest, args.ledger))
    except SinkError as exc:
        raise UsageError(f"netsuite-sim: {exc}") from None
    print(
        f"netsuite-sim: {result.imported} files imported ({result.rows} rows), "
        f"{result.failed} failed",
        flush=True,
    )
    return 0


async def serve(
    dest: Destination, ledger_path: Path, interval: float, stop: asyncio.Event | None = None
) -> None:
    """A pass every `interval` seconds until `stop` is set or the task is cancelled.

    A destination or ledger error ends only that pass: the files it did not finish stay
    in csv/ and the next pass takes them up again.
    """
    if stop is None:
        stop = asyncio.Event()
    try:
        with open_books(ledger_path) as ledger:
            importer = Importer(dest, ledger)
            log.info(
                "importing from %s every %g s into %s", dest.description, interval, ledger_path
            )
            while not stop.is_set():
                try:
                    await importer.run_pass()
                except (SinkError, sqlite3.Error) as exc:
                    log.warning("pass stopped, retrying in %g s: %s", interval, exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
    finally:
        await dest.close()


async def _serve_until_signalled(dest: Destination, ledger_path: Path, interval: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(dest, ledger_path, interval, stop)


async def _export(dest: Destination, ledger_path: Path, target: str) -> int:
    """What a NetSuite administrator does: run the saved search and drop its CSV on the
    server, for `variance-sync reconcile --netsuite-export`."""
    with open_ledger(ledger_path) as ledger:
        data = render_export(transactions(ledger))
    folder, _, name = target.rpartition("/")
    try:
        if folder:
            await dest.makedirs(folder)
        temp = f"{folder}/.{name}.part" if folder else f".{name}.part"
        await dest.write(temp, data)
        await dest.rename_replace(temp, target)
    except SinkError as exc:
        raise UsageError(f"netsuite-sim: {exc}") from None
    finally:
        await dest.close()
    print(f"netsuite-sim: exported the books to {target}", flush=True)
    return 0


async def _one_pass(dest: Destination, ledger_path: Path) -> PassResult:
    try:
        with open_books(ledger_path) as ledger:
            return await Importer(dest, ledger).run_pass()
    finally:
        await dest.close()


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value
