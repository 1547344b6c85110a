"""A custodian's policy says yes to exactly two things and refuses everything else by name.

Every request comes from a node enrolled here, fresh, signed by it and never sent before. A
node enrolled for a DC may unseal that DC's key. A record of a user's phone or IP address
opens, to a node of the record's DC, only against an unexpired terrorism order, signed by a
court this custodian recognises in its own country, naming that user and that field; an order
naming a @username or phone number opens the records of one user only. Each refusal below
changes one thing in an otherwise good request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import CustodianKeys, NodeKey, RequesterKey
from samizdat.crypto.threshold import Envelope, seal
from samizdat.custody.policy import (
    IDENTITY_PURPOSE,
    Court,
    Disclosure,
    EnrolledNode,
    Refusal,
    RefusalCode,
    check_disclose,
    check_unseal,
)
from samizdat.custody.protocol import (
    CourtOrder,
    SignedDisclose,
    SignedUnseal,
    b64,
    order_digest,
)
from tests.custody_requests import (
    DAY_MS,
    MINUTE_MS,
    NODE,
    NOW,
    NOW_MS,
    CourtKey,
    dc_key_envelope,
    disclose_request,
    identity_envelope,
    new_nonce,
    signed_by,
    signed_unseal,
    unseal_request,
)

CUSTODIAN = "custodian-xb"
JURISDICTION = "XB"
DC = "local"
PUBLICS = {cid: CustodianKeys.generate().public for cid in (CUSTODIAN, "custodian-xc", "c-xd")}
DC_ENVELOPE = dc_key_envelope(DC, PUBLICS)
PHONE_ENVELOPE = identity_envelope(DC, 1, "phone", b"+999661234567", PUBLICS)
COURT = CourtKey("High Court of XB", JURISDICTION)
COURTS = {COURT.name: Court(COURT.name, COURT.public_key)}
NO_NONCES: frozenset[str] = frozenset()
#: ``NODE`` (which signs disclosure requests by default), enrolled for ``DC``.
NODES = {NODE.encoded(): EnrolledNode(NODE.encoded(), DC, NOW - 3600)}


@pytest.fixture
def node() -> NodeKey:
    return NODE


@pytest.fixture
def nodes() -> dict[str, EnrolledNode]:
    return dict(NODES)


def unseal(
    signed: SignedUnseal,
    nodes: Mapping[str, EnrolledNode],
    envelope: Envelope = DC_ENVELOPE,
    *,
    seen: Collection[str] = NO_NONCES,
) -> EnrolledNode:
    return check_unseal(
        signed.request,
        signed.signature,
        envelope,
        custodian_id=CUSTODIAN,
        nodes=nodes,
        seen_nonces=seen,
        now_ms=NOW_MS,
    )


def disclose(
    signed: SignedDisclose,
    envelope: Envelope = PHONE_ENVELOPE,
    *,
    nodes: Mapping[str, EnrolledNode] = NODES,
    order_users: Mapping[str, int] | None = None,
    seen: Collection[str] = NO_NONCES,
) -> Disclosure:
    return check_disclose(
        signed.request,
        signed.signature,
        envelope,
        custodian_id=CUSTODIAN,
        jurisdiction=JURISDICTION,
        nodes=nodes,
        courts=COURTS,
        order_users=order_users or {},
        seen_nonces=seen,
        now_ms=NOW_MS,
    )


def refusal(check: Callable[[], object]) -> Refusal:
    with pytest.raises(Refusal) as caught:
        check()
    return caught.value


# unseal: a node asks for its share of its DC's key -----------------------------------------
def test_an_enrolled_node_may_unseal_its_own_dcs_key(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    signed = signed_unseal(node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    assert unseal(signed, nodes) == nodes[node.encoded()]


def test_a_request_addressed_to_another_custodian_is_refused(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    signed = signed_unseal(node, DC_ENVELOPE, custodian="custodian-xc", dc=DC)
    assert refusal(lambda: unseal(signed, nodes)).code is RefusalCode.WRONG_CUSTODIAN


def test_a_node_that_is_not_enrolled_is_refused(node: NodeKey, tmp_path: Path) -> None:
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    signed = signed_unseal(stranger, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    enrolled = {node.encoded(): EnrolledNode(node.encoded(), DC, NOW)}
    assert refusal(lambda: unseal(signed, enrolled)).code is RefusalCode.NODE_NOT_ENROLLED


@pytest.mark.parametrize(
    "change",
    [
        {"envelope": b64(dc_key_envelope(DC, PUBLICS).to_bytes())},
        {"requester_key": b64(RequesterKey().public)},
        {"nonce": new_nonce()},
        {"issued_at_ms": NOW_MS + 1},
        {"dc": "elsewhere"},
    ],
    ids=["envelope", "requester_key", "nonce", "issued_at_ms", "dc"],
)
def test_a_request_changed_after_it_was_signed_is_refused(
    node: NodeKey, nodes: dict[str, EnrolledNode], change: dict[str, object]
) -> None:
    signed = signed_unseal(node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    tampered = SignedUnseal(
        request=signed.request.model_copy(update=change), signature=signed.signature
    )
    assert refusal(lambda: unseal(tampered, nodes)).code is RefusalCode.BAD_SIGNATURE


def test_a_request_signed_by_another_nodes_key_is_refused(
    node: NodeKey, nodes: dict[str, EnrolledNode], tmp_path: Path
) -> None:
    impostor = NodeKey.load_or_create(tmp_path / "impostor.key")
    request = unseal_request(node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    forged = signed_by(impostor, request)
    assert refusal(lambda: unseal(forged, nodes)).code is RefusalCode.BAD_SIGNATURE


def test_a_signature_one_enrolled_node_made_does_not_pass_as_anothers(
    node: NodeKey, nodes: dict[str, EnrolledNode], tmp_path: Path
) -> None:
    other = NodeKey.load_or_create(tmp_path / "other.key")
    both = {**nodes, other.encoded(): EnrolledNode(other.encoded(), DC, NOW)}
    signed = signed_unseal(other, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    relabelled = SignedUnseal(
        request=signed.request.model_copy(update={"node_key": node.encoded()}),
        signature=signed.signature,
    )
    assert refusal(lambda: unseal(relabelled, both)).code is RefusalCode.BAD_SIGNATURE


@pytest.mark.parametrize("signature", ["", "A", b64(b"\x00" * 64)], ids=["empty", "not-b64", "0"])
def test_a_signature_that_is_not_an_ed25519_signature_is_refused(
    node: NodeKey, nodes: dict[str, EnrolledNode], signature: str
) -> None:
    request = unseal_request(node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    signed = SignedUnseal(request=request, signature=signature)
    assert refusal(lambda: unseal(signed, nodes)).code is RefusalCode.BAD_SIGNATURE


@pytest.mark.parametrize("offset_ms", [-3 * MINUTE_MS, 3 * MINUTE_MS], ids=["before", "after"])
def test_a_request_issued_three_minutes_from_now_is_stale(
    node: NodeKey, nodes: dict[str, EnrolledNode], offset_ms: int
) -> None:
    signed = signed_unseal(
        node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC, issued_at_ms=NOW_MS + offset_ms
    )
    assert refusal(lambda: unseal(signed, nodes)).code is RefusalCode.STALE


@pytest.mark.parametrize("offset_ms", [-2 * MINUTE_MS, 2 * MINUTE_MS], ids=["before", "after"])
def test_a_request_exactly_two_minutes_from_now_is_still_fresh(
    node: NodeKey, nodes: dict[str, EnrolledNode], offset_ms: int
) -> None:
    signed = signed_unseal(
        node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC, issued_at_ms=NOW_MS + offset_ms
    )
    assert unseal(signed, nodes).dc == DC


def test_a_request_whose_nonce_was_seen_is_a_replay(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    signed = signed_unseal(node, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    seen = {new_nonce(), signed.request.nonce}
    assert refusal(lambda: unseal(signed, nodes, seen=seen)).code is RefusalCode.REPLAYED


def test_a_node_enrolled_for_one_dc_may_not_ask_for_another(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    other_dc = dc_key_envelope("elsewhere", PUBLICS)
    signed = signed_unseal(node, other_dc, custodian=CUSTODIAN, dc="elsewhere")
    refused = refusal(lambda: unseal(signed, nodes, other_dc))
    assert refused.code is RefusalCode.WRONG_PURPOSE
    assert DC in refused.message


def test_a_node_may_not_unseal_another_dcs_key_under_its_own_dc_name(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    other_dc = dc_key_envelope("elsewhere", PUBLICS)
    signed = signed_unseal(node, other_dc, custodian=CUSTODIAN, dc=DC)
    assert refusal(lambda: unseal(signed, nodes, other_dc)).code is RefusalCode.WRONG_PURPOSE


def test_a_node_may_not_unseal_an_identity_record(
    node: NodeKey, nodes: dict[str, EnrolledNode]
) -> None:
    signed = signed_unseal(node, PHONE_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    assert refusal(lambda: unseal(signed, nodes, PHONE_ENVELOPE)).code is RefusalCode.WRONG_PURPOSE


# disclose: someone with a court order asks for a share of one user's record ----------------
def test_a_valid_order_discloses_the_record_it_names_and_returns_the_subject() -> None:
    order = COURT.order()
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN)
    assert disclose(request) == Disclosure(
        node=NODES[NODE.encoded()], user_id=1, order=order_digest(order), binds=False
    )


def test_an_order_naming_several_fields_discloses_each_of_them() -> None:
    ip = identity_envelope(DC, 1, "ip", b"198.51.100.7", PUBLICS)
    order = COURT.order(fields=("phone", "ip"))
    for envelope in (PHONE_ENVELOPE, ip):
        request = disclose_request(envelope, order, custodian=CUSTODIAN)
        assert disclose(request, envelope).user_id == 1


def test_a_disclosure_addressed_to_another_custodian_is_refused() -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian="custodian-xc")
    assert refusal(lambda: disclose(request)).code is RefusalCode.WRONG_CUSTODIAN


@pytest.mark.parametrize("offset_ms", [-3 * MINUTE_MS, 3 * MINUTE_MS], ids=["before", "after"])
def test_a_disclosure_issued_three_minutes_from_now_is_stale(offset_ms: int) -> None:
    request = disclose_request(
        PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN, issued_at_ms=NOW_MS + offset_ms
    )
    assert refusal(lambda: disclose(request)).code is RefusalCode.STALE


def test_a_disclosure_whose_nonce_was_seen_is_a_replay() -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN)
    refused = refusal(lambda: disclose(request, seen={request.request.nonce}))
    assert refused.code is RefusalCode.REPLAYED


def test_a_dc_key_is_never_disclosed_even_against_a_valid_order() -> None:
    request = disclose_request(DC_ENVELOPE, COURT.order(), custodian=CUSTODIAN)
    refused = refusal(lambda: disclose(request, DC_ENVELOPE))
    assert refused.code is RefusalCode.WRONG_PURPOSE
    assert "never keys" in refused.message


@pytest.mark.parametrize(
    "owner", ["dc:local/user:1/email", "dc:local/user:one/phone", "dc:local", "user:1/phone"]
)
def test_an_identity_envelope_that_is_not_a_phone_or_ip_record_is_not_disclosed(
    owner: str,
) -> None:
    envelope = seal(
        b"someone@example.org",
        purpose=IDENTITY_PURPOSE,
        owner=owner,
        recipients=[public.recipient(cid) for cid, public in PUBLICS.items()],
        threshold=2,
    )
    request = disclose_request(envelope, COURT.order(), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request, envelope)).code is RefusalCode.WRONG_PURPOSE


def test_a_disclosure_without_a_court_order_is_refused() -> None:
    request = disclose_request(PHONE_ENVELOPE, None, custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.NO_ORDER


def test_an_order_of_another_countrys_court_is_refused() -> None:
    foreign = CourtKey("Supreme Court of XC", "XC")
    request = disclose_request(PHONE_ENVELOPE, foreign.order(), custodian=CUSTODIAN)
    refused = refusal(lambda: disclose(request))
    assert refused.code is RefusalCode.WRONG_JURISDICTION
    assert JURISDICTION in refused.message


def test_a_recognised_courts_order_claiming_another_jurisdiction_is_refused() -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(jurisdiction="XC"), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.WRONG_JURISDICTION


def test_an_order_of_a_court_this_custodian_does_not_recognise_is_refused() -> None:
    unknown = CourtKey("District Court of XB", JURISDICTION)
    request = disclose_request(PHONE_ENVELOPE, unknown.order(), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.UNKNOWN_COURT


def _signed_by_an_impostor() -> CourtOrder:
    return CourtKey(COURT.name, JURISDICTION).order()


def _redirected_to_another_subject() -> CourtOrder:
    genuine = COURT.order(subject="user:2")
    return CourtOrder(
        order=genuine.order.model_copy(update={"subject": "user:1"}), signature=genuine.signature
    )


def _extended_after_signing() -> CourtOrder:
    genuine = COURT.order(expires_at_ms=NOW_MS - DAY_MS // 2)
    later = genuine.order.model_copy(update={"expires_at_ms": NOW_MS + DAY_MS})
    return CourtOrder(order=later, signature=genuine.signature)


def _signature_not_base64() -> CourtOrder:
    return CourtOrder(order=COURT.body(), signature="A")


@pytest.mark.parametrize(
    "forge",
    [
        _signed_by_an_impostor,
        _redirected_to_another_subject,
        _extended_after_signing,
        _signature_not_base64,
    ],
)
def test_a_forged_order_is_refused(forge: Callable[[], CourtOrder]) -> None:
    request = disclose_request(PHONE_ENVELOPE, forge(), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("issued_at_ms", "expires_at_ms"),
    [
        (NOW_MS - 2 * DAY_MS, NOW_MS - DAY_MS),
        (NOW_MS - DAY_MS, NOW_MS),
        (NOW_MS + MINUTE_MS, NOW_MS + DAY_MS),
    ],
    ids=["expired", "expiring-this-millisecond", "not-yet-valid"],
)
def test_an_order_outside_its_validity_is_refused(issued_at_ms: int, expires_at_ms: int) -> None:
    order = COURT.order(issued_at_ms=issued_at_ms, expires_at_ms=expires_at_ms)
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.ORDER_EXPIRED


@pytest.mark.parametrize("category", ["fraud", "tax", "Terrorism", "terrorism "])
def test_an_order_of_any_category_but_terrorism_is_refused(category: str) -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(category=category), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.CATEGORY_NOT_PERMITTED


@pytest.mark.parametrize("subject", ["user:2", "user:10", "user:01", "1"])
def test_an_order_naming_another_user_is_refused(subject: str) -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(subject=subject), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.SUBJECT_MISMATCH


@pytest.mark.parametrize("subject", ["@alice_w", "+999661234567"])
def test_an_order_naming_a_username_or_number_opens_the_user_the_node_resolved_it_to(
    subject: str,
) -> None:
    order = COURT.order(subject=subject)
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN, resolved_user=1)
    granted = disclose(request)
    assert (granted.user_id, granted.order, granted.binds) == (1, order_digest(order), True)


@pytest.mark.parametrize("resolved_user", [None, 2])
@pytest.mark.parametrize("subject", ["@alice_w", "+999661234567"])
def test_an_order_by_username_or_number_for_another_or_no_resolved_user_is_refused(
    subject: str, resolved_user: int | None
) -> None:
    order = COURT.order(subject=subject)
    request = disclose_request(
        PHONE_ENVELOPE, order, custodian=CUSTODIAN, resolved_user=resolved_user
    )
    assert refusal(lambda: disclose(request)).code is RefusalCode.SUBJECT_MISMATCH


def test_a_resolved_user_never_overrides_an_order_naming_a_user_id() -> None:
    order = COURT.order(subject="user:2")
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN, resolved_user=1)
    assert refusal(lambda: disclose(request)).code is RefusalCode.SUBJECT_MISMATCH


@pytest.mark.parametrize("fields", [("ip",), (), ("Phone",), ("phone-number",)])
def test_an_order_that_does_not_name_the_field_is_refused(fields: tuple[str, ...]) -> None:
    request = disclose_request(PHONE_ENVELOPE, COURT.order(fields=fields), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request)).code is RefusalCode.FIELD_NOT_PERMITTED


# disclose: only an enrolled node of the record's DC asks, and signs what it asks ------------
def test_a_disclosure_from_a_node_that_is_not_enrolled_is_refused(tmp_path: Path) -> None:
    stranger = NodeKey.load_or_create(tmp_path / "stranger.key")
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN, node=stranger)
    assert refusal(lambda: disclose(request)).code is RefusalCode.NODE_NOT_ENROLLED


@pytest.mark.parametrize(
    "signature", ["", "A", b64(b"\x00" * 64)], ids=["unsigned", "not-b64", "0"]
)
def test_a_disclosure_without_the_nodes_signature_is_refused(signature: str) -> None:
    signed = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN)
    unsigned = SignedDisclose(request=signed.request, signature=signature)
    assert refusal(lambda: disclose(unsigned)).code is RefusalCode.BAD_SIGNATURE


def test_a_disclosure_signed_by_another_key_than_the_enrolled_nodes_is_refused(
    tmp_path: Path,
) -> None:
    impostor = NodeKey.load_or_create(tmp_path / "impostor.key")
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN).request
    assert refusal(lambda: disclose(signed_by(impostor, request))).code is RefusalCode.BAD_SIGNATURE


@pytest.mark.parametrize(
    "change",
    [
        {"envelope": b64(identity_envelope(DC, 2, "phone", b"+999660000000", PUBLICS).to_bytes())},
        {"requester_key": b64(RequesterKey().public)},
        {"nonce": new_nonce()},
        {"issued_at_ms": NOW_MS + 1},
        {"resolved_user": 2},
        {"order": COURT.order(subject="@someone_else")},
    ],
    ids=["envelope", "requester_key", "nonce", "issued_at_ms", "resolved_user", "order"],
)
def test_a_disclosure_changed_after_the_node_signed_it_is_refused(
    change: dict[str, object],
) -> None:
    signed = disclose_request(
        PHONE_ENVELOPE, COURT.order(subject="@alice_w"), custodian=CUSTODIAN, resolved_user=1
    )
    tampered = SignedDisclose(
        request=signed.request.model_copy(update=change), signature=signed.signature
    )
    assert refusal(lambda: disclose(tampered)).code is RefusalCode.BAD_SIGNATURE


def test_a_node_enrolled_for_another_dc_may_not_ask_for_this_dcs_records(tmp_path: Path) -> None:
    elsewhere = NodeKey.load_or_create(tmp_path / "elsewhere.key")
    both = {**NODES, elsewhere.encoded(): EnrolledNode(elsewhere.encoded(), "elsewhere", NOW)}
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN, node=elsewhere)
    refused = refusal(lambda: disclose(request, nodes=both))
    assert refused.code is RefusalCode.WRONG_PURPOSE
    assert "elsewhere" in refused.message


def test_a_node_may_not_ask_for_another_dcs_records() -> None:
    other_dc = identity_envelope("elsewhere", 1, "phone", b"+999661234567", PUBLICS)
    request = disclose_request(other_dc, COURT.order(), custodian=CUSTODIAN)
    assert refusal(lambda: disclose(request, other_dc)).code is RefusalCode.WRONG_PURPOSE


# disclose: an order by @username or phone number opens one user's records -------------------
@pytest.mark.parametrize("subject", ["@alice_w", "+999661234567"])
def test_an_order_already_granted_for_one_user_is_refused_for_another(subject: str) -> None:
    order = COURT.order(subject=subject, fields=("phone", "ip"))
    bound = {order_digest(order): 1}
    bobs = identity_envelope(DC, 2, "phone", b"+999660000000", PUBLICS)
    request = disclose_request(bobs, order, custodian=CUSTODIAN, resolved_user=2)
    refused = refusal(lambda: disclose(request, bobs, order_users=bound))
    assert refused.code is RefusalCode.SUBJECT_MISMATCH
    assert "already used for another user" in refused.message
    alices_ip = identity_envelope(DC, 1, "ip", b"198.51.100.7", PUBLICS)
    again = disclose_request(alices_ip, order, custodian=CUSTODIAN, resolved_user=1)
    assert disclose(again, alices_ip, order_users=bound).user_id == 1


def test_a_binding_of_another_order_does_not_touch_this_one() -> None:
    order = COURT.order(subject="@alice_w")
    other = COURT.order(subject="@bob")
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN, resolved_user=1)
    assert disclose(request, order_users={order_digest(other): 2}).binds is True


def test_an_order_naming_a_user_id_never_binds() -> None:
    order = COURT.order(subject="user:1")
    request = disclose_request(PHONE_ENVELOPE, order, custodian=CUSTODIAN, resolved_user=1)
    assert disclose(request, order_users={order_digest(order): 2}).binds is False


def test_an_unseal_requests_signature_never_passes_for_a_disclosure() -> None:
    """The signed bytes include the request's ``kind``: a node's signature on an unseal
    request, with the same nonce and time, opens no identity record."""
    unseal_signed = signed_unseal(NODE, DC_ENVELOPE, custodian=CUSTODIAN, dc=DC)
    asked = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN).request
    same_moment = asked.model_copy(
        update={
            "nonce": unseal_signed.request.nonce,
            "issued_at_ms": unseal_signed.request.issued_at_ms,
            "requester_key": unseal_signed.request.requester_key,
        }
    )
    borrowed = SignedDisclose(request=same_moment, signature=unseal_signed.signature)
    assert refusal(lambda: disclose(borrowed)).code is RefusalCode.BAD_SIGNATURE
