"""The file operations the publish protocol needs from a destination.

A destination is rooted at the NetSuite base directory. Every path here is relative to
that root and uses `/` separators. Implementations: `sinks.local.LocalDestination` and
`sinks.sftp.SFTPDestination`. They raise `sinks.exceptions.SinkError` subclasses only.
"""

from __future__ import annotations

from typing import Protocol


class Destination(Protocol):
    """Primitive, individually atomic file operations on the publish target."""

    @property
    def description(self) -> str:
        """Where this destination points, for logs (never includes credentials)."""
        ...

    async def connect(self) -> None:
        """Open the connection; a no-op for destinations that need none."""
        ...

    async def close(self) -> None:
        """Release the connection. Safe to call more than once."""
        ...

    async def makedirs(self, path: str) -> None:
        """Create `path` and its parents if missing."""
        ...

    async def list_dir(self, path: str) -> list[str]:
        """Names of the regular files directly in `path`; empty if it does not exist."""
        ...

    async def exists(self, path: str) -> bool:
        """Whether a file exists at `path`."""
        ...

    async def read(self, path: str) -> bytes | None:
        """The whole file, or None if it does not exist."""
        ...

    async def size(self, path: str) -> int | None:
        """The file's size in bytes, or None if it does not exist."""
        ...

    async def modified(self, path: str) -> float | None:
        """When the file was last written (unix seconds), or None if it does not exist."""
        ...

    async def write(self, path: str, data: bytes) -> None:
        """Create or truncate `path` and write `data`. Not atomic: use for staging only."""
        ...

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        """Rename `src` to `dst` only if `dst` does not exist.

        Returns False, leaving both untouched, when `dst` already exists. This is the
        one mutual-exclusion primitive the protocol relies on (OpenSSH's SFTP rename
        links the new name, which fails if it exists).
        """
        ...

    async def rename_replace(self, src: str, dst: str) -> None:
        """Atomically rename `src` to `dst`, replacing `dst` if present.

        On SFTP this is `posix-rename@openssh.com` when the server offers it.
        """
        ...

    async def remove(self, path: str) -> None:
        """Delete a file; missing files are not an error."""
        ...
