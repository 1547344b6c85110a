"""Comparing emoji with a peer's device (SAS), as a state machine over secret-chat payloads.

Theory of operation (Matrix ``m.sas.v1``, carried inside Olm between the two devices):

    initiator                                   acceptor
    start(txn)            ─────────────────▶
                          ◀─────────────────    accept(commitment = H(key_B ‖ start))
    key(key_A)            ─────────────────▶
                          ◀─────────────────    key(key_B)      (acceptor shows emoji)
    checks H(key_B ‖ start), shows emoji
    user confirms: mac(keys) ──────────────▶    user confirms: mac(keys)
    each side checks the other's MAC of its identity and signing keys: verified

The acceptor commits to its key before it sees the initiator's, so neither side (nor a man
in the middle) can pick a key after the fact to make the emoji match. The MACs bind the
devices' long-term keys to the secret both people compared. Every transition is in
``TRANSITIONS``; anything else is a protocol violation and cancels the verification.
"""

from __future__ import annotations

from enum import StrEnum

from samizdat.client.secret.payloads import (
    SasAccept,
    SasBody,
    SasCancel,
    SasKey,
    SasMac,
    SasStart,
)
from samizdat.client.secret.state import KnownDevice
from samizdat.crypto.custody_keys import canonical
from samizdat.crypto.verification import (
    SasCodes,
    SasExchange,
    VerificationError,
    commitment,
    commitment_matches,
    mac_info,
    sas_info,
)
from samizdat.protocol.errors import Conflict, ErrorCode


class Step(StrEnum):
    STARTED = "started"  # initiator: start sent, waiting for accept
    ACCEPTED = "accepted"  # acceptor: commitment sent, waiting for the initiator's key
    KEY_SENT = "key_sent"  # initiator: key sent, waiting for the acceptor's key
    SHOWING = "showing"  # both keys known: the person compares the emoji
    CONFIRMED = "confirmed"  # our MAC sent, waiting for theirs
    VERIFIED = "verified"
    CANCELLED = "cancelled"


class Event(StrEnum):
    GOT_ACCEPT = "sas.accept"
    GOT_KEY = "sas.key"
    GOT_MAC = "sas.mac"
    GOT_CANCEL = "sas.cancel"
    CONFIRM = "confirm"
    REJECT = "reject"


#: (step, event) -> next step. Missing pairs are violations.
TRANSITIONS: dict[tuple[Step, Event], Step] = {
    (Step.STARTED, Event.GOT_ACCEPT): Step.KEY_SENT,
    (Step.ACCEPTED, Event.GOT_KEY): Step.SHOWING,
    (Step.KEY_SENT, Event.GOT_KEY): Step.SHOWING,
    (Step.SHOWING, Event.CONFIRM): Step.CONFIRMED,
    (Step.SHOWING, Event.GOT_MAC): Step.SHOWING,  # kept until the person confirms
    (Step.CONFIRMED, Event.GOT_MAC): Step.VERIFIED,
    **{(s, Event.REJECT): Step.CANCELLED for s in Step if s not in {Step.VERIFIED}},
    **{(s, Event.GOT_CANCEL): Step.CANCELLED for s in Step if s not in {Step.VERIFIED}},
}


