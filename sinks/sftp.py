"""A `Destination` on an SFTP server through asyncssh, with a pinned host key.

One SSH connection and one SFTP session are shared by every call. They open on first
use, and are dropped after any connection-level error so that the next call reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import posixpath
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncssh
from asyncssh.encryption import get_default_encryption_algs
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from sinks.exceptions import (
    DestinationRefused,
    DestinationUnavailable,
    HostKeyMismatch,
    SinkError,
)
from sinks.layout import relative_path

logger = logging.getLogger(__name__)

_MISSING = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath)
# SFTP errors that mean the session is gone rather than that the server said no.
_SESSION_LOST = (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)
_CONNECTION_ERRORS = (
    OSError,  # includes TimeoutError, ConnectionRefusedError, ConnectionResetError
    asyncssh.DisconnectError,
    asyncssh.ChannelOpenError,
    *_SESSION_LOST,
)

# AES-GCM ahead of asyncssh's first choice, ChaCha20-Poly1305, which it assembles from
# several calls per packet: on any CPU with AES instructions GCM costs the worker about a
# third less per SFTP request. The server may still pick any of asyncssh's defaults.
_ENCRYPTION_ALGS = sorted(
    (alg.decode() for alg in get_default_encryption_algs()), key=lambda alg: "-gcm@" not in alg
)


class SFTPParams(BaseModel):
    """Where and how to reach the SFTP server. There is no way to skip host key checks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    # Relative to the login directory unless it starts with `/`; "" is the login directory.
    base_dir: str = ""
    client_keys: tuple[Path, ...] = ()
    known_hosts: Path
    password: SecretStr | None = None
    connect_timeout: float = Field(default=15.0, gt=0)
    # Seconds between SSH keepalives, so a dead link is noticed while idle; 0 disables.
    keepalive_interval: float = Field(default=30.0, ge=0)

    @property
    def description(self) -> str:
        """`sftp://user@host:port/path`, with `~` for the login directory."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.base_dir if self.base_dir.startswith("/") else f"/~/{self.base_dir}"
        return f"sftp://{self.username}@{host}:{self.port}{path.rstrip('/')}"

    def __repr_args__(self) -> Sequence[tuple[str | None, object]]:
        # pydantic builds repr, str and rich output from this; key paths stay out too.
        return [
            ("target", self.description),
            ("client_keys", len(self.client_keys)),
            ("password", "set" if self.password is not None else None),
        ]


class SFTPDestination:
    """Publishes to the `base_dir` of an SFTP server."""

    def __init__(self, params: SFTPParams) -> None:
        self._params = params
        self._lock = asyncio.Lock()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        # Concurrent writers that were waiting for a connect that failed get its error
        # instead of trying again one after another (each up to connect_timeout).
        self._connects = 0
        self._connect_error: SinkError | None = None
        # Folders made or found so far. Publishing asks for the same few folders before
        # every file; a refusal of any call forgets them, in case one was removed.
        self._folders: set[str] = set()

    @property
    def params(self) -> SFTPParams:
        return self._params

    @property
    def description(self) -> str:
        return self._params.description

    def __repr__(self) -> str:
        return f"SFTPDestination({self.description})"

    async def connect(self) -> None:
        await self._client()

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            await conn.wait_closed()

    async def makedirs(self, path: str) -> None:
        remote = self._remote(path)
        if remote in self._folders:
            return
        async with self._session("makedirs", remote) as sftp:
            await sftp.makedirs(remote, exist_ok=True)
        self._folders.add(remote)

    async def list_dir(self, path: str) -> list[str]:
        remote = self._remote(path)
        async with self._session("list", remote) as sftp:
            try:
                names = [
                    str(entry.filename)  # str, because the path we pass is str
                    async for entry in sftp.scandir(remote)
                    if entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR
                ]
            except _MISSING:
                return []
        return sorted(names)

    async def exists(self, path: str) -> bool:
        remote = self._remote(path)
        async with self._session("stat", remote) as sftp:
            return await _exists(sftp, remote)

    async def read(self, path: str) -> bytes | None:
        remote = self._remote(path)
        async with self._session("read", remote) as sftp:
            try:
                async with sftp.open(remote, "rb") as f:
                    data: bytes = await f.read()
            except _MISSING:
                return None
            return data

    async def size(self, path: str) -> int | None:
        attrs = await self._stat(path)
        if attrs is None:
            return None
        if attrs.size is None:
            remote = self._remote(path)
            raise DestinationRefused(f"SFTP server {self.description} gave no size for {remote}")
        return attrs.size

    async def modified(self, path: str) -> float | None:
        attrs = await self._stat(path)
        return None if attrs is None or attrs.mtime is None else float(attrs.mtime)

    async def _stat(self, path: str) -> asyncssh.SFTPAttrs | None:
        remote = self._remote(path)
        async with self._session("stat", remote) as sftp:
            try:
                return await sftp.stat(remote)
            except _MISSING:
                return None

    async def write(self, path: str, data: bytes) -> None:
        remote = self._remote(path)
        async with self._session("write", remote) as sftp, sftp.open(remote, "wb") as f:
            await f.write(data)
            # fsync@openssh.com, where offered: a size check is no proof the bytes
            # would survive a server crash.
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):
                await f.fsync()

    async def rename_noreplace(self, src: str, dst: str) -> bool:
        old, new = self._remote(src), self._remote(dst)
        async with self._session("rename", f"{old} -> {new}") as sftp:
            # SFTP v3 rename: OpenSSH's sftp-server links the new name, so the server
            # itself refuses when it exists, even against a concurrent writer.
            try:
                await sftp.rename(old, new)
            except _SESSION_LOST:
                raise
            except asyncssh.SFTPError:
                if await _exists(sftp, new):
                    return False
                raise
        return True

    async def rename_replace(self, src: str, dst: str) -> None:
        old, new = self._remote(src), self._remote(dst)
        async with self._session("rename", f"{old} -> {new}") as sftp:
            try:
                await sftp.posix_rename(old, new)
            except asyncssh.SFTPOpUnsupported:
                # Remove-then-rename would leave a moment with no file at `new`, so
                # without posix-rename we can only replace nothing.
                logger.warning("%s offers no posix-rename; using plain rename", self.description)
                try:
                    await sftp.rename(old, new)
                except _SESSION_LOST:
                    raise
                except asyncssh.SFTPError as exc:
                    if await _exists(sftp, new):
                        raise DestinationRefused(
                            f"cannot replace {new} on {self.description}: the server offers "
                            "no atomic replacing rename (posix-rename@openssh.com)"
                        ) from exc
                    raise

    async def remove(self, path: str) -> None:
        remote = self._remote(path)
        async with self._session("remove", remote) as sftp:
            with contextlib.suppress(*_MISSING):
                await sftp.remove(remote)

    def _remote(self, path: str) -> str:
        parts = relative_path(path).parts
        base = self._params.base_dir
        if not parts:
            return base or "."
        return posixpath.join(base, *parts)

    async def _client(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        attempt = self._connects
        async with self._lock:
            if self._conn is None or self._sftp is None or self._conn.is_closed():
                failed = self._connect_error
                if failed is not None and self._connects != attempt:
                    raise type(failed)(str(failed))
                self._forget(self._conn)
                self._connects += 1
                try:
                    self._conn, self._sftp = await self._open()
                except SinkError as exc:
                    self._connect_error = exc
                    raise
                self._connect_error = None
            return self._conn, self._sftp

    def _forget(self, conn: asyncssh.SSHClientConnection | None) -> None:
        if conn is None:
            return
        # Only if still current: a concurrent call may already have reconnected.
        if self._conn is conn:
            self._conn = self._sftp = None
        conn.abort()

    @contextlib.asynccontextmanager
    async def _session(self, op: str, where: str) -> AsyncIterator[asyncssh.SFTPClient]:
        """Yield the shared SFTP client; turn asyncssh errors into `SinkError`s."""
        conn, sftp = await self._client()
        try:
            yield sftp
        except _CONNECTION_ERRORS as exc:
            self._folders.clear()
            self._forget(conn)
            logger.warning(
                "SFTP %s %s on %s: connection lost: %s", op, where, self.description, exc
            )
            raise DestinationUnavailable(
                f"SFTP {op} {where} on {self.description}: connection lost ({exc})"
            ) from exc
        except asyncssh.SFTPError as exc:
            self._folders.clear()
            raise DestinationRefused(
                f"SFTP {op} {where} on {self.description} refused by the server: {exc.reason}"
            ) from exc

    async def _open(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        p = self._params
        known_hosts, client_keys = await asyncio.to_thread(self._load_credentials)
        server = f"{p.host}:{p.port}"
        try:
            conn = await asyncssh.connect(
                p.host,
                p.port,
                username=p.username,
                known_hosts=known_hosts,
                client_keys=client_keys or None,
                password=p.password.get_secret_value() if p.password is not None else None,
                # Nothing from the environment: no agent, no ~/.ssh/config, no default keys.
                agent_path=None,
                config=None,
                connect_timeout=p.connect_timeout,
                keepalive_interval=p.keepalive_interval,
                encryption_algs=_ENCRYPTION_ALGS,
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            raise HostKeyMismatch(
                f"the host key of SFTP server {server} is not the one pinned in "
                f"{p.known_hosts}; refusing to connect. If the server's key was changed "
                "on purpose, pin the new key in that file."
            ) from exc
        except asyncssh.PermissionDenied as exc:
            raise DestinationRefused(
                f"SFTP server {server} rejected authentication as user {p.username!r}: "
                "the configured client key or password is not accepted"
            ) from exc
        except (OSError, asyncssh.Error) as exc:
            raise DestinationUnavailable(f"cannot connect to SFTP server {server}: {exc}") from exc
        try:
            sftp = await conn.start_sftp_client()
        except (OSError, asyncssh.Error) as exc:
            conn.abort()
            raise DestinationUnavailable(
                f"SFTP server {server} did not start an SFTP session: {exc}"
            ) from exc
        logger.info(
            "connected to %s (SFTP version %d, %s)",
            self.description,
            sftp.version,
            conn.get_extra_info("send_cipher"),
        )
        return conn, sftp

    def _load_credentials(self) -> tuple[asyncssh.SSHKnownHosts, list[asyncssh.SSHKeyPair]]:
        # Read on every connect, so a rotated key or pin applies at the next reconnect.
        # Unreadable files are a configuration fault an operator must fix: refused.
        p = self._params
        try:
            known_hosts = asyncssh.read_known_hosts(str(p.known_hosts))
        except (OSError, ValueError) as exc:
            raise DestinationRefused(
                f"cannot read the pinned known_hosts file {p.known_hosts}: {exc}"
            ) from exc
        keys: list[asyncssh.SSHKeyPair] = []
        for number, key_path in enumerate(p.client_keys, start=1):
            try:
                keys.extend(asyncssh.load_keypairs([str(key_path)]))
            except (OSError, ValueError) as exc:
                raise DestinationRefused(
                    f"cannot load SFTP client key #{number} ({key_path}): {exc}"
                ) from exc
        return known_hosts, keys


async def _exists(sftp: asyncssh.SFTPClient, remote: str) -> bool:
    # Not SFTPClient.exists: it reports permission denied as "absent".
    try:
        await sftp.stat(remote)
    except _MISSING:
        return False
    return True
