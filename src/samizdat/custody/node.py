"""The asking side: gather k custodians' grants and open an envelope in memory.

A node asks every custodian the envelope names at once, each with its own one-time key,
nonce and signature (the node's enrolled key signs unseal and disclosure requests alike). An
answer counts only if it is signed by that custodian's configured key, carries the index the
envelope gives that custodian, and opens under the one-time key; anything else is recorded as
that custodian's failure. As soon as k shares open the envelope
the others are no longer waited for; if a combination fails (a custodian lying with its own
valid key), combinations with the next share to arrive are tried.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from samizdat.crypto.custody_keys import CustodianPublic, NodeKey, RequesterKey
from samizdat.crypto.threshold import Envelope, EnvelopeError, Share, open_envelope
from samizdat.custody.client import CustodianClient, CustodianUnreachable
from samizdat.custody.policy import Refusal
from samizdat.custody.protocol import (
    Answer,
    CourtOrder,
    DiscloseRequest,
    SignedDisclose,
    SignedUnseal,
    UnsealRequest,
    answer_message,
    b64,
    canonical,
    request_digest,
    unb64,
)
from samizdat.protocol.errors import Unavailable

#: Longest wait for one custodian's answer (connect, send, a slow trickle of bytes: all of it).
ASK_DEADLINE = 10.0


@dataclass(frozen=True, slots=True)
class CustodianRef:
    """A custodian as a node's configuration names it."""

    custodian_id: str
    public: CustodianPublic
    client: CustodianClient


@dataclass(frozen=True, slots=True)
class CustodianOutcome:
    custodian_id: str
    ok: bool
    detail: str


class NotEnoughShares(Unavailable):
    """Fewer than k custodians gave a good share; ``outcomes`` says what each did."""

    def __init__(self, message: str, outcomes: Sequence[CustodianOutcome]) -> None:
        super().__init__(message)
        self.outcomes = tuple(outcomes)


def _nonce() -> str:
    return b64(secrets.token_bytes(16))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _signature(node_key: NodeKey, request: UnsealRequest | DiscloseRequest) -> str:
    return b64(node_key.sign(canonical(request)))


def _checked_share(
    ref: CustodianRef,
    request: UnsealRequest | DiscloseRequest,
    answer: Answer,
    requester: RequesterKey,
    index: int,
) -> Share:
    if answer.custodian != ref.custodian_id or answer.index != index:
        raise EnvelopeError("the answer names another custodian or share")
    grant = unb64(answer.grant)
    if not ref.public.verify(unb64(answer.signature), answer_message(request, grant)):
        raise EnvelopeError("the answer is not signed by this custodian's key")
    return requester.open_grant(grant, request_digest(request), expected_index=index)


Ask = Callable[[CustodianRef, int], Awaitable[Share]]


def _outcome(ref: CustodianRef, result: Share | Exception) -> CustodianOutcome:
    match result:
        case Share():
            return CustodianOutcome(ref.custodian_id, True, "granted")
        case Refusal():
            return CustodianOutcome(ref.custodian_id, False, f"refused: {result.message}")
        case TimeoutError():
            return CustodianOutcome(ref.custodian_id, False, "no answer in time")
        case CustodianUnreachable() | EnvelopeError() | ValueError():
            return CustodianOutcome(ref.custodian_id, False, str(result))
        case _:
            raise result


def _open_any(envelope: Envelope, shares: Sequence[Share], newest: Share) -> bytes | None:
    """Try every k-combination that includes the newest share (the others were tried)."""
    older = [share for share in shares if share is not newest]
    for others in itertools.combinations(older, envelope.threshold - 1):
        try:
            return open_envelope(envelope, [*others, newest])
        except EnvelopeError:
            continue
    return None


