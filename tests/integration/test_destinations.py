"""The Destination contract against a local folder, asyncssh's SFTP server and OpenSSH.

The same tests run on all three, so the publisher can rely on one set of semantics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from pydantic import SecretStr

from sinks.destination import Destination
from sinks.exceptions import DestinationRefused, DestinationUnavailable, HostKeyMismatch
from sinks.layout import NETSUITE_TREE, ensure_layout
from sinks.local import LocalDestination
from sinks.sftp import SFTPDestination, SFTPParams
from streams.devstack.sftp_server import (
    EmbeddedSFTPServer,
    NoReplaceSFTPServer,
    load_or_create_key,
)
from tests.fixtures.ci import require
from tests.fixtures.embedded_sftp import EmbeddedSFTP
from tests.fixtures.sshd import SSHDServer

# Every byte value, and more than one SFTP read/write request's worth.
PAYLOAD = bytes(range(256)) * 1200


@dataclass
class Site:
    """A destination rooted at a fresh folder, and that folder's local path."""

    dest: Destination
    path: Path


MakeSFTP = Callable[[SFTPParams], SFTPDestination]


@pytest.fixture
async def make_sftp() -> AsyncIterator[MakeSFTP]:
    """Builds SFTP destinations and closes them at teardown, whatever the test did."""
    made: list[SFTPDestination] = []

    def make(params: SFTPParams) -> SFTPDestination:
        made.append(SFTPDestination(params))
        return made[-1]

    yield make
    for dest in made:
        await dest.close()


@dataclass
class SFTPBackend:
    """A running SFTP server that tests can stop and start."""

    root: Path
    params_for: Callable[[str], SFTPParams]
    stop: Callable[[], Awaitable[None]]
    start: Callable[[], Awaitable[None]]


def _sftp_backend(request: pytest.FixtureRequest, kind: str) -> SFTPBackend:
    if kind == "embedded":
        embedded: EmbeddedSFTP = request.getfixturevalue("embedded_sftp")
        return SFTPBackend(embedded.root, embedded.params_for, embedded.stop, embedded.start)
    real: SSHDServer = request.getfixturevalue("sshd")

    async def stop() -> None:
        real.stop()

    async def start() -> None:
        real.start()

    return SFTPBackend(real.root, real.params_for, stop, start)


@pytest.fixture(params=["embedded", "sshd"])
def sftp_backend(request: pytest.FixtureRequest) -> SFTPBackend:
    return _sftp_backend(request, request.param)


@pytest.fixture(params=["local", "embedded", "sshd"])
def any_site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    # Sync: an async fixture cannot request the async embedded_sftp fixture by name.
    # A fresh folder per test: the sshd server, and its start dir, last the whole session.
    base = f"t-{uuid.uuid4().hex[:12]}"
    if request.param == "local":
        site = Site(LocalDestination(tmp_path / base), tmp_path / base)
    else:
        backend = _sftp_backend(request, request.param)
        site = Site(SFTPDestination(backend.params_for(base)), backend.root / base)
    site.path.mkdir()
    return site


