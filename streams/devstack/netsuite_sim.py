"""variance-sync netsuite-sim (being written)."""

from __future__ import annotations

import argparse

from streams.errors import UsageError


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("netsuite-sim", help="(being written)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    raise UsageError("not available yet")
