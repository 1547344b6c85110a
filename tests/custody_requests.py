"""Real custody requests for the custody tests: envelopes, signed unseal and disclosure
requests, court orders.

Everything here is built the way a node or a court builds it (``seal``, ``canonical``, real
Ed25519 and X25519 keys), so a test that expects a refusal changes exactly one thing.
Disclosure requests are signed by ``NODE`` unless told otherwise; the custody fixtures enrol it
for ``DC``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from samizdat.crypto.custody_keys import CustodianPublic, NodeKey, RequesterKey
from samizdat.crypto.threshold import Envelope, seal
from samizdat.custody.policy import (
    DC_KEY_PURPOSE,
    IDENTITY_PURPOSE,
    PERMITTED_CATEGORY,
    dc_key_owner,
    identity_owner,
)
from samizdat.custody.protocol import (
    CourtOrder,
    CourtOrderBody,
    DiscloseRequest,
    SignedDisclose,
    SignedUnseal,
    UnsealRequest,
    b64,
    canonical,
)

#: A fixed "now" for the tests that pass the clock in (2023-11-14T22:13:20Z).
NOW = 1_700_000_000.0
NOW_MS = int(NOW * 1000)
MINUTE_MS = 60_000
DAY_MS = 24 * 60 * MINUTE_MS
#: The custodian and DC the custody unit tests use.
CUSTODIAN = "custodian-xb"
DC = "local"
DC_KEY = b"the 32-byte DC key of dc:local.."
#: The node that signs disclosure requests by default (the fixtures enrol it for ``DC``).
NODE = NodeKey(Ed25519PrivateKey.generate())


def new_nonce() -> str:
    return b64(secrets.token_bytes(16))


def dc_key_envelope(
    dc: str,
    custodians: Mapping[str, CustodianPublic],
    *,
    threshold: int = 2,
    payload: bytes = DC_KEY,
) -> Envelope:
    return seal(
        payload,
        purpose=DC_KEY_PURPOSE,
        owner=dc_key_owner(dc),
        recipients=[public.recipient(cid) for cid, public in custodians.items()],
        threshold=threshold,
    )


def identity_envelope(
    dc: str,
    user_id: int,
    field_name: str,
    payload: bytes,
    custodians: Mapping[str, CustodianPublic],
    *,
    threshold: int = 2,
) -> Envelope:
    return seal(
        payload,
        purpose=IDENTITY_PURPOSE,
        owner=identity_owner(dc, user_id, field_name),
        recipients=[public.recipient(cid) for cid, public in custodians.items()],
        threshold=threshold,
    )


def unseal_request(
    node: NodeKey,
    envelope: Envelope,
    *,
    custodian: str,
    dc: str,
    issued_at_ms: int = NOW_MS,
    requester: RequesterKey | None = None,
    nonce: str | None = None,
) -> UnsealRequest:
    return UnsealRequest(
        custodian=custodian,
        dc=dc,
        node_key=node.encoded(),
        envelope=b64(envelope.to_bytes()),
        requester_key=b64((requester or RequesterKey()).public),
        nonce=nonce or new_nonce(),
        issued_at_ms=issued_at_ms,
    )


@overload
def signed_by(node: NodeKey, request: UnsealRequest) -> SignedUnseal: ...


@overload
def signed_by(node: NodeKey, request: DiscloseRequest) -> SignedDisclose: ...


def signed_by(
    node: NodeKey, request: UnsealRequest | DiscloseRequest
) -> SignedUnseal | SignedDisclose:
    """``request`` as ``node`` signs it (after a test changed it, say)."""
    signature = b64(node.sign(canonical(request)))
    match request:
        case UnsealRequest():
            return SignedUnseal(request=request, signature=signature)
        case DiscloseRequest():
            return SignedDisclose(request=request, signature=signature)


def signed_unseal(
    node: NodeKey,
    envelope: Envelope,
    *,
    custodian: str,
    dc: str,
    issued_at_ms: int = NOW_MS,
    requester: RequesterKey | None = None,
    nonce: str | None = None,
) -> SignedUnseal:
    request = unseal_request(
        node,
        envelope,
        custodian=custodian,
        dc=dc,
        issued_at_ms=issued_at_ms,
        requester=requester,
        nonce=nonce,
    )
    return signed_by(node, request)


@dataclass
class CourtKey:
    """A court of one jurisdiction with its own Ed25519 signing key."""

    name: str
    jurisdiction: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def body(
        self,
        subject: str = "user:1",
        fields: Iterable[str] = ("phone",),
        *,
        category: str = PERMITTED_CATEGORY,
        issued_at_ms: int = NOW_MS - DAY_MS,
        expires_at_ms: int = NOW_MS + DAY_MS,
        jurisdiction: str | None = None,
    ) -> CourtOrderBody:
        return CourtOrderBody(
            case=f"{self.jurisdiction}-2023-0042",
            court=self.name,
            jurisdiction=jurisdiction or self.jurisdiction,
            subject=subject,
            category=category,
            fields=tuple(fields),
            issued_at_ms=issued_at_ms,
            expires_at_ms=expires_at_ms,
        )

    def sign(self, body: CourtOrderBody) -> CourtOrder:
        return CourtOrder(order=body, signature=b64(self.key.sign(canonical(body))))

    def order(self, *args: Any, **kwargs: Any) -> CourtOrder:
        """``body(...)`` (same arguments), signed by this court."""
        return self.sign(self.body(*args, **kwargs))


def disclose_request(
    envelope: Envelope,
    order: CourtOrder | None,
    *,
    custodian: str,
    node: NodeKey = NODE,
    issued_at_ms: int = NOW_MS,
    requester: RequesterKey | None = None,
    nonce: str | None = None,
    resolved_user: int | None = None,
) -> SignedDisclose:
    """A disclosure request presenting ``order``, signed by ``node``."""
    request = DiscloseRequest(
        custodian=custodian,
        node_key=node.encoded(),
        envelope=b64(envelope.to_bytes()),
        requester_key=b64((requester or RequesterKey()).public),
        nonce=nonce or new_nonce(),
        issued_at_ms=issued_at_ms,
        order=order,
        resolved_user=resolved_user,
    )
    return signed_by(node, request)


__all__ = [
    "DAY_MS",
    "DC_KEY",
    "MINUTE_MS",
    "NODE",
    "NOW",
    "NOW_MS",
    "CourtKey",
    "dc_key_envelope",
    "disclose_request",
    "identity_envelope",
    "new_nonce",
    "signed_by",
    "signed_unseal",
    "unseal_request",
]
