"""The operator's registry of recognised courts: per jurisdiction, each court's public key,
kept in one JSON file that is never silently lost or half-written."""

from __future__ import annotations

import stat
from pathlib import Path

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from samizdat.crypto.custody_keys import b64
from samizdat.crypto.signing_keys import SigningKey
from samizdat.legal.registry import (
    REGISTRY_FILE,
    CourtNotFound,
    CourtRegistry,
    RegisteredCourt,
    RegistryError,
)


def new_public_key() -> str:
    return SigningKey(Ed25519PrivateKey.generate()).public_text()


CH_KEY = new_public_key()
DE_KEY = new_public_key()
XA_KEY = new_public_key()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / REGISTRY_FILE


def test_a_missing_file_is_an_empty_registry(path: Path) -> None:
    registry = CourtRegistry.load(path)
    assert registry.courts() == []
    assert len(registry) == 0
    assert registry.key_of("CH", "Federal Criminal Court") is None


def test_courts_are_saved_and_loaded_back(path: Path) -> None:
    registry = CourtRegistry()
    registry.add("DE", "Bundesgerichtshof", DE_KEY)
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    registry.add("XA", "Test Court", XA_KEY)
    registry.save(path)

    loaded = CourtRegistry.load(path)
    assert [(c.jurisdiction, c.name) for c in loaded.courts()] == [
        ("CH", "Federal Criminal Court"),
        ("DE", "Bundesgerichtshof"),
        ("XA", "Test Court"),
    ]
    assert loaded.key_of("CH", "Federal Criminal Court") == registry.key_of(
        "CH", "Federal Criminal Court"
    )
    assert loaded.courts()[0].public_text == CH_KEY
    assert loaded.jurisdictions() == {"CH", "DE", "XA"}
    assert orjson.loads(path.read_bytes()) == {
        "CH": {"Federal Criminal Court": CH_KEY},
        "DE": {"Bundesgerichtshof": DE_KEY},
        "XA": {"Test Court": XA_KEY},
    }


def test_the_registry_file_is_readable_only_by_its_owner(path: Path) -> None:
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    registry.save(path)
    registry.save(path)  # replaced atomically, still private
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_court_is_looked_up_by_jurisdiction_and_name() -> None:
    registry = CourtRegistry()
    court = registry.add("CH", "Federal Criminal Court", CH_KEY)
    assert court == RegisteredCourt("CH", "Federal Criminal Court", court.public_key)
    assert registry.key_of("CH", "Federal Criminal Court") == court.public_key
    assert registry.key_of("DE", "Federal Criminal Court") is None
    assert registry.key_of("CH", "federal criminal court") is None


def test_removing_a_court_forgets_it() -> None:
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    removed = registry.remove("CH", "Federal Criminal Court")
    assert removed.name == "Federal Criminal Court"
    assert registry.courts() == []
    assert registry.jurisdictions() == frozenset()


def test_removing_an_absent_court_is_a_typed_error() -> None:
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    with pytest.raises(CourtNotFound, match="no court named 'Other Court'"):
        registry.remove("CH", "Other Court")
    with pytest.raises(LookupError):
        registry.remove("DE", "Federal Criminal Court")


def test_adding_the_same_court_again_changes_nothing() -> None:
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    assert len(registry) == 1


def test_a_court_keeps_its_key_until_it_is_removed() -> None:
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    with pytest.raises(RegistryError, match="registered with another key; remove it first"):
        registry.add("CH", "Federal Criminal Court", DE_KEY)


def test_one_key_cannot_sign_for_two_courts() -> None:
    # Otherwise one signer could pass for several jurisdictions.
    registry = CourtRegistry()
    registry.add("CH", "Federal Criminal Court", CH_KEY)
    with pytest.raises(RegistryError, match="already registered for Federal Criminal Court"):
        registry.add("DE", "Bundesgerichtshof", CH_KEY)


@pytest.mark.parametrize("code", ["ch", "CHE", "C", "", "ZX", "1A", "ÄB", "EU"])
def test_a_jurisdiction_is_an_iso_country_code(code: str) -> None:
    with pytest.raises(RegistryError, match="ISO 3166-1 alpha-2"):
        CourtRegistry().add(code, "Some Court", CH_KEY)


@pytest.mark.parametrize(
    "name", ["", "x" * 201, " Leading space", "Trailing space ", "Two\nlines", "Zero\u200bwidth"]
)
def test_a_court_name_is_one_clean_line_of_up_to_200_characters(name: str) -> None:
    with pytest.raises(RegistryError, match="court's name"):
        CourtRegistry().add("CH", name, CH_KEY)


@pytest.mark.parametrize(
    "key",
    ["", "abc", b64(b"\x01" * 31), b64(b"\x01" * 33), "schlüssel", "szc1:" + CH_KEY],
)
def test_a_court_key_is_a_32_byte_ed25519_public_key(key: str) -> None:
    with pytest.raises(RegistryError, match="not a court key"):
        CourtRegistry().add("CH", "Federal Criminal Court", key)


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"CH": ["Federal Criminal Court"]}',
        b'{"CH": {"Federal Criminal Court": 42}}',
        b'{"CH": {"Federal Criminal Court": "abc"}}',
        b'{"ch": {"Federal Criminal Court": "' + CH_KEY.encode() + b'"}}',
        b'{"CH": {"A Court": "'
        + CH_KEY.encode()
        + b'"}, "DE": {"B Court": "'
        + CH_KEY.encode()
        + b'"}}',
    ],
)
def test_a_malformed_registry_file_is_an_error_naming_the_file(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(RegistryError, match="the court registry") as caught:
        CourtRegistry.load(path)
    assert str(path) in str(caught.value)


def test_an_unreadable_registry_file_is_an_error_naming_the_file(path: Path) -> None:
    path.mkdir(parents=True)  # a directory where the file should be
    with pytest.raises(RegistryError, match="cannot read") as caught:
        CourtRegistry.load(path)
    assert str(path) in str(caught.value)
