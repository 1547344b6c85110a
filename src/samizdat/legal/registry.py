"""The courts the operator recognises: per jurisdiction, each court's Ed25519 public key.

Stored as one JSON file (the server keeps it at ``DATA/legal/courts.json``)::

    {"CH": {"Federal Criminal Court": "<base64url public key>"}, "DE": {...}}

A missing file is an empty registry; a malformed one is an error naming the file, never an
empty registry (an operator must not lose their courts silently). A public key may be
registered only once in the whole registry: one key signing as two courts of two
jurisdictions would let a single signer pass for several jurisdictions, which is exactly what
the rule "orders from several jurisdictions" forbids.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import orjson

from samizdat.core.jurisdictions import KNOWN_JURISDICTIONS
from samizdat.crypto.custody_keys import KeyFormatError
from samizdat.crypto.private_files import write_private
from samizdat.crypto.signing_keys import decode_public_key, encode_public_key
from samizdat.legal.files import TooLarge, read_capped

#: Where the server keeps the registry, relative to its data directory.
REGISTRY_FILE = Path("legal") / "courts.json"
MAX_COURT_NAME = 200  # as CourtOrderBody.court
#: A registry file longer than this is refused unread (thousands of courts fit easily).
MAX_REGISTRY_BYTES = 4 * 1024 * 1024


class RegistryError(ValueError):
    """The registry file, or a court to add, is invalid; the message says which and why."""


class CourtNotFound(RegistryError, LookupError):
    """The named court is not registered in that jurisdiction."""


@dataclass(frozen=True, slots=True)
class RegisteredCourt:
    jurisdiction: str
    name: str
    public_key: bytes

    @property
    def public_text(self) -> str:
        return encode_public_key(self.public_key)


def check_jurisdiction(code: str) -> str:
    """An ISO 3166-1 alpha-2 code (or a user-assigned one such as XA); RegistryError if not."""
    if (
        len(code) != 2
        or not code.isascii()
        or not code.isupper()
        or code not in KNOWN_JURISDICTIONS
    ):
        raise RegistryError(
            f"{code[:16]!r} is not an ISO 3166-1 alpha-2 country code (two capital letters, "
            "e.g. CH)"
        )
    return code


def check_court_name(name: str) -> str:
    """1-200 characters, no control characters, no surrounding spaces; RegistryError if not."""
    if not 1 <= len(name) <= MAX_COURT_NAME:
        raise RegistryError(f"a court's name has 1-{MAX_COURT_NAME} characters")
    if name != name.strip():
        raise RegistryError("a court's name does not start or end with a space")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise RegistryError("a court's name holds no control or invisible format characters")
    return name


class CourtRegistry:
    """The recognised courts; ``load`` it, change it, ``save`` it."""

    def __init__(self) -> None:
        self._courts: dict[str, dict[str, bytes]] = {}

    @classmethod
    def load(cls, path: Path) -> CourtRegistry:
        """The registry in ``path``; empty if the file does not exist.

        Raises RegistryError naming the file if it cannot be read or is not a valid registry
        (bad JSON, wrong shape, a bad jurisdiction, name or key, or a key registered twice).
        """
        try:
            data = read_capped(path, MAX_REGISTRY_BYTES)
        except OSError as exc:
            raise RegistryError(f"cannot read the court registry {path}: {exc.strerror}") from exc
        except TooLarge:
            raise RegistryError(
                f"the court registry {path} is over {MAX_REGISTRY_BYTES} bytes"
            ) from None
        if data is None:
            return cls()
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise RegistryError(f"the court registry {path} is not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise RegistryError(f"the court registry {path} is not a JSON object")
        registry = cls()
        for jurisdiction, courts in parsed.items():
            if not isinstance(courts, dict):
                raise RegistryError(
                    f"the court registry {path}: {jurisdiction!r} does not map court names to keys"
                )
            for name, key in courts.items():
                if not isinstance(key, str):
                    raise RegistryError(
                        f"the court registry {path}: the key of {jurisdiction}/{name} is not "
                        "a string"
                    )
                try:
                    registry.add(jurisdiction, name, key)
                except RegistryError as exc:
                    raise RegistryError(f"the court registry {path}: {exc}") from exc
        return registry

    def save(self, path: Path) -> None:
        """Write the registry to ``path`` atomically (mode 0600, its directory 0700 if new)."""
        data = {
            jurisdiction: {name: encode_public_key(key) for name, key in sorted(courts.items())}
            for jurisdiction, courts in sorted(self._courts.items())
            if courts
        }
        write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")

    def add(self, jurisdiction: str, name: str, public_key_text: str) -> RegisteredCourt:
        """Recognise a court. Adding the same court with the same key again changes nothing.

        Raises RegistryError for a bad jurisdiction code, name or key, for a court already
        registered with another key (remove it first: a key change is deliberate), and for a
        key already registered for another court.
        """
        check_jurisdiction(jurisdiction)
        check_court_name(name)
        try:
            key = decode_public_key(public_key_text)
        except KeyFormatError as exc:
            raise RegistryError(f"not a court key: {exc}") from exc
        existing = self._courts.get(jurisdiction, {}).get(name)
        if existing is not None and existing != key:
            raise RegistryError(
                f"{name} ({jurisdiction}) is registered with another key; remove it first"
            )
        for other in self.courts():
            if other.public_key == key and (other.jurisdiction, other.name) != (
                jurisdiction,
                name,
            ):
                raise RegistryError(
                    f"this key is already registered for {other.name} ({other.jurisdiction}); "
                    "one key may sign for one court only"
                )
        self._courts.setdefault(jurisdiction, {})[name] = key
        return RegisteredCourt(jurisdiction, name, key)

    def remove(self, jurisdiction: str, name: str) -> RegisteredCourt:
        """Stop recognising a court; CourtNotFound if it is not registered."""
        courts = self._courts.get(jurisdiction, {})
        key = courts.pop(name, None)
        if key is None:
            raise CourtNotFound(f"no court named {name!r} is registered in {jurisdiction}")
        if not courts:
            del self._courts[jurisdiction]
        return RegisteredCourt(jurisdiction, name, key)

    def courts(self) -> list[RegisteredCourt]:
        """Every registered court, sorted by jurisdiction then name."""
        return [
            RegisteredCourt(jurisdiction, name, key)
            for jurisdiction, courts in sorted(self._courts.items())
            for name, key in sorted(courts.items())
        ]

    def key_of(self, jurisdiction: str, name: str) -> bytes | None:
        """The public key of a registered court, or None."""
        return self._courts.get(jurisdiction, {}).get(name)

    def jurisdictions(self) -> frozenset[str]:
        return frozenset(self._courts)

    def __len__(self) -> int:
        return sum(len(courts) for courts in self._courts.values())

    def __repr__(self) -> str:
        return f"CourtRegistry({len(self)} court(s))"


__all__ = [
    "MAX_COURT_NAME",
    "MAX_REGISTRY_BYTES",
    "REGISTRY_FILE",
    "CourtNotFound",
    "CourtRegistry",
    "RegisteredCourt",
    "RegistryError",
    "check_court_name",
    "check_jurisdiction",
]
