"""SFTP connections: host keys pinned, client keys refused, outages and server refusals,
against asyncssh's SFTP server and OpenSSH."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from pydantic import SecretStr

from sinks.exceptions import DestinationRefused, DestinationUnavailable, HostKeyMismatch
from sinks.sftp import SFTPDestination, SFTPParams
from streams.devstack.sftp_server import (
    EmbeddedSFTPServer,
    NoReplaceSFTPServer,
    load_or_create_key,
)
from tests.fixtures.embedded_sftp import EmbeddedSFTP

# Every byte value, and more than one SFTP read/write request's worth.
from tests.fixtures.sites import MakeSFTP, SFTPBackend


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
