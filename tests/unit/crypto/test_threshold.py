"""Threshold envelopes: any k of the n named custodians open the payload together and fewer never
do; the header binds every share, so a relabelled envelope or a share moved between envelopes
fails; malformed bytes and forged shares only ever raise EnvelopeError, and nothing ever opens
to a plaintext other than the one sealed."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.crypto.threshold import (
    MAGIC,
    MAX_CUSTODIANS,
    MAX_PAYLOAD,
    Envelope,
    EnvelopeError,
    Recipient,
    Share,
    open_envelope,
    open_share,
    seal,
    share_from_bytes,
    share_to_bytes,
)

SECRET = b"the DC key of dc:eu, 32 bytes..."
PURPOSE = "dc-key"
OWNER = "dc:eu"
SHAPES = [(1, 1), (2, 2), (2, 3), (3, 5)]
FUZZ = settings(max_examples=200, deadline=None)


@dataclass(frozen=True)
class Custodian:
    custodian_id: str
    key: X25519PrivateKey

    def recipient(self) -> Recipient:
        public = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Recipient(self.custodian_id, public)

    def open(self, envelope: Envelope) -> Share:
        return open_share(envelope, self.custodian_id, self.key)


CUSTODIANS = tuple(Custodian(f"custodian-{i}", X25519PrivateKey.generate()) for i in range(1, 18))
OUTSIDER = Custodian("outsider", X25519PrivateKey.generate())


def seal_to(
    custodians: Sequence[Custodian],
    threshold: int,
    payload: bytes = SECRET,
    *,
    purpose: str = PURPOSE,
    owner: str = OWNER,
) -> Envelope:
    return seal(
        payload,
        purpose=purpose,
        owner=owner,
        recipients=[c.recipient() for c in custodians],
        threshold=threshold,
    )


def sealed(k: int, n: int) -> tuple[Envelope, tuple[Custodian, ...]]:
    custodians = CUSTODIANS[:n]
    return seal_to(custodians, k), custodians


T = TypeVar("T")


def subsets(items: Sequence[T], size: int) -> list[tuple[T, ...]]:
    return list(itertools.combinations(items, size))


# A 2-of-3 envelope that the fuzz tests mutate.
FUZZ_CUSTODIANS = CUSTODIANS[:3]
FUZZ_ENVELOPE = seal_to(FUZZ_CUSTODIANS, 2)
ORIGINAL = FUZZ_ENVELOPE.to_bytes()
REAL_SHARES = tuple(c.open(FUZZ_ENVELOPE) for c in FUZZ_CUSTODIANS)


@dataclass(frozen=True)
class Attempt:
    """Everything an attacker's bytes achieved: parsed, shares that opened, the plaintext."""

    parsed: Envelope | None
    shares_opened: int
    plaintext: bytes | None


def attempt(data: bytes) -> Attempt:
    """Parse ``data`` and open it with every custodian of FUZZ_ENVELOPE, as a node would.

    Only EnvelopeError is tolerated along the way; anything else fails the calling test.
    """
    try:
        envelope = Envelope.from_bytes(data)
    except EnvelopeError:
        return Attempt(None, 0, None)
    shares = []
    for custodian in FUZZ_CUSTODIANS:
        try:
            shares.append(custodian.open(envelope))
        except EnvelopeError:
            continue
    try:
        plaintext: bytes | None = open_envelope(envelope, shares)
    except EnvelopeError:
        plaintext = None
    return Attempt(envelope, len(shares), plaintext)


def assert_tampering_shows(data: bytes) -> None:
    """Bytes other than the sealed ones never open to another plaintext, always parse back to
    exactly themselves, and at least one custodian's share refuses to open."""
    assert data != ORIGINAL
    result = attempt(data)
    assert result.plaintext in (None, SECRET)
    if result.parsed is not None:
        assert result.parsed.to_bytes() == data
        assert result.shares_opened < len(FUZZ_CUSTODIANS)


# Opening


@pytest.mark.parametrize(("k", "n"), SHAPES)
def test_any_k_of_the_n_custodians_open_the_envelope(k: int, n: int) -> None:
    envelope, custodians = sealed(k, n)
    for group in subsets(custodians, k):
        shares = [c.open(envelope) for c in group]
        assert open_envelope(envelope, shares) == SECRET
        assert open_envelope(envelope, shares[::-1]) == SECRET


@pytest.mark.parametrize(("k", "n"), SHAPES)
def test_more_than_k_shares_open_the_envelope_too(k: int, n: int) -> None:
    envelope, custodians = sealed(k, n)
    assert open_envelope(envelope, [c.open(envelope) for c in custodians]) == SECRET


