"""The root of every error that `streams` raises, and the usage error.

Each error says whether trying the same thing again later can succeed, as aiokafka's
errors and `sinks.exceptions.SinkError` do: the broker away or a produce that timed out
may go through later; a usage or config error, a refused gap or a host problem will not
change by itself. The command line turns any of them that reaches it into one line
and exit code 2 (`streams.cli`).
"""

from __future__ import annotations


class StreamsError(Exception):
    """Root of every error raised by the streams package."""

    retriable: bool = False


class UsageError(StreamsError):
    """A problem with what the user asked for, phrased as one line."""
