"""Jurisdictions are ISO 3166-1 alpha-2 codes: the countries phone numbers know, plus the
user-assigned codes (XA..XZ and the like) for test and private set-ups."""

from __future__ import annotations

import phonenumbers

#: ISO 3166-1 user-assigned codes, for test and private set-ups.
USER_ASSIGNED = frozenset(
    {"AA", "ZZ"}
    | {f"Q{c}" for c in "MNOPQRSTUVWXYZ"}
    | {f"X{c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
)
KNOWN_JURISDICTIONS = frozenset(phonenumbers.SUPPORTED_REGIONS) | USER_ASSIGNED

__all__ = ["KNOWN_JURISDICTIONS", "USER_ASSIGNED"]