@pytest.mark.parametrize(("k", "n"), SHAPES)
def test_no_group_of_k_minus_one_custodians_opens_the_envelope(k: int, n: int) -> None:
    envelope, custodians = sealed(k, n)
    for group in subsets(custodians, k - 1):
        with pytest.raises(EnvelopeError):
            open_envelope(envelope, [c.open(envelope) for c in group])


@pytest.mark.parametrize(("k", "n"), [(2, 2), (2, 3), (3, 5)])
def test_the_same_share_given_many_times_counts_once(k: int, n: int) -> None:
    envelope, custodians = sealed(k, n)
    for group in subsets(custodians, k - 1):
        shares = [c.open(envelope) for c in group]
        repeated = shares + [shares[0]] * n + [group[-1].open(envelope)]
        with pytest.raises(EnvelopeError):
            open_envelope(envelope, repeated)


def test_duplicated_shares_beside_enough_distinct_ones_still_open() -> None:
    envelope, custodians = sealed(3, 5)
    first, second, third = (c.open(envelope) for c in custodians[:3])
    assert open_envelope(envelope, [first, first, second, second, third]) == SECRET


def test_a_custodian_opening_its_share_twice_gets_the_same_share() -> None:
    envelope, custodians = sealed(2, 3)
    assert custodians[1].open(envelope) == custodians[1].open(envelope)
    assert custodians[1].open(envelope).index == 2


@pytest.mark.parametrize("payload", [b"", b"x", os.urandom(MAX_PAYLOAD)], ids=["empty", "1", "max"])
def test_payloads_from_empty_to_the_limit_round_trip(payload: bytes) -> None:
    envelope = Envelope.from_bytes(seal_to(CUSTODIANS[:3], 2, payload).to_bytes())
    shares = [c.open(envelope) for c in CUSTODIANS[1:3]]
    assert open_envelope(envelope, shares) == payload


def test_sixteen_custodians_are_allowed_and_all_sixteen_can_be_required() -> None:
    custodians = CUSTODIANS[:MAX_CUSTODIANS]
    envelope = Envelope.from_bytes(seal_to(custodians, MAX_CUSTODIANS).to_bytes())
    shares = [c.open(envelope) for c in custodians]
    assert open_envelope(envelope, shares) == SECRET
    with pytest.raises(EnvelopeError):
        open_envelope(envelope, shares[1:])


def test_sealing_the_same_payload_twice_gives_unrelated_envelopes() -> None:
    first, second = seal_to(CUSTODIANS[:3], 2), seal_to(CUSTODIANS[:3], 2)
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext
    assert set(first.sealed_shares).isdisjoint(second.sealed_shares)


# Custodians


def test_a_custodian_the_envelope_does_not_name_has_no_share() -> None:
    envelope, _ = sealed(2, 3)
    with pytest.raises(EnvelopeError):
        OUTSIDER.open(envelope)
    with pytest.raises(EnvelopeError):
        open_share(envelope, CUSTODIANS[5].custodian_id, CUSTODIANS[5].key)


def test_a_named_custodian_with_another_custodians_key_cannot_open_its_share() -> None:
    envelope, custodians = sealed(2, 3)
    for named, key_holder in itertools.permutations([*custodians, OUTSIDER], 2):
        if named is OUTSIDER:
            continue
        with pytest.raises(EnvelopeError):
            open_share(envelope, named.custodian_id, key_holder.key)


def test_the_envelope_names_its_custodians_in_share_order() -> None:
    envelope, custodians = sealed(2, 3)
    assert envelope.custodians == tuple(c.custodian_id for c in custodians)
    assert [envelope.share_for(c.custodian_id)[0] for c in custodians] == [1, 2, 3]
    assert [c.open(envelope).index for c in custodians] == [1, 2, 3]


# Encoding


@pytest.mark.parametrize(("k", "n"), SHAPES)
def test_an_envelope_survives_to_bytes_and_from_bytes(k: int, n: int) -> None:
    envelope, custodians = sealed(k, n)
    data = envelope.to_bytes()
    parsed = Envelope.from_bytes(data)
    assert parsed == envelope
    assert parsed.to_bytes() == data
    assert data.startswith(MAGIC)
    assert open_envelope(parsed, [c.open(parsed) for c in custodians[:k]]) == SECRET


def test_a_long_owner_and_purpose_round_trip() -> None:
    owner = "dc:eu/user:42/phone/" + "x" * 1000
    envelope = seal_to(CUSTODIANS[:2], 2, purpose="identity", owner=owner)
    parsed = Envelope.from_bytes(envelope.to_bytes())
    assert (parsed.purpose, parsed.owner) == ("identity", owner)
    assert open_envelope(parsed, [c.open(parsed) for c in CUSTODIANS[:2]]) == SECRET


