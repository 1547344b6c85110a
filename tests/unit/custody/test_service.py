"""A custodian keeps its state in one directory and answers every request with a signed grant
or a refusal, each written to its audit log before the answer leaves.

The log shows every request exactly once, remembers nonces across a restart so a replay stays
refused, names the order behind every disclosure, and never holds what it helped to disclose.
An order by @username or phone number, once granted for a user, opens no other user's records,
across a restart too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from samizdat.crypto.custody_keys import (
    CustodianPublic,
    KeyFormatError,
    NodeKey,
    RequesterKey,
)
from samizdat.crypto.threshold import Envelope, EnvelopeError, seal
from samizdat.custody.audit import AuditEntry, verify_log
from samizdat.custody.client import InProcessCustodianClient
from samizdat.custody.node import CustodianRef, disclose_record, unseal_dc_key
from samizdat.custody.policy import IDENTITY_PURPOSE, Refusal, RefusalCode
from samizdat.custody.protocol import (
    SignedDisclose,
    answer_message,
    b64,
    order_digest,
    request_digest,
    unb64,
)
from samizdat.custody.service import Custodian, CustodianStateError
from tests.custody_requests import (
    CUSTODIAN,
    DAY_MS,
    DC,
    DC_KEY,
    NODE,
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


def recognised_court(custodian: Custodian) -> CourtKey:
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    return court


def bound_orders(custodian: Custodian) -> object:
    return orjson.loads((custodian.directory / "orders.json").read_bytes())


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


def test_a_disclosure_without_an_order_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
) -> None:
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, None, custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.NO_ORDER
    assert last_entry(custodian).requester == "(no order)"
    assert last_entry(custodian).subject == "dc:local/user:1/phone"


def test_a_disclosure_with_a_malformed_envelope_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
) -> None:
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    order = court.order()
    request = disclose_request(envelope, order, custodian=CUSTODIAN).request
    broken = signed_by(node, request.model_copy(update={"envelope": b64(b"not an envelope")}))
    code = refused_and_logged(custodian, lambda: custodian.disclose(broken, now=NOW))
    assert code is RefusalCode.MALFORMED
    assert last_entry(custodian).requester == court.name
    assert last_entry(custodian).subject == f"order:{order_digest(order)[:32]}"


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


def test_a_dc_key_presented_for_disclosure_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
) -> None:
    # A valid order of a court this custodian recognises, presented by an enrolled node of
    # this DC: only the envelope is not a record.
    court = CourtKey("High Court of XB", "XB")
    custodian.add_court(court.name, court.public_key)
    envelope = dc_key_envelope(DC, publics(custodian), threshold=1)
    order = court.order(subject="dc:local")
    request = disclose_request(envelope, order, custodian=CUSTODIAN)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.WRONG_PURPOSE
    entry = last_entry(custodian)
    assert (entry.kind, entry.subject, entry.requester) == (
        "disclose",
        f"dc:local order:{order_digest(order)[:32]}",
        court.name,
    )


def test_an_order_of_another_jurisdictions_court_is_refused_and_logged(
    custodian: Custodian, node: NodeKey
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
    custodian: Custodian, node: NodeKey
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
    for c in custodians.values():
        c.enroll_node(NODE.encoded(), "xa")
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

    payload, outcomes = await disclose_record(
        envelope, orders=orders, custodians=refs, node_key=NODE
    )

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
            named = f"dc:xa/user:1/phone order:{order_digest(orders[cid])[:32]}"
            assert (entry.subject, entry.outcome) == (named, "granted")
        log = (c.directory / "audit.log").read_bytes()
        assert verify_log(c.directory / "audit.log")
        for secret in (PHONE, PHONE.lstrip("+"), b64(envelope.to_bytes())[:64]):
            assert secret.encode() not in log


def test_a_disclosure_granted_in_process_is_signed_and_opens_for_its_requester(
    custodian: Custodian, node: NodeKey
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
    message = answer_message(request.request, grant)
    assert public(custodian).verify(unb64(answer.signature), message)
    digest = request_digest(request.request)
    assert requester.open_grant(grant, digest, expected_index=1).index == 1
    granted = last_entry(custodian)
    assert (granted.kind, granted.outcome, granted.requester) == ("disclose", "granted", court.name)


# disclosure: only an enrolled node of the record's DC asks, and signs what it asks -------
@pytest.mark.parametrize("signature", ["", b64(b"\x01" * 64)], ids=["unsigned", "forged"])
def test_a_disclosure_the_node_did_not_sign_is_refused_and_logged(
    custodian: Custodian, node: NodeKey, signature: str
) -> None:
    court = recognised_court(custodian)
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    signed = disclose_request(envelope, court.order(), custodian=CUSTODIAN)
    unsigned = SignedDisclose(request=signed.request, signature=signature)
    code = refused_and_logged(custodian, lambda: custodian.disclose(unsigned, now=NOW))
    assert code is RefusalCode.BAD_SIGNATURE
    assert (last_entry(custodian).kind, last_entry(custodian).requester) == ("disclose", court.name)


def test_valid_orders_and_a_copy_of_the_database_open_nothing_without_an_enrolled_node(
    custodian: Custodian, node: NodeKey, tmp_path: Path
) -> None:
    court = recognised_court(custodian)
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    bobs = identity_envelope(DC, 2, "phone", b"+999660000002", publics(custodian), threshold=1)
    order = court.order(subject="@alice_w")
    request = disclose_request(bobs, order, custodian=CUSTODIAN, node=stranger, resolved_user=2)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.NODE_NOT_ENROLLED
    assert not any(e.outcome == "granted" for e in custodian.audit.entries())


def test_a_node_enrolled_for_another_dc_is_refused_this_dcs_records_and_logged(
    custodian: Custodian, node: NodeKey, tmp_path: Path
) -> None:
    court = recognised_court(custodian)
    other = NodeKey.load_or_create(tmp_path / "other.key")
    custodian.enroll_node(other.encoded(), "elsewhere")
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    request = disclose_request(envelope, court.order(), custodian=CUSTODIAN, node=other)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.WRONG_PURPOSE
    assert "elsewhere" in last_entry(custodian).reason


# disclosure: an order by @username or phone number opens one user's records --------------
@pytest.mark.parametrize("subject", ["@alice_w", "+999661234567"])
def test_an_order_granted_for_one_user_is_refused_for_another_also_after_a_reopen(
    custodian: Custodian, node: NodeKey, subject: str
) -> None:
    court = recognised_court(custodian)
    order = court.order(subject=subject, fields=("phone", "ip"))
    keys = publics(custodian)
    alice_phone = identity_envelope(DC, 1, "phone", PHONE.encode(), keys, threshold=1)
    alice_ip = identity_envelope(DC, 1, "ip", b"198.51.100.7", keys, threshold=1)
    bob_phone = identity_envelope(DC, 2, "phone", b"+999660000002", keys, threshold=1)

    def ask(envelope: Envelope, user: int) -> SignedDisclose:
        return disclose_request(envelope, order, custodian=CUSTODIAN, resolved_user=user)

    custodian.disclose(ask(alice_phone, 1), now=NOW)
    assert bound_orders(custodian) == {order_digest(order): 1}

    code = refused_and_logged(custodian, lambda: custodian.disclose(ask(bob_phone, 2), now=NOW))
    assert code is RefusalCode.SUBJECT_MISMATCH
    assert "already used for another user" in last_entry(custodian).reason

    reopened = Custodian(custodian.directory)
    code = refused_and_logged(reopened, lambda: reopened.disclose(ask(bob_phone, 2), now=NOW))
    assert code is RefusalCode.SUBJECT_MISMATCH
    reopened.disclose(ask(alice_ip, 1), now=NOW)
    reopened.disclose(ask(alice_phone, 1), now=NOW)
    assert bound_orders(reopened) == {order_digest(order): 1}
    assert [e.outcome for e in reopened.audit.entries() if e.kind == "disclose"] == [
        "granted",
        "refused",
        "refused",
        "granted",
        "granted",
    ]


def test_a_binding_another_process_made_is_taken_in_before_the_next_request(
    custodian: Custodian, node: NodeKey
) -> None:
    court = recognised_court(custodian)
    order = court.order(subject="@alice_w")
    keys = publics(custodian)
    elsewhere = Custodian(custodian.directory)  # e.g. a second process on the same directory
    alice = identity_envelope(DC, 1, "phone", PHONE.encode(), keys, threshold=1)
    elsewhere.disclose(
        disclose_request(alice, order, custodian=CUSTODIAN, resolved_user=1), now=NOW
    )
    bob = identity_envelope(DC, 2, "phone", b"+999660000002", keys, threshold=1)
    request = disclose_request(bob, order, custodian=CUSTODIAN, resolved_user=2)
    with pytest.raises(Refusal) as caught:
        custodian.disclose(request, now=NOW)
    assert caught.value.code is RefusalCode.SUBJECT_MISMATCH


def test_an_order_naming_a_user_id_is_never_bound(custodian: Custodian, node: NodeKey) -> None:
    court = recognised_court(custodian)
    order = court.order(subject="user:1", fields=("phone", "ip"))
    keys = publics(custodian)
    for field_name, payload in (("phone", PHONE.encode()), ("ip", b"198.51.100.7")):
        envelope = identity_envelope(DC, 1, field_name, payload, keys, threshold=1)
        custodian.disclose(disclose_request(envelope, order, custodian=CUSTODIAN), now=NOW)
    assert last_entry(custodian).subject == f"dc:local/user:1/ip order:{order_digest(order)[:32]}"
    bob = identity_envelope(DC, 2, "phone", b"+999660000002", keys, threshold=1)
    request = disclose_request(bob, order, custodian=CUSTODIAN, resolved_user=2)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.SUBJECT_MISMATCH
    assert "names another subject" in last_entry(custodian).reason
    assert bound_orders(custodian) == {}


def test_a_grant_whose_binding_cannot_be_written_is_not_given(
    custodian: Custodian, node: NodeKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    court = recognised_court(custodian)
    envelope = identity_envelope(DC, 1, "phone", PHONE.encode(), publics(custodian), threshold=1)
    order = court.order(subject="@alice_w")
    request = disclose_request(envelope, order, custodian=CUSTODIAN, resolved_user=1)

    def disk_full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr("samizdat.custody.service.write_private", disk_full)
        with pytest.raises(OSError, match="No space"):
            custodian.disclose(request, now=NOW)
    assert not any(e.kind == "disclose" for e in custodian.audit.entries())
    assert bound_orders(custodian) == {}
    # Nothing was answered, so the node may ask again once the disk is back.
    custodian.disclose(request, now=NOW)
    assert bound_orders(custodian) == {order_digest(order): 1}


def test_a_directory_from_before_order_binding_opens_with_no_order_bound(
    custodian: Custodian,
) -> None:
    (custodian.directory / "orders.json").unlink()
    assert Custodian(custodian.directory).order_users == {}
    assert bound_orders(custodian) == {}


def test_an_orders_file_that_is_not_a_map_of_user_ids_is_refused(custodian: Custodian) -> None:
    (custodian.directory / "orders.json").write_bytes(b'{"ab": "user:1"}')
    with pytest.raises(CustodianStateError, match=r"orders\.json"):
        Custodian(custodian.directory)


# disclosure: the audit log names the order behind every record opened -------------------
@pytest.mark.parametrize(("subject", "via"), [("@alice_w", "username"), (PHONE, "phone")])
def test_a_disclosures_audit_entry_names_the_order_and_how_the_user_was_found_but_not_who(
    custodian: Custodian, node: NodeKey, subject: str, via: str
) -> None:
    court = recognised_court(custodian)
    order = court.order(subject=subject)
    tag = f"order:{order_digest(order)[:32]} via:{via}"
    keys = publics(custodian)
    alice = identity_envelope(DC, 1, "phone", PHONE.encode(), keys, threshold=1)
    bob = identity_envelope(DC, 2, "phone", b"+999660000002", keys, threshold=1)

    custodian.disclose(
        disclose_request(alice, order, custodian=CUSTODIAN, resolved_user=1), now=NOW
    )
    granted = last_entry(custodian)
    request = disclose_request(bob, order, custodian=CUSTODIAN, resolved_user=2)
    refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    refused = last_entry(custodian)

    assert (granted.outcome, granted.subject) == ("granted", f"dc:local/user:1/phone {tag}")
    assert (refused.outcome, refused.subject) == ("refused", f"dc:local/user:2/phone {tag}")
    log = (custodian.directory / "audit.log").read_bytes()
    for secret in ("alice_w", PHONE, PHONE.lstrip("+"), "999660000002", order_digest(order)):
        assert secret.encode() not in log


def test_the_order_tag_survives_an_owner_too_long_for_an_audit_entry(
    custodian: Custodian, node: NodeKey
) -> None:
    court = recognised_court(custodian)
    order = court.order(subject="@alice_w")
    envelope = seal(
        PHONE.encode(),
        purpose=IDENTITY_PURPOSE,
        owner="dc:local/user:1/" + "x" * 400,
        recipients=[public(custodian).recipient(CUSTODIAN)],
        threshold=1,
    )
    request = disclose_request(envelope, order, custodian=CUSTODIAN, resolved_user=1)
    code = refused_and_logged(custodian, lambda: custodian.disclose(request, now=NOW))
    assert code is RefusalCode.WRONG_PURPOSE
    subject = last_entry(custodian).subject
    assert len(subject) <= 200
    assert subject.endswith(f"order:{order_digest(order)[:32]} via:username")
