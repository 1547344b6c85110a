"""The transparency report: per half-year and jurisdiction, computed from the log's records.

Anyone holding the log computes the same report, so the published numbers can be checked
against the signed log rather than taken on trust. A request made by courts of several
jurisdictions counts once in each of them, in the half-year of its date.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from samizdat.transparency.records import LeafRecord

__all__ = ["ReportRow", "build_report", "half_year"]

Count = Annotated[int, Field(ge=0)]
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class ReportRow(BaseModel):
    """One half-year in one jurisdiction. ``accounts`` counts accounts disclosed by granted
    requests; ``received == granted + refused``."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    period: str
    jurisdiction: str
    received: Count
    granted: Count
    refused: Count
    accounts: Count


def half_year(date: str) -> str:
    """``"2026-08-01"`` -> ``"2026-H2"``; January to June is H1.

    Raises:
        ValueError: ``date`` is not ``YYYY-MM-DD``.
    """
    try:
        if not _DATE.fullmatch(date):
            raise ValueError("wrong shape")
        day = datetime.date.fromisoformat(date)  # also refuses 2026-02-30
    except ValueError:
        raise ValueError(f"{date!r} is not a YYYY-MM-DD date") from None
    return f"{day.year:04d}-H{1 if day.month <= 6 else 2}"


def build_report(records: Iterable[LeafRecord]) -> list[ReportRow]:
    """Rows sorted by period, then jurisdiction; only cells with at least one request."""
    cells: dict[tuple[str, str], list[int]] = {}
    for record in records:
        period = half_year(record.date)
        granted = record.outcome == "granted"
        for jurisdiction in record.jurisdictions:
            cell = cells.setdefault((period, jurisdiction), [0, 0, 0, 0])
            cell[0] += 1
            cell[1 if granted else 2] += 1
            if granted:
                cell[3] += record.accounts
    return [
        ReportRow(
            period=period,
            jurisdiction=jurisdiction,
            received=received,
            granted=granted,
            refused=refused,
            accounts=accounts,
        )
        for (period, jurisdiction), (received, granted, refused, accounts) in sorted(cells.items())
    ]
