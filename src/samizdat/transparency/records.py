"""What one leaf of the transparency log says: a lawful request, without any personal data.

A leaf records when a request was decided, which jurisdictions' courts made it, its category,
whether it was granted or refused (and why, as a stable code), and how many accounts had
records disclosed. It never names a case, a court, a person or an account: the log is public
forever, so nothing in it may identify anyone. Apart from the category (a short line taken
from the court orders), every field is a date, a code or a count.

A leaf's bytes are the record's canonical JSON (sorted keys, orjson), and ``decode_leaf``
accepts only those bytes, so one record has exactly one leaf and one leaf hash.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from samizdat.crypto.custody_keys import canonical

__all__ = [
    "MAX_JURISDICTIONS",
    "MAX_LEAF_BYTES",
    "LeafError",
    "LeafRecord",
    "decode_leaf",
    "encode_leaf",
]

MAX_JURISDICTIONS = 16
#: Far above any valid record (16 jurisdictions and two 64-character codes stay under 400).
MAX_LEAF_BYTES = 2048

Jurisdiction = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# The category as the court orders name it (one line); the reason a stable code.
#: A code, never free text (free text could carry a name): the intake maps anything else to
#: "other", and several categories to "mixed".
Category = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
Reason = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]


class LeafError(ValueError):
    """A leaf's bytes are not a valid, canonically encoded record; the message says why."""


class LeafRecord(BaseModel):
    """One decided lawful request, as published.

    ``jurisdictions`` are ISO 3166-1 alpha-2 codes, sorted and distinct (callers sort: a
    record has one spelling). ``reason`` is a stable refusal code, and None exactly when the
    request was granted. ``accounts`` counts accounts whose records were disclosed, so it is
    0 for a refusal.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    date: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    jurisdictions: Annotated[
        tuple[Jurisdiction, ...], Field(min_length=1, max_length=MAX_JURISDICTIONS)
    ]
    category: Category
    outcome: Literal["granted", "refused"]
    reason: Reason | None
    accounts: Annotated[int, Field(ge=0, lt=2**53)]

    @field_validator("date")
    @classmethod
    def _a_real_day(cls, value: str) -> str:
        try:
            datetime.date.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a calendar date (YYYY-MM-DD)") from exc
        return value

    @field_validator("jurisdictions")
    @classmethod
    def _sorted_and_distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if list(value) != sorted(set(value)):
            raise ValueError("jurisdictions must be sorted and distinct")
        return value

    @model_validator(mode="after")
    def _reason_matches_outcome(self) -> LeafRecord:
        if self.outcome == "granted" and self.reason is not None:
            raise ValueError("a granted request has no refusal reason")
        if self.outcome == "refused" and self.reason is None:
            raise ValueError("a refused request needs a reason code")
        if self.outcome == "refused" and self.accounts != 0:
            raise ValueError("a refused request disclosed no accounts")
        return self


def encode_leaf(record: LeafRecord) -> bytes:
    """The leaf bytes of ``record``: its canonical JSON."""
    return canonical(record)


def decode_leaf(data: bytes) -> LeafRecord:
    """Parse leaf bytes back into a record.

    Raises:
        LeafError: ``data`` is too long, not JSON, not a valid record, or not the canonical
            encoding of the record it holds.
    """
    if len(data) > MAX_LEAF_BYTES:
        raise LeafError(f"a leaf is at most {MAX_LEAF_BYTES} bytes")
    try:
        # Strict mode still reads JSON arrays as tuples when it parses JSON itself.
        record = LeafRecord.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "leaf"
        raise LeafError(f"{where}: {first['msg']}") from None
    if encode_leaf(record) != data:
        raise LeafError("leaf is not the canonical encoding of its record")
    return record