def with_header_byte(envelope: Envelope, offset: int, value: int) -> bytes:
    data = bytearray(envelope.to_bytes())
    data[offset] = value
    return bytes(data)


def test_bytes_without_the_magic_are_not_an_envelope() -> None:
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(b"SZTF" + ORIGINAL[4:])


def test_an_unknown_version_is_refused() -> None:
    for version in (0, 2, 255):
        with pytest.raises(EnvelopeError):
            Envelope.from_bytes(with_header_byte(FUZZ_ENVELOPE, 4, version))


@pytest.mark.parametrize(
    ("threshold", "custodians"),
    [
        (0, ("a", "b")),
        (3, ("a", "b")),
        (0, ()),
        (1, tuple(f"c{i}" for i in range(MAX_CUSTODIANS + 1))),
    ],
    ids=["k=0", "k>n", "n=0", "n=17"],
)
def test_a_threshold_or_custodian_count_out_of_range_is_refused(
    threshold: int, custodians: tuple[str, ...]
) -> None:
    forged = dataclasses.replace(
        FUZZ_ENVELOPE,
        threshold=threshold,
        custodians=custodians,
        sealed_shares=(b"s",) * len(custodians),
    )
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(forged.to_bytes())


def test_a_custodian_named_twice_is_refused() -> None:
    forged = dataclasses.replace(FUZZ_ENVELOPE, custodians=("a", "b", "a"))
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(forged.to_bytes())


def test_an_empty_custodian_id_is_refused() -> None:
    forged = dataclasses.replace(FUZZ_ENVELOPE, custodians=("a", "", "c"))
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(forged.to_bytes())


def test_custodian_indexes_out_of_order_are_refused() -> None:
    last_index = len(FUZZ_ENVELOPE.header()) - 1
    for index in (0, 1, 2, 4):
        with pytest.raises(EnvelopeError):
            Envelope.from_bytes(with_header_byte(FUZZ_ENVELOPE, last_index, index))


def test_a_text_field_that_is_not_ascii_is_refused() -> None:
    first_purpose_byte = 8
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(with_header_byte(FUZZ_ENVELOPE, first_purpose_byte, 0xC3))


def test_a_ciphertext_shorter_than_its_tag_is_refused() -> None:
    cut = len(FUZZ_ENVELOPE.ciphertext) - 15
    with pytest.raises(EnvelopeError):
        Envelope.from_bytes(ORIGINAL[:-cut])


def test_every_truncation_of_an_envelope_is_refused_or_does_not_open() -> None:
    for length in range(len(ORIGINAL)):
        assert_tampering_shows(ORIGINAL[:length])


def test_every_single_bit_flip_shows() -> None:
    for offset in range(len(ORIGINAL)):
        for bit in (0x01, 0x80):
            data = bytearray(ORIGINAL)
            data[offset] ^= bit
            assert_tampering_shows(bytes(data))


@FUZZ
@given(st.binary(max_size=512) | st.binary(max_size=512).map(lambda tail: MAGIC + b"\x01" + tail))
def test_arbitrary_bytes_parse_or_raise_envelope_error(data: bytes) -> None:
    try:
        envelope = Envelope.from_bytes(data)
    except EnvelopeError:
        return
    assert envelope.to_bytes() == data


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(ORIGINAL)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]))
        if kind in ("flip", "set") and at < len(data):
            byte = draw(st.integers(min_value=0, max_value=255))
            data[at] = data[at] ^ (byte or 1) if kind == "flip" else byte
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=40))
        elif kind == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=40))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=40))
    return bytes(data)


@FUZZ
@given(mutated())
def test_a_mutated_envelope_never_opens_to_another_plaintext(data: bytes) -> None:
    if data != ORIGINAL:
        assert_tampering_shows(data)


# Relabelling and moving shares


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "identity"},
        {"owner": "dc:us"},
        {"owner": "dc:eu/user:42/phone"},
        {"threshold": 1},
        {"threshold": 3},
        {"custodians": tuple(c.custodian_id for c in FUZZ_CUSTODIANS[::-1])},
    ],
    ids=["purpose", "owner", "longer owner", "lower threshold", "higher threshold", "order"],
)
def test_a_relabelled_envelope_opens_for_no_custodian(changes: dict[str, Any]) -> None:
    relabelled = Envelope.from_bytes(dataclasses.replace(FUZZ_ENVELOPE, **changes).to_bytes())
    for custodian in FUZZ_CUSTODIANS:
        with pytest.raises(EnvelopeError):
            custodian.open(relabelled)


