"""The decision on a submission of court orders: pure functions, no I/O, no clock.

Theory of operation. A requester submits every order of a case at once; nothing about a
pending case is stored. ``review_submission`` groups the orders by case reference and decides
each case in two steps:

1. Each order on its own (``check_order``), in this order: well formed (its subject parses,
   it names a field, it expires after it is issued), its jurisdiction recognised, its court
   registered there, its signature that court's, now within its validity window, its category
   permitted, every field it names permitted (only ``phone`` and ``ip`` ever can be). A second
   copy of an order already seen is a DUPLICATE.
2. The case as a whole: any refused order refuses the case with that order's reason (the
   first in submission order): a submission with a forged or stale order in it is not
   quietly trimmed. Then the orders must name one subject, agree on the category, share at
   least one field, and come from at least ``required`` distinct jurisdictions (k orders from
   one jurisdiction count once).

A case whose ``refusal`` is None may go on: the intake finds the subject (SUBJECT_NOT_FOUND)
and asks the custodians (CUSTODIANS_REFUSED), which check every order again themselves.
Nothing here, or reachable from here, reads message content, contacts, media or keys: the
only fields that can pass are phone and ip.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from samizdat.crypto.custody_keys import KeyFormatError, canonical, unb64
from samizdat.crypto.signing_keys import verify
from samizdat.custody.protocol import CourtOrder
from samizdat.legal.orders import (
    OrderFormatError,
    Subject,
    body_digest,
    order_digest,
    parse_subject,
)
from samizdat.legal.policy import DISCLOSABLE_FIELDS, DisclosurePolicy


class RefusalReason(StrEnum):
    MALFORMED = "MALFORMED"
    UNRECOGNISED_JURISDICTION = "UNRECOGNISED_JURISDICTION"
    UNKNOWN_COURT = "UNKNOWN_COURT"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    CATEGORY_NOT_PERMITTED = "CATEGORY_NOT_PERMITTED"
    FIELD_NOT_PERMITTED = "FIELD_NOT_PERMITTED"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    DUPLICATE = "DUPLICATE"
    TOO_FEW_JURISDICTIONS = "TOO_FEW_JURISDICTIONS"
    SUBJECT_NOT_FOUND = "SUBJECT_NOT_FOUND"
    CUSTODIANS_REFUSED = "CUSTODIANS_REFUSED"
    ALREADY_USED = "ALREADY_USED"
    RECIPIENT_MISMATCH = "RECIPIENT_MISMATCH"


_REASON_TEXT = {
    RefusalReason.MALFORMED: (
        "An order is malformed: its subject is not a user id, @username or phone number, it "
        "names no field, or it expires before it is issued."
    ),
    RefusalReason.UNRECOGNISED_JURISDICTION: (
        "An order comes from a jurisdiction this service does not recognise."
    ),
    RefusalReason.UNKNOWN_COURT: (
        "An order names a court that is not registered for its jurisdiction."
    ),
    RefusalReason.BAD_SIGNATURE: (
        "An order's signature is not the signature of the court it names."
    ),
    RefusalReason.EXPIRED: "An order has expired.",
    RefusalReason.NOT_YET_VALID: "An order's issue date is in the future.",
    RefusalReason.CATEGORY_NOT_PERMITTED: (
        "An order's category does not permit disclosure under the disclosure policy, or the "
        "orders of the case disagree on the category."
    ),
    RefusalReason.FIELD_NOT_PERMITTED: (
        "An order asks for something the disclosure policy does not permit, or the orders of "
        "the case have no field in common. At most the phone number and IP addresses can be "
        "disclosed; message content, contacts, media and keys never are."
    ),
    RefusalReason.SUBJECT_MISMATCH: "The orders of the case name different subjects.",
    RefusalReason.DUPLICATE: "The same order was submitted more than once.",
    RefusalReason.TOO_FEW_JURISDICTIONS: (
        "The case has valid orders from too few distinct jurisdictions, counting only those "
        "whose custodians keep the records; several orders from one jurisdiction count as one."
    ),
    RefusalReason.SUBJECT_NOT_FOUND: "No account matches the subject of the orders.",
    RefusalReason.CUSTODIANS_REFUSED: (
        "Too few key custodians accepted the orders, so the record stays sealed."
    ),
    RefusalReason.RECIPIENT_MISMATCH: (
        "The orders of the case name different recipients for the result (or some name one "
        "and others none)."
    ),
    RefusalReason.ALREADY_USED: (
        "These orders already led to a disclosure; an order opens records once. A further "
        "disclosure needs new orders."
    ),
}


def reason_text(reason: RefusalReason) -> str:
    """One sentence a requester (and the transparency log) can read."""
    return _REASON_TEXT[reason]


class CourtKeys(Protocol):
    """What the review needs of the court registry (``registry.CourtRegistry`` is one)."""

    def key_of(self, jurisdiction: str, name: str) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class OrderVerdict:
    digest: str  # order_digest: the order's identity in logs
    jurisdiction: str
    court: str
    reason: RefusalReason | None  # None: this order is valid on its own
    category: str = ""  # as the order states it


@dataclass(frozen=True, slots=True)
class CaseReview:
    """The decision on one case; ``refusal`` None means the intake may go on."""

    case: str
    verdicts: tuple[OrderVerdict, ...]
    valid: tuple[CourtOrder, ...]
    jurisdictions: tuple[str, ...]  # distinct, sorted, of the valid orders
    subject: Subject | None  # the one subject of the valid orders; None if none or several
    fields: tuple[str, ...]  # requested by every valid order, within the policy
    category: str | None  # the one category of the valid orders; None if none or several
    refusal: RefusalReason | None
    recipient: str | None = None  # the key every valid order seals the result to, if any

    @property
    def refusal_text(self) -> str | None:
        return None if self.refusal is None else reason_text(self.refusal)


def _subject_of(order: CourtOrder) -> Subject | None:
    try:
        return parse_subject(order.order.subject)
    except OrderFormatError:
        return None


def _signed_by(order: CourtOrder, public_key: bytes) -> bool:
    try:
        signature = unb64(order.signature)
    except KeyFormatError:
        return False
    return verify(public_key, signature, canonical(order.order))


def check_order(
    order: CourtOrder,
    *,
    registry: CourtKeys,
    policy: DisclosurePolicy,
    recognised: frozenset[str],
    now_ms: int,
) -> RefusalReason | None:
    """Why this order alone is refused, or None if it is valid on its own.

    ``recognised`` is the set of recognised jurisdictions as the caller resolved it
    (``DisclosurePolicy.recognised_for``); ``now_ms`` is the caller's clock.
    """
    body = order.order
    subject = _subject_of(order)
    if subject is None or not body.fields or body.expires_at_ms <= body.issued_at_ms:
        return RefusalReason.MALFORMED
    if subject.kind == "user_id" and subject.text != body.subject:
        return RefusalReason.MALFORMED  # custodians compare a user id exactly: "user:<n>"
    if body.jurisdiction not in recognised:
        return RefusalReason.UNRECOGNISED_JURISDICTION
    public_key = registry.key_of(body.jurisdiction, body.court)
    if public_key is None:
        return RefusalReason.UNKNOWN_COURT
    if not _signed_by(order, public_key):
        return RefusalReason.BAD_SIGNATURE
    if now_ms < body.issued_at_ms:
        return RefusalReason.NOT_YET_VALID
    if now_ms >= body.expires_at_ms:
        return RefusalReason.EXPIRED
    if body.category not in policy.categories:
        return RefusalReason.CATEGORY_NOT_PERMITTED
    # Both checks, so a policy object built in code without its validators changes nothing.
    permitted = set(policy.fields) & set(DISCLOSABLE_FIELDS)
    if any(field not in permitted for field in body.fields):
        return RefusalReason.FIELD_NOT_PERMITTED
    return None


def _one(values: Iterable[str]) -> str | None:
    distinct = set(values)
    return distinct.pop() if len(distinct) == 1 else None


def _review_case(
    case: str,
    orders: Sequence[CourtOrder],
    *,
    registry: CourtKeys,
    policy: DisclosurePolicy,
    recognised: frozenset[str],
    required: int,
    now_ms: int,
) -> CaseReview:
    verdicts: list[OrderVerdict] = []
    valid: list[CourtOrder] = []
    seen: set[str] = set()
    for order in orders:
        body = body_digest(order)
        if body in seen:
            reason: RefusalReason | None = RefusalReason.DUPLICATE
        else:
            seen.add(body)
            reason = check_order(
                order, registry=registry, policy=policy, recognised=recognised, now_ms=now_ms
            )
        verdicts.append(
            OrderVerdict(
                order_digest(order),
                order.order.jurisdiction,
                order.order.court,
                reason,
                order.order.category,
            )
        )
        if reason is None:
            valid.append(order)

    subjects = {subject for order in valid if (subject := _subject_of(order)) is not None}
    jurisdictions = tuple(sorted({order.order.jurisdiction for order in valid}))
    category = _one(order.order.category for order in valid)
    fields: tuple[str, ...] = ()
    if valid:
        common = set(DISCLOSABLE_FIELDS) & set(policy.fields)
        for order in valid:
            common &= set(order.order.fields)
        fields = tuple(field for field in DISCLOSABLE_FIELDS if field in common)

    refusal = next((v.reason for v in verdicts if v.reason is not None), None)
    if refusal is None:
        if len(subjects) != 1:
            refusal = RefusalReason.SUBJECT_MISMATCH
        elif category is None:
            refusal = RefusalReason.CATEGORY_NOT_PERMITTED
        elif not fields:
            refusal = RefusalReason.FIELD_NOT_PERMITTED
        elif len(jurisdictions) < max(required, 1):
            refusal = RefusalReason.TOO_FEW_JURISDICTIONS
        elif len({order.order.recipient for order in valid}) > 1:
            refusal = RefusalReason.RECIPIENT_MISMATCH
    return CaseReview(
        case=case,
        verdicts=tuple(verdicts),
        valid=tuple(valid),
        jurisdictions=jurisdictions,
        subject=subjects.pop() if len(subjects) == 1 else None,
        fields=fields,
        category=category,
        refusal=refusal,
        recipient=next((o.order.recipient for o in valid), None),
    )


def review_submission(
    orders: Iterable[CourtOrder],
    *,
    registry: CourtKeys,
    policy: DisclosurePolicy,
    recognised: frozenset[str],
    required: int,
    now_ms: int,
) -> list[CaseReview]:
    """Decide every case of a submission, in the order each case first appears.

    ``required`` is the number of distinct jurisdictions a case needs, as the caller resolved
    it (``DisclosurePolicy.required_for(threshold)``); anything below 1 counts as 1.
    """
    cases: dict[str, list[CourtOrder]] = {}
    for order in orders:
        cases.setdefault(order.order.case, []).append(order)
    return [
        _review_case(
            case,
            grouped,
            registry=registry,
            policy=policy,
            recognised=recognised,
            required=required,
            now_ms=now_ms,
        )
        for case, grouped in cases.items()
    ]


__all__ = [
    "CaseReview",
    "CourtKeys",
    "OrderVerdict",
    "RefusalReason",
    "check_order",
    "reason_text",
    "review_submission",
]
