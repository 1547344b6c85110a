"""``samizdat legal``, run as real processes: a court makes its key and signs orders, the
operator registers courts, and the orders read back and pass the review."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import canonical, unb64
from samizdat.crypto.signing_keys import decode_public_key, verify
from samizdat.legal.orders import parse_order, parse_subject
from samizdat.legal.policy import DisclosurePolicy
from samizdat.legal.registry import REGISTRY_FILE, CourtRegistry
from samizdat.legal.review import review_submission
from tests.cli_runner import CALL_TIMEOUT, ENV, Result, samizdat

DAY_MS = 86_400_000


def _registered() -> bool:
    from samizdat.cli.main import app

    return any(group.name == "legal" for group in app.registered_groups)


def legal(tmp_path: Path, *args: str) -> Result:
    """``samizdat legal ...`` through the console script; until ``legal_app`` is registered
    in ``samizdat.cli.main``, the same typer app run as its own process."""
    if _registered():
        return samizdat(tmp_path / "profile", "legal", *args)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from samizdat.cli.legal import legal_app; legal_app(prog_name='samizdat legal')",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        env=ENV,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(tmp_path: Path, *args: str) -> Result:
    result = legal(tmp_path, *args)
    assert result.code == 0, f"samizdat legal {' '.join(args)} failed:\n{result.out}\n{result.err}"
    return result


def failed(tmp_path: Path, *args: str) -> dict[str, str]:
    """The --json error of a command that must fail with exit code 1."""
    result = legal(tmp_path, *args, "--json")
    assert result.code == 1, result.out + result.err
    error: dict[str, str] = result.record["error"]
    return error


def keygen(tmp_path: Path, name: str) -> tuple[Path, str]:
    key_file = tmp_path / f"{name}.key"
    record = ok(tmp_path, "court", "keygen", "--out", str(key_file), "--json").record
    assert record["key_file"] == str(key_file)
    return key_file, record["public_key"]


def order_new(tmp_path: Path, key_file: Path, court: str, jurisdiction: str, *extra: str) -> bytes:
    return ok(
        tmp_path, "order", "new", "--key", str(key_file), "--court", court,
        "--jurisdiction", jurisdiction, "--case", "JOINT-2026-0042", "--subject", "@Suspect_One",
        "--category", "terrorism", "--fields", "phone, ip", *extra,
    ).out.encode()  # fmt: skip


def test_a_court_key_signs_an_order_that_reads_back_and_verifies(tmp_path: Path) -> None:
    key_file, public = keygen(tmp_path, "court")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    printed = order_new(tmp_path, key_file, "High Court of XA", "xa")
    order = parse_order(printed)
    body = order.order
    assert verify(decode_public_key(public), unb64(order.signature), canonical(body))
    assert (body.court, body.jurisdiction, body.case) == (
        "High Court of XA",
        "XA",
        "JOINT-2026-0042",
    )
    assert body.subject == "@suspect_one"
    assert (body.category, body.fields) == ("terrorism", ("phone", "ip"))
    assert body.expires_at_ms - body.issued_at_ms == 30 * DAY_MS

    compact = order_new(tmp_path, key_file, "High Court of XA", "XA", "--expires", "7", "--json")
    assert len(compact.strip().splitlines()) == 1
    week = parse_order(compact).order
    assert week.expires_at_ms - week.issued_at_ms == 7 * DAY_MS


def test_the_human_keygen_output_says_how_to_register_the_key(tmp_path: Path) -> None:
    result = ok(tmp_path, "court", "keygen", "--out", str(tmp_path / "court.key"))
    assert "samizdat legal court add JURISDICTION NAME" in result.out
    assert "Public key: " in result.out


def test_courts_are_added_listed_and_removed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _, xa = keygen(tmp_path, "xa")
    _, xb = keygen(tmp_path, "xb")
    added = ok(
        tmp_path, "court", "add", "xa", "High Court of XA", xa, "--data", str(data), "--json"
    )
    assert added.record == {"jurisdiction": "XA", "court": "High Court of XA", "public_key": xa}
    ok(tmp_path, "court", "add", "XB", "Supreme Court of XB", xb, "--data", str(data))

    listed = ok(tmp_path, "court", "list", "--data", str(data), "--json").records
    assert listed == [
        {"jurisdiction": "XA", "court": "High Court of XA", "public_key": xa},
        {"jurisdiction": "XB", "court": "Supreme Court of XB", "public_key": xb},
    ]
    human = ok(tmp_path, "court", "list", "--data", str(data)).out
    assert "High Court of XA" in human
    assert xb in human
    registry_file = data / REGISTRY_FILE
    assert stat.S_IMODE(registry_file.stat().st_mode) == 0o600

    removed = ok(
        tmp_path, "court", "remove", "XA", "High Court of XA", "--data", str(data), "--json"
    )
    assert removed.record == {"jurisdiction": "XA", "court": "High Court of XA", "removed": True}
    left = ok(tmp_path, "court", "list", "--data", str(data), "--json").records
    assert [c["court"] for c in left] == ["Supreme Court of XB"]
    assert json.loads(registry_file.read_text()) == {"XB": {"Supreme Court of XB": xb}}


def test_an_empty_registry_says_how_to_add_a_court(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert ok(tmp_path, "court", "list", "--data", str(data), "--json").out == ""
    assert "samizdat legal court add" in ok(tmp_path, "court", "list", "--data", str(data)).out


def test_orders_made_and_courts_registered_by_the_cli_pass_the_review(tmp_path: Path) -> None:
    data = tmp_path / "data"
    orders = []
    for jurisdiction in ("XA", "XB"):
        key_file, public = keygen(tmp_path, jurisdiction)
        court = f"High Court of {jurisdiction}"
        ok(tmp_path, "court", "add", jurisdiction, court, public, "--data", str(data))
        orders.append(parse_order(order_new(tmp_path, key_file, court, jurisdiction)))

    (case,) = review_submission(
        orders,
        registry=CourtRegistry.load(data / REGISTRY_FILE),
        policy=DisclosurePolicy(),
        recognised=frozenset({"XA", "XB"}),
        required=2,
        now_ms=orders[0].order.issued_at_ms + DAY_MS,
    )
    assert case.refusal is None
    assert case.subject == parse_subject("@suspect_one")
    assert case.fields == ("phone", "ip")


# errors -----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["not-a-key", "AAAA", "szc1:AAAA"])
def test_a_bad_court_key_is_refused_clearly(tmp_path: Path, key: str) -> None:
    data = tmp_path / "data"
    error = failed(tmp_path, "court", "add", "XA", "High Court of XA", key, "--data", str(data))
    assert error["code"] == "KEY_INVALID"
    assert error["message"].startswith("not a court key: ")
    assert "samizdat legal court keygen" in error["message"]
    assert not (data / REGISTRY_FILE).exists()

    human = legal(tmp_path, "court", "add", "XA", "High Court of XA", key, "--data", str(data))
    assert human.code == 1
    assert human.out == ""
    assert "error: not a court key" in human.err


@pytest.mark.parametrize("code", ["ZX", "CHE", "1A", "E"])
def test_a_bad_jurisdiction_code_is_refused_clearly(tmp_path: Path, code: str) -> None:
    _, public = keygen(tmp_path, "court")
    error = failed(tmp_path, "court", "add", code, "Some Court", public, "--data", str(tmp_path))
    assert error == {
        "code": "JURISDICTION_INVALID",
        "message": f"{code!r} is not an ISO 3166-1 alpha-2 country code (two capital letters, "
        "e.g. CH)",
    }


def test_a_missing_key_file_is_refused_clearly(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.key"
    result = legal(
        tmp_path, "order", "new", "--key", str(missing), "--court", "High Court of XA",
        "--jurisdiction", "XA", "--case", "C-1", "--subject", "user:42",
        "--category", "terrorism", "--fields", "phone",
    )  # fmt: skip
    assert result.code == 1
    assert result.out == ""  # nothing that could be mistaken for an order
    assert f"cannot read key file {missing}" in result.err
    assert "samizdat legal court keygen" in result.err


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    key_file, _ = keygen(tmp_path, "court")
    before = key_file.read_bytes()
    error = failed(tmp_path, "court", "keygen", "--out", str(key_file))
    assert error["code"] == "KEY_FILE"
    assert "not overwritten" in error["message"]
    assert key_file.read_bytes() == before


def test_a_bad_subject_is_refused_before_anything_is_signed(tmp_path: Path) -> None:
    key_file, _ = keygen(tmp_path, "court")
    error = failed(
        tmp_path, "order", "new", "--key", str(key_file), "--court", "High Court of XA",
        "--jurisdiction", "XA", "--case", "C-1", "--subject", "somebody",
        "--category", "terrorism", "--fields", "phone",
    )  # fmt: skip
    assert error["code"] == "ORDER_INVALID"
    assert "@username, +phone" in error["message"]


def test_removing_an_absent_court_is_refused_clearly(tmp_path: Path) -> None:
    error = failed(tmp_path, "court", "remove", "XA", "Ghost Court", "--data", str(tmp_path))
    assert error["code"] == "COURT_NOT_FOUND"
    assert "Ghost Court" in error["message"]


def test_a_malformed_registry_file_is_reported_not_replaced(tmp_path: Path) -> None:
    registry_file = tmp_path / REGISTRY_FILE
    registry_file.parent.mkdir(parents=True)
    registry_file.write_text("{broken")
    _, public = keygen(tmp_path, "court")
    error = failed(tmp_path, "court", "add", "XA", "High Court", public, "--data", str(tmp_path))
    assert error["code"] == "REGISTRY_INVALID"
    assert str(registry_file) in error["message"]
    assert registry_file.read_text() == "{broken"
