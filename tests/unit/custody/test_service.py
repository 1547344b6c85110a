"""A custodian keeps its state in one directory and answers every request with a signed grant
or a refusal, each written to its audit log before the answer leaves.

The log shows every request exactly once, remembers nonces across a restart so a replay stays
refused, and never holds what it helped to disclose.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import (
    CustodianPublic,
    KeyFormatError,
    NodeKey,
    RequesterKey,
)
from samizdat.crypto.threshold import EnvelopeError
from samizdat.custody.audit import AuditEntry, verify_log
from samizdat.custody.client import InProcessCustodianClient
from samizdat.custody.node import CustodianRef, disclose_record, unseal_dc_key
from samizdat.custody.policy import Refusal, RefusalCode
from samizdat.custody.protocol import answer_message, b64, request_digest, unb64
from samizdat.custody.service import Custodian, CustodianStateError
from tests.custody_requests import (
    CUSTODIAN,
    DAY_MS,
    DC,
    DC_KEY,
    NOW,
    NOW_MS,
    CourtKey,
    dc_key_envelope,
    disclose_request,
    identity_envelope,
    signed_by,
    signed_unseal,
    unseal_request,
)

PHONE = "+999661234567"


def public(custodian: Custodian) -> CustodianPublic:
    return CustodianPublic.decode(custodian.public_key)


def publics(*custodians: Custodian) -> dict[str, CustodianPublic]:
    return {c.identity.custodian_id: public(c) for c in custodians}


def refused_and_logged(custodian: Custodian, request: Callable[[], object]) -> RefusalCode:
    """Run ``request``, which must be refused, and check it left exactly one refused entry."""
    before = len(custodian.audit)
    with pytest.raises(Refusal) as caught:
        request()
    entries = custodian.audit.entries()
    assert len(entries) == before + 1
    assert entries[-1].outcome == "refused"
    assert entries[-1].reason.startswith(f"{caught.value.code}: ")
    return caught.value.code


def last_entry(custodian: Custodian) -> AuditEntry:
    return custodian.audit.entries()[-1]


# state directory -------------------------------------------------------------------------
def test_init_refuses_to_overwrite_an_existing_custodian(custodian: Custodian) -> None:
    key_file = custodian.directory / "custodian.key"
    key = key_file.read_bytes()
    with pytest.raises(CustodianStateError, match="not overwriting"):
        Custodian.init(custodian.directory, "someone-else", "XC")
    assert key_file.read_bytes() == key
    assert Custodian(custodian.directory).identity.custodian_id == CUSTODIAN


def test_a_custodian_opens_again_with_the_same_identity_and_key(custodian: Custodian) -> None:
    reopened = Custodian(custodian.directory)
    assert reopened.identity == custodian.identity
    assert reopened.public_key == custodian.public_key
    assert reopened.info().jurisdiction == "XB"


def test_opening_a_directory_that_holds_no_custodian_says_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(CustodianStateError, match="custodian init"):
        Custodian(tmp_path)


def test_enrolments_revocations_and_courts_survive_a_reopen(
    custodian: Custodian, tmp_path: Path
) -> None:
    seized = NodeKey.load_or_create(tmp_path / "seized.key").encoded()
    serving = NodeKey.load_or_create(tmp_path / "serving.key").encoded()
    court = CourtKey("High Court of XB", "XB")
    custodian.enroll_node(seized, DC)
    custodian.enroll_node(serving, DC)
    assert custodian.revoke_node(seized) is True
    assert custodian.revoke_node(seized) is False
    custodian.add_court(court.name, court.public_key)

    reopened = Custodian(custodian.directory)
    assert set(reopened.nodes) == {serving}
    assert reopened.nodes[serving].dc == DC
    assert reopened.courts[court.name].public_key == court.public_key
    assert [(e.kind, e.outcome) for e in reopened.audit.entries()] == [
        ("enroll", "done"),
        ("enroll", "done"),
        ("revoke", "done"),
        ("court", "done"),
    ]
    assert reopened.info().enrolled_nodes == 1


def test_malformed_node_and_court_keys_are_refused_and_nothing_is_written(
    custodian: Custodian,
) -> None:
    with pytest.raises(KeyFormatError):
        custodian.enroll_node("szn1:too-short", DC)
    with pytest.raises(KeyFormatError):
        custodian.add_court("High Court of XB", b"\x01" * 31)
    reopened = Custodian(custodian.directory)
    assert (reopened.nodes, reopened.courts, len(reopened.audit)) == ({}, {}, 0)


# granting --------------------------------------------------------------------------------
def test_a_granted_unseal_is_signed_by_the_custodian_and_opens_only_for_its_requester(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    requester = RequesterKey()
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC, requester=requester)

    answer = custodian.unseal(signed, now=NOW)

    grant = unb64(answer.grant)
    assert (answer.custodian, answer.index) == (CUSTODIAN, 1)
    assert public(custodian).verify(unb64(answer.signature), answer_message(signed.request, grant))
    share = requester.open_grant(grant, request_digest(signed.request), expected_index=1)
    assert share.index == 1
    with pytest.raises(EnvelopeError):
        RequesterKey().open_grant(grant, request_digest(signed.request), expected_index=1)


def test_a_grant_leaves_exactly_one_granted_entry(custodian: Custodian, node: NodeKey) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC)
    before = len(custodian.audit)

    custodian.unseal(signed, now=NOW)

    entries = custodian.audit.entries()
    assert len(entries) == before + 1
    granted = entries[-1]
    assert (granted.kind, granted.outcome, granted.reason) == ("unseal", "granted", "")
    assert (granted.subject, granted.nonce, granted.at) == ("dc:local", signed.request.nonce, NOW)
    assert granted.requester == node.encoded()


async def test_a_node_opens_its_dc_key_with_two_of_three_custodians_while_one_is_down(
    tmp_path: Path,
) -> None:
    node = NodeKey.load_or_create(tmp_path / "node.key")
    custodians = [
        Custodian.init(tmp_path / cid, cid, place)
        for cid, place in (("custodian-xb", "XB"), ("custodian-xc", "XC"), ("custodian-xd", "XD"))
    ]
    for c in custodians:
        c.enroll_node(node.encoded(), DC)
    envelope = dc_key_envelope(DC, publics(*custodians), threshold=2)
    refs = [
        CustodianRef(
            c.identity.custodian_id,
            public(c),
            InProcessCustodianClient(c, reachable=c.identity.custodian_id != "custodian-xc"),
        )
        for c in custodians
    ]

    payload, outcomes = await unseal_dc_key(envelope, dc=DC, node_key=node, custodians=refs)

    assert payload == DC_KEY
    assert [(o.custodian_id, o.ok) for o in outcomes] == [
        ("custodian-xb", True),
        ("custodian-xc", False),
        ("custodian-xd", True),
    ]
    assert [last_entry(c).outcome for c in custodians] == ["granted", "done", "granted"]


# refusing --------------------------------------------------------------------------------
def test_an_unenrolled_node_is_refused_and_logged(custodian: Custodian, tmp_path: Path) -> None:
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    signed = signed_unseal(stranger, envelope, custodian=CUSTODIAN, dc=DC)
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.NODE_NOT_ENROLLED
    assert last_entry(custodian).requester == stranger.encoded()[:80]


def test_the_exact_same_signed_request_sent_twice_is_a_replay(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC)
    custodian.unseal(signed, now=NOW)
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW + 1))
    assert code is RefusalCode.REPLAYED


def test_a_stale_request_is_refused_and_logged(custodian: Custodian, node: NodeKey) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC)
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW + 180))
    assert code is RefusalCode.STALE


@pytest.mark.parametrize(
    "encoded",
    ["", "A", b64(b"garbage"), b64(b"SZTE" + b"\x01\x02\x03" * 8)],
    ids=["empty", "not-base64", "garbage", "truncated-header"],
)
def test_a_malformed_envelope_is_refused_and_logged(
    custodian: Custodian, node: NodeKey, encoded: str
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    request = unseal_request(node, envelope, custodian=CUSTODIAN, dc=DC)
    signed = signed_by(node, request.model_copy(update={"envelope": encoded}))
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.MALFORMED
    assert last_entry(custodian).nonce == request.nonce


def test_a_truncated_real_envelope_is_refused_as_malformed(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    request = unseal_request(node, envelope, custodian=CUSTODIAN, dc=DC)
    truncated = b64(envelope.to_bytes()[:40])
    signed = signed_by(node, request.model_copy(update={"envelope": truncated}))
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.MALFORMED


def test_an_envelope_without_a_share_for_this_custodian_is_refused_and_logged(
    custodian: Custodian, node: NodeKey, tmp_path: Path
) -> None:
    others = [Custodian.init(tmp_path / cid, cid, "XC") for cid in ("c-one", "c-two")]
    envelope = dc_key_envelope(DC, publics(*others), threshold=2)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC)
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.NO_SHARE


def test_a_requester_key_that_is_not_an_x25519_key_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    request = unseal_request(node, envelope, custodian=CUSTODIAN, dc=DC)
    signed = signed_by(node, request.model_copy(update={"requester_key": b64(b"short")}))
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.NO_SHARE
    assert not any(e.outcome == "granted" for e in custodian.audit.entries())


def test_a_disclosure_without_an_order_is_refused_and_logged(custodian: Custodian) -> None:
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, None, custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.NO_ORDER
    assert last_entry(custodian).requester == "(no order)"
    assert last_entry(custodian).subject == "dc:local/user:1/phone"


def test_a_disclosure_with_a_malformed_envelope_is_refused_and_logged(
    custodian: Custodian,
) -> None:
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, court.order(), custodian=CUSTODIAN)
    broken = request.model_copy(update={"envelope": b64(b"not an envelope at all")})
    code = refused_and_logged(custodian, lambda: custodian.disclose(broken, now=NOW))
    assert code is RefusalCode.MALFORMED
    assert last_entry(custodian).requester == court.name


def test_an_identity_record_presented_for_unseal_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
) -> None:
    # An enrolled node, a fresh signed request, this DC: only the envelope is not a DC key.
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    signed = signed_unseal(node, envelope, custodian=CUSTODIAN, dc=DC)
    code = refused_and_logged(custodian, lambda: custodian.unseal(signed, now=NOW))
    assert code is RefusalCode.WRONG_PURPOSE
    entry = last_entry(custodian)
    assert (entry.kind, entry.subject) == ("unseal", "dc:local/user:1/phone")


def test_a_dc_key_presented_for_disclosure_is_refused_and_logged(custodian: Custodian) -> None:
    # A valid order of a court this custodian recognises: only the envelope is not a record.
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    request = disclose_request(envelope, court.order(subject="dc:local"), custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.WRONG_PURPOSE
    entry = last_entry(custodian)
    assert (entry.kind, entry.subject, entry.requester) == ("disclose", "dc:local", court.name)


def test_an_order_of_another_jurisdictions_court_is_refused_and_logged(
    custodian: Custodian,
) -> None:
    # Even a foreign court whose key the custodian holds: its orders bind other custodians.
    foreign = CourtKey("High Court of XC", "XC")
    custodian.add_court(foreign.name, foreign.public_key)
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, foreign.order(), custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.WRONG_JURISDICTION
    assert (last_entry(custodian).kind, last_entry(custodian).requester) == (
        "disclose",
        foreign.name,
    )


def test_an_order_of_a_court_the_custodian_does_not_know_is_refused_and_logged(
    custodian: Custodian,
) -> None:
    known = CourtKey("High Court of XB", "XB")
    custodian.add_court(known.name, known.public_key)
    stranger = CourtKey("District Court of XB", "XB")
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, stranger.order(), custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.UNKNOWN_COURT
    assert (last_entry(custodian).kind, last_entry(custodian).requester) == (
        "disclose",
        stranger.name,
    )


def test_a_replay_is_still_refused_after_the_custodian_reopens(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    signed = signed_unseal(
        node, envelope, custodian=CUSTODIAN, dc=DC, issued_at_ms=int(time.time() * 1000)
    )
    custodian.unseal(signed)

    reopened = Custodian(custodian.directory)

    assert refused_and_logged(reopened, lambda: reopened.unseal(signed)) is RefusalCode.REPLAYED


# disclosure and the audit log ------------------------------------------------------------
async def test_two_countries_orders_open_a_phone_record_that_no_audit_log_holds(
    tmp_path: Path,
) -> None:
    places = {"custodian-de": "DE", "custodian-ch": "CH", "custodian-is": "IS"}
    custodians = {cid: Custodian.init(tmp_path / cid, cid, j) for cid, j in places.items()}
    now_ms = int(time.time() * 1000)
    orders = {}
    for cid in ("custodian-de", "custodian-ch"):
        court = CourtKey(f"Supreme Court of {places[cid]}", places[cid])
        custodians[cid].add_court(court.name, court.public_key)
        orders[cid] = court.order(issued_at_ms=now_ms - DAY_MS, expires_at_ms=now_ms + DAY_MS)
    envelope = identity_envelope("xa", 1, "phone", PHONE.encode(), publics(*custodians.values()))
    refs = [
        CustodianRef(cid, public(c), InProcessCustodianClient(c)) for cid, c in custodians.items()
    ]

    payload, outcomes = await disclose_record(envelope, orders=orders, custodians=refs)

    assert payload == PHONE.encode()
    # The answer comes as soon as two shares open it; the third custodian (no order of its
    # own country) is not waited for, and if it was asked it refused.
    assert {(o.custodian_id, o.ok) for o in outcomes} >= {
        ("custodian-de", True),
        ("custodian-ch", True),
    }
    assert ("custodian-is", True) not in {(o.custodian_id, o.ok) for o in outcomes}
    for cid, c in custodians.items():
        entry = last_entry(c)
        if cid == "custodian-is":
            assert (entry.kind, entry.outcome) == ("disclose", "refused")
            assert entry.reason.startswith(f"{RefusalCode.NO_ORDER}: ")
        else:
            assert (entry.subject, entry.outcome) == ("dc:xa/user:1/phone", "granted")
        log = (c.directory / "audit.log").read_bytes()
        assert verify_log(c.directory / "audit.log")
        for secret in (PHONE, PHONE.lstrip("+"), b64(envelope.to_bytes())[:64]):
            assert secret.encode() not in log


def test_a_disclosure_granted_in_process_is_signed_and_opens_for_its_requester(
    custodian: Custodian,
) -> None:
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    envelope = identity_envelope(DC, 7, "ip", b"198.51.100.7", publics(custodian), threshold=1)
    requester = RequesterKey()
    request = disclose_request(
        envelope,
        court.order(subject="user:7", fields=("ip",)),
        custodian=CUSTODIAN,
        requester=requester,
        issued_at_ms=NOW_MS,
    )

    answer = custodian.disclose(request, now=NOW)

    grant = unb64(answer.grant)
    assert public(custodian).verify(unb64(answer.signature), answer_message(request, grant))
    assert requester.open_grant(grant, request_digest(request), expected_index=1).index == 1
    granted = last_entry(custodian)
    assert (granted.kind, granted.outcome, granted.requester) == ("disclose", "granted", court.name)
