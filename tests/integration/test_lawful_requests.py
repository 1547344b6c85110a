"""Lawful requests end to end, on the embedded default (three DCs, each kept 2 of 2 by the
custodians of the other two jurisdictions): courts and custodians set up with the real
commands, orders signed by court keys, submitted over HTTP to a real server.

Only orders from courts of the jurisdictions of the custodians that keep the subject's DC can
open anything; each custodian re-checks the order of its own jurisdiction. Every case,
granted or refused, is one leaf of the transparency log, with no personal data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from samizdat.client import Client
from samizdat.crypto.custody_keys import unb64
from samizdat.crypto.recipient_keys import RecipientKey, SealedPackageError
from samizdat.crypto.signing_keys import SigningKey
from samizdat.custody.audit import verify_log
from samizdat.custody.protocol import CourtOrder
from samizdat.legal.orders import new_order, parse_subject
from samizdat.transparency.records import decode_leaf
from tests.cli_runner import samizdat
from tests.harness import ServerProcess, signed_in, sql, wait_until
from tests.raw_socket import RawSocket, token_of, user_id_of

COURTS = {"XA": "Court of Appeal of XA", "XB": "High Court of XB", "XC": "Supreme Court of XC"}
#: Another recognised court of XB: two orders from one country still count as one.
SECOND_XB = "Administrative Court of XB"
#: The courts whose orders custodian-xb and custodian-xc (the keepers of DC xa) accept.
KEEPERS_OF_XA = ("XB", "XC")
CLIENT_IP = "127.61.0.9"
DAY_MS = 86_400_000


@dataclass
class Site:
    server: ServerProcess
    keys: dict[str, SigningKey]
    operator: Path  # a CLI profile directory for the operator's commands

    def order(
        self,
        place: str,
        case: str,
        subject: str,
        *,
        court: str | None = None,
        key: SigningKey | None = None,
        category: str = "terrorism",
        fields: Sequence[str] = ("phone", "ip"),
        issued_ms: int | None = None,
        expires_ms: int | None = None,
        recipient: str | None = None,
    ) -> CourtOrder:
        now = int(time.time() * 1000)
        return new_order(
            key or self.keys[place],
            court=court or COURTS[place],
            jurisdiction=place,
            case=case,
            subject=parse_subject(subject),
            category=category,
            fields=fields,
            issued_at_ms=now - 60_000 if issued_ms is None else issued_ms,
            expires_at_ms=now + 30 * DAY_MS if expires_ms is None else expires_ms,
            recipient=recipient,
        )


def run(profile: Path, *args: str) -> dict[str, Any]:
    result = samizdat(profile, *args, "--json")
    assert result.code == 0, result.out + result.err
    return result.record


def register_court(site_dir: Path, data_dir: Path, place: str, name: str) -> SigningKey:
    """The court makes its key; the operator and that jurisdiction's custodian register it."""
    key_file = site_dir / (f"court-{place}.key" if COURTS[place] == name else f"{name}.key")
    public = run(site_dir, "legal", "court", "keygen", "--out", str(key_file))["public_key"]
    run(site_dir, "legal", "court", "add", place, name, public, "--data", str(data_dir))
    custodian = data_dir / "custodians" / f"custodian-{place.lower()}"
    run(site_dir, "custodian", "add-court", "--dir", str(custodian), name, public)
    return SigningKey.load(key_file)


