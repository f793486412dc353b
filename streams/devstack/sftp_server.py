"""The embedded dev SFTP server: asyncssh's own server, serving a local folder.

It behaves like the production setup where it matters to the publisher: the worker
pins its host key through a known_hosts file and logs in with a client key, and a
plain SFTP rename refuses to replace a file, as OpenSSH's does. It is not a security
boundary: asyncssh follows symlinks inside the root that point outside it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path

import asyncssh

from sinks.sftp import SFTPParams

logger = logging.getLogger(__name__)

DEFAULT_USERNAME = "netsuite"


class NoReplaceSFTPServer(asyncssh.SFTPServer):
    """SFTP whose plain rename never replaces; posix-rename still does."""

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        old, new = self.map_path(oldpath), self.map_path(newpath)
        if not stat.S_ISREG(os.lstat(old).st_mode):
            super().rename(oldpath, newpath)
            return
        # As OpenSSH's sftp-server: link(2) fails atomically with EEXIST when the
        # name is taken (asyncssh's own rename checks first, then renames: racy).
        os.link(old, new, follow_symlinks=False)
        os.unlink(old)


class _KeyOnlySSHServer(asyncssh.SSHServer):
    """Accepts one user, by public key only, and tracks open connections."""

    def __init__(
        self,
        username: str,
        authorized: asyncssh.SSHAuthorizedKeys,
        connections: set[asyncssh.SSHServerConnection],
    ) -> None:
        self._username = username
        self._authorized = authorized
        self._connections = connections
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._connections.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._connections.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        # Other users get no trusted keys, and no other auth method is offered.
        if username == self._username and self._conn is not None:
            self._conn.set_authorized_keys(self._authorized)
        return True


class EmbeddedSFTPServer:
    """An SFTP server on `host:port` serving `root`, with keys kept in `state_dir`.

    Port 0 picks a free port at the first start; later starts reuse it, so the pinned
    known_hosts entry stays valid across a stop and start.
    """

    # Tests substitute a subclass to inject server-side faults.
    sftp_server_class: type[asyncssh.SFTPServer] = NoReplaceSFTPServer

    def __init__(
        self,
        root: Path,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 2222,
        username: str = DEFAULT_USERNAME,
    ) -> None:
        self._root = root
        self._state_dir = state_dir
        self._host = host
        self._port = port
        self._username = username
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before that)."""
        return self._port

    @property
    def username(self) -> str:
        return self._username

    @property
    def known_hosts(self) -> Path:
        return self._state_dir / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self._state_dir / "client_ed25519_key"

    @property
    def host_key(self) -> Path:
        return self._state_dir / "ssh_host_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self._state_dir / "authorized_keys"

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    def sftp_params(self, base_dir: str = "") -> SFTPParams:
        """Parameters for `SFTPDestination` to publish here, like a production worker."""
        return SFTPParams(
            host=self._host,
            port=self._port,
            username=self._username,
            base_dir=base_dir,
            client_keys=(self.client_key,),
            known_hosts=self.known_hosts,
        )

    async def start(self) -> None:
        if self._acceptor is not None:
            return
        host_key, authorized = await asyncio.to_thread(self._prepare_files)
        chroot = os.fsencode(self._root)
        self._acceptor = await asyncssh.listen(
            self._host,
            self._port,
            server_factory=lambda: _KeyOnlySSHServer(self._username, authorized, self._connections),
            server_host_keys=[host_key],
            sftp_factory=lambda chan: self.sftp_server_class(chan, chroot=chroot),
            allow_scp=False,
        )
        self._port = self._acceptor.get_port()
        await asyncio.to_thread(self._write_known_hosts, host_key)
        logger.info(
            "embedded SFTP server on %s:%d serving %s (user %s, host key pinned in %s)",
            self._host,
            self._port,
            self._root,
            self._username,
            self.known_hosts,
        )

    async def stop(self) -> None:
        """Stop listening and drop every open connection, as an outage would."""
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is None:
            return
        acceptor.close()
        await acceptor.wait_closed()
        connections = list(self._connections)
        for conn in connections:
            conn.close()
        for conn in connections:
            await conn.wait_closed()
        logger.info("embedded SFTP server on %s:%d stopped", self._host, self._port)

    def _prepare_files(self) -> tuple[asyncssh.SSHKey, asyncssh.SSHAuthorizedKeys]:
        self._root.mkdir(parents=True, exist_ok=True)
        self._state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        host_key = load_or_create_key(self.host_key)
        client_key = load_or_create_key(self.client_key)
        self.authorized_keys.write_bytes(client_key.export_public_key())
        return host_key, asyncssh.read_authorized_keys(str(self.authorized_keys))

    def _write_known_hosts(self, host_key: asyncssh.SSHKey) -> None:
        pattern = self._host if self._port == 22 else f"[{self._host}]:{self._port}"
        line = f"{pattern} {host_key.export_public_key().decode('ascii')}"
        self.known_hosts.write_text(line if line.endswith("\n") else line + "\n")


def load_or_create_key(path: Path) -> asyncssh.SSHKey:
    """Read the ed25519 private key at `path`, creating it (mode 0600) if missing."""
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment=f"variance-sync dev {path.name}")
    # O_EXCL with mode 0600: the key is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.export_private_key())
    return key
