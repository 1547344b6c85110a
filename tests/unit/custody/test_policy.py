"""A custodian's policy says yes to exactly two things and refuses everything else by name.

A node enrolled for a DC may unseal that DC's key, on a fresh request it signed and never sent
before. A record of a user's phone or IP address opens only against an unexpired terrorism
order, signed by a court this custodian recognises in its own country, naming that user and
that field. Each refusal below changes one thing in an otherwise good request.
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
    EnrolledNode,
    Refusal,
    RefusalCode,
    check_disclose,
    check_unseal,
)
from samizdat.custody.protocol import CourtOrder, DiscloseRequest, SignedUnseal, b64
from tests.custody_requests import (
    DAY_MS,
    MINUTE_MS,
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


@pytest.fixture
def node(tmp_path: Path) -> NodeKey:
    return NodeKey.load_or_create(tmp_path / "node.key")


@pytest.fixture
def nodes(node: NodeKey) -> dict[str, EnrolledNode]:
    return {node.encoded(): EnrolledNode(node.encoded(), DC, NOW - 3600)}


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
    request: DiscloseRequest,
    envelope: Envelope = PHONE_ENVELOPE,
    *,
    seen: Collection[str] = NO_NONCES,
) -> str:
    return check_disclose(
        request,
        envelope,
        custodian_id=CUSTODIAN,
        jurisdiction=JURISDICTION,
        courts=COURTS,
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
    request = disclose_request(PHONE_ENVELOPE, COURT.order(), custodian=CUSTODIAN)
    assert disclose(request) == "user:1"


def test_an_order_naming_several_fields_discloses_each_of_them() -> None:
    ip = identity_envelope(DC, 1, "ip", b"198.51.100.7", PUBLICS)
    order = COURT.order(fields=("phone", "ip"))
    for envelope in (PHONE_ENVELOPE, ip):
        request = disclose_request(envelope, order, custodian=CUSTODIAN)
        assert disclose(request, envelope) == "user:1"


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
    refused = refusal(lambda: disclose(request, seen={request.nonce}))
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
    assert disclose(request) == "user:1"


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
