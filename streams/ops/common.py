"""What every ops command shares: connection options and output helpers."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from streams.config import Settings, load_settings


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config (default: $VARIANCE_SYNC_CONFIG or the sample)",
    )
    parser.add_argument(
        "--bootstrap", default=None, help="HOST:PORT, overriding the config's kafka.bootstrap"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings an ops command runs with; `--bootstrap` wins over config and environment."""
    overrides = {"kafka": {"bootstrap": args.bootstrap}} if args.bootstrap else None
    return load_settings(args.config, overrides)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
