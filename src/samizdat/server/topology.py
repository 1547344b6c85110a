"""Where data lives and who holds its keys: DCs, custodians, and how users are homed.

Validated once at load time. The rules that keep the promise "seizing one DC yields nothing,
and no single state can compel disclosure" are checked here and refuse to start otherwise:

- a DC's custodians never sit in the DC's own jurisdiction;
- no k of a DC's custodians share one jurisdiction (a single state could otherwise compel
  all the shares it needs);
- 1 <= k <= the number of custodians, and every id a DC or the homing rules name exists.

With no ``[[dcs]]`` and no ``[[custodians]]`` configured, the embedded default applies: three
DCs ``xa``, ``xb`` and ``xc`` in the user-assigned jurisdictions XA, XB and XC, and three
in-process custodians, one in each; every DC is kept by the two custodians of the other two
jurisdictions, threshold 2. New accounts are homed in ``xa``, except dev test numbers
``+999662...`` (``xb``) and ``+999663...`` (``xc``), so one machine shows every path between DCs.
A data directory made before this default (one DC ``local`` kept by custodians in XB, XC and
XD, 2 of 3) keeps that layout: see ``embedded_layout``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StringConstraints, model_validator

from samizdat.core.jurisdictions import KNOWN_JURISDICTIONS
from samizdat.core.phone import Phone

Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known(code: str) -> str:
    if code not in KNOWN_JURISDICTIONS:
        raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
    return code


class CustodianSettings(_Section):
    id: Ident
    jurisdiction: Jurisdiction
    url: HttpUrl | None = Field(
        None, description="the custodian service; unset = in-process (embedded, dev only)"
    )
    public_key: str | None = Field(
        None, description="szc1:... from `samizdat custodian init`; required with url"
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        _known(self.jurisdiction)
        if self.url is not None and not self.public_key:
            raise ValueError(f"custodian {self.id}: a remote custodian needs its public_key")
        return self


class DcSettings(_Section):
    id: Ident
    jurisdiction: Jurisdiction
    database_url: str | None = Field(
        None, description="postgresql+asyncpg://... ; a SQLite file under the data dir if unset"
    )
    custodians: tuple[Ident, ...] = Field(min_length=1, max_length=16)
    threshold: int = Field(ge=1, le=16)

    @model_validator(mode="after")
    def _check(self) -> Self:
        _known(self.jurisdiction)
        if len(set(self.custodians)) != len(self.custodians):
            raise ValueError(f"dc {self.id}: a custodian is listed twice")
        if self.threshold > len(self.custodians):
            raise ValueError(
                f"dc {self.id}: threshold {self.threshold} exceeds its "
                f"{len(self.custodians)} custodians"
            )
        return self


class HomingSettings(_Section):
    """Which DC a new account is homed in, from its phone number: the longest matching
    ``prefixes`` entry, else its country in ``countries``, else ``default_dc``."""

    default_dc: Ident | None = Field(None, description="unset = the first DC")
    countries: dict[Jurisdiction, Ident] = Field(
        default_factory=dict, description="phone country (ISO code) -> DC id"
    )
    prefixes: dict[Annotated[str, StringConstraints(pattern=r"^\+[0-9]{1,14}$")], Ident] = Field(
        default_factory=dict, description="E.164 prefix, e.g. '+4175' -> DC id"
    )

    def dc_for(self, phone: Phone, fallback: str) -> str:
        """The DC id for a parsed number (its region as ``core.phone`` found it)."""
        matches = [p for p in self.prefixes if phone.e164.startswith(p)]
        if matches:
            return self.prefixes[max(matches, key=len)]
        return self.countries.get(phone.region or "", self.default_dc or fallback)


EMBEDDED_PLACES = ("XA", "XB", "XC")


def _custodian_in(place: str) -> str:
    return f"custodian-{place.lower()}"


def embedded_custodians() -> tuple[CustodianSettings, ...]:
    """One in-process custodian in each embedded jurisdiction."""
    return tuple(CustodianSettings(id=_custodian_in(p), jurisdiction=p) for p in EMBEDDED_PLACES)


def embedded_dcs() -> tuple[DcSettings, ...]:
    """One DC per embedded jurisdiction, kept by the custodians of the other two (2 of 2)."""
    return tuple(
        DcSettings(
            id=place.lower(),
            jurisdiction=place,
            custodians=tuple(_custodian_in(p) for p in EMBEDDED_PLACES if p != place),
            threshold=2,
        )
        for place in EMBEDDED_PLACES
    )


def embedded_homing() -> HomingSettings:
    """Everyone in the first DC, but dev test numbers by their first digit after ``+99966``:
    with ``--dev`` on one machine, ``+999662...`` and ``+999663...`` live in the other DCs."""
    first, second, third = (p.lower() for p in EMBEDDED_PLACES)
    return HomingSettings(default_dc=first, prefixes={"+999662": second, "+999663": third})


#: The embedded default before there were three DCs: kept for data directories made then.
ONE_DC_ID = "local"
ONE_DC_CUSTODIANS = ("XB", "XC", "XD")


def one_dc_custodians() -> tuple[CustodianSettings, ...]:
    return tuple(CustodianSettings(id=_custodian_in(p), jurisdiction=p) for p in ONE_DC_CUSTODIANS)


def one_dc_dcs() -> tuple[DcSettings, ...]:
    return (
        DcSettings(
            id=ONE_DC_ID,
            jurisdiction="XA",
            custodians=tuple(_custodian_in(p) for p in ONE_DC_CUSTODIANS),
            threshold=2,
        ),
    )


def made_with_one_dc(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds an install of the one-DC embedded default or older: its
    database file; its custodian in XD, which the three-DC default never has; or, before
    custody, a ``dc.key`` and no custodians. Such an install keeps that layout, since its
    data and keys were sealed for it."""
    if any((data_dir / name).exists() for name in ("dc-local.sqlite3", "samizdat.sqlite3")):
        return True
    custodians = data_dir / "custodians"
    if not custodians.exists():
        return (data_dir / "dc.key").exists()
    legacy_custodian = _custodian_in(ONE_DC_CUSTODIANS[-1])
    if (custodians / legacy_custodian).exists():
        return True
    try:
        known = orjson.loads((custodians / "public-keys.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(known, dict) and legacy_custodian in known


def embedded_layout(data_dir: Path) -> dict[str, object]:
    """The DCs, custodians and homing that ``samizdat serve`` with no topology configured
    uses for ``data_dir``: the three-DC default, or the one-DC layout it was made with."""
    if made_with_one_dc(data_dir):
        return {"dcs": one_dc_dcs(), "custodians": one_dc_custodians()}
    return {"dcs": embedded_dcs(), "custodians": embedded_custodians(), "homing": embedded_homing()}


def check_topology(
    dcs: tuple[DcSettings, ...],
    custodians: tuple[CustodianSettings, ...],
    homing: HomingSettings,
) -> None:
    """Raise ValueError naming the DC and the rule it breaks."""
    by_id = {c.id: c for c in custodians}
    if len(by_id) != len(custodians):
        raise ValueError("custodian ids must be unique")
    dc_ids = [d.id for d in dcs]
    if len(set(dc_ids)) != len(dc_ids):
        raise ValueError("dc ids must be unique")
    for dc in dcs:
        missing = [c for c in dc.custodians if c not in by_id]
        if missing:
            raise ValueError(f"dc {dc.id}: unknown custodian(s) {', '.join(missing)}")
        places = [by_id[c].jurisdiction for c in dc.custodians]
        if dc.jurisdiction in places:
            raise ValueError(
                f"dc {dc.id}: a custodian sits in the DC's own jurisdiction {dc.jurisdiction}; "
                "custodians must be elsewhere, or one seizure would take data and key together"
            )
        place, count = Counter(places).most_common(1)[0]
        if count >= dc.threshold:
            raise ValueError(
                f"dc {dc.id}: {count} of its custodians are in {place}, enough to meet its "
                f"threshold {dc.threshold}; one state could compel them all"
            )
    for target in [homing.default_dc, *homing.countries.values(), *homing.prefixes.values()]:
        if target is not None and target not in dc_ids:
            raise ValueError(f"{target!r} is not a configured DC")


__all__ = [
    "CustodianSettings",
    "DcSettings",
    "HomingSettings",
    "check_topology",
    "embedded_custodians",
    "embedded_dcs",
    "embedded_homing",
    "embedded_layout",
    "made_with_one_dc",
    "one_dc_custodians",
    "one_dc_dcs",
]