async def _collect(
    envelope: Envelope, custodians: Sequence[CustodianRef], ask: Ask
) -> tuple[bytes, list[CustodianOutcome]]:
    """Ask all at once; return as soon as k shares open the envelope, so a slow or silent
    custodian cannot hold the others up. Each ask is bounded by ``ASK_DEADLINE`` seconds."""
    by_id = {ref.custodian_id: ref for ref in custodians}

    async def attempt(ref: CustodianRef, index: int) -> tuple[CustodianRef, Share | Exception]:
        try:
            return ref, await asyncio.wait_for(ask(ref, index), ASK_DEADLINE)
        except (Refusal, CustodianUnreachable, EnvelopeError, ValueError, TimeoutError) as exc:
            return ref, exc

    tasks = [
        asyncio.ensure_future(attempt(by_id[cid], index))
        for index, cid in enumerate(envelope.custodians, start=1)
        if cid in by_id
    ]
    outcomes: list[CustodianOutcome] = []
    shares: list[Share] = []
    try:
        for next_done in asyncio.as_completed(tasks):
            ref, result = await next_done
            outcomes.append(_outcome(ref, result))
            if isinstance(result, Share):
                shares.append(result)
                if len(shares) >= envelope.threshold:
                    opened = _open_any(envelope, shares, result)
                    if opened is not None:
                        return opened, outcomes
    finally:
        for task in tasks:
            task.cancel()
    good = sum(o.ok for o in outcomes)
    if good >= envelope.threshold:
        message = (
            f"{good} custodians answered for {envelope.owner}, but no {envelope.threshold} of "
            "their shares open it: a custodian answered with a wrong share"
        )
    else:
        message = (
            f"{good} of the {envelope.threshold} custodians needed for {envelope.owner} answered"
        )
    raise NotEnoughShares(message, outcomes)


async def unseal_dc_key(
    envelope: Envelope, *, dc: str, node_key: NodeKey, custodians: Sequence[CustodianRef]
) -> tuple[bytes, list[CustodianOutcome]]:
    """Ask the envelope's custodians for their shares of a DC key; return the payload."""
    encoded = b64(envelope.to_bytes())

    async def ask(ref: CustodianRef, index: int) -> Share:
        requester = RequesterKey()
        request = UnsealRequest(
            custodian=ref.custodian_id,
            dc=dc,
            node_key=node_key.encoded(),
            envelope=encoded,
            requester_key=b64(requester.public),
            nonce=_nonce(),
            issued_at_ms=_now_ms(),
        )
        signed = SignedUnseal(request=request, signature=_signature(node_key, request))
        return _checked_share(ref, request, await ref.client.unseal(signed), requester, index)

    return await _collect(envelope, custodians, ask)


async def disclose_record(
    envelope: Envelope,
    *,
    orders: dict[str, CourtOrder],
    custodians: Sequence[CustodianRef],
    resolved_user: int | None = None,
    node_key: NodeKey,
) -> tuple[bytes, list[CustodianOutcome]]:
    """Present to each custodian the court order of its own jurisdiction (``orders`` by
    custodian id), in a request signed by ``node_key`` (enrolled with them for the record's
    DC); the record opens only if k of them each accept theirs. ``resolved_user`` is the user
    id an order's @username or phone number was found to be: each custodian binds such an
    order to the first user it opens a record of, and refuses it for any other."""
    encoded = b64(envelope.to_bytes())

    async def ask(ref: CustodianRef, index: int) -> Share:
        requester = RequesterKey()
        request = DiscloseRequest(
            custodian=ref.custodian_id,
            node_key=node_key.encoded(),
            envelope=encoded,
            requester_key=b64(requester.public),
            nonce=_nonce(),
            issued_at_ms=_now_ms(),
            order=orders.get(ref.custodian_id),
            resolved_user=resolved_user,
        )
        signed = SignedDisclose(request=request, signature=_signature(node_key, request))
        return _checked_share(ref, request, await ref.client.disclose(signed), requester, index)

    return await _collect(envelope, custodians, ask)


__all__ = [
    "CustodianOutcome",
    "CustodianRef",
    "NotEnoughShares",
    "disclose_record",
    "unseal_dc_key",
]
