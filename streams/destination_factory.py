"""Builds the publish destination that the settings describe."""

from __future__ import annotations

from sinks.destination import Destination
from sinks.local import LocalDestination
from sinks.sftp import SFTPDestination, SFTPParams
from streams.config import ConfigError, Settings


def make_destination(settings: Settings) -> Destination:
    publish = settings.publish
    if publish.destination == "local":
        assert publish.local_dir is not None  # noqa: S101 - guaranteed by PublishConfig
        return LocalDestination(publish.local_dir)
    sftp = settings.sftp
    if sftp is None:
        raise ConfigError("publish.destination is 'sftp' but there is no [sftp] section")
    return SFTPDestination(
        SFTPParams(
            host=sftp.host,
            port=sftp.port,
            username=sftp.username,
            base_dir=sftp.base_dir,
            client_keys=(sftp.private_key,) if sftp.private_key else (),
            known_hosts=sftp.known_hosts,
            password=sftp.password,
            connect_timeout=sftp.connect_timeout,
        )
    )
