"""Server configuration: frozen, validated, loaded once by the CLI and passed down.

A TOML file (``samizdat serve --config FILE``) may set any of these; command-line flags win.
Unknown keys are refused with the key's name, so a typo never silently falls back.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator
from pydantic_core import ErrorDetails

from samizdat.server.topology import (
    CustodianSettings,
    DcSettings,
    HomingSettings,
    check_topology,
    embedded_custodians,
    embedded_dcs,
    embedded_layout,
)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LimitSettings(Section):
    max_frame_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    max_outbox_frames: int = Field(
        4096, ge=16, description="queued frames before a slow socket is dropped"
    )
    max_outbox_bytes: int = Field(
        32 * 1024 * 1024, ge=64 * 1024, description="queued bytes before a slow socket is dropped"
    )
    auth_timeout_seconds: float = Field(
        600.0, gt=0, description="an unauthorised socket is closed after this long"
    )
    max_inflight_per_connection: int = Field(256, ge=1)
    rate_limits: bool = True
    requests_per_second: float = Field(200.0, gt=0, description="per device, sustained")
    request_burst: float = Field(1000.0, gt=0, description="per device")
    auth_per_ip_per_minute: float = Field(30.0, gt=0)
    codes_per_phone_per_hour: float = Field(5.0, gt=0)
    legal_submissions_per_ip_per_hour: float = Field(
        30.0, gt=0, description="POST /legal/orders: each is a public log entry, so bounded"
    )


class StorageSettings(Section):
    database_url: str | None = Field(
        None, description="postgresql+asyncpg://... ; SQLite under data dir if unset"
    )
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    max_batch: int = Field(1024, ge=1, le=100_000)
    secret_retention_seconds: float = Field(
        7 * 24 * 3600.0, gt=0, description="undelivered secret ciphertexts are erased after this"
    )


class VerifierSettings(Section):
    webhook_url: HttpUrl | None = None
    code_ttl_seconds: float = Field(300.0, gt=0, le=3600)
    max_attempts: int = Field(5, ge=1, le=20)


class IdentitySettings(Section):
    ip_retention_days: int = Field(
        365, ge=1, le=3650, description="sealed IP-address records are erased after this"
    )


class LegalSettings(Section):
    """Who answers authorities, and the disclosure policy (``/legal`` shows both)."""

    operator_name: str = Field(
        "", max_length=200, description="the legal entity running this service"
    )
    operator_contact: str = Field(
        "", max_length=500, description="where authorities send requests (e-mail, address)"
    )
    policy_file: Path | None = Field(
        None,
        description="YAML disclosure policy; else DATA/legal/policy.yaml if it exists, or defaults",
    )


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Path("./var")
    dev: bool = False
    node_id: int = Field(0, ge=0, le=15)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    limits: LimitSettings = LimitSettings()
    storage: StorageSettings = StorageSettings()
    verifier: VerifierSettings = VerifierSettings()
    identity: IdentitySettings = IdentitySettings()
    legal: LegalSettings = LegalSettings()
    dcs: tuple[DcSettings, ...] = Field(default_factory=embedded_dcs, min_length=1)
    custodians: tuple[CustodianSettings, ...] = Field(default_factory=embedded_custodians)
    homing: HomingSettings = HomingSettings()

    @model_validator(mode="before")
    @classmethod
    def _embedded_topology(cls, data: object) -> object:
        """DCs or custodians not configured: the embedded default's, for the data directory
        (``topology.embedded_layout``: three DCs, or the one-DC layout an old directory was
        made with). What is configured wins; the default homing applies only to default DCs."""
        if not isinstance(data, dict) or ("dcs" in data and "custodians" in data):
            return data
        data_dir = data.get("data_dir", cls.model_fields["data_dir"].default)
        if not isinstance(data_dir, str | Path):
            return data  # the field's own validation reports it
        layout = embedded_layout(Path(data_dir))
        if "dcs" in data:
            layout.pop("homing", None)
        return {**layout, **data}

    @model_validator(mode="after")
    def _check_topology(self) -> Self:
        check_topology(self.dcs, self.custodians, self.homing)
        return self

    @property
    def dc(self) -> DcSettings:
        """The default DC: where users whose number no homing rule names are homed."""
        wanted = self.homing.default_dc or self.dcs[0].id
        return next(d for d in self.dcs if d.id == wanted)

    def custodians_of(self, dc: DcSettings) -> tuple[CustodianSettings, ...]:
        by_id = {c.id: c for c in self.custodians}
        return tuple(by_id[c] for c in dc.custodians)

    @property
    def database_url(self) -> str:
        """The default DC's database (see ``database_url_of``)."""
        return self.database_url_of(self.dc)

    def database_url_of(self, dc: DcSettings) -> str:
        """A DC's database: its own URL; for the default DC, else [storage]; else a SQLite
        file ``dc-ID.sqlite3`` under the data directory (for the default DC,
        ``samizdat.sqlite3``, the name before DCs had ids, when that file exists and the new one
        does not: an upgrade keeps its data).
        """
        default = dc.id == self.dc.id
        url = dc.database_url or (self.storage.database_url if default else None)
        if url:
            return url
        path = self.data_dir.resolve() / f"dc-{dc.id}.sqlite3"
        legacy = self.data_dir.resolve() / "samizdat.sqlite3"
        if default and legacy.exists() and not path.exists():
            path = legacy
        return f"sqlite+aiosqlite:///{path}"

    def node_key_file(self, dc: DcSettings) -> Path:
        """This node's key for unsealing ``dc`` (one per DC: a custodian enrols a node for one
        DC). The default DC keeps ``node.key``, its name from before a node served several."""
        name = "node.key" if dc.id == self.dc.id else f"node-{dc.id}.key"
        return self.data_dir / name


class ConfigError(ValueError):
    """The configuration file is unreadable or invalid; the message names the key."""


def load_settings(path: Path | None, **overrides: object) -> ServerSettings:
    """Read ``path`` (TOML) if given, apply non-None overrides, validate everything."""
    data: dict[str, object] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return ServerSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(err) for err in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


def _describe(err: ErrorDetails) -> str:
    """One problem: where, what, and the bad value only when it is a single value (a whole
    table would print other keys too, database passwords included)."""
    where = ".".join(str(p) for p in err["loc"])
    value = err.get("input")
    got = "" if isinstance(value, dict | list | tuple) else f" (got {value!r})"
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}{got}" if where else f"{message}{got}"


__all__ = [
    "ConfigError",
    "IdentitySettings",
    "LegalSettings",
    "LimitSettings",
    "ServerSettings",
    "StorageSettings",
    "VerifierSettings",
    "load_settings",
]
