"""`variance-sync config check FILE`: load a config as the worker does, environment and
secrets directory included, and print the effective settings with secrets masked.

A bad value is the usual one line and exit 2, so a deploy can check a config before it
starts a worker with it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streams.ops.common import effective_settings
from streams.output import print_json


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("config", help="check a config file without starting a worker")
    actions = parser.add_subparsers(dest="config_command", required=True)
    check = actions.add_parser(
        "check",
        help="load FILE as the worker does (environment included) and print the effective "
        "settings, secrets masked",
    )
    check.add_argument("file", type=Path, metavar="FILE", help="the TOML config")
    check.add_argument("--json", action="store_true", help="print the settings as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    settings = effective_settings(args.file, None).redacted()
    if args.json:
        print_json(settings)
    else:
        print("\n".join(setting_lines(settings)))
    return 0


def setting_lines(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    """`section.key = value` per setting, values as JSON, in the order of the settings model."""
    lines: list[str] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            lines += setting_lines(value, f"{name}.")
        else:
            lines.append(f"{name} = {json.dumps(value)}")
    return lines
