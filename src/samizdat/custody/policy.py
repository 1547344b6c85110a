"""A custodian's policy: pure checks that say yes, or refuse with a reason. No I/O here.

Every request comes from a DC node enrolled here, signed by it, fresh (within two minutes of
the custodian's clock) and never seen before. A custodian opens its share of an envelope for
exactly two purposes:

- ``dc-key`` envelopes (owner ``dc:<id>``) to a node enrolled for that DC;
- ``identity`` envelopes (owner ``dc:<id>/user:<n>/<field>``) to a node enrolled for that DC,
  against a court order signed by a court the custodian recognises **in its own
  jurisdiction**, unexpired, of the terrorism category, naming that user and that field. An
  order names its user by id, or by @username or phone number, which the requesting node
  resolves to an id (``resolved_user``); such an order opens the records of the first user
  it was granted for and of no other (``order_users``, which the service keeps).

Everything else is refused with a code and a sentence, and the caller logs the refusal.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum

from samizdat.crypto.custody_keys import KeyFormatError, decode_node_key, verify_signature
from samizdat.crypto.threshold import Envelope
from samizdat.custody.protocol import (
    FRESHNESS_SECONDS,
    DiscloseRequest,
    UnsealRequest,
    canonical,
    order_digest,
    unb64,
)

DC_KEY_PURPOSE = "dc-key"
IDENTITY_PURPOSE = "identity"
DISCLOSABLE_FIELDS = frozenset({"phone", "ip"})
PERMITTED_CATEGORY = "terrorism"
#: Subject kinds that name a user only through the requesting node's resolution.
RESOLVED_KINDS = frozenset({"username", "phone"})
_IDENTITY_OWNER = re.compile(r"^dc:([a-z0-9-]+)/user:([0-9]+)/([a-z]+)$")


class RefusalCode(StrEnum):
    MALFORMED = "MALFORMED"
    WRONG_CUSTODIAN = "WRONG_CUSTODIAN"
    NODE_NOT_ENROLLED = "NODE_NOT_ENROLLED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE = "STALE"
    REPLAYED = "REPLAYED"
    WRONG_PURPOSE = "WRONG_PURPOSE"
    NO_SHARE = "NO_SHARE"
    NO_ORDER = "NO_ORDER"
    WRONG_JURISDICTION = "WRONG_JURISDICTION"
    UNKNOWN_COURT = "UNKNOWN_COURT"
    ORDER_EXPIRED = "ORDER_EXPIRED"
    CATEGORY_NOT_PERMITTED = "CATEGORY_NOT_PERMITTED"
    SUBJECT_MISMATCH = "SUBJECT_MISMATCH"
    FIELD_NOT_PERMITTED = "FIELD_NOT_PERMITTED"


class Refusal(Exception):
    """The custodian says no; ``code`` is stable, ``message`` says why in a sentence."""

    def __init__(self, code: RefusalCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class EnrolledNode:
    node_key: str
    dc: str
    enrolled_at: float


@dataclass(frozen=True, slots=True)
class Court:
    name: str
    public_key: bytes


@dataclass(frozen=True, slots=True)
class Disclosure:
    """A disclosure the policy allows: who asked, whose record, under which order."""

    node: EnrolledNode
    user_id: int
    #: ``order_digest`` of the order presented.
    order: str
    #: The order names its subject by @username or phone number, so the record's user is the
    #: node's resolution: granting binds the order to ``user_id`` for good.
    binds: bool


def dc_key_owner(dc: str) -> str:
    return f"dc:{dc}"


def identity_owner(dc: str, user_id: int, field: str) -> str:
    if field not in DISCLOSABLE_FIELDS:
        raise ValueError(f"{field!r} is not an identity field")
    return f"dc:{dc}/user:{user_id}/{field}"


def subject_kind(ordered: str) -> str | None:
    """How an order names its subject: ``user`` (``user:<n>``), ``username`` (``@name``),
    ``phone`` (``+<digits>``), or None for anything else (which names no record)."""
    if ordered.startswith("user:"):
        return "user"
    if ordered.startswith("@"):
        return "username"
    if ordered.startswith("+"):
        return "phone"
    return None


def _signed_by_enrolled_node(
    request: UnsealRequest | DiscloseRequest,
    signature: str,
    *,
    custodian_id: str,
    nodes: Mapping[str, EnrolledNode],
    seen_nonces: Collection[str],
    now_ms: int,
) -> EnrolledNode:
    """What every request must be: addressed here, from an enrolled node, signed by it over
    its canonical bytes, fresh and new. Returns that node."""
    if request.custodian != custodian_id:
        raise Refusal(RefusalCode.WRONG_CUSTODIAN, "the request is addressed to another custodian")
    node = nodes.get(request.node_key)
    if node is None:
        raise Refusal(RefusalCode.NODE_NOT_ENROLLED, "this node is not enrolled here")
    try:
        public = decode_node_key(request.node_key)
        signed = verify_signature(public, unb64(signature), canonical(request))
    except (KeyFormatError, ValueError):
        signed = False
    if not signed:
        raise Refusal(RefusalCode.BAD_SIGNATURE, "the request's signature does not verify")
    if abs(now_ms - request.issued_at_ms) > FRESHNESS_SECONDS * 1000:
        raise Refusal(RefusalCode.STALE, "the request is not fresh; check the node's clock")
    if request.nonce in seen_nonces:
        raise Refusal(RefusalCode.REPLAYED, "this request was already answered once")
    return node


def _wrong_dc(node: EnrolledNode) -> Refusal:
    return Refusal(RefusalCode.WRONG_PURPOSE, f"this node is enrolled for DC {node.dc} only")


def _names(ordered: str, subject: str, resolved_user: int | None) -> bool:
    """Whether an order's subject is this record's user: a user id must be it exactly; a
    @username or phone number must be what the requesting node resolved it to (a custodian
    holds no directory, so that mapping is the node's claim)."""
    match subject_kind(ordered):
        case "user":
            return ordered == subject
        case "username" | "phone":
            return resolved_user is not None and f"user:{resolved_user}" == subject
        case _:
            return False


def check_unseal(
    request: UnsealRequest,
    signature: str,
    envelope: Envelope,
    *,
    custodian_id: str,
    nodes: Mapping[str, EnrolledNode],
    seen_nonces: Collection[str],
    now_ms: int,
) -> EnrolledNode:
    """Return the enrolled node if this unseal request may be granted, else raise Refusal."""
    node = _signed_by_enrolled_node(
        request,
        signature,
        custodian_id=custodian_id,
        nodes=nodes,
        seen_nonces=seen_nonces,
        now_ms=now_ms,
    )
    if request.dc != node.dc:
        raise _wrong_dc(node)
    if envelope.purpose != DC_KEY_PURPOSE or envelope.owner != dc_key_owner(node.dc):
        raise Refusal(RefusalCode.WRONG_PURPOSE, "a node may only unseal its own DC's key")
    return node


def check_disclose(
    request: DiscloseRequest,
    signature: str,
    envelope: Envelope,
    *,
    custodian_id: str,
    jurisdiction: str,
    nodes: Mapping[str, EnrolledNode],
    courts: Mapping[str, Court],
    order_users: Mapping[str, int],
    seen_nonces: Collection[str],
    now_ms: int,
) -> Disclosure:
    """Return what may be disclosed to whom, else raise Refusal.

    ``order_users`` maps an ``order_digest`` to the one user an order by @username or phone
    number was already granted for; the caller must record a grant's binding (``binds``).
    """
    node = _signed_by_enrolled_node(
        request,
        signature,
        custodian_id=custodian_id,
        nodes=nodes,
        seen_nonces=seen_nonces,
        now_ms=now_ms,
    )
    if envelope.purpose != IDENTITY_PURPOSE:
        raise Refusal(
            RefusalCode.WRONG_PURPOSE, "only identity records can be disclosed; never keys"
        )
    owner = _IDENTITY_OWNER.match(envelope.owner)
    if owner is None or owner.group(3) not in DISCLOSABLE_FIELDS:
        raise Refusal(RefusalCode.WRONG_PURPOSE, "this envelope is not a disclosable record")
    if owner.group(1) != node.dc:
        raise _wrong_dc(node)
    signed = request.order
    if signed is None:
        raise Refusal(RefusalCode.NO_ORDER, "a disclosure needs a court order")
    order = signed.order
    if order.jurisdiction != jurisdiction:
        raise Refusal(
            RefusalCode.WRONG_JURISDICTION,
            f"this custodian answers only orders of courts in {jurisdiction}",
        )
    court = courts.get(order.court)
    if court is None:
        raise Refusal(RefusalCode.UNKNOWN_COURT, "the ordering court is not recognised here")
    try:
        valid = verify_signature(court.public_key, unb64(signed.signature), canonical(order))
    except ValueError:
        valid = False
    if not valid:
        raise Refusal(RefusalCode.BAD_SIGNATURE, "the order's signature is not the court's")
    if not order.issued_at_ms <= now_ms < order.expires_at_ms:
        raise Refusal(RefusalCode.ORDER_EXPIRED, "the order is expired or not yet valid")
    if order.category != PERMITTED_CATEGORY:
        raise Refusal(
            RefusalCode.CATEGORY_NOT_PERMITTED,
            f"only orders of the {PERMITTED_CATEGORY} category permit disclosure",
        )
    user_id = int(owner.group(2))
    if not _names(order.subject, f"user:{owner.group(2)}", request.resolved_user):
        raise Refusal(RefusalCode.SUBJECT_MISMATCH, "the order names another subject")
    digest = order_digest(signed)
    binds = subject_kind(order.subject) in RESOLVED_KINDS
    if binds and order_users.get(digest, user_id) != user_id:
        raise Refusal(RefusalCode.SUBJECT_MISMATCH, "this order was already used for another user")
    if owner.group(3) not in order.fields:
        raise Refusal(RefusalCode.FIELD_NOT_PERMITTED, "the order does not name this field")
    return Disclosure(node=node, user_id=user_id, order=digest, binds=binds)


__all__ = [
    "DC_KEY_PURPOSE",
    "DISCLOSABLE_FIELDS",
    "IDENTITY_PURPOSE",
    "PERMITTED_CATEGORY",
    "RESOLVED_KINDS",
    "Court",
    "Disclosure",
    "EnrolledNode",
    "Refusal",
    "RefusalCode",
    "check_disclose",
    "check_unseal",
    "dc_key_owner",
    "identity_owner",
    "subject_kind",
]