@pytest.mark.parametrize(
    "changes",
    [{"purpose": "identity"}, {"owner": "dc:us"}, {"threshold": 1}],
    ids=["purpose", "owner", "lower threshold"],
)
def test_a_relabelled_envelope_does_not_open_even_with_the_original_shares(
    changes: dict[str, Any],
) -> None:
    shares = [c.open(FUZZ_ENVELOPE) for c in FUZZ_CUSTODIANS]
    relabelled = dataclasses.replace(FUZZ_ENVELOPE, **changes)
    for group in subsets(shares, relabelled.threshold):
        with pytest.raises(EnvelopeError):
            open_envelope(relabelled, group)


def test_a_sealed_share_moved_to_another_envelope_does_not_open() -> None:
    other = seal_to(FUZZ_CUSTODIANS, 2)
    moved = dataclasses.replace(
        other, sealed_shares=(FUZZ_ENVELOPE.sealed_shares[0], *other.sealed_shares[1:])
    )
    with pytest.raises(EnvelopeError):
        FUZZ_CUSTODIANS[0].open(Envelope.from_bytes(moved.to_bytes()))
    assert FUZZ_CUSTODIANS[1].open(moved) == FUZZ_CUSTODIANS[1].open(other)


def test_sealed_shares_swapped_between_custodians_do_not_open() -> None:
    first, second, third = FUZZ_ENVELOPE.sealed_shares
    swapped = dataclasses.replace(FUZZ_ENVELOPE, sealed_shares=(second, first, third))
    for custodian in FUZZ_CUSTODIANS[:2]:
        with pytest.raises(EnvelopeError):
            custodian.open(swapped)


def test_an_opened_share_from_another_envelope_does_not_help_open_this_one() -> None:
    other = seal_to(FUZZ_CUSTODIANS, 2)
    mine = FUZZ_CUSTODIANS[0].open(FUZZ_ENVELOPE)
    theirs = FUZZ_CUSTODIANS[1].open(other)
    with pytest.raises(EnvelopeError):
        open_envelope(FUZZ_ENVELOPE, [mine, theirs])


# Malformed and forged shares


@pytest.mark.parametrize(
    "bad",
    [Share(1, bytes(31)), Share(1, bytes(33)), Share(1), Share(0, bytes(32)), Share(4, bytes(32))],
    ids=["31 bytes", "33 bytes", "empty", "index 0", "index > n"],
)
def test_a_share_of_the_wrong_shape_is_refused_even_beside_enough_real_ones(bad: Share) -> None:
    real = list(REAL_SHARES)
    for shares in ([bad, *real], [*real, bad], [real[0], bad]):
        with pytest.raises(EnvelopeError):
            open_envelope(FUZZ_ENVELOPE, shares)


@FUZZ
@given(
    value=st.binary(min_size=32, max_size=32),
    forged_index=st.integers(min_value=1, max_value=3),
    real_index=st.integers(min_value=1, max_value=3),
)
def test_a_forged_share_with_a_real_one_never_opens(
    value: bytes, forged_index: int, real_index: int
) -> None:
    real = REAL_SHARES[real_index - 1]
    forged = Share(forged_index, value)
    with pytest.raises(EnvelopeError):
        open_envelope(FUZZ_ENVELOPE, [forged, real])
    if forged_index != real_index:
        with pytest.raises(EnvelopeError):
            open_envelope(FUZZ_ENVELOPE, [real, forged])


@FUZZ
@given(
    forged=st.lists(
        st.builds(
            Share, st.integers(min_value=1, max_value=3), st.binary(min_size=32, max_size=32)
        ),
        max_size=3,
    ),
    real=st.sets(st.integers(min_value=0, max_value=2)),
    data=st.data(),
)
def test_any_mix_of_real_and_forged_shares_opens_to_the_secret_or_not_at_all(
    forged: list[Share], real: set[int], data: st.DataObject
) -> None:
    shares = data.draw(st.permutations([*forged, *(REAL_SHARES[i] for i in real)]))
    with contextlib.suppress(EnvelopeError):
        assert open_envelope(FUZZ_ENVELOPE, shares) == SECRET


def test_a_share_survives_to_bytes_and_from_bytes() -> None:
    share = FUZZ_CUSTODIANS[2].open(FUZZ_ENVELOPE)
    plain = share_to_bytes(share)
    assert len(plain) == 33
    assert share_from_bytes(plain) == share
    assert share_from_bytes(plain, expected_index=3) == share


