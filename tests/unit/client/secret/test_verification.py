"""Comparing emoji (SAS) as a state machine: two honest devices end verified with the same
codes; a man in the middle, a device that claims other keys, messages out of order or a
cancel end it with VerificationFailed; every move the table does not allow is refused."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from samizdat.client.secret.payloads import (
    SasAccept,
    SasCancel,
    SasKey,
    SasMac,
    SasStart,
)
from samizdat.client.secret.state import KnownDevice
from samizdat.client.secret.verification import (
    TRANSITIONS,
    Event,
    Me,
    Step,
    Verification,
    VerificationFailed,
)
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.crypto.verification import SAS_EMOJI, SasExchange
from samizdat.protocol.errors import Conflict, ErrorCode

ALICE, BOB = 100, 200


@dataclass
class Side:
    keys: SecretKeys
    user_id: int
    device_id: int

    @property
    def me(self) -> Me:
        return Me(
            self.user_id, self.device_id, self.keys.identity_key, self.keys.device.signing_key
        )

    def as_known(self, *, identity_key: str | None = None) -> KnownDevice:
        return KnownDevice(
            user_id=self.user_id,
            device_id=self.device_id,
            identity_key=identity_key or self.keys.identity_key,
            signing_key=self.keys.device.signing_key,
            first_seen=0.0,
        )


def sides() -> tuple[Side, Side]:
    return (
        Side(SecretKeys.create(device_id=11), ALICE, 11),
        Side(SecretKeys.create(device_id=22), BOB, 22),
    )


def new_pair(
    *, acceptor_sees_initiator_as: KnownDevice | None = None
) -> tuple[Verification, Verification]:
    alice, bob = sides()
    start = SasStart(txn=secrets.token_hex(16))
    initiator = Verification(alice.me, bob.as_known(), start, initiator=True)
    acceptor = Verification(
        bob.me, acceptor_sees_initiator_as or alice.as_known(), start, initiator=False
    )
    return initiator, acceptor


def exchange_keys(initiator: Verification, acceptor: Verification) -> None:
    """start -> accept -> key -> key: both sides now show the codes."""
    accept = acceptor.accept()
    initiator_key = initiator.receive(accept)
    assert isinstance(initiator_key, SasKey)
    assert initiator.step is Step.KEY_SENT
    acceptor_key = acceptor.receive(initiator_key)
    assert isinstance(acceptor_key, SasKey)
    assert acceptor.step is Step.SHOWING
    assert initiator.receive(acceptor_key) is None
    assert initiator.step is Step.SHOWING


def at_showing() -> tuple[Verification, Verification]:
    initiator, acceptor = new_pair()
    exchange_keys(initiator, acceptor)
    return initiator, acceptor


# The honest run


def test_two_honest_devices_see_the_same_codes_and_end_verified() -> None:
    initiator, acceptor = new_pair()
    assert (initiator.step, acceptor.step) == (Step.STARTED, Step.ACCEPTED)
    exchange_keys(initiator, acceptor)

    codes = initiator.codes()
    assert codes == acceptor.codes()
    assert len(codes.emoji) == 7
    assert all(emoji in SAS_EMOJI for emoji in codes.emoji)
    assert all(1000 <= n <= 9191 for n in codes.decimals)

    initiator_mac = initiator.confirm()
    acceptor_mac = acceptor.confirm()
    assert (initiator.step, acceptor.step) == (Step.CONFIRMED, Step.CONFIRMED)
    assert acceptor.receive(initiator_mac) is None
    assert initiator.receive(acceptor_mac) is None
    assert initiator.verified
    assert acceptor.verified
    assert (initiator.step, acceptor.step) == (Step.VERIFIED, Step.VERIFIED)
    assert initiator.codes() == acceptor.codes()  # still shown after the end


def test_the_macs_cover_both_long_term_keys_by_key_id() -> None:
    initiator, acceptor = at_showing()
    mac = initiator.confirm()
    assert set(mac.mac) == {"ed25519:11", "curve25519:11"}
    assert mac.txn == initiator.transaction == acceptor.transaction
    assert initiator.me.signing_key not in mac.mac.values()


def test_the_commitment_does_not_reveal_the_acceptors_key() -> None:
    _, acceptor = new_pair()
    accept = acceptor.accept()
    assert acceptor.sas.public_key not in accept.commitment
    assert accept.txn == acceptor.transaction


def test_a_mac_that_arrives_before_the_local_confirm_is_checked_at_confirm() -> None:
    initiator, acceptor = at_showing()
    early = initiator.confirm()
    assert acceptor.receive(early) is None
    assert acceptor.step is Step.SHOWING  # kept until the person confirms
    assert not acceptor.verified
    reply = acceptor.confirm()
    assert acceptor.verified
    initiator.receive(reply)
    assert initiator.verified


def test_an_early_mac_that_is_false_fails_at_confirm() -> None:
    initiator, acceptor = at_showing()
    genuine = initiator.confirm()
    forged = genuine.model_copy(update={"mac": dict.fromkeys(genuine.mac, "forged")})
    acceptor.receive(forged)
    with pytest.raises(VerificationFailed, match="intercepting"):
        acceptor.confirm()
    assert acceptor.step is Step.CANCELLED


def test_codes_before_the_keys_are_exchanged_are_refused() -> None:
    initiator, acceptor = new_pair()
    for verification in (initiator, acceptor):
        with pytest.raises(VerificationFailed, match="not been exchanged"):
            verification.codes()


# Attacks


def test_a_man_in_the_middle_who_swaps_the_acceptors_key_is_caught_by_the_commitment() -> None:
    initiator, acceptor = new_pair()
    initiator_key = initiator.receive(acceptor.accept())
    assert isinstance(initiator_key, SasKey)
    genuine = acceptor.receive(initiator_key)
    assert isinstance(genuine, SasKey)
    swapped = SasKey(txn=genuine.txn, key=SasExchange().public_key)
    with pytest.raises(VerificationFailed, match="commitment"):
        initiator.receive(swapped)
    assert initiator.step is Step.CANCELLED
    with pytest.raises(VerificationFailed):
        initiator.codes()


def test_a_man_in_the_middle_who_swaps_the_commitment_is_caught() -> None:
    initiator, acceptor = new_pair()
    accept = acceptor.accept()
    forged = SasAccept(txn=accept.txn, commitment=accept.commitment[::-1])
    initiator_key = initiator.receive(forged)
    assert isinstance(initiator_key, SasKey)
    acceptor_key = acceptor.receive(initiator_key)
    assert isinstance(acceptor_key, SasKey)
    with pytest.raises(VerificationFailed, match="commitment"):
        initiator.receive(acceptor_key)


def test_a_peer_whose_long_term_keys_differ_from_the_known_device_fails_the_mac_check() -> None:
    impostor_key = SecretKeys.create(device_id=99).identity_key
    alice, bob = sides()
    start = SasStart(txn=secrets.token_hex(16))
    initiator = Verification(alice.me, bob.as_known(), start, initiator=True)
    # Bob was told (by a lying server) that Alice's device has another identity key.
    acceptor = Verification(
        bob.me, alice.as_known(identity_key=impostor_key), start, initiator=False
    )
    exchange_keys(initiator, acceptor)
    initiator_mac = initiator.confirm()
    acceptor.confirm()
    with pytest.raises(VerificationFailed, match="intercepting"):
        acceptor.receive(initiator_mac)
    assert acceptor.step is Step.CANCELLED
    assert not acceptor.verified


def test_a_mac_for_another_device_id_fails() -> None:
    initiator, acceptor = at_showing()
    mac = initiator.confirm()
    relabelled = mac.model_copy(
        update={"mac": {k.replace(":11", ":12"): v for k, v in mac.mac.items()}}
    )
    acceptor.confirm()
    with pytest.raises(VerificationFailed):
        acceptor.receive(relabelled)


def test_a_mac_with_a_false_key_ids_tag_fails() -> None:
    initiator, acceptor = at_showing()
    mac = initiator.confirm()
    acceptor.confirm()
    with pytest.raises(VerificationFailed):
        acceptor.receive(mac.model_copy(update={"key_ids": "not the tag"}))


def test_a_mac_from_another_verification_fails() -> None:
    first_initiator, _ = at_showing()
    _, other_acceptor = at_showing()
    stray = first_initiator.confirm()
    other_acceptor.confirm()
    with pytest.raises(VerificationFailed):
        other_acceptor.receive(stray.model_copy(update={"txn": other_acceptor.transaction}))


def test_a_malformed_key_from_the_peer_fails() -> None:
    initiator, acceptor = new_pair()
    initiator_key = initiator.receive(acceptor.accept())
    assert isinstance(initiator_key, SasKey)
    with pytest.raises(VerificationFailed, match="not valid"):
        acceptor.receive(SasKey(txn=initiator_key.txn, key="not a key"))
    assert acceptor.step is Step.CANCELLED


# Out of order, cancelled


def test_a_key_before_the_accept_fails_and_cancels() -> None:
    initiator, _ = new_pair()
    with pytest.raises(VerificationFailed, match=re.escape("unexpected sas.key while started")):
        initiator.receive(SasKey(txn=initiator.transaction, key=SasExchange().public_key))
    assert initiator.step is Step.CANCELLED


def test_a_mac_before_the_keys_fails_and_cancels() -> None:
    _, acceptor = new_pair()
    with pytest.raises(VerificationFailed):
        acceptor.receive(SasMac(txn=acceptor.transaction, key_ids="x", mac={"a": "b"}))
    assert acceptor.step is Step.CANCELLED


def test_a_second_start_fails_and_cancels() -> None:
    _, acceptor = at_showing()
    with pytest.raises(VerificationFailed, match="second start"):
        acceptor.receive(SasStart(txn=acceptor.transaction))
    assert acceptor.step is Step.CANCELLED


def test_confirming_before_the_codes_are_shown_fails() -> None:
    initiator, _ = new_pair()
    with pytest.raises(VerificationFailed):
        initiator.confirm()
    assert initiator.step is Step.CANCELLED


def test_reject_yields_a_cancel_for_the_peer() -> None:
    initiator, acceptor = at_showing()
    cancel = acceptor.reject()
    assert isinstance(cancel, SasCancel)
    assert cancel.txn == acceptor.transaction
    assert cancel.reason == "the emoji did not match"
    assert acceptor.step is Step.CANCELLED
    with pytest.raises(VerificationFailed, match="the other side cancelled: the emoji"):
        initiator.receive(cancel)
    assert initiator.step is Step.CANCELLED


def test_reject_with_a_reason() -> None:
    initiator, _ = new_pair()
    assert initiator.reject("changed my mind").reason == "changed my mind"


def test_receiving_a_cancel_fails_at_any_step_before_verified() -> None:
    for verification in (*new_pair(), *at_showing()):
        with pytest.raises(VerificationFailed, match="cancelled: bye"):
            verification.receive(SasCancel(txn=verification.transaction, reason="bye"))
        assert verification.step is Step.CANCELLED


def test_verification_failed_is_a_conflict_with_its_own_code() -> None:
    error = VerificationFailed("x")
    assert isinstance(error, Conflict)
    assert error.code is ErrorCode.VERIFICATION_FAILED


# The table


def test_the_table_leads_from_each_start_to_verified() -> None:
    assert TRANSITIONS[(Step.STARTED, Event.GOT_ACCEPT)] is Step.KEY_SENT
    assert TRANSITIONS[(Step.KEY_SENT, Event.GOT_KEY)] is Step.SHOWING
    assert TRANSITIONS[(Step.ACCEPTED, Event.GOT_KEY)] is Step.SHOWING
    assert TRANSITIONS[(Step.SHOWING, Event.CONFIRM)] is Step.CONFIRMED
    assert TRANSITIONS[(Step.CONFIRMED, Event.GOT_MAC)] is Step.VERIFIED
    assert not [pair for pair in TRANSITIONS if pair[0] is Step.VERIFIED]


def trigger(verification: Verification, event: Event) -> None:
    txn = verification.transaction
    actions: dict[Event, Callable[[], object]] = {
        Event.GOT_ACCEPT: lambda: verification.receive(SasAccept(txn=txn, commitment="c")),
        Event.GOT_KEY: lambda: verification.receive(SasKey(txn=txn, key=SasExchange().public_key)),
        Event.GOT_MAC: lambda: verification.receive(SasMac(txn=txn, key_ids="k", mac={"a": "b"})),
        Event.GOT_CANCEL: lambda: verification.receive(SasCancel(txn=txn, reason="r")),
        Event.CONFIRM: verification.confirm,
        Event.REJECT: verification.reject,
    }
    actions[event]()


ILLEGAL = [(step, event) for step in Step for event in Event if (step, event) not in TRANSITIONS]


@pytest.mark.parametrize(("step", "event"), ILLEGAL, ids=[f"{s}-{e}" for s, e in ILLEGAL])
def test_every_move_the_table_does_not_allow_fails_and_cancels(step: Step, event: Event) -> None:
    for verification in new_pair():
        verification.step = step
        with pytest.raises(
            VerificationFailed, match=re.escape(f"unexpected {event.value} while {step}")
        ):
            trigger(verification, event)
        assert verification.step is Step.CANCELLED


def test_the_illegal_moves_include_everything_after_verified() -> None:
    assert {event for step, event in ILLEGAL if step is Step.VERIFIED} == set(Event)
    assert (Step.CANCELLED, Event.CONFIRM) in ILLEGAL
    assert (Step.STARTED, Event.GOT_KEY) in ILLEGAL
