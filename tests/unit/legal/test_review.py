"""The review of a submission of court orders: each refusal below changes one thing in an
otherwise good case, and the case is refused with exactly that reason, in a sentence.

A good case: two orders, from courts of two recognised jurisdictions, each signed by its own
court, valid now, of the terrorism category, naming one subject and asking for the phone
number and/or IP addresses; the policy requires two jurisdictions.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import samizdat.legal
from samizdat.crypto.custody_keys import b64, canonical
from samizdat.crypto.signing_keys import SigningKey
from samizdat.custody.protocol import CourtOrder, CourtOrderBody
from samizdat.legal.orders import order_digest, parse_subject
from samizdat.legal.policy import DisclosurePolicy
from samizdat.legal.registry import CourtRegistry
from samizdat.legal.review import (
    CaseReview,
    RefusalReason,
    check_order,
    reason_text,
    review_submission,
)

NOW_MS = 1_800_000_000_000
DAY_MS = 86_400_000
CASE = "JOINT-2026-0042"
RECOGNISED = frozenset({"XA", "XB", "XC"})
POLICY = DisclosurePolicy()


@dataclass
class Court:
    jurisdiction: str
    name: str
    key: SigningKey = field(default_factory=lambda: SigningKey(Ed25519PrivateKey.generate()))

    def body(self, **changes: Any) -> CourtOrderBody:
        values: dict[str, Any] = {
            "case": CASE,
            "court": self.name,
            "jurisdiction": self.jurisdiction,
            "subject": "user:42",
            "category": "terrorism",
            "fields": ("phone", "ip"),
            "issued_at_ms": NOW_MS - DAY_MS,
            "expires_at_ms": NOW_MS + 30 * DAY_MS,
        }
        values.update(changes)
        return CourtOrderBody(**values)

    def order(self, **changes: Any) -> CourtOrder:
        body = self.body(**changes)
        return CourtOrder(order=body, signature=b64(self.key.sign(canonical(body))))


XA = Court("XA", "High Court of XA")
XA_2 = Court("XA", "Criminal Court of XA")
XB = Court("XB", "Supreme Court of XB")
XC = Court("XC", "Court of Appeal of XC")
XD = Court("XD", "Tribunal of XD")  # registered, but XD is not a recognised jurisdiction
REGISTRY = CourtRegistry()
for _court in (XA, XA_2, XB, XC, XD):
    REGISTRY.add(_court.jurisdiction, _court.name, _court.key.public_text())


def review(*orders: CourtOrder, required: int = 2, policy: DisclosurePolicy = POLICY) -> CaseReview:
    (case,) = review_submission(
        orders,
        registry=REGISTRY,
        policy=policy,
        recognised=RECOGNISED,
        required=required,
        now_ms=NOW_MS,
    )
    return case


def check(order: CourtOrder, policy: DisclosurePolicy = POLICY) -> RefusalReason | None:
    return check_order(
        order, registry=REGISTRY, policy=policy, recognised=RECOGNISED, now_ms=NOW_MS
    )


def assert_refused(case: CaseReview, reason: RefusalReason) -> None:
    assert case.refusal is reason
    assert case.refusal_text == reason_text(reason)


@pytest.mark.parametrize("subject", ["user:0042", "42"])
def test_a_user_id_not_written_as_custodians_compare_it_is_malformed(subject: str) -> None:
    """Custodians match ``user:<n>`` exactly; another spelling would only fail there."""
    case = review(XA.order(), XB.order(subject=subject))
    assert case.refusal is RefusalReason.MALFORMED


# the granted path -------------------------------------------------------------------------
def test_two_valid_orders_from_two_jurisdictions_may_go_on_to_the_custodians() -> None:
    first = XA.order(fields=("phone", "ip"))
    second = XB.order(fields=("phone",))
    case = review(first, second)
    assert case.refusal is None
    assert case.refusal_text is None
    assert case.case == CASE
    assert case.valid == (first, second)
    assert case.jurisdictions == ("XA", "XB")
    assert case.subject == parse_subject("user:42")
    assert case.fields == ("phone",)  # what every order asks for
    assert case.category == "terrorism"
    assert [(v.digest, v.jurisdiction, v.court, v.reason) for v in case.verdicts] == [
        (order_digest(first), "XA", XA.name, None),
        (order_digest(second), "XB", XB.name, None),
    ]


def test_one_subject_written_two_ways_is_one_subject() -> None:
    case = review(XA.order(subject="@Suspect_One"), XB.order(subject="@suspect_one"))
    assert case.refusal is None
    assert case.subject == parse_subject("@suspect_one")


def test_the_policy_may_require_more_jurisdictions() -> None:
    orders = (XA.order(), XB.order(), XC.order())
    assert review(*orders, required=3).refusal is None
    assert_refused(review(*orders[:2], required=3), RefusalReason.TOO_FEW_JURISDICTIONS)


def test_each_case_of_a_submission_is_decided_on_its_own() -> None:
    other = "XA-2026-7"
    cases = review_submission(
        [XA.order(), XA.order(case=other), XB.order()],
        registry=REGISTRY,
        policy=POLICY,
        recognised=RECOGNISED,
        required=2,
        now_ms=NOW_MS,
    )
    assert [(c.case, c.refusal) for c in cases] == [
        (CASE, None),
        (other, RefusalReason.TOO_FEW_JURISDICTIONS),
    ]


# each refusal -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        {"subject": "somebody"},
        {"fields": ()},
        {"expires_at_ms": NOW_MS - DAY_MS},  # expires when it is issued
    ],
)
def test_a_malformed_order_is_refused(changes: dict[str, Any]) -> None:
    bad = XA.order(**changes)
    assert check(bad) is RefusalReason.MALFORMED
    assert_refused(review(bad, XB.order()), RefusalReason.MALFORMED)


def test_an_order_from_an_unrecognised_jurisdiction_is_refused() -> None:
    foreign = XD.order()
    assert check(foreign) is RefusalReason.UNRECOGNISED_JURISDICTION
    assert_refused(review(XA.order(), foreign), RefusalReason.UNRECOGNISED_JURISDICTION)


def test_an_order_from_an_unregistered_court_is_refused() -> None:
    ghost = Court("XB", "Ghost Court of XB").order()
    assert check(ghost) is RefusalReason.UNKNOWN_COURT
    # A registered court's name, but another jurisdiction's: still not a known court.
    misplaced = XA.order(jurisdiction="XB")
    assert check(misplaced) is RefusalReason.UNKNOWN_COURT
    assert_refused(review(XA.order(), ghost), RefusalReason.UNKNOWN_COURT)


def test_a_forged_signature_is_refused() -> None:
    good = XB.order()
    forged = good.model_copy(update={"signature": b64(b"\x00" * 64)})
    tampered = CourtOrder(
        order=XB.body(fields=("phone", "ip"), subject="user:43"), signature=good.signature
    )
    garbage = good.model_copy(update={"signature": "not!base64"})
    for order in (forged, tampered, garbage):
        assert check(order) is RefusalReason.BAD_SIGNATURE
    assert_refused(review(XA.order(), forged), RefusalReason.BAD_SIGNATURE)


def test_a_valid_signature_by_another_courts_key_is_refused() -> None:
    body = XB.body()
    signed_by_xa = CourtOrder(order=body, signature=b64(XA.key.sign(canonical(body))))
    assert check(signed_by_xa) is RefusalReason.BAD_SIGNATURE
    assert_refused(review(XA.order(), signed_by_xa), RefusalReason.BAD_SIGNATURE)


def test_an_expired_order_is_refused() -> None:
    expired = XB.order(issued_at_ms=NOW_MS - 31 * DAY_MS, expires_at_ms=NOW_MS - DAY_MS)
    at_expiry = XB.order(expires_at_ms=NOW_MS)
    assert check(expired) is RefusalReason.EXPIRED
    assert check(at_expiry) is RefusalReason.EXPIRED
    assert check(XB.order(expires_at_ms=NOW_MS + 1)) is None
    assert_refused(review(XA.order(), expired), RefusalReason.EXPIRED)


def test_an_order_issued_in_the_future_is_not_yet_valid() -> None:
    early = XB.order(issued_at_ms=NOW_MS + 1, expires_at_ms=NOW_MS + DAY_MS)
    assert check(early) is RefusalReason.NOT_YET_VALID
    assert check(XB.order(issued_at_ms=NOW_MS)) is None
    assert_refused(review(XA.order(), early), RefusalReason.NOT_YET_VALID)


@pytest.mark.parametrize("category", ["fraud", "copyright", "Terrorism", "extremism"])
def test_a_category_other_than_terrorism_is_refused(category: str) -> None:
    other = XB.order(category=category)
    assert check(other) is RefusalReason.CATEGORY_NOT_PERMITTED
    assert_refused(review(XA.order(), other), RefusalReason.CATEGORY_NOT_PERMITTED)


def test_orders_that_disagree_on_the_category_are_refused() -> None:
    policy = DisclosurePolicy(categories=("terrorism", "espionage"))
    case = review(XA.order(), XB.order(category="espionage"), policy=policy)
    assert case.category is None
    assert_refused(case, RefusalReason.CATEGORY_NOT_PERMITTED)


@pytest.mark.parametrize(
    "fields",
    [
        ("messages",),
        ("phone", "contacts"),
        ("ip", "keys"),
        ("media",),
        ("phone", "message_content"),
        ("session_keys",),
    ],
)
def test_a_request_for_content_contacts_media_or_keys_is_refused(fields: tuple[str, ...]) -> None:
    greedy = XB.order(fields=fields)
    assert check(greedy) is RefusalReason.FIELD_NOT_PERMITTED
    case = review(XA.order(fields=fields), greedy)
    assert_refused(case, RefusalReason.FIELD_NOT_PERMITTED)
    assert set(case.fields) <= {"phone", "ip"}
    assert "message content, contacts, media and keys never are" in reason_text(
        RefusalReason.FIELD_NOT_PERMITTED
    )


def test_content_stays_refused_even_under_a_policy_that_skipped_validation() -> None:
    # model_construct bypasses the validators: the review still permits only phone and ip.
    careless = DisclosurePolicy.model_construct(
        recognised_jurisdictions=(),
        categories=("terrorism",),
        fields=("phone", "ip", "messages", "keys"),  # type: ignore[arg-type]
        jurisdictions_required=None,
        ip_window_days=None,
    )
    greedy = (XA.order(fields=("messages",)), XB.order(fields=("messages",)))
    assert check(greedy[0], careless) is RefusalReason.FIELD_NOT_PERMITTED
    assert_refused(review(*greedy, policy=careless), RefusalReason.FIELD_NOT_PERMITTED)


def test_a_field_the_policy_does_not_permit_is_refused() -> None:
    phone_only = DisclosurePolicy(fields=("phone",))
    assert check(XB.order(fields=("ip",)), phone_only) is RefusalReason.FIELD_NOT_PERMITTED
    assert_refused(
        review(XA.order(fields=("phone",)), XB.order(fields=("phone", "ip")), policy=phone_only),
        RefusalReason.FIELD_NOT_PERMITTED,
    )


def test_orders_with_no_field_in_common_are_refused() -> None:
    case = review(XA.order(fields=("phone",)), XB.order(fields=("ip",)))
    assert case.fields == ()
    assert_refused(case, RefusalReason.FIELD_NOT_PERMITTED)


def test_orders_from_fewer_jurisdictions_than_required_are_refused() -> None:
    case = review(XA.order())
    assert case.jurisdictions == ("XA",)
    assert_refused(case, RefusalReason.TOO_FEW_JURISDICTIONS)


def test_k_orders_from_one_jurisdiction_count_as_one() -> None:
    case = review(XA.order(), XA_2.order())
    assert len(case.valid) == 2
    assert case.jurisdictions == ("XA",)
    assert_refused(case, RefusalReason.TOO_FEW_JURISDICTIONS)


def test_orders_of_one_case_naming_different_subjects_are_refused() -> None:
    case = review(XA.order(subject="user:42"), XB.order(subject="@someone_else"))
    assert case.subject is None
    assert_refused(case, RefusalReason.SUBJECT_MISMATCH)


def test_the_same_order_twice_is_refused_as_a_duplicate() -> None:
    order = XA.order()
    case = review(order, order, XB.order())
    assert [v.reason for v in case.verdicts] == [None, RefusalReason.DUPLICATE, None]
    assert_refused(case, RefusalReason.DUPLICATE)


def test_an_order_with_its_signature_spelled_differently_is_still_a_duplicate() -> None:
    # base64url leaves two spare bits in the last character of a 64-byte signature.
    order = XA.order()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(order.signature[-1]) ^ 1]
    respelled = order.model_copy(update={"signature": order.signature[:-1] + last})
    assert check(respelled) is None
    case = review(order, respelled, XB.order())
    assert case.verdicts[1].reason is RefusalReason.DUPLICATE
    assert_refused(case, RefusalReason.DUPLICATE)


def test_one_bad_order_refuses_the_whole_case_even_if_enough_are_valid() -> None:
    expired = XC.order(expires_at_ms=NOW_MS - 1, issued_at_ms=NOW_MS - DAY_MS)
    case = review(XA.order(), expired, XB.order())
    assert case.jurisdictions == ("XA", "XB")  # the valid ones, for the record
    assert [v.reason for v in case.verdicts] == [None, RefusalReason.EXPIRED, None]
    assert_refused(case, RefusalReason.EXPIRED)


def test_the_first_refused_order_gives_the_reason() -> None:
    case = review(XD.order(), XB.order(category="fraud"))
    assert_refused(case, RefusalReason.UNRECOGNISED_JURISDICTION)


# reasons and reach ------------------------------------------------------------------------
@pytest.mark.parametrize("reason", list(RefusalReason))
def test_every_reason_has_its_own_sentence(reason: RefusalReason) -> None:
    text = reason_text(reason)
    assert text[0].isupper()
    assert text.endswith(".")
    others = {reason_text(r) for r in RefusalReason if r is not reason}
    assert text not in others


def test_the_intake_reasons_exist() -> None:
    assert RefusalReason.SUBJECT_NOT_FOUND == "SUBJECT_NOT_FOUND"
    assert RefusalReason.CUSTODIANS_REFUSED == "CUSTODIANS_REFUSED"


#: Everything of ours the legal modules may import. None of it stores, reads or decrypts
#: messages, contacts, media or keys; adding to this list is a decision, made here.
ALLOWED_IMPORTS = {
    "samizdat.core.jurisdictions",  # KNOWN_JURISDICTIONS
    "samizdat.core.phone",  # parse_phone, for subjects
    "samizdat.core.rules",  # normalize_username, for subjects
    "samizdat.crypto.custody_keys",  # b64, canonical, KeyFormatError
    "samizdat.crypto.private_files",  # write_private, for the registry file
    "samizdat.crypto.signing_keys",  # court keys: sign, verify, decode a public key
    "samizdat.custody.protocol",  # the CourtOrder format custodians check
    "samizdat.protocol.errors",  # SamizdatError, from the subject parsers
}


def test_the_legal_decision_imports_nothing_that_reaches_content_contacts_media_or_keys() -> None:
    """Orders, registry, policy and review import only the modules above: no code path leads
    from the decision to the store, the services, the client, or crypto that opens anything.
    (The intake, which asks the custodians to open phone and IP records, is not among them.)"""
    package = Path(samizdat.legal.__file__).parent
    imported: set[str] = set()
    for name in ("orders", "registry", "policy", "review"):
        source = package / f"{name}.py"
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    ours = {name for name in imported if name.startswith("samizdat")}
    assert {name for name in ours if not name.startswith("samizdat.legal")} <= ALLOWED_IMPORTS


# the recipient of the result ----------------------------------------------------------------
AUTHORITY = "szr1:" + "B" * 43
ANOTHER_AUTHORITY = "szr1:" + "C" * 43


def test_orders_naming_one_recipient_carry_it_to_the_intake() -> None:
    case = review(XA.order(recipient=AUTHORITY), XB.order(recipient=AUTHORITY))
    assert (case.refusal, case.recipient) == (None, AUTHORITY)
    assert review(XA.order(), XB.order()).recipient is None


@pytest.mark.parametrize(
    ("first", "second"), [(AUTHORITY, ANOTHER_AUTHORITY), (AUTHORITY, None), (None, AUTHORITY)]
)
def test_orders_naming_different_recipients_are_refused(
    first: str | None, second: str | None
) -> None:
    case = review(XA.order(recipient=first), XB.order(recipient=second))
    assert case.refusal is RefusalReason.RECIPIENT_MISMATCH
    assert case.refusal_text == reason_text(RefusalReason.RECIPIENT_MISMATCH)
