"""What nodes and custodians say to each other: strict pydantic models and canonical bytes.

A request (unseal or disclose) travels as ``{"request": {...}, "signature": "..."}``, signed by
the enrolled DC node it names (``node_key``). The signed bytes are the request's canonical JSON
(sorted keys, orjson, ``kind`` included, so an unseal signature never passes for a disclosure),
recomputed on receipt from the parsed model, so whitespace or key order on the wire changes
nothing. An answer names the custodian and
carries the share sealed to the requester's one-time key, signed by the custodian over
``"samizdat/v1/answer" ‖ SHA-256(request) ‖ grant``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from samizdat.crypto.custody_keys import b64, canonical, digest, unb64

#: A request is fresh for this long either side of the custodian's clock.
FRESHNESS_SECONDS = 120.0
MAX_REQUEST_BYTES = 256 * 1024
ANSWER_PREFIX = b"samizdat/v1/answer\x00"

Ident = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
B64 = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]*$", max_length=200_000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class UnsealRequest(Strict):
    """A node asks for its share of its DC's key."""

    kind: Literal["unseal"] = "unseal"
    custodian: Ident
    dc: Ident
    node_key: Annotated[str, StringConstraints(max_length=64)]
    envelope: B64
    requester_key: B64
    nonce: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22}$")]
    issued_at_ms: Annotated[int, Field(ge=0, lt=2**53)]


class SignedUnseal(Strict):
    request: UnsealRequest
    signature: B64


class CourtOrderBody(Strict):
    """A court's decision as signed by the court (the legal workflow builds these)."""

    case: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    court: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    jurisdiction: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    category: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    fields: tuple[Annotated[str, StringConstraints(max_length=32)], ...]
    issued_at_ms: Annotated[int, Field(ge=0, lt=2**53)]
    expires_at_ms: Annotated[int, Field(ge=0, lt=2**53)]
    #: The requesting authority's key (``szr1:``): the disclosure package is sealed to it.
    recipient: Annotated[str, StringConstraints(pattern=r"^szr1:[A-Za-z0-9_-]{43}$")] | None = None


class CourtOrder(Strict):
    order: CourtOrderBody
    signature: B64


class DiscloseRequest(Strict):
    """A node of the record's DC, presenting a court order, asks for this custodian's share
    of one record."""

    kind: Literal["disclose"] = "disclose"
    custodian: Ident
    node_key: Annotated[str, StringConstraints(max_length=64)]
    envelope: B64
    requester_key: B64
    nonce: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{22}$")]
    issued_at_ms: Annotated[int, Field(ge=0, lt=2**53)]
    order: CourtOrder | None = None
    #: For an order naming its subject by @username or phone number: the user id the
    #: requesting node found for it. A custodian holds no directory to check that claim; it
    #: checks that the record is that user's, and binds the order to the first user it was
    #: granted for, so one order never opens two users' records.
    resolved_user: Annotated[int, Field(ge=0, lt=2**63)] | None = None


class SignedDisclose(Strict):
    request: DiscloseRequest
    signature: B64


class Answer(Strict):
    custodian: Ident
    index: Annotated[int, Field(ge=1, le=16)]
    grant: B64
    signature: B64


class Refused(Strict):
    code: str
    message: str


class CustodianInfo(Strict):
    id: Ident
    jurisdiction: str
    public_key: str
    enrolled_nodes: int
    audit_entries: int
    audit_head: str


def request_digest(request: UnsealRequest | DiscloseRequest) -> bytes:
    return digest(canonical(request))


def order_digest(order: CourtOrder) -> str:
    """SHA-256 (hex) of the court-signed body: what names one order in bindings and logs."""
    return digest(canonical(order.order)).hex()


def answer_message(request: UnsealRequest | DiscloseRequest, grant: bytes) -> bytes:
    return ANSWER_PREFIX + request_digest(request) + grant


__all__ = [
    "FRESHNESS_SECONDS",
    "MAX_REQUEST_BYTES",
    "Answer",
    "CourtOrder",
    "CourtOrderBody",
    "CustodianInfo",
    "DiscloseRequest",
    "Refused",
    "SignedDisclose",
    "SignedUnseal",
    "UnsealRequest",
    "answer_message",
    "b64",
    "canonical",
    "order_digest",
    "request_digest",
    "unb64",
]
