"""Errors raised by sinks. Each says whether retrying the same call can succeed."""

from __future__ import annotations


class SinkError(Exception):
    """Root of every error raised by the sinks package."""

    retriable: bool = False


class DestinationUnavailable(SinkError):
    """The destination cannot be reached right now (connection refused, dropped, timed out)."""

    retriable = True


class DestinationRefused(SinkError):
    """The destination answered but refused the operation (permission denied, disk full).

    Retriable: an operator can free space or fix permissions, and the batch must wait
    for that rather than be dropped.
    """

    retriable = True


class HostKeyMismatch(SinkError):
    """The SFTP server's host key is not the pinned one. Never retried automatically."""

    retriable = False


class VerificationFailed(SinkError):
    """A staged upload does not match what was sent (size or checksum)."""

    retriable = True


class LedgerConflict(SinkError):
    """Our batch ledger disagrees with itself in a way that needs an operator."""

    retriable = False


class Superseded(SinkError):
    """This publisher's view of a partition's ledger is stale: another worker has sealed
    past it (this one lost the partition, and a pause hid that). Nothing of its batch may
    land; the partition's owner publishes."""

    retriable = False