@pytest.mark.parametrize(
    ("plain", "expected_index"),
    [
        (b"\x01" + bytes(31), None),
        (b"\x01" + bytes(33), None),
        (b"", None),
        (b"\x00" + bytes(32), None),
        (b"\x02" + bytes(32), 1),
        (b"\x00" + bytes(32), 0),
    ],
    ids=["32 bytes", "34 bytes", "empty", "index 0", "another index", "index 0 expected"],
)
def test_a_share_of_the_wrong_length_or_index_does_not_parse(
    plain: bytes, expected_index: int | None
) -> None:
    with pytest.raises(EnvelopeError):
        share_from_bytes(plain, expected_index=expected_index)


def test_a_share_never_shows_its_value() -> None:
    share = FUZZ_CUSTODIANS[0].open(FUZZ_ENVELOPE)
    for text in (repr(share), str(share), f"{share}", repr([share])):
        assert share.value.hex() not in text
        assert repr(share.value)[2:-1] not in text
        assert share.value[:8].hex() not in text
    assert repr(share) == "Share(index=1)"


# Sealing


@pytest.mark.parametrize(
    ("threshold", "n"),
    [(0, 3), (-1, 3), (4, 3), (1, 0), (1, MAX_CUSTODIANS + 1)],
    ids=["k=0", "k<0", "k>n", "no custodians", "17 custodians"],
)
def test_seal_refuses_a_threshold_or_custodian_count_out_of_range(threshold: int, n: int) -> None:
    with pytest.raises(ValueError, match="threshold"):
        seal_to(CUSTODIANS[:n], threshold)


def test_seal_refuses_a_custodian_named_twice() -> None:
    twice = [*FUZZ_CUSTODIANS, FUZZ_CUSTODIANS[0]]
    with pytest.raises(ValueError, match="once"):
        seal_to(twice, 2)
    renamed = [c.recipient() for c in FUZZ_CUSTODIANS[:2]]
    renamed.append(Recipient(renamed[0].custodian_id, FUZZ_CUSTODIANS[2].recipient().public_key))
    with pytest.raises(ValueError, match="once"):
        seal(SECRET, purpose=PURPOSE, owner=OWNER, recipients=renamed, threshold=2)


def test_seal_refuses_a_payload_over_64_kib() -> None:
    with pytest.raises(ValueError, match="64 KiB"):
        seal_to(FUZZ_CUSTODIANS, 2, bytes(MAX_PAYLOAD + 1))


@pytest.mark.parametrize("public_key", [bytes(31), bytes(33), b""], ids=["31", "33", "empty"])
def test_seal_refuses_a_recipient_key_that_is_not_x25519(public_key: bytes) -> None:
    recipients = [FUZZ_CUSTODIANS[0].recipient(), Recipient("broken", public_key)]
    with pytest.raises(ValueError, match="32 bytes"):
        seal(SECRET, purpose=PURPOSE, owner=OWNER, recipients=recipients, threshold=1)


@pytest.mark.parametrize(
    "fields",
    [
        {"purpose": "clé"},
        {"owner": "dc:eu/user:42/téléphone"},
        {"purpose": "p" * 256},
        {"owner": "o" * 65536},
        {"custodian_id": "custodian-é"},
        {"custodian_id": ""},
        {"custodian_id": "c" * 256},
    ],
    ids=[
        "non-ascii purpose",
        "non-ascii owner",
        "purpose over 255",
        "owner over 65535",
        "non-ascii custodian",
        "empty custodian",
        "custodian over 255",
    ],
)
def test_seal_refuses_labels_the_envelope_could_not_be_read_back_with(
    fields: dict[str, str],
) -> None:
    recipients = [c.recipient() for c in FUZZ_CUSTODIANS[:2]]
    if "custodian_id" in fields:
        recipients[1] = dataclasses.replace(recipients[1], custodian_id=fields["custodian_id"])
    with pytest.raises(ValueError, match="ASCII and fit their lengths"):
        seal(
            SECRET,
            purpose=fields.get("purpose", PURPOSE),
            owner=fields.get("owner", OWNER),
            recipients=recipients,
            threshold=2,
        )


def test_labels_at_their_length_limits_round_trip() -> None:
    recipients = [c.recipient() for c in FUZZ_CUSTODIANS[:2]]
    recipients[0] = dataclasses.replace(recipients[0], custodian_id="c" * 255)
    envelope = seal(
        SECRET, purpose="p" * 255, owner="o" * 65535, recipients=recipients, threshold=1
    )
    assert Envelope.from_bytes(envelope.to_bytes()) == envelope
