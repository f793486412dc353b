"""What every ops command shares: its connection options and settings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from streams.config import Settings, load_settings


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config (default: $VARIANCE_SYNC_CONFIG or the sample)",
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        help=(
            "HOST:PORT (default $VARIANCE_SYNC_KAFKA__BOOTSTRAP, $KAFKA_BOOTSTRAP, "
            "then the config's kafka.bootstrap)"
        ),
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings an ops command runs with, the broker resolved as for every command."""
    bootstrap = args.bootstrap
    # VARIANCE_SYNC_KAFKA__BOOTSTRAP needs nothing here: the settings read it themselves.
    if not bootstrap and not os.environ.get("VARIANCE_SYNC_KAFKA__BOOTSTRAP"):
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    overrides = {"kafka": {"bootstrap": bootstrap}} if bootstrap else None
    return load_settings(args.config, overrides)
