"""The `variance-sync` command line.

Every user error (bad flag, bad config, unreachable broker) ends in one line on stderr
and exit code 2; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import NoReturn

from aiokafka.errors import KafkaError

from streams.cli_values import positive_number
from streams.devstack import netsuite_sim
from streams.errors import StreamsError, UsageError
from streams.logs import FORMATS, configure
from streams.ops import config_check, dlq, lag, rebuild, reconcile, replay, report
from streams.ops.common import add_connection_options, settings_from
from streams.ports import bind_problem
from streams.producer import publish_command

DISTRIBUTION = "variance-sync"
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141

Handler = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65_536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="variance-sync", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--log-format",
        choices=FORMATS,
        default=None,
        help="log lines as text (default) or one JSON object per line; before the command; "
        "the worker also reads [worker] log_format",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version(DISTRIBUTION)}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    dev = commands.add_parser(
        "dev", help="run the embedded broker, SFTP server, worker and sample traffic"
    )
    dev.add_argument(
        "--data-dir", type=Path, default=Path("var"), help="state folder (default ./var)"
    )
    dev.add_argument(
        "--broker",
        choices=["tansu", "kafka"],
        default="tansu",
        help="tansu (in memory, the default) or kafka (Apache Kafka from `make kafka`, "
        "its data kept under --data-dir)",
    )
    dev.add_argument("--kafka-port", type=_port, default=9092)
    dev.add_argument("--sftp-port", type=_port, default=2222)
    dev.add_argument(
        "--config", type=Path, default=None, help="routing TOML (default: the sample config)"
    )
    dev.add_argument(
        "--window-seconds", type=positive_number, default=None, help="override [batching] window"
    )
    dev.add_argument("--no-sample", action="store_true", help="do not generate sample traffic")
    dev.add_argument(
        "--no-worker", action="store_true", help="start only the broker and the SFTP server"
    )
    dev.add_argument("--no-netsuite", action="store_true", help="do not run the NetSuite simulator")
    dev.set_defaults(handler=_dev)

    worker = commands.add_parser(
        "worker", help="run a worker against the configured broker and SFTP server"
    )
    add_connection_options(worker)
    worker.set_defaults(handler=_worker)

    # Ops tools; each module adds its own subcommand and handler.
    for ops_command in (
        publish_command,
        lag,
        replay,
        dlq,
        rebuild,
        reconcile,
        report,
        netsuite_sim,
        config_check,
    ):
        ops_command.add_parser(commands)
    return parser


def _dev(args: argparse.Namespace) -> int:
    from streams.devstack.local_broker import BrokerStartError
    from streams.devstack.local_kafka import default_jars, missing_parts
    from streams.devstack.stack import DevOptions, run_dev

    if args.broker == "kafka" and (problem := missing_parts(default_jars())) is not None:
        raise UsageError(f"--broker kafka: {problem}")
    check_dev_ports(args.kafka_port, args.sftp_port)
    options = DevOptions(
        data_dir=args.data_dir,
        broker=args.broker,
        kafka_port=args.kafka_port,
        sftp_port=args.sftp_port,
        config=args.config,
        window_seconds=args.window_seconds,
        sample=not args.no_sample,
        worker=not args.no_worker,
        netsuite=not args.no_netsuite,
        log_format=args.log_format,
    )
    try:
        return asyncio.run(run_dev(options))
    except BrokerStartError as exc:
        raise UsageError(f"cannot start the {args.broker} broker: {exc}") from None


def check_dev_ports(kafka_port: int, sftp_port: int) -> None:
    if kafka_port == sftp_port:
        raise UsageError(f"--kafka-port and --sftp-port are both {kafka_port}: give each its own")
    for flag, port in (("--kafka-port", kafka_port), ("--sftp-port", sftp_port)):
        if (problem := bind_problem("127.0.0.1", port)) is not None:
            raise UsageError(f"{flag} {port}: {problem}; choose another port with {flag}")


def _worker(args: argparse.Namespace) -> int:
    from streams.devstack.faults import fault_hook_from_env
    from streams.worker.run import run_worker

    # The crash tests' kill points come from the dev stack, never from the worker itself.
    run_worker(settings_from(args), faults=fault_hook_from_env(), log_format=args.log_format)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure(args.log_format or "text")
    # aiokafka logs a refused connection itself; with logging unconfigured Python would
    # print that on stderr too, and an unreachable broker would take two lines, not one.
    # Commands that configure logging (the worker) still see its lines through the root.
    client_log = logging.getLogger("aiokafka")
    if not client_log.handlers:
        client_log.addHandler(logging.NullHandler())
    handler: Handler = args.handler
    try:
        code = handler(args)
        sys.stdout.flush()  # here, so that a closed pipe is seen while we can handle it
    except StreamsError as exc:
        # Every error of ours is phrased for the operator: one line, never a traceback.
        print(f"variance-sync: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_went_away()
    except (OSError, KafkaError, sqlite3.DatabaseError) as exc:
        # What the machine, the broker or a file refused (a permission, an ACL, a file
        # that is not a database): the operator's to fix, said in one line.
        print(f"variance-sync: error: {_refusal(exc)}", file=sys.stderr)
        return EXIT_USAGE
    return code


def _refusal(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}".rstrip(": ")


def _reader_went_away() -> int:
    """`variance-sync lag --json | head`: the reader closed the pipe; end quietly, as
    Unix tools do, with 128 + SIGPIPE. Later writes and the exit flush go to /dev/null."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
