"""Custody keys: public identities survive their string form and malformed ones are refused; key
files are private, never overwritten and loaded back to the same keys; signatures verify and a
tampered one is simply false; a grant opens only for its requester, its request and its place,
and no key object ever shows its private bytes."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from samizdat.crypto.custody_keys import (
    CUSTODIAN_PREFIX,
    NODE_PREFIX,
    CustodianKeys,
    CustodianPublic,
    KeyFormatError,
    NodeKey,
    RequesterKey,
    decode_node_key,
    digest,
    encode_node_key,
    grant_share,
    verify_signature,
)
from samizdat.crypto.threshold import (
    Envelope,
    EnvelopeError,
    Recipient,
    Share,
    open_envelope,
    seal,
)

SECRET = b"the DC key of dc:eu, 32 bytes..."
REQUEST = b'{"dc":"eu","node":"szn1:...","nonce":"n-1"}'
MESSAGE = b"unseal dc:eu, request n-1"
FUZZ = settings(max_examples=200, deadline=None)

CUSTODIANS = tuple(CustodianKeys.generate() for _ in range(3))
IDS = ("alice", "bob", "carol")
ENVELOPE = seal(
    SECRET,
    purpose="dc-key",
    owner="dc:eu",
    recipients=[keys.public.recipient(cid) for keys, cid in zip(CUSTODIANS, IDS, strict=True)],
    threshold=2,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def a_share(index: int = 2) -> Share:
    return CUSTODIANS[index - 1].open_share(ENVELOPE, IDS[index - 1])


def assert_hides(secret: bytes, text: str) -> None:
    """``text`` shows ``secret`` in none of the forms a careless repr would use."""
    for form in (secret.hex(), secret.hex().upper(), b64(secret), repr(secret)[2:-1]):
        assert form not in text
    assert secret[:8].hex() not in text


# Custodian public identities


def test_a_custodian_public_key_survives_its_string_form() -> None:
    public = CUSTODIANS[0].public
    text = public.encode()
    assert text.startswith(CUSTODIAN_PREFIX)
    assert text.isascii()
    assert "=" not in text
    assert CustodianPublic.decode(text) == public


def test_a_custodian_public_key_names_its_custodian_as_a_recipient() -> None:
    public = CUSTODIANS[1].public
    assert public.recipient("bob") == Recipient("bob", public.encryption_key)
    assert len(public.encryption_key) == len(public.signing_key) == 32


@pytest.mark.parametrize(
    "text",
    [
        "",
        "szc1",
        "szn1:" + b64(bytes(64)),
        "SZC1:" + b64(bytes(64)),
        " szc1:" + b64(bytes(64)),
        b64(bytes(64)),
    ],
    ids=["empty", "prefix only without colon", "node prefix", "upper case", "space", "no prefix"],
)
def test_a_custodian_key_without_its_prefix_is_refused(text: str) -> None:
    with pytest.raises(KeyFormatError, match="szc1:"):
        CustodianPublic.decode(text)


@pytest.mark.parametrize(
    "body", ["a", "!!!!", "é" * 4, b64(bytes(64))[:-1] + "%", "A" * 85 + "==="], ids=repr
)
def test_a_custodian_key_that_is_not_base64url_is_refused(body: str) -> None:
    with pytest.raises(KeyFormatError):
        CustodianPublic.decode(CUSTODIAN_PREFIX + body)


@pytest.mark.parametrize("size", [0, 32, 63, 65, 96])
def test_a_custodian_key_of_the_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(KeyFormatError, match="64 bytes"):
        CustodianPublic.decode(CUSTODIAN_PREFIX + b64(bytes(size)))


@FUZZ
@given(st.text(max_size=120) | st.text(max_size=120).map(lambda tail: CUSTODIAN_PREFIX + tail))
def test_decoding_any_text_gives_a_custodian_key_or_a_key_format_error(text: str) -> None:
    try:
        public = CustodianPublic.decode(text)
    except KeyFormatError:
        return
    assert len(public.encryption_key) == len(public.signing_key) == 32


def test_a_key_format_error_is_a_value_error() -> None:
    assert issubclass(KeyFormatError, ValueError)


# Node public identities


def test_a_node_public_key_survives_its_string_form(tmp_path: Path) -> None:
    node = NodeKey.load_or_create(tmp_path / "node.key")
    assert node.encoded() == encode_node_key(node.public)
    assert node.encoded().startswith(NODE_PREFIX)
    assert decode_node_key(node.encoded()) == node.public


@pytest.mark.parametrize(
    "text",
    [
        "szc1:" + b64(bytes(32)),
        b64(bytes(32)),
        NODE_PREFIX + "!",
        NODE_PREFIX + b64(bytes(31)),
        NODE_PREFIX + b64(bytes(33)),
        NODE_PREFIX,
    ],
    ids=["custodian prefix", "no prefix", "not base64", "31 bytes", "33 bytes", "empty body"],
)
def test_a_malformed_node_key_is_refused(text: str) -> None:
    with pytest.raises(KeyFormatError):
        decode_node_key(text)


@FUZZ
@given(st.text(max_size=60) | st.text(max_size=60).map(lambda tail: NODE_PREFIX + tail))
def test_decoding_any_text_gives_a_node_key_or_a_key_format_error(text: str) -> None:
    with contextlib.suppress(KeyFormatError):
        assert len(decode_node_key(text)) == 32


# Custodian key files


def test_custodian_keys_saved_and_loaded_are_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "custody" / "alice.key"
    CUSTODIANS[0].save(path)
    loaded = CustodianKeys.load(path)
    assert loaded.public == CUSTODIANS[0].public
    assert loaded.open_share(ENVELOPE, "alice") == a_share(1)
    assert CUSTODIANS[0].public.verify(loaded.sign(MESSAGE), MESSAGE)


def test_a_custodian_key_file_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    CustodianKeys.generate().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == CustodianKeys.FILE_BYTES


def test_saving_custodian_keys_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    CUSTODIANS[0].save(path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        CUSTODIANS[1].save(path)
    assert path.read_bytes() == before
    assert CustodianKeys.load(path).public == CUSTODIANS[0].public


def test_a_refused_save_leaves_no_stray_file_behind(tmp_path: Path) -> None:
    path = tmp_path / "alice.key"
    CUSTODIANS[0].save(path)
    with pytest.raises(FileExistsError):
        CUSTODIANS[1].save(path)
    assert list(tmp_path.iterdir()) == [path]


def test_a_key_files_new_directory_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "custodian" / "alice.key"
    CustodianKeys.generate().save(path)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_saving_custodian_keys_over_any_existing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a key")
    with pytest.raises(FileExistsError):
        CustodianKeys.generate().save(path)
    assert path.read_bytes() == b"not a key"


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_a_custodian_key_file_of_the_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "alice.key"
    path.write_bytes(bytes(size))
    with pytest.raises(KeyFormatError, match="64-byte"):
        CustodianKeys.load(path)


def test_a_missing_custodian_key_file_is_a_key_format_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFormatError, match="cannot read"):
        CustodianKeys.load(tmp_path / "absent.key")


def test_custodian_keys_never_show_their_private_bytes(tmp_path: Path) -> None:
    keys = CustodianKeys.generate()
    keys.save(tmp_path / "k")
    private = (tmp_path / "k").read_bytes()
    for text in (repr(keys), str(keys), f"{keys!r}", repr([keys])):
        assert_hides(private[:32], text)
        assert_hides(private[32:], text)
        assert_hides(private, text)
    assert keys.public.encode() in repr(keys)


# Node keys


def test_a_node_key_is_created_once_and_then_loaded(tmp_path: Path) -> None:
    path = tmp_path / "node" / "node.key"
    created = NodeKey.load_or_create(path)
    contents = path.read_bytes()
    loaded = NodeKey.load_or_create(path)
    assert loaded.public == created.public
    assert path.read_bytes() == contents
    assert verify_signature(created.public, loaded.sign(MESSAGE), MESSAGE)


def test_a_node_key_file_is_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "node.key"
    NodeKey.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 32


def test_nodes_with_separate_files_have_separate_keys(tmp_path: Path) -> None:
    first = NodeKey.load_or_create(tmp_path / "a.key")
    second = NodeKey.load_or_create(tmp_path / "b.key")
    assert first.public != second.public


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_a_node_key_file_of_the_wrong_size_is_refused(tmp_path: Path, size: int) -> None:
    path = tmp_path / "node.key"
    path.write_bytes(bytes(size))
    with pytest.raises(KeyFormatError, match="32-byte"):
        NodeKey.load_or_create(path)
    assert path.read_bytes() == bytes(size)


def test_a_node_key_never_shows_its_private_bytes(tmp_path: Path) -> None:
    node = NodeKey.load_or_create(tmp_path / "node.key")
    private = (tmp_path / "node.key").read_bytes()
    for text in (repr(node), str(node), repr([node])):
        assert_hides(private, text)
    assert node.encoded() in repr(node)


# Signatures


def test_a_custodians_signature_verifies_with_its_public_key() -> None:
    signature = CUSTODIANS[0].sign(MESSAGE)
    assert CUSTODIANS[0].public.verify(signature, MESSAGE)
    assert verify_signature(CUSTODIANS[0].public.signing_key, signature, MESSAGE)


def test_a_signature_fails_on_another_message_or_another_key() -> None:
    signature = CUSTODIANS[0].sign(MESSAGE)
    assert not CUSTODIANS[0].public.verify(signature, MESSAGE + b"!")
    assert not CUSTODIANS[0].public.verify(signature, b"")
    assert not CUSTODIANS[1].public.verify(signature, MESSAGE)


def test_a_signature_with_any_bit_flipped_fails() -> None:
    signature = CUSTODIANS[0].sign(MESSAGE)
    for offset in range(len(signature)):
        for bit in (0x01, 0x80):
            tampered = bytearray(signature)
            tampered[offset] ^= bit
            assert not CUSTODIANS[0].public.verify(bytes(tampered), MESSAGE)


def test_a_message_with_any_bit_flipped_fails() -> None:
    signature = CUSTODIANS[0].sign(MESSAGE)
    for offset in range(len(MESSAGE)):
        tampered = bytearray(MESSAGE)
        tampered[offset] ^= 0x01
        assert not CUSTODIANS[0].public.verify(signature, bytes(tampered))


@pytest.mark.parametrize(
    ("public_key", "signature"),
    [
        (bytes(31), bytes(64)),
        (bytes(33), bytes(64)),
        (b"", b""),
        (CUSTODIANS[0].public.signing_key[:31], CUSTODIANS[0].sign(MESSAGE)),
        (CUSTODIANS[0].public.signing_key, CUSTODIANS[0].sign(MESSAGE)[:63]),
        (CUSTODIANS[0].public.signing_key, CUSTODIANS[0].sign(MESSAGE) + b"\x00"),
        (CUSTODIANS[0].public.signing_key, b""),
    ],
    ids=[
        "31-byte key",
        "33-byte key",
        "empty",
        "truncated key",
        "63-byte signature",
        "65-byte signature",
        "empty signature",
    ],
)
def test_a_malformed_key_or_signature_is_false_and_never_raises(
    public_key: bytes, signature: bytes
) -> None:
    assert verify_signature(public_key, signature, MESSAGE) is False


@FUZZ
@given(public_key=st.binary(max_size=40), signature=st.binary(max_size=80), message=st.binary())
def test_verifying_arbitrary_bytes_never_raises(
    public_key: bytes, signature: bytes, message: bytes
) -> None:
    assert verify_signature(public_key, signature, message) in (True, False)


def test_a_node_signature_verifies_with_its_public_key_only(tmp_path: Path) -> None:
    node = NodeKey.load_or_create(tmp_path / "node.key")
    signature = node.sign(MESSAGE)
    assert verify_signature(decode_node_key(node.encoded()), signature, MESSAGE)
    assert not verify_signature(CUSTODIANS[0].public.signing_key, signature, MESSAGE)
    assert not verify_signature(node.public, signature, MESSAGE[:-1])


# Grants


def test_a_granted_share_opens_for_its_requester_and_request() -> None:
    requester = RequesterKey()
    share = a_share(2)
    grant = grant_share(share, requester.public, digest(REQUEST))
    assert requester.open_grant(grant, digest(REQUEST), expected_index=2) == share


def test_grants_from_k_custodians_open_the_envelope() -> None:
    requester = RequesterKey()
    request_digest = digest(REQUEST)
    envelope = Envelope.from_bytes(ENVELOPE.to_bytes())
    grants = [
        (index, grant_share(keys.open_share(envelope, cid), requester.public, request_digest))
        for index, (keys, cid) in enumerate(zip(CUSTODIANS, IDS, strict=True), start=1)
        if index != 2
    ]
    shares = [
        requester.open_grant(grant, request_digest, expected_index=index) for index, grant in grants
    ]
    assert open_envelope(envelope, shares) == SECRET


def test_each_requester_key_is_fresh() -> None:
    assert len({RequesterKey().public for _ in range(5)}) == 5
    assert len(RequesterKey().public) == 32


def test_a_grant_does_not_open_for_another_request() -> None:
    requester = RequesterKey()
    grant = grant_share(a_share(2), requester.public, digest(REQUEST))
    for other in (digest(REQUEST + b" "), b"", digest(REQUEST)[:-1], REQUEST):
        with pytest.raises(EnvelopeError):
            requester.open_grant(grant, other, expected_index=2)


def test_a_grant_does_not_open_for_another_requester() -> None:
    grant = grant_share(a_share(2), RequesterKey().public, digest(REQUEST))
    with pytest.raises(EnvelopeError):
        RequesterKey().open_grant(grant, digest(REQUEST), expected_index=2)


def test_a_grant_with_any_bit_flipped_does_not_open() -> None:
    requester = RequesterKey()
    grant = grant_share(a_share(2), requester.public, digest(REQUEST))
    for offset in range(len(grant)):
        for bit in (0x01, 0x80):
            tampered = bytearray(grant)
            tampered[offset] ^= bit
            with pytest.raises(EnvelopeError):
                requester.open_grant(bytes(tampered), digest(REQUEST), expected_index=2)


def test_a_truncated_or_extended_grant_does_not_open() -> None:
    requester = RequesterKey()
    grant = grant_share(a_share(2), requester.public, digest(REQUEST))
    for damaged in [grant[:length] for length in range(len(grant))] + [grant + b"\x00"]:
        with pytest.raises(EnvelopeError):
            requester.open_grant(damaged, digest(REQUEST), expected_index=2)


@FUZZ
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_a_grant_raise_envelope_error(grant: bytes) -> None:
    with pytest.raises(EnvelopeError):
        RequesterKey().open_grant(grant, digest(REQUEST), expected_index=1)


@pytest.mark.parametrize("expected_index", [1, 3, 0, 4])
def test_a_grant_for_another_place_in_the_envelope_is_refused(expected_index: int) -> None:
    requester = RequesterKey()
    grant = grant_share(a_share(2), requester.public, digest(REQUEST))
    with pytest.raises(EnvelopeError):
        requester.open_grant(grant, digest(REQUEST), expected_index=expected_index)


@pytest.mark.parametrize("bad", [Share(2, bytes(31)), Share(2, bytes(33)), Share(0, bytes(32))])
def test_a_grant_carrying_a_malformed_share_is_refused_when_opened(bad: Share) -> None:
    requester = RequesterKey()
    grant = grant_share(bad, requester.public, digest(REQUEST))
    with pytest.raises(EnvelopeError):
        requester.open_grant(grant, digest(REQUEST), expected_index=bad.index)


@pytest.mark.parametrize(
    "requester_key",
    [bytes(31), bytes(33), b"", RequesterKey().public[:31], bytes(32), b"\x01" + bytes(31)],
    ids=["31 bytes", "33 bytes", "empty", "truncated", "all zero", "low order"],
)
def test_grant_share_refuses_a_requester_key_that_is_not_usable(requester_key: bytes) -> None:
    with pytest.raises(EnvelopeError):
        grant_share(a_share(2), requester_key, digest(REQUEST))


def test_a_grant_never_contains_the_share_in_the_clear() -> None:
    share = a_share(2)
    grant = grant_share(share, RequesterKey().public, digest(REQUEST))
    assert share.value not in grant
    assert share.value[:16] not in grant
    assert share.value[16:] not in grant


def test_digest_is_sha256() -> None:
    assert digest(REQUEST) == hashlib.sha256(REQUEST).digest()