@pytest.fixture(scope="module")
def site(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Site:
    operator = tmp_path_factory.mktemp("operator")
    keys = {p: register_court(operator, server.data_dir, p, n) for p, n in COURTS.items()}
    keys[SECOND_XB] = register_court(operator, server.data_dir, "XB", SECOND_XB)
    return Site(server, keys, operator)


def jsonable(body: dict[str, list[CourtOrder]]) -> dict[str, Any]:
    return {key: [o.model_dump(mode="json") for o in orders] for key, orders in body.items()}


def submit(site: Site, *orders: CourtOrder) -> list[dict[str, Any]]:
    body = {"orders": [o.model_dump(mode="json") for o in orders]}
    reply = httpx.post(site.server.url + "/legal/orders", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    cases: list[dict[str, Any]] = reply.json()["cases"]
    return cases


def log_size(site: Site) -> int:
    reply = httpx.get(site.server.url + "/transparency/head", timeout=10)
    return int(reply.json()["tree_size"]) if reply.status_code == 200 else 0


def leaf(site: Site, index: int) -> tuple[bytes, dict[str, Any]]:
    reply = httpx.get(
        site.server.url + "/transparency/entries",
        params={"start": index, "end": index + 1},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    (entry,) = reply.json()["entries"]
    data = unb64(entry["leaf"])
    return data, decode_leaf(data).model_dump(mode="json")


async def connect_from(ip: str, site: Site, client: Client) -> None:
    """One request from ``ip``; wait until the user's home DC has logged an address."""
    async with RawSocket.open(site.server.url, from_ip=ip) as sock:
        await sock.authorize(token_of(client))
        await sock.result("users.me")


async def ip_logged(site: Site, user_id: int, dc: str, count: int) -> None:
    async def enough() -> bool:
        rows = await sql(site.server, "SELECT id FROM ip_log WHERE user_id = $1", user_id, dc=dc)
        return len(rows) >= count

    await wait_until(enough, what=f"{count} IP records of user {user_id}")


def disclose_entries(site: Site, custodian: str) -> list[Any]:
    path = site.server.data_dir / "custodians" / custodian / "audit.log"
    return [e for e in verify_log(path) if e.kind == "disclose"]


# granted ------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["username", "phone", "user id"])
async def test_orders_of_both_keepers_jurisdictions_disclose_only_that_users_number_and_ips(
    site: Site, form: str
) -> None:
    alice = await signed_in(site.server.url, "Alice")
    bob = await signed_in(site.server.url, "Bob")
    try:
        username = f"suspect_{user_id_of(alice) % 10**9}"
        await alice.call("profile.set_username", username=username)
        await connect_from(CLIENT_IP, site, alice)
        await connect_from("127.61.0.10", site, bob)
        await ip_logged(site, user_id_of(alice), "xa", 2)  # sign-in's address and CLIENT_IP
        phone = alice.test_phone  # type: ignore[attr-defined]
    finally:
        await alice.close()
        await bob.close()
    subject = {"username": f"@{username}", "phone": phone, "user id": str(user_id_of(alice))}[form]
    before = log_size(site)
    granted_before = {c: len(disclose_entries(site, c)) for c in ("custodian-xb", "custodian-xc")}

    (case,) = submit(site, *(site.order(p, f"CASE-{form}", subject) for p in KEEPERS_OF_XA))

    assert (case["outcome"], case["reason"]) == ("granted", None), case
    disclosure = case["disclosure"]
    assert set(disclosure) == {"subject", "user_id", "phone", "ips"}
    assert disclosure["user_id"] == user_id_of(alice)
    assert disclosure["phone"] == phone
    ips = {record["ip"] for record in disclosure["ips"]}
    assert CLIENT_IP in ips
    assert "127.61.0.10" not in ips
    assert all(set(record) == {"ip", "at"} for record in disclosure["ips"])
    # One leaf, with no personal data: not the number, the username, the case or the court.
    assert log_size(site) == before + 1
    raw, record = leaf(site, before)
    assert record == {
        "date": record["date"],
        "jurisdictions": ["XB", "XC"],
        "category": "terrorism",
        "outcome": "granted",
        "reason": None,
        "accounts": 1,
    }
    for private in (phone, phone.lstrip("+"), username, f"CASE-{form}", COURTS["XB"], CLIENT_IP):
        assert private.encode() not in raw
    # Each keeper opened its share of each record itself, against its own court's order.
    for custodian, count in granted_before.items():
        new = disclose_entries(site, custodian)[count:]
        assert new, custodian
        assert all(e.outcome == "granted" for e in new), custodian
        records = [e.subject.split(" ")[0] for e in new]  # owner, order digest, via: kind
        assert {owner.rsplit("/", 1)[-1] for owner in records} == {"phone", "ip"}
        assert all(o.startswith(f"dc:xa/user:{user_id_of(alice)}/") for o in records)
        via = {"username": " via:username", "phone": " via:phone", "user id": ""}[form]
        assert all(e.subject.endswith(via) and " order:" in e.subject for e in new)
        assert not any(private in e.subject for e in new for private in (phone, username))


async def test_records_in_another_dc_need_orders_of_that_dcs_keepers(site: Site) -> None:
    """An account homed in xb is kept by the custodians in XA and XC: orders from XB and XC
    are not enough, orders from XA and XC are."""
    dave = await signed_in(site.server.url, "Dave", digit=2)
    try:
        subject = f"user:{user_id_of(dave)}"
        phone = dave.test_phone  # type: ignore[attr-defined]
    finally:
        await dave.close()

    (refused,) = submit(site, *(site.order(p, "CASE-XB-1", subject) for p in ("XB", "XC")))
    assert (refused["outcome"], refused["reason"]) == ("refused", "TOO_FEW_JURISDICTIONS")
    assert refused["disclosure"] is None

    orders = [site.order(p, "CASE-XB-2", subject) for p in ("XA", "XC")]
    (granted,) = submit(site, *orders)
    assert granted["outcome"] == "granted", granted
    assert granted["disclosure"]["phone"] == phone

    # Whoever holds those orders now cannot have them served again.
    before = log_size(site)
    (again,) = submit(site, *orders)
    assert (again["outcome"], again["reason"], again["disclosure"]) == (
        "refused",
        "ALREADY_USED",
        None,
    )
    assert log_size(site) == before + 1


# refused --------------------------------------------------------------------------------------
def _refusals(site: Site, subject: str) -> dict[str, tuple[list[CourtOrder], str]]:
    now = int(time.time() * 1000)
    stranger = SigningKey.create(site.operator / f"stranger-{time.monotonic_ns()}.key")
    xb = site.order("XB", "R", subject)
    return {
        "unrecognised jurisdiction": (
            [xb, site.order("DE", "R", subject, court="Bundesgerichtshof", key=stranger)],
            "UNRECOGNISED_JURISDICTION",
        ),
        "forged signature": (
            [xb, site.order("XC", "R", subject, key=stranger)],
            "BAD_SIGNATURE",
        ),
        "signed by another court's key": (
            [xb, site.order("XC", "R", subject, key=site.keys["XA"])],
            "BAD_SIGNATURE",
        ),
        "expired": (
            [xb, site.order("XC", "R", subject, issued_ms=now - 9 * DAY_MS, expires_ms=now - 1)],
            "EXPIRED",
        ),
        "not terrorism": (
            [site.order(p, "R", subject, category="fraud") for p in KEEPERS_OF_XA],
            "CATEGORY_NOT_PERMITTED",
        ),
        "message content": (
            [site.order(p, "R", subject, fields=("phone", "messages")) for p in KEEPERS_OF_XA],
            "FIELD_NOT_PERMITTED",
        ),
        "contacts": (
            [site.order(p, "R", subject, fields=("contacts",)) for p in KEEPERS_OF_XA],
            "FIELD_NOT_PERMITTED",
        ),
        "keys": (
            [site.order(p, "R", subject, fields=("ip", "keys")) for p in KEEPERS_OF_XA],
            "FIELD_NOT_PERMITTED",
        ),
        "one jurisdiction only": ([xb], "TOO_FEW_JURISDICTIONS"),
        "unusable recipient key": (
            [site.order(p, "R", subject, recipient="szr1:" + "A" * 43) for p in KEEPERS_OF_XA],
            "MALFORMED",
        ),
        "k orders from one jurisdiction": (
            [xb, site.order("XB", "R", subject, court=SECOND_XB, key=site.keys[SECOND_XB])],
            "TOO_FEW_JURISDICTIONS",
        ),
        "no such subject": (
            [site.order(p, "R", "@nobody_by_that_name") for p in KEEPERS_OF_XA],
            "SUBJECT_NOT_FOUND",
        ),
    }


REFUSALS = [
    "unrecognised jurisdiction",
    "forged signature",
    "signed by another court's key",
    "expired",
    "not terrorism",
    "message content",
    "contacts",
    "keys",
    "one jurisdiction only",
    "unusable recipient key",
    "k orders from one jurisdiction",
    "no such subject",
]


@pytest.mark.parametrize("why", REFUSALS)
async def test_each_refusal_says_why_discloses_nothing_and_is_logged(site: Site, why: str) -> None:
    carol = await signed_in(site.server.url, "Carol")
    subject = f"user:{user_id_of(carol)}"
    await carol.close()
    orders, reason = _refusals(site, subject)[why]
    asked_before = {c: len(disclose_entries(site, c)) for c in ("custodian-xb", "custodian-xc")}
    before = log_size(site)

    (case,) = submit(site, *orders)

    assert (case["outcome"], case["reason"]) == ("refused", reason), case
    assert case["disclosure"] is None
    assert case["detail"]
    assert log_size(site) == before + 1
    _, record = leaf(site, before)
    assert (record["outcome"], record["reason"], record["accounts"]) == ("refused", reason, 0)
    assert record["jurisdictions"] == sorted({o.order.jurisdiction for o in orders})
    # Never the order's own words: a category the policy does not know is logged as "other".
    assert record["category"] == ("other" if why == "not terrorism" else "terrorism")
    if reason != "SUBJECT_NOT_FOUND":  # no custodian was even asked
        after = {c: len(disclose_entries(site, c)) for c in asked_before}
        assert after == asked_before


async def test_a_court_only_the_operator_recognises_opens_nothing(site: Site) -> None:
    """The server's verdict is not the custodians': a court the operator registered (wrongly,
    or under pressure) that custodian-xc does not recognise gets no share from it."""
    shadow_key = site.operator / "shadow.key"
    public = run(site.operator, "legal", "court", "keygen", "--out", str(shadow_key))["public_key"]
    data = str(site.server.data_dir)
    run(site.operator, "legal", "court", "add", "XC", "Shadow Court of XC", public, "--data", data)
    erin = await signed_in(site.server.url, "Erin")
    subject = f"user:{user_id_of(erin)}"
    await erin.close()
    xc_before = len(disclose_entries(site, "custodian-xc"))
    orders = [
        site.order("XB", "SHADOW", subject),
        site.order(
            "XC", "SHADOW", subject, court="Shadow Court of XC", key=SigningKey.load(shadow_key)
        ),
    ]

    (case,) = submit(site, *orders)

    assert (case["outcome"], case["reason"]) == ("refused", "CUSTODIANS_REFUSED"), case
    assert case["disclosure"] is None
    assert any("custodian-xc" in said and "not recognised" in said for said in case["custodians"])
    refusals = disclose_entries(site, "custodian-xc")[xc_before:]
    assert refusals
    assert all(e.outcome == "refused" for e in refusals)
    # Nothing was disclosed, so the orders are not used up: the same answer again.
    (again,) = submit(site, *orders)
    assert (again["outcome"], again["reason"]) == ("refused", "CUSTODIANS_REFUSED")
    assert all("UNKNOWN_COURT" in e.reason for e in refusals)


async def test_a_body_that_is_not_orders_gets_a_typed_error_and_changes_nothing(
    site: Site,
) -> None:
    before = log_size(site)
    url = site.server.url + "/legal/orders"
    for body in (b"not json", b"[]", b'{"orders": []}', b'{"orders": [{"order": 1}]}'):
        reply = httpx.post(url, content=body, timeout=10)
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == "INVALID_PARAMS"
    too_big = httpx.post(url, content=b"{" + b" " * (600 * 1024) + b"}", timeout=10)
    assert too_big.status_code == 413
    assert log_size(site) == before
    assert httpx.get(site.server.url + "/health", timeout=5).status_code == 200


# the operator's and the public's view ---------------------------------------------------------
async def test_the_cli_submits_lists_reports_and_verifies(site: Site, tmp_path: Path) -> None:
    frank = await signed_in(site.server.url, "Frank")
    subject = f"user:{user_id_of(frank)}"
    await frank.close()
    files = []
    for place in KEEPERS_OF_XA:
        path = tmp_path / f"order-{place}.json"
        made = samizdat(
            site.operator,
            "legal", "order", "new",
            "--key", str(site.operator / f"court-{place}.key"),
            "--court", COURTS[place],
            "--jurisdiction", place,
            "--case", "CLI-1",
            "--subject", subject,
            "--category", "terrorism",
            "--fields", "phone,ip",
        )  # fmt: skip
        assert made.code == 0, made.err
        path.write_text(made.out)
        files.append(str(path))
    url = site.server.url
    submitted = samizdat(site.operator, "legal", "submit", *files, "--server", url, "--json")
    assert submitted.code == 0, submitted.out + submitted.err
    (case,) = submitted.records
    assert case["outcome"] == "granted"
    assert case["disclosure"]["user_id"] == user_id_of(frank)

    listed = samizdat(
        site.operator, "legal", "requests", "--server", url, "--data", str(site.server.data_dir),
        "--json",
    )  # fmt: skip
    assert listed.code == 0, listed.err
    mine = [r for r in listed.records if r["case"] == "CLI-1"]
    assert [(r["outcome"], r["jurisdictions"], r["accounts"]) for r in mine] == [
        ("granted", ["XB", "XC"], 1)
    ]

    verified = samizdat(tmp_path / "observer", "transparency", "verify", "--server", url, "--json")
    assert verified.code == 0, verified.out + verified.err
    report = samizdat(tmp_path / "observer", "transparency", "report", "--server", url, "--json")
    assert report.code == 0, report.err
    rows = {(r["period"], r["jurisdiction"]): r for r in report.records}
    assert any(j == "XB" and r["granted"] >= 1 and r["accounts"] >= 1 for (_, j), r in rows.items())

    operator = samizdat(site.operator, "legal", "operator", "--server", url, "--json")
    assert operator.code == 0, operator.err
    info = operator.record
    assert {d["id"]: d["custodian_jurisdictions"] for d in info["dcs"]} == {
        "xa": ["XB", "XC"],
        "xb": ["XA", "XC"],
        "xc": ["XA", "XB"],
    }
    assert info["policy"]["categories"] == ["terrorism"]
    assert info["transparency_head"]["tree_size"] >= 1
    page = httpx.get(url + "/legal", timeout=10)
    assert page.status_code == 200
    assert "Disclosure policy" in page.text
    assert subject.encode() not in orjson.dumps(info)
    assert subject not in page.text


async def test_a_tampered_log_entry_fails_verification(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(fresh_server.start)
    site = Site(server, {}, tmp_path / "operator")
    stranger = SigningKey.create(tmp_path / "stranger.key")
    submit(site, site.order("DE", "T", "user:1", court="Amtsgericht", key=stranger))
    observer = tmp_path / "observer"
    first = samizdat(observer, "transparency", "verify", "--server", server.url, "--json")
    assert first.code == 0, first.out + first.err

    (row,) = await sql(server, "SELECT leaf FROM transparency_leaves WHERE idx = 0")
    forged = bytes(row["leaf"]).replace(b'"refused"', b'"granted"')
    await sql(server, "UPDATE transparency_leaves SET leaf = $1 WHERE idx = 0", forged)

    again = samizdat(observer, "transparency", "verify", "--server", server.url, "--json")
    assert again.code == 1, again.out + again.err
    # Nor is the changed history ever signed: the next request is not taken.
    body = {"orders": [site.order("DE", "T2", "user:1", court="Amtsgericht", key=stranger)]}
    reply = httpx.post(server.url + "/legal/orders", json=jsonable(body), timeout=10)
    assert reply.status_code == 500
    assert reply.json()["error"]["code"] == "INTERNAL"
    assert log_size(site) == 1


async def test_submissions_from_one_address_are_limited_so_the_log_cannot_be_flooded(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    fresh_server.extra_config = fresh_server.extra_config.replace(
        "legal_submissions_per_ip_per_hour = 100000", "legal_submissions_per_ip_per_hour = 2"
    )
    server = await asyncio.to_thread(fresh_server.start)
    site = Site(server, {}, tmp_path)
    stranger = SigningKey.create(tmp_path / "stranger.key")
    order = site.order("DE", "FLOOD", "user:1", court="Amtsgericht", key=stranger)
    for _ in range(2):
        submit(site, order)
    body = {"orders": [order.model_dump(mode="json")]}
    third = httpx.post(server.url + "/legal/orders", json=body, timeout=10)
    assert third.status_code == 429, third.text
    assert third.json()["error"]["code"] == "FLOOD_WAIT"
    assert log_size(site) == 2


async def test_a_result_sealed_to_the_authoritys_key_opens_only_with_it(
    site: Site, tmp_path: Path
) -> None:
    grace = await signed_in(site.server.url, "Grace")
    await connect_from(CLIENT_IP, site, grace)
    await ip_logged(site, user_id_of(grace), "xa", 2)
    phone, subject = grace.test_phone, f"user:{user_id_of(grace)}"  # type: ignore[attr-defined]
    await grace.close()
    key_file = tmp_path / "authority.key"
    public = run(site.operator, "legal", "recipient", "keygen", "--out", str(key_file))

    def orders_of(case: str) -> list[str]:
        files = []
        for place in KEEPERS_OF_XA:
            made = samizdat(
                site.operator,
                "legal", "order", "new",
                "--key", str(site.operator / f"court-{place}.key"),
                "--court", COURTS[place],
                "--jurisdiction", place,
                "--case", case,
                "--subject", subject,
                "--category", "terrorism",
                "--fields", "phone,ip",
                "--recipient", public["public_key"],
            )  # fmt: skip
            assert made.code == 0, made.err
            path = tmp_path / f"{case}-{place}.json"
            path.write_text(made.out)
            files.append(str(path))
        return files

    url = site.server.url
    before = log_size(site)
    raw = samizdat(site.operator, "legal", "submit", *orders_of("SEALED-1"), "--server", url)
    assert raw.code == 0, raw.out + raw.err
    assert "sealed" in raw.out
    assert phone not in raw.out  # nothing readable on the way, nor in the answer
    assert CLIENT_IP not in raw.out
    assert leaf(site, before)[1]["accounts"] == 1

    opened = samizdat(
        site.operator, "legal", "submit", *orders_of("SEALED-2"), "--server", url, "--json",
        "--recipient-key", str(key_file),
    )  # fmt: skip
    assert opened.code == 0, opened.out + opened.err
    (case,) = opened.records
    assert case["sealed_disclosure"]
    assert case["disclosure"]["phone"] == phone
    assert CLIENT_IP in {r["ip"] for r in case["disclosure"]["ips"]}

    stranger = tmp_path / "stranger.key"
    RecipientKey.create(stranger)
    sealed = unb64(case["sealed_disclosure"])
    with pytest.raises(SealedPackageError):
        RecipientKey.load(stranger).open_package("SEALED-2", sealed)
    assert RecipientKey.load(key_file).open_package("SEALED-2", sealed)


def test_a_configured_policy_file_that_is_missing_stops_the_start(
    fresh_server: ServerProcess,
) -> None:
    """Never the defaults in its place: the operator's file may be stricter than they are."""
    fresh_server.extra_config += '\n[legal]\npolicy_file = "/nonexistent/policy.yaml"\n'
    with pytest.raises(RuntimeError, match="exited early"):
        fresh_server.start(wait_unsealed=False)
    assert fresh_server.proc is not None
    assert fresh_server.proc.returncode == 2
    said = " ".join(fresh_server.log_path.read_text().split())
    assert "configured disclosure policy file is missing" in said
    assert "Traceback" not in said