@pytest.fixture
async def site(any_site: Site) -> AsyncIterator[Site]:
    yield any_site
    await any_site.dest.close()


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` refuse new entries, in a way that also binds root."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    # Root ignores mode bits; the immutable attribute binds root too.
    chattr = shutil.which("chattr")
    done = subprocess.run([chattr or "chattr", "+i", str(folder)], capture_output=True, check=False)
    if chattr is None or done.returncode != 0:
        require(f"as root only chattr +i makes a folder read-only, and it failed here: {done}")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


# The contract, on every destination.


async def test_makedirs_is_idempotent(site: Site) -> None:
    await site.dest.makedirs("a/b/c")
    await site.dest.makedirs("a/b/c")
    await site.dest.makedirs("a")
    assert (site.path / "a/b/c").is_dir()


async def test_a_folder_removed_behind_its_back_is_made_again(site: Site) -> None:
    await site.dest.makedirs("a/b")
    shutil.rmtree(site.path / "a")
    with pytest.raises(DestinationRefused):
        await site.dest.write("a/b/f.csv", b"x")
    await site.dest.makedirs("a/b")
    await site.dest.write("a/b/f.csv", b"x")
    assert (site.path / "a" / "b" / "f.csv").read_bytes() == b"x"


async def test_ensure_layout_creates_the_netsuite_tree(site: Site) -> None:
    await ensure_layout(site.dest)
    await ensure_layout(site.dest)
    for folder in NETSUITE_TREE:
        assert (site.path / folder).is_dir(), folder
    assert {"inventoryadjustment/csv", "inventorytransfer/.staging"} <= set(NETSUITE_TREE)
    assert {"variance-sync/ledger", "variance-sync/manifests"} <= set(NETSUITE_TREE)


async def test_write_read_size_exists(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("d")
    assert await dest.read("d/f") is None
    assert await dest.size("d/f") is None
    assert await dest.exists("d/f") is False

    await dest.write("d/f", PAYLOAD)
    assert await dest.read("d/f") == PAYLOAD
    assert await dest.size("d/f") == len(PAYLOAD)
    assert await dest.exists("d/f") is True
    assert (site.path / "d/f").read_bytes() == PAYLOAD

    await dest.write("d/f", b"short")
    assert await dest.read("d/f") == b"short"
    assert await dest.size("d/f") == 5


async def test_list_dir_gives_regular_files_only(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("csv/sub")
    await dest.write("csv/b.csv", b"2")
    await dest.write("csv/a.csv", b"1")
    (site.path / "csv/link.csv").symlink_to(site.path / "csv/a.csv")

    assert await dest.list_dir("csv") == ["a.csv", "b.csv"]
    assert await dest.list_dir("csv/sub") == []
    assert await dest.list_dir("missing") == []


async def test_rename_noreplace_leaves_both_files_when_target_exists(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("stage")
    await dest.makedirs("csv")
    await dest.write("stage/f.csv", b"new")
    await dest.write("csv/f.csv", b"old")

    assert await dest.rename_noreplace("stage/f.csv", "csv/f.csv") is False
    assert await dest.read("stage/f.csv") == b"new"
    assert await dest.read("csv/f.csv") == b"old"


async def test_rename_noreplace_moves_when_target_is_free(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("stage")
    await dest.makedirs("csv")
    await dest.write("stage/f.csv", b"new")

    assert await dest.rename_noreplace("stage/f.csv", "csv/f.csv") is True
    assert await dest.read("csv/f.csv") == b"new"
    assert await dest.exists("stage/f.csv") is False


async def test_rename_replace_replaces(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("state")
    await dest.write("state/ledger.tmp", b"v2")
    await dest.write("state/ledger", b"v1")
    await dest.rename_replace("state/ledger.tmp", "state/ledger")
    assert await dest.read("state/ledger") == b"v2"
    assert await dest.exists("state/ledger.tmp") is False

    await dest.write("state/other.tmp", b"v1")
    await dest.rename_replace("state/other.tmp", "state/other")
    assert await dest.read("state/other") == b"v1"


async def test_remove_is_fine_with_missing_files(site: Site) -> None:
    dest = site.dest
    await dest.remove("missing.csv")
    await dest.remove("no/such/folder.csv")
    await dest.write("f.csv", b"1")
    await dest.remove("f.csv")
    assert await dest.exists("f.csv") is False


@pytest.mark.parametrize("bad", ["../escape", "a/../../escape", "/etc/passwd", "a/..", "a\x00b"])
async def test_paths_outside_the_root_are_rejected(site: Site, bad: str) -> None:
    dest = site.dest
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: dest.makedirs(bad),
        lambda: dest.list_dir(bad),
        lambda: dest.exists(bad),
        lambda: dest.read(bad),
        lambda: dest.size(bad),
        lambda: dest.write(bad, b"x"),
        lambda: dest.rename_noreplace("ok", bad),
        lambda: dest.rename_noreplace(bad, "ok"),
        lambda: dest.rename_replace("ok", bad),
        lambda: dest.rename_replace(bad, "ok"),
        lambda: dest.remove(bad),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="path"):
            await call()
    assert not (site.path.parent / "escape").exists()


async def test_a_file_where_a_folder_should_be_is_refused(site: Site) -> None:
    # Works as root too, unlike permission bits; every server reports it as a refusal.
    dest = site.dest
    await dest.write("csv", b"not a folder")
    calls: list[Callable[[], Awaitable[None]]] = [
        lambda: dest.makedirs("csv"),
        lambda: dest.makedirs("csv/sub"),
        lambda: dest.write("csv/x.csv", b"1"),
    ]
    for call in calls:
        with pytest.raises(DestinationRefused) as caught:
            await call()
        assert caught.value.retriable is True


async def test_a_read_only_folder_is_refused(site: Site) -> None:
    dest = site.dest
    await dest.makedirs("csv")
    await dest.makedirs("stage")
    await dest.write("stage/f.csv", b"1")
    with read_only(site.path / "csv"):
        with pytest.raises(DestinationRefused, match=r"x\.csv"):
            await dest.write("csv/x.csv", b"1")
        with pytest.raises(DestinationRefused):
            await dest.rename_noreplace("stage/f.csv", "csv/f.csv")
        with pytest.raises(DestinationRefused):
            await dest.rename_replace("stage/f.csv", "csv/f.csv")
    assert await dest.read("stage/f.csv") == b"1"
    assert await dest.list_dir("csv") == []


# SFTP only: host keys, authentication, outages.


def _secrets_of(key_path: Path) -> list[str]:
    """Strings that would give away the client key: its path, file text and public blob."""
    private = key_path.read_text()
    blob = asyncssh.read_private_key(str(key_path)).export_public_key().decode().split()[1]
    body = [line for line in private.splitlines() if line and not line.startswith("-----")]
    return [str(key_path), private, blob, *body]


@pytest.mark.parametrize("pin", ["other key", "no key"])
async def test_a_host_key_that_is_not_pinned_is_refused(
    sftp_backend: SFTPBackend, tmp_path: Path, caplog: pytest.LogCaptureFixture, pin: str
) -> None:
    caplog.set_level(logging.DEBUG)
    params = sftp_backend.params_for("")
    pinned = tmp_path / "pinned_known_hosts"
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    pinned.write_text(f"[127.0.0.1]:{params.port} {other}" if pin == "other key" else "")
    dest = SFTPDestination(params.model_copy(update={"known_hosts": pinned}))

    with pytest.raises(HostKeyMismatch) as caught:
        await dest.connect()

    message = str(caught.value)
    assert "is not the one pinned" in message
    assert str(pinned) in message
    assert f"127.0.0.1:{params.port}" in message
    assert caught.value.retriable is False
    for secret in _secrets_of(params.client_keys[0]):
        assert secret not in message
        assert secret not in caplog.text


async def test_an_unknown_client_key_is_refused(sftp_backend: SFTPBackend, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    load_or_create_key(stranger)
    params = sftp_backend.params_for("").model_copy(update={"client_keys": (stranger,)})
    with pytest.raises(DestinationRefused, match="rejected authentication as user"):
        await SFTPDestination(params).connect()


async def test_the_same_destination_recovers_after_an_outage(
    sftp_backend: SFTPBackend, make_sftp: MakeSFTP
) -> None:
    base = f"t-{uuid.uuid4().hex[:12]}"
    dest = make_sftp(sftp_backend.params_for(base))
    await dest.makedirs("")
    await dest.write("before.csv", b"1")
    await sftp_backend.stop()
    try:
        # First the open connection fails, then reconnecting does.
        for _ in range(2):
            with pytest.raises(DestinationUnavailable) as caught:
                await dest.read("before.csv")
            assert caught.value.retriable is True
    finally:
        await sftp_backend.start()
    assert await dest.read("before.csv") == b"1"
    await dest.write("after.csv", b"2")
    assert (sftp_backend.root / base / "after.csv").read_bytes() == b"2"


async def test_concurrent_calls_share_one_connection(
    embedded_sftp: EmbeddedSFTP, make_sftp: MakeSFTP
) -> None:
    dest = make_sftp(embedded_sftp.params)
    names = [f"f{i}.csv" for i in range(10)]
    await asyncio.gather(*(dest.write(name, b"x") for name in names))
    assert embedded_sftp.server.connection_count == 1
    assert await dest.list_dir("") == sorted(names)
    await dest.close()
    # The server learns of the close a moment after the client has finished it.
    for _ in range(100):
        if embedded_sftp.server.connection_count == 0:
            break
        await asyncio.sleep(0.01)
    assert embedded_sftp.server.connection_count == 0


async def test_the_connection_prefers_aes_gcm(
    sftp_backend: SFTPBackend, make_sftp: MakeSFTP, caplog: pytest.LogCaptureFixture
) -> None:
    dest = make_sftp(sftp_backend.params_for(""))
    with caplog.at_level(logging.INFO, logger="sinks.sftp"):
        await dest.connect()
    assert "-gcm@openssh.com)" in caplog.text


def test_params_never_show_credentials(tmp_path: Path) -> None:
    params = SFTPParams(
        host="sftp.example.com",
        username="acme",
        base_dir="netsuite",
        client_keys=(tmp_path / "id_secret_key",),
        known_hosts=tmp_path / "known_hosts",
        password=SecretStr("hunter2"),
    )
    dest = SFTPDestination(params)
    for text in (repr(params), str(params), params.description, repr(dest), dest.description):
        assert "hunter2" not in text
        assert "id_secret_key" not in text
    assert params.description == "sftp://acme@sftp.example.com:22/~/netsuite"
    absolute = params.model_copy(update={"base_dir": "/home/acme/netsuite/"})
    assert absolute.description == "sftp://acme@sftp.example.com:22/home/acme/netsuite"


# Faults injected into asyncssh's server, for errors a test cannot cause for real.


class FaultySFTPServer(NoReplaceSFTPServer):
    """Fails by file name: refusals, a dropped connection or session, no posix-rename."""

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        name = os.path.basename(path)
        if name == b"denied":
            raise asyncssh.SFTPPermissionDenied("Permission denied")
        if name == b"quota":
            raise asyncssh.SFTPQuotaExceeded("Disk quota exceeded")
        if name == b"drop":
            self.connection.abort()
            raise asyncssh.SFTPFailure("connection dropped")
        if name == b"drop-session":
            # The SSH connection stays up; only the SFTP channel goes.
            self.channel.close()
            raise asyncssh.SFTPFailure("session closed")
        return super().open(path, pflags, attrs)

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        name = os.path.basename(getattr(file_obj, "name", b""))
        if name == b"nospace":
            raise asyncssh.SFTPNoSpaceOnFilesystem("No space left on device")
        if name == b"failure":
            # OpenSSH reports ENOSPC on SFTP v3 as a bare failure.
            raise asyncssh.SFTPFailure("Failure")
        written: int = super().write(file_obj, offset, data)  # type: ignore[assignment]
        return written

    def fsync(self, file_obj: object) -> None:
        if os.path.basename(getattr(file_obj, "name", b"")) == b"fsync-fails":
            raise asyncssh.SFTPFailure("fsync failed")
        super().fsync(file_obj)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if os.path.basename(newpath).startswith(b"noposix"):
            raise NotImplementedError
        super().posix_rename(oldpath, newpath)


class FaultyEmbeddedSFTPServer(EmbeddedSFTPServer):
    sftp_server_class = FaultySFTPServer


@pytest.fixture
async def faulty(tmp_path: Path) -> AsyncIterator[FaultyEmbeddedSFTPServer]:
    server = FaultyEmbeddedSFTPServer(tmp_path / "root", tmp_path / "state", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# "fsync-fails" also shows that write asks the server to fsync.
@pytest.mark.parametrize("name", ["denied", "quota", "nospace", "failure", "fsync-fails"])
async def test_server_refusals_are_refused_and_keep_the_connection(
    faulty: FaultyEmbeddedSFTPServer, make_sftp: MakeSFTP, name: str
) -> None:
    dest = make_sftp(faulty.sftp_params())
    with pytest.raises(DestinationRefused, match=name) as caught:
        await dest.write(name, b"data")
    assert caught.value.retriable is True
    await dest.write("fine.csv", b"1")
    assert faulty.connection_count == 1


@pytest.mark.parametrize("name", ["drop", "drop-session"])
async def test_a_lost_connection_is_unavailable_then_reconnects(
    faulty: FaultyEmbeddedSFTPServer, make_sftp: MakeSFTP, name: str
) -> None:
    dest = make_sftp(faulty.sftp_params())
    await dest.write("fine.csv", b"1")
    with pytest.raises(DestinationUnavailable):
        await dest.write(name, b"data")
    assert await dest.read("fine.csv") == b"1"


async def test_rename_replace_without_posix_rename_never_removes_the_target(
    faulty: FaultyEmbeddedSFTPServer, make_sftp: MakeSFTP
) -> None:
    dest = make_sftp(faulty.sftp_params())
    await dest.write("a.tmp", b"new")
    await dest.rename_replace("a.tmp", "noposix-free")
    assert await dest.read("noposix-free") == b"new"

    await dest.write("b.tmp", b"newer")
    with pytest.raises(DestinationRefused, match="posix-rename"):
        await dest.rename_replace("b.tmp", "noposix-free")
    assert await dest.read("noposix-free") == b"new"
    assert await dest.read("b.tmp") == b"newer"
