"""What every ops command shares: its connection options and settings."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from streams.cli_values import add_bootstrap_option
from streams.config import Settings, load_settings, resolve_bootstrap


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="TOML config (default: $VARIANCE_SYNC_CONFIG or the sample)",
    )
    add_bootstrap_option(parser)


def add_execute_option(parser: argparse.ArgumentParser, action: str) -> None:
    """The one switch between planning (the default) and acting, for every command whose
    action an operator cannot take back."""
    parser.add_argument(
        "--execute", action="store_true", help=f"{action} (default: only show the plan)"
    )


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings a command with `add_connection_options` runs with."""
    return effective_settings(args.config, args.bootstrap)


def effective_settings(config: Path | None, bootstrap_flag: str | None) -> Settings:
    """The config and environment as the worker sees them, the broker resolved as for
    every command (`streams.config.resolve_bootstrap`)."""
    settings = load_settings(config)
    bootstrap = resolve_bootstrap(bootstrap_flag, os.environ, settings.kafka)
    if bootstrap == settings.kafka.bootstrap:
        return settings
    kafka = settings.kafka.model_copy(update={"bootstrap": bootstrap})
    return settings.model_copy(update={"kafka": kafka})
