"""Settings: one TOML file, overridden by `VARIANCE_SYNC_*` environment variables.

The file is `--config`, else `$VARIANCE_SYNC_CONFIG`, else the packaged sample config.
Precedence, highest first: command-line overrides, environment variables
(`VARIANCE_SYNC_<SECTION>__<KEY>`, e.g. `VARIANCE_SYNC_KAFKA__BOOTSTRAP`), files in the
secrets directory `$VARIANCE_SYNC_SECRETS_DIR` (one per setting, named `<section>__<key>`,
e.g. `sftp__password`, as Docker and Kubernetes mount secrets), the TOML file, then the
defaults below. Every problem becomes one `ConfigError` line naming the field.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from pydantic_settings.sources import InitSettingsSource, NestedSecretsSettingsSource

from sinks.naming import is_valid_prefix
from streams.errors import StreamsError

DEFAULT_CONFIG = Path(__file__).parent / "defaults" / "variance-sync.toml"

NetSuiteId = Annotated[str, Field(pattern=r"^[0-9]{1,18}$", description="NetSuite internal id")]
ReasonId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")]


class ConfigError(StreamsError):
    """A configuration problem, phrased as one line for the operator."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetSuiteConfig(_Section):
    subsidiary_id: NetSuiteId
    adjustment_account_id: NetSuiteId
    cycle_count_memo: str = Field("Inventory cycle count by HotWax", min_length=1, max_length=300)
    timezone: str
    file_prefix: str
    synced_reasons: tuple[ReasonId, ...]
    # Reasons the OMS logs that stay there (not synced): named on metrics; any reason
    # neither here nor synced counts as `other`, so producers cannot add series.
    local_reasons: tuple[ReasonId, ...] = ()
    variance_locations: dict[ReasonId, NetSuiteId] = Field(default_factory=dict)
    # Facility -> NetSuite location, for events that do not carry netsuite_location_id.
    facilities: dict[ReasonId, NetSuiteId] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            # OSError: a name that is a folder of the zone database ("US", "Europe").
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("file_prefix")
    @classmethod
    def _safe_prefix(cls, value: str) -> str:
        if not is_valid_prefix(value):
            raise ValueError(
                "must be 1-64 letters, digits, '_' or '-', starting with a letter or digit"
            )
        return value

    @_model_validator(mode="after")
    def _mapped_reasons_are_synced(self) -> NetSuiteConfig:
        # An unsynced reason with a variance location would be ambiguous: say so up front.
        unsynced = sorted(set(self.variance_locations) - set(self.synced_reasons))
        if unsynced:
            raise ValueError(
                f"variance_locations maps {', '.join(unsynced)} but synced_reasons does not list "
                "it; add it to synced_reasons or remove the mapping"
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class BatchingConfig(_Section):
    window_seconds: float = Field(60.0, gt=0, le=86_400)
    max_rows: int = Field(10_000, ge=1, le=25_000)
    # Consumption pauses while this many rows wait for publishing (an SFTP outage).
    max_pending_rows: int = Field(200_000, ge=1)


class ValidationConfig(_Section):
    max_abs_quantity: int = Field(100_000, ge=1)
    max_future_seconds: int = Field(600, ge=0)
    # Larger payloads are dead-lettered unread: no real count comes near this.
    max_event_bytes: int = Field(1_048_576, ge=1024, le=16_777_216)

    @property
    def max_future(self) -> timedelta:
        return timedelta(seconds=self.max_future_seconds)


class DedupeConfig(_Section):
    # How long after an event's first copy another copy of it is still recognised (and
    # ignored) as a producer's duplicate. A re-drive can bring a copy back for as long as
    # the DLQ keeps records, so keep it at least the DLQ's retention. 0: never forget.
    horizon_days: float = Field(7.0, ge=0, le=36_500)


class PositionsConfig(_Section):
    """Bounds on one position's record, so it stays far below the broker's record size."""

    # Analytics days kept, counted back from the day of each event applied (0: forever).
    analytics_retention_days: int = Field(400, ge=0, le=36_500)
    # Names of applied events kept for exact dedupe; past it the oldest below the floor go,
    # however young (0: no bound).
    max_applied_events: int = Field(5_000, ge=0, le=1_000_000)


class TopicsConfig(_Section):
    count_approved: str = "hotwax.inventory.count-approved"
    variance_logged: str = "hotwax.inventory.variance-logged"
    dlq: str = "variance-sync.dlq"
    dlq_redrives: str = "variance-sync.dlq-redrives"
    status: str = "variance-sync.status"


class KafkaConfig(_Section):
    bootstrap: str = "localhost:9092"
    # "auto" asks the broker; the Tansu-only workarounds apply only to "tansu".
    flavor: Literal["auto", "kafka", "tansu"] = "auto"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    partitions: int = Field(4, ge=1, le=1024)
    replication_factor: int = Field(1, ge=1)
    group_id: str = Field("variance-sync", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    # Consumer group timing. Unset: Faust's defaults (a dead worker's partitions move after
    # its 60 s session expires), or on Tansu the short ones its joins need.
    session_timeout_seconds: float | None = Field(None, ge=1, le=3600)
    heartbeat_interval_seconds: float | None = Field(None, gt=0, le=600)
    rebalance_timeout_seconds: float | None = Field(None, ge=1, le=3600)
    # How long the worker waits for the broker to take a changelog flush or dead letter
    # before the partition halts (and is consumed again once the broker answers).
    produce_timeout_seconds: float = Field(40.0, ge=1, le=600)
    topics: TopicsConfig = TopicsConfig()

    @field_validator("bootstrap")
    @classmethod
    def _broker_list(cls, value: str) -> str:
        return check_bootstrap(value)


class SFTPConfig(_Section):
    host: str
    port: int = Field(22, ge=1, le=65_535)
    username: str
    base_dir: str = "netsuite"
    private_key: Path | None = None
    known_hosts: Path
    password: SecretStr | None = None
    connect_timeout: float = Field(15.0, gt=0)


class PublishConfig(_Section):
    destination: Literal["sftp", "local"] = "sftp"
    local_dir: Path | None = None
    retry_initial_seconds: float = Field(1.0, gt=0)
    retry_max_seconds: float = Field(60.0, gt=0)
    park_after_seconds: float = Field(300.0, gt=0)
    verify_checksum: bool = True

    @_model_validator(mode="after")
    def _local_needs_dir(self) -> PublishConfig:
        if self.destination == "local" and self.local_dir is None:
            raise ValueError("destination 'local' needs local_dir")
        return self


class PermissionsConfig(_Section):
    """Who may log a variance directly (HotWax: facility managers or higher)."""

    roles: tuple[str, ...] = Field(min_length=1)  # lowest first
    log_variance_min_role: str
    missing_role: Literal["allow", "reject"] = "allow"

    @_model_validator(mode="after")
    def _known_roles(self) -> PermissionsConfig:
        if len(set(self.roles)) != len(self.roles):
            raise ValueError("roles must not repeat a role")
        if self.log_variance_min_role not in self.roles:
            raise ValueError(
                f"log_variance_min_role {self.log_variance_min_role!r} is not one of roles"
            )
        return self

    def rank(self, role: str) -> int | None:
        return self.roles.index(role) if role in self.roles else None


class WorkerConfig(_Section):
    web_host: str = "127.0.0.1"
    web_port: int = Field(6066, ge=0, le=65_535)
    store: Literal["rocksdb", "memory"] = "rocksdb"
    data_dir: Path = Path("var/worker")
    log_level: Literal["debug", "info", "warn", "error"] = "info"
    # "json": one JSON object per line (streams/logs.py); `--log-format` overrides it.
    log_format: Literal["text", "json"] = "text"
    # How often /rejections and the console look at NetSuite's failed/ and error/.
    rejections_check_seconds: float = Field(30.0, gt=0)


# The TOML data for the `Settings` being built; a context variable rather than a class
# attribute so that concurrent loads cannot see each other's file.
_file_data: ContextVar[Mapping[str, Any] | None] = ContextVar("_file_data", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VARIANCE_SYNC_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        # Secret files are named like the setting, without the prefix: `sftp__password`.
        secrets_prefix="",
        secrets_dir_missing="error",
    )

    netsuite: NetSuiteConfig
    batching: BatchingConfig = BatchingConfig()
    validation: ValidationConfig = ValidationConfig()
    dedupe: DedupeConfig = DedupeConfig()
    positions: PositionsConfig = PositionsConfig()
    kafka: KafkaConfig = KafkaConfig()
    sftp: SFTPConfig | None = None
    publish: PublishConfig = PublishConfig()
    worker: WorkerConfig = WorkerConfig()
    # Absent: no permission check at all.
    permissions: PermissionsConfig | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        file_source = InitSettingsSource(settings_cls, dict(_file_data.get() or {}))
        secrets = NestedSecretsSettingsSource(file_secret_settings)
        return (init_settings, env_settings, secrets, file_source)

    def redacted(self) -> dict[str, Any]:
        """The effective settings with secrets masked, for logs and `config show`."""
        return self.model_dump(mode="json")


def load_settings(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read, merge and validate settings; raise `ConfigError` with one line on any problem."""
    source = path or Path(os.environ.get("VARIANCE_SYNC_CONFIG") or DEFAULT_CONFIG)
    secrets = secrets_dir(os.environ)
    token = _file_data.set(read_toml(source))
    try:
        return Settings(_secrets_dir=secrets, **dict(overrides or {}))
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, source, os.environ, secrets)) from None
    except SettingsError as exc:
        # A JSON value in the environment that does not parse, or an unreadable or
        # oversized secrets directory.
        where = "environment" if "EnvSettingsSource" in str(exc) else SECRETS_DIR_VARIABLE
        raise ConfigError(f"{where}: {exc}") from None
    finally:
        _file_data.reset(token)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except PermissionError:
        raise ConfigError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text, as TOML must be") from None
    except OSError as exc:  # a path through a plain file, an I/O error
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None


SECRETS_DIR_VARIABLE = "VARIANCE_SYNC_SECRETS_DIR"


def secrets_dir(environ: Mapping[str, str]) -> Path | None:
    """The secrets directory named by the environment, if any; `ConfigError` if it is not
    a directory (a mistyped mount would otherwise drop its secrets silently)."""
    name = environ.get(SECRETS_DIR_VARIABLE)
    if not name:
        return None
    if not Path(name).is_dir():
        raise ConfigError(f"environment variable {SECRETS_DIR_VARIABLE}: {name}: not a directory")
    return Path(name)


def describe_errors(
    exc: ValidationError,
    source: Path,
    environ: Mapping[str, str],
    secrets: Path | None = None,
) -> str:
    """Pydantic errors as `origin: field.path: message` parts joined on one line, the
    origin being the environment variable or secret file that set the field, else the
    file. Never the value: it may be a secret."""
    parts = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        where = ".".join(loc) or "config"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{_origin(loc, source, environ, secrets)}: {where}: {message}")
    return "; ".join(parts)


def _origin(loc: list[str], source: Path, environ: Mapping[str, str], secrets: Path | None) -> str:
    # The longest variable or secret file that covers the field (environment first, as
    # it wins): VARIANCE_SYNC_BATCHING__WINDOW_SECONDS, or VARIANCE_SYNC_BATCHING holding
    # a JSON object; then secrets/batching__window_seconds.
    for length in range(len(loc), 0, -1):
        name = "VARIANCE_SYNC_" + "__".join(loc[:length]).upper()
        if name in environ:
            return f"environment variable {name}"
    for length in range(len(loc), 0, -1):
        secret = _secret_file(secrets, "__".join(loc[:length]))
        if secret is not None:
            return f"secret file {secret}"
    return str(source)


def _secret_file(secrets: Path | None, name: str) -> Path | None:
    # Matched as pydantic-settings matches them: ignoring case.
    if secrets is None:
        return None
    return next((p for p in secrets.iterdir() if p.name.lower() == name.lower()), None)


# An RFC 1123 name (underscores allowed: compose service names have them) or IPv4 address.
_HOST = re.compile(
    r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$"
)
BOOTSTRAP_FORM = "HOST:PORT[,HOST:PORT...]"


def check_bootstrap(text: str) -> str:
    """`text` unchanged if it is a broker list `HOST:PORT[,HOST:PORT...]`, else `ValueError`
    naming the address at fault. The flag, the environment and the config file all pass
    through it, so that a typo is one line at start, not a client's retry loop later."""
    if not text.strip():
        raise ValueError(f"is empty; expected {BOOTSTRAP_FORM}")
    for address in (part.strip() for part in text.split(",")):
        host, colon, port = address.rpartition(":")
        if not colon:
            raise ValueError(f"{address!r} has no port; expected {BOOTSTRAP_FORM}")
        if not _valid_host(host):
            raise ValueError(f"{address!r}: {host!r} is not a host name or IP address")
        if not (port.isascii() and port.isdigit()):
            raise ValueError(f"{address!r}: port {port!r} is not a number")
        if not 0 < int(port) < 65_536:
            raise ValueError(f"{address!r}: port {int(port)} is not between 1 and 65535")
    return text


def _valid_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    return len(host) <= 253 and _HOST.match(host) is not None


def resolve_bootstrap(
    flag: str | None, environ: Mapping[str, str], config: KafkaConfig | None
) -> str:
    """The broker every command talks to: the flag, then `VARIANCE_SYNC_KAFKA__BOOTSTRAP`
    (which `stack.env` sets), then `KAFKA_BOOTSTRAP`, then the config file, then the local
    default. `ConfigError`, naming where it came from, if the one chosen is malformed."""
    candidates = (
        ("--bootstrap", flag),
        (
            "environment variable VARIANCE_SYNC_KAFKA__BOOTSTRAP",
            environ.get("VARIANCE_SYNC_KAFKA__BOOTSTRAP"),
        ),
        ("environment variable KAFKA_BOOTSTRAP", environ.get("KAFKA_BOOTSTRAP")),
        ("kafka.bootstrap", config.bootstrap if config is not None else None),
    )
    origin, value = next(
        ((origin, value) for origin, value in candidates if value),
        ("default", "localhost:9092"),
    )
    try:
        return check_bootstrap(value)
    except ValueError as exc:
        raise ConfigError(f"{origin}: bootstrap {exc}") from None
