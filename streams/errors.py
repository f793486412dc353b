"""Errors that the command line turns into one line and exit code 2."""

from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for, phrased as one line."""
