"""The transparency report: each record counts once per jurisdiction, in its half-year;
accounts count only when granted; rows sorted by period, then jurisdiction."""

from __future__ import annotations

import pytest

from samizdat.transparency.records import LeafRecord
from samizdat.transparency.report import ReportRow, build_report, half_year


def record(
    date: str, *jurisdictions: str, outcome: str = "granted", accounts: int = 1
) -> LeafRecord:
    refused = outcome == "refused"
    return LeafRecord(
        date=date,
        jurisdictions=tuple(sorted(jurisdictions)),
        category="terrorism",
        outcome="refused" if refused else "granted",
        reason="NOT_PERMITTED" if refused else None,
        accounts=0 if refused else accounts,
    )


@pytest.mark.parametrize(
    ("date", "period"),
    [
        ("2026-01-01", "2026-H1"),
        ("2026-06-30", "2026-H1"),
        ("2026-07-01", "2026-H2"),
        ("2026-12-31", "2026-H2"),
        ("0999-03-01", "0999-H1"),
    ],
)
def test_half_years_split_at_july(date: str, period: str) -> None:
    assert half_year(date) == period


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-00-10", "2026-02-30", "2026-7-1", "", "x"])
def test_half_year_refuses_what_is_not_a_date(bad: str) -> None:
    with pytest.raises(ValueError, match="date"):
        half_year(bad)


def test_an_empty_log_makes_an_empty_report() -> None:
    assert build_report([]) == []


def test_each_record_counts_in_each_of_its_jurisdictions_and_half_years() -> None:
    rows = build_report(
        [
            record("2026-08-01", "DE", "CH", accounts=3),
            record("2026-09-10", "DE", outcome="refused"),
            record("2026-03-01", "DE", accounts=5),
            record("2027-01-02", "AT", accounts=1),
            record("2026-12-31", "CH", outcome="refused"),
        ]
    )
    assert rows == [
        ReportRow(
            period="2026-H1", jurisdiction="DE", received=1, granted=1, refused=0, accounts=5
        ),
        ReportRow(
            period="2026-H2", jurisdiction="CH", received=2, granted=1, refused=1, accounts=3
        ),
        ReportRow(
            period="2026-H2", jurisdiction="DE", received=2, granted=1, refused=1, accounts=3
        ),
        ReportRow(
            period="2027-H1", jurisdiction="AT", received=1, granted=1, refused=0, accounts=1
        ),
    ]


def test_received_is_always_granted_plus_refused() -> None:
    records = [
        record(f"2026-{month:02d}-15", "DE", outcome="refused" if month % 3 else "granted")
        for month in range(1, 13)
    ]
    for row in build_report(records):
        assert row.received == row.granted + row.refused


def test_report_rows_dump_as_plain_json() -> None:
    (row,) = build_report([record("2026-08-01", "DE", accounts=2)])
    assert row.model_dump() == {
        "period": "2026-H2",
        "jurisdiction": "DE",
        "received": 1,
        "granted": 1,
        "refused": 0,
        "accounts": 2,
    }
