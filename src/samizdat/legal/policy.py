"""The disclosure policy: a declarative YAML file of what lawful requests may obtain.

Every key is optional; the defaults (terrorism only, phone and IP, the DC's threshold, the
whole retention window) are what applies without a file: a file may narrow them further::

    recognised_jurisdictions: []   # empty = the jurisdictions of the DCs' custodians
    categories: [terrorism]        # the order categories that permit disclosure
    fields: [phone, ip]            # never anything else; a subset narrows further
    jurisdictions_required: null   # null = the DC's custodian threshold; never below it
    ip_window_days: null           # null = the IP retention window; never beyond it

Only ``phone`` (the phone number) and ``ip`` (IP addresses within the retention window) can
ever be named as fields: a policy naming message content, contacts, media, keys or anything
else is refused when it is loaded, so no policy file can open a path to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from samizdat.core.jurisdictions import KNOWN_JURISDICTIONS
from samizdat.legal.files import TooLarge, read_capped

#: The only fields a lawful request can ever obtain, whatever the policy file says.
DISCLOSABLE_FIELDS: tuple[Literal["phone", "ip"], ...] = ("phone", "ip")
#: What is never disclosed, named for the operator page and for clear refusals.
NEVER_DISCLOSED = ("message content", "contacts", "media", "key material")
FIELD_DESCRIPTIONS = {
    "phone": "the phone number",
    "ip": "IP addresses within the retention window",
}
#: A policy file longer than this is refused unread.
MAX_POLICY_BYTES = 64 * 1024

Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$", strict=True)]
Category = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$", strict=True)]


class PolicyError(ValueError):
    """The policy file is unreadable or invalid; the message names the file and the key."""


class DisclosurePolicy(BaseModel):
    """What the policy permits; frozen, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    recognised_jurisdictions: tuple[Jurisdiction, ...] = ()
    categories: tuple[Category, ...] = ("terrorism",)
    fields: tuple[Literal["phone", "ip"], ...] = DISCLOSABLE_FIELDS
    jurisdictions_required: Annotated[int, Field(strict=True, ge=1, le=16)] | None = None
    ip_window_days: Annotated[int, Field(strict=True, ge=1, le=3650)] | None = None

    @field_validator("recognised_jurisdictions", mode="after")
    @classmethod
    def _known(cls, codes: tuple[str, ...]) -> tuple[str, ...]:
        for code in codes:
            if code not in KNOWN_JURISDICTIONS:
                raise ValueError(f"{code!r} is not an ISO 3166-1 alpha-2 country code")
        return tuple(sorted(set(codes)))

    @field_validator("fields", mode="before")
    @classmethod
    def _only_identity_fields(cls, value: Any) -> Any:
        # Said here, before the Literal check, so the error names what is never disclosable.
        if isinstance(value, list | tuple):
            for item in value:
                if item not in DISCLOSABLE_FIELDS:
                    raise ValueError(
                        f"{str(item)[:32]!r} can never be disclosed: the only fields a policy "
                        "may permit are phone and ip (never "
                        f"{', '.join(NEVER_DISCLOSED)})"
                    )
            return tuple(dict.fromkeys(value))
        return value

    def required_for(self, threshold: int) -> int:
        """How many distinct jurisdictions a case needs, for a DC of custodian threshold
        ``threshold``: the policy may raise it, never lower it."""
        if self.jurisdictions_required is None:
            return threshold
        return max(threshold, self.jurisdictions_required)

    def recognised_for(self, custodian_jurisdictions: Iterable[str]) -> frozenset[str]:
        """The recognised jurisdictions: the policy's list, or when it is empty the
        jurisdictions of the DC's custodians."""
        if self.recognised_jurisdictions:
            return frozenset(self.recognised_jurisdictions)
        return frozenset(custodian_jurisdictions)

    def ip_window_for(self, retention_days: int) -> int:
        """Days of IP addresses a disclosure may cover: the policy's window, never more than
        what is retained."""
        if self.ip_window_days is None:
            return retention_days
        return min(self.ip_window_days, retention_days)


def _where(loc: tuple[int | str, ...]) -> str:
    """A key path as a person writes it: ``fields[2]``, not ``fields.2``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_policy(path: Path | None) -> DisclosurePolicy:
    """The policy in the YAML file ``path``; the defaults if ``path`` is None, the file does
    not exist, or it is empty. (A file the operator configured is checked to exist by the
    caller: a missing one must not fall back to the defaults, which it may narrow.)

    Raises PolicyError naming the file and the key for anything invalid: unreadable, not
    YAML, not a mapping, an unknown key, a value of the wrong type, or a field other than
    phone and ip.
    """
    if path is None:
        return DisclosurePolicy()
    try:
        raw = read_capped(path, MAX_POLICY_BYTES)
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the disclosure policy: {exc.strerror}") from exc
    except TooLarge:
        raise PolicyError(
            f"{path}: a disclosure policy is at most {MAX_POLICY_BYTES} bytes"
        ) from None
    if raw is None:
        return DisclosurePolicy()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return DisclosurePolicy()
    if not isinstance(data, dict):
        raise PolicyError(
            f"{path}: the disclosure policy is a mapping of keys (categories, fields, ...) "
            f"to values, not a {type(data).__name__}"
        )
    try:
        return DisclosurePolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_where(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise PolicyError(f"{path}: invalid disclosure policy: {problems}") from exc


def policy_summary(policy: DisclosurePolicy) -> dict[str, object]:
    """The policy as JSON-ready data for the operator page (None values are the defaults
    the server resolves: the DC's threshold, the IP retention, the custodians' countries)."""
    return {
        "recognised_jurisdictions": list(policy.recognised_jurisdictions) or None,
        "categories": list(policy.categories),
        "fields": [
            {"field": field, "description": FIELD_DESCRIPTIONS[field]} for field in policy.fields
        ],
        "jurisdictions_required": policy.jurisdictions_required,
        "ip_window_days": policy.ip_window_days,
        "never_disclosed": list(NEVER_DISCLOSED),
    }


__all__ = [
    "DISCLOSABLE_FIELDS",
    "FIELD_DESCRIPTIONS",
    "MAX_POLICY_BYTES",
    "NEVER_DISCLOSED",
    "DisclosurePolicy",
    "PolicyError",
    "load_policy",
    "policy_summary",
]