class VerificationFailed(Conflict):
    """The emoji did not match, a MAC or commitment failed, or the peer cancelled."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.VERIFICATION_FAILED)


class Me:
    """This device, as the verification needs it."""

    def __init__(self, user_id: int, device_id: int, identity_key: str, signing_key: str) -> None:
        self.user_id, self.device_id = user_id, device_id
        self.identity_key, self.signing_key = identity_key, signing_key


def _key_ids(device_id: int) -> dict[str, str]:
    return {"ed25519": f"ed25519:{device_id}", "curve25519": f"curve25519:{device_id}"}


class Verification:
    """One SAS run between this device and one peer device."""

    def __init__(self, me: Me, peer: KnownDevice, start: SasStart, *, initiator: bool) -> None:
        self.me, self.peer, self.start, self.initiator = me, peer, start, initiator
        self.sas = SasExchange()
        self.step = Step.STARTED if initiator else Step.ACCEPTED
        self._commitment: str | None = None
        self._their_key: str | None = None
        self._their_mac: SasMac | None = None

    @property
    def transaction(self) -> str:
        return self.start.txn

    def _go(self, event: Event) -> None:
        nxt = TRANSITIONS.get((self.step, event))
        if nxt is None:
            was, self.step = self.step, Step.CANCELLED
            raise VerificationFailed(f"unexpected {event.value} while {was.value}")
        self.step = nxt

    # --- the acceptor's first move -----------------------------------------------------------
    def accept(self) -> SasAccept:
        return SasAccept(
            txn=self.transaction,
            commitment=commitment(self.sas.public_key, canonical(self.start)),
        )

    # --- incoming payloads -------------------------------------------------------------------
    def receive(self, body: SasBody) -> SasBody | None:
        """Apply a payload from the peer device; returns the reply to send, if any. Raises
        VerificationFailed (and the verification is over) on anything out of order or false."""
        match body:
            case SasAccept():
                self._go(Event.GOT_ACCEPT)
                self._commitment = body.commitment
                return SasKey(txn=self.transaction, key=self.sas.public_key)
            case SasKey():
                self._go(Event.GOT_KEY)
                if self.initiator and not commitment_matches(
                    self._commitment or "", body.key, canonical(self.start)
                ):
                    self.step = Step.CANCELLED
                    raise VerificationFailed("the peer's key does not match its commitment")
                self._establish(body.key)
                self._their_key = body.key
                return (
                    None
                    if self.initiator
                    else SasKey(txn=self.transaction, key=self.sas.public_key)
                )
            case SasMac():
                self._go(Event.GOT_MAC)
                self._their_mac = body
                if self.step is Step.VERIFIED:
                    self._check_mac()
                return None
            case SasCancel():
                self._go(Event.GOT_CANCEL)
                raise VerificationFailed(f"the other side cancelled: {body.reason}")
            case SasStart():
                self.step = Step.CANCELLED
                raise VerificationFailed("a second start in the same verification")
        return None  # pragma: no cover - the match is exhaustive

    def _establish(self, their_key: str) -> None:
        try:
            self.sas.establish(their_key)
        except VerificationError as exc:
            self.step = Step.CANCELLED
            raise VerificationFailed("the peer's verification key is not valid") from exc

    def _info(self) -> str:
        """As ``m.sas.v1``: both users, devices and *ephemeral* keys, and the transaction
        (the long-term keys are bound afterwards, by the MACs)."""
        assert self._their_key is not None
        me = (self.me.user_id, self.me.device_id, self.sas.public_key)
        peer = (self.peer.user_id, self.peer.device_id, self._their_key)
        initiator, acceptor = (me, peer) if self.initiator else (peer, me)
        return sas_info(
            initiator_user=initiator[0],
            initiator_device=initiator[1],
            initiator_key=initiator[2],
            acceptor_user=acceptor[0],
            acceptor_device=acceptor[1],
            acceptor_key=acceptor[2],
            transaction_id=self.transaction,
        )

    def codes(self) -> SasCodes:
        """The emoji and numbers to compare (both sides get the same if no one is between)."""
        if self.step not in {Step.SHOWING, Step.CONFIRMED, Step.VERIFIED}:
            raise VerificationFailed("the keys have not been exchanged yet")
        return self.sas.codes(self._info())

    # --- the person's answer -----------------------------------------------------------------
    def confirm(self) -> SasMac:
        """The person says the emoji match: MAC our keys for the peer."""
        self._go(Event.CONFIRM)
        ids = _key_ids(self.me.device_id)
        values = {ids["ed25519"]: self.me.signing_key, ids["curve25519"]: self.me.identity_key}
        mac = {
            key_id: self.sas.mac(value, self._mac_info(key_id, mine=True))
            for key_id, value in values.items()
        }
        key_ids = ",".join(sorted(values))
        reply = SasMac(
            txn=self.transaction,
            key_ids=self.sas.mac(key_ids, self._mac_info("KEY_IDS", mine=True)),
            mac=mac,
        )
        if self._their_mac is not None:
            self._go(Event.GOT_MAC)
            self._check_mac()
        return reply

    def reject(self, reason: str = "the emoji did not match") -> SasCancel:
        self._go(Event.REJECT)
        return SasCancel(txn=self.transaction, reason=reason)

    def _mac_info(self, key_id: str, *, mine: bool) -> str:
        me, peer = (self.me.user_id, self.me.device_id), (self.peer.user_id, self.peer.device_id)
        sender, receiver = (me, peer) if mine else (peer, me)
        return mac_info(
            sender_user=sender[0],
            sender_device=sender[1],
            receiver_user=receiver[0],
            receiver_device=receiver[1],
            transaction_id=self.transaction,
            key_id=key_id,
        )

    def _check_mac(self) -> None:
        their = self._their_mac
        assert their is not None
        ids = _key_ids(self.peer.device_id)
        expected = {
            ids["ed25519"]: self.peer.signing_key,
            ids["curve25519"]: self.peer.identity_key,
        }
        ok = set(their.mac) == set(expected) and self.sas.mac_valid(
            ",".join(sorted(expected)), self._mac_info("KEY_IDS", mine=False), their.key_ids
        )
        ok = ok and all(
            self.sas.mac_valid(value, self._mac_info(key_id, mine=False), their.mac[key_id])
            for key_id, value in expected.items()
        )
        if not ok:
            self.step = Step.CANCELLED
            raise VerificationFailed(
                "the peer's keys do not match what it proved in the verification: "
                "someone may be intercepting"
            )

    @property
    def verified(self) -> bool:
        return self.step is Step.VERIFIED


__all__ = ["TRANSITIONS", "Event", "Me", "Step", "Verification", "VerificationFailed"]
