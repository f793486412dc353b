"""What every ops command shares: its connection options and settings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from streams.config import Settings, load_settings, resolve_bootstrap


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
    """The settings an ops command runs with, the broker resolved as for every command
    (`streams.config.resolve_bootstrap`)."""
    settings = load_settings(args.config)
    bootstrap = resolve_bootstrap(args.bootstrap, os.environ, settings.kafka)
    if bootstrap == settings.kafka.bootstrap:
        return settings
    kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap})
    return settings.model_copy(update={"kafka": kafka})
