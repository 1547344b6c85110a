"""Signed tree heads: the signature covers size, time and root under a domain prefix, and
anything else (another key, any changed field, a malformed field) fails with HeadError."""

from __future__ import annotations

import hashlib
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from samizdat.crypto.custody_keys import b64
from samizdat.crypto.signing_keys import SigningKey
from samizdat.transparency.heads import (
    HEAD_PREFIX,
    HeadError,
    TreeHead,
    head_message,
    parse_head,
    sign_head,
    verify_head,
)

ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.create(tmp_path_factory.mktemp("log") / "log.key")


@pytest.fixture(scope="module")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.create(tmp_path_factory.mktemp("other") / "log.key")


def test_the_signed_message_is_the_prefix_and_the_canonical_json_of_three_fields() -> None:
    message = head_message(7, 1_800_000_000_000, ROOT)
    assert message.startswith(HEAD_PREFIX)
    assert orjson.loads(message[len(HEAD_PREFIX) :]) == {
        "root_hash": b64(ROOT),
        "timestamp_ms": 1_800_000_000_000,
        "tree_size": 7,
    }
    assert message[len(HEAD_PREFIX) :].startswith(b'{"root_hash"')  # sorted keys


def test_a_signed_head_verifies_with_its_key(key: SigningKey) -> None:
    head = sign_head(7, 1_800_000_000_000, ROOT, key.sign)
    assert (head.tree_size, head.timestamp_ms, head.root()) == (7, 1_800_000_000_000, ROOT)
    verify_head(head, key.public)


def test_another_key_does_not_verify(key: SigningKey, other_key: SigningKey) -> None:
    with pytest.raises(HeadError, match="signature"):
        verify_head(sign_head(7, 1, ROOT, key.sign), other_key.public)


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 8},
        {"timestamp_ms": 2},
        {"root_hash": b64(hashlib.sha256(b"other").digest())},
    ],
)
def test_changing_any_signed_field_breaks_the_signature(
    key: SigningKey, change: dict[str, object]
) -> None:
    head = sign_head(7, 1, ROOT, key.sign)
    with pytest.raises(HeadError):
        verify_head(head.model_copy(update=change), key.public)


def test_a_signature_over_the_same_json_without_the_prefix_is_refused(key: SigningKey) -> None:
    bare = head_message(7, 1, ROOT)[len(HEAD_PREFIX) :]
    head = TreeHead(tree_size=7, timestamp_ms=1, root_hash=b64(ROOT), signature=b64(key.sign(bare)))
    with pytest.raises(HeadError):
        verify_head(head, key.public)


@pytest.mark.parametrize(
    "fields",
    [
        {"root_hash": b64(b"short")},
        {"root_hash": "not base64!"},
        {"signature": b64(b"x" * 63)},
        {"tree_size": -1},
        {"tree_size": 2**63},
        {"tree_size": "7"},
        {"timestamp_ms": 1.5},
        {"extra": 1},
    ],
)
def test_malformed_heads_do_not_parse(key: SigningKey, fields: dict[str, object]) -> None:
    good = sign_head(7, 1, ROOT, key.sign).model_dump()
    with pytest.raises(ValidationError):
        TreeHead.model_validate({**good, **fields})


def test_parse_head_ignores_extra_keys_but_raises_head_error_on_bad_fields(
    key: SigningKey,
) -> None:
    head = sign_head(7, 1, ROOT, key.sign)
    served = {**head.model_dump(), "log_key": key.public_text()}
    assert parse_head(served) == head
    bad_heads: list[object] = [[], "head", {**served, "tree_size": "7"}, {"tree_size": 7}]
    for bad in bad_heads:
        with pytest.raises(HeadError):
            parse_head(bad)


def test_head_message_refuses_a_root_of_the_wrong_length_or_a_negative_size() -> None:
    with pytest.raises(HeadError):
        head_message(1, 1, b"short")
    with pytest.raises(HeadError):
        head_message(-1, 1, ROOT)


def test_verify_head_reports_a_malformed_field_as_head_error(key: SigningKey) -> None:
    forged = TreeHead.model_construct(tree_size=1, timestamp_ms=1, root_hash="@", signature="")
    with pytest.raises(HeadError):
        verify_head(forged, key.public)


def test_a_key_file_from_disk_signs_heads_that_its_public_key_verifies(tmp_path: Path) -> None:
    written = SigningKey.create(tmp_path / "k")
    verify_head(sign_head(1, 1, ROOT, SigningKey.load(tmp_path / "k").sign), written.public)
