"""A client's secret-chat state on disk, readable only with its passphrase (or OS keyring).

A vault is a directory of sealed files under one 256-bit key. The key comes from the
passphrase through argon2id (RFC 9106's second recommendation: t=3, 64 MiB), derived once
when the vault is opened, or is a random key kept in the operating system's keyring. The
header (``vault.json``) holds the salt and cost and a check tag that tells a wrong
passphrase from a damaged file; every sealed file is AES-GCM with the header and its own
name as associated data, so a weakened header or files swapped between names are refused.

Losing the directory, or the passphrase, loses secret history: by design there is no copy
anywhere else.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson
from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from samizdat.crypto.private_files import write_private
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.protocol.errors import AuthError, ErrorCode

HEADER_FILE = "vault.json"
DEVICE_SECTION = "device"
_AD = b"samizdat-vault-v2"
_NONCE = 12


@dataclass(frozen=True, slots=True)
class KdfCost:
    """argon2id cost; the defaults follow RFC 9106's second recommendation (64 MiB)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1


class VaultLocked(AuthError):
    """The passphrase is wrong, the keyring has no key for it, or a file was altered."""


def _locked(message: str) -> VaultLocked:
    return VaultLocked(message, code=ErrorCode.UNAUTHORIZED)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class KeyringBackend(Protocol):
    """The part of the ``keyring`` module a vault uses (a test passes its own)."""

    def get_password(self, service_name: str, username: str) -> str | None: ...

    def set_password(self, service_name: str, username: str, password: str) -> None: ...


KEYRING_SERVICE = "samizdat-vault"


class Vault:
    """Open with ``Vault.open`` (passphrase) or ``Vault.open_with_keyring``."""

    def __init__(self, directory: Path, key: bytes, header: dict[str, Any]) -> None:
        self.directory = directory
        self._aead = AESGCM(key)
        self._header_ad = orjson.dumps(header, option=orjson.OPT_SORT_KEYS)

    # --- opening -----------------------------------------------------------------------------
    @staticmethod
    def exists(directory: Path) -> bool:
        return (directory / HEADER_FILE).exists()

    @classmethod
    def uses_keyring(cls, directory: Path) -> bool:
        """Whether the vault in ``directory`` is unlocked by the OS keyring (not a passphrase);
        VaultLocked if its header is damaged."""
        stored = cls._read_header(directory)
        return stored is not None and stored[0].get("kdf") == "keyring"

    @classmethod
    def open(cls, directory: Path, passphrase: str, *, cost: KdfCost | None = None) -> Vault:
        """Open the vault in ``directory``, creating it if there is none; VaultLocked for a
        wrong passphrase or a damaged header. ``cost`` applies to a new vault only."""
        stored = cls._read_header(directory)
        if stored is None:
            cost = cost or KdfCost()
            header: dict[str, Any] = {
                "v": 2,
                "kdf": "argon2id",
                "salt": _b64(secrets.token_bytes(16)),
                "t": cost.time_cost,
                "m": cost.memory_kib,
                "p": cost.parallelism,
            }
            return cls._create(directory, _derive(passphrase, header), header)
        header, check = stored
        if header.get("kdf") != "argon2id":
            raise _locked("this vault is unlocked by the OS keyring, not a passphrase")
        try:
            key = _derive(passphrase, header)
        except (KeyError, TypeError, ValueError, HashingError) as exc:
            raise _locked("the secret-chat vault's header is damaged") from exc
        return cls._checked(directory, key, header, check, "wrong passphrase")

    @classmethod
    def open_with_keyring(cls, directory: Path, keyring: KeyringBackend) -> Vault:
        """Open (or create) a vault whose key is a random one kept in the OS keyring."""
        stored = cls._read_header(directory)
        if stored is None:
            header: dict[str, Any] = {"v": 2, "kdf": "keyring", "id": secrets.token_hex(16)}
            key = secrets.token_bytes(32)
            keyring.set_password(KEYRING_SERVICE, header["id"], _b64(key))
            return cls._create(directory, key, header)
        header, check = stored
        if header.get("kdf") != "keyring":
            raise _locked("this vault is unlocked by a passphrase, not the OS keyring")
        found = keyring.get_password(KEYRING_SERVICE, str(header.get("id")))
        if found is None:
            raise _locked("the OS keyring holds no key for this vault")
        try:
            key = base64.b64decode(found, validate=True)
        except ValueError as exc:
            raise _locked("the OS keyring's key for this vault is damaged") from exc
        if len(key) != 32:
            raise _locked("the OS keyring's key for this vault is damaged")
        return cls._checked(directory, key, header, check, "the OS keyring's key does not fit")

    @staticmethod
    def _read_header(directory: Path) -> tuple[dict[str, Any], bytes] | None:
        try:
            stored = orjson.loads((directory / HEADER_FILE).read_bytes())
            check = base64.b64decode(stored.pop("check"))
        except FileNotFoundError:
            return None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _locked("the secret-chat vault's header is damaged") from exc
        if not isinstance(stored, dict) or stored.get("v") != 2:
            raise _locked("the secret-chat vault's header is damaged or from another version")
        return stored, check

    @classmethod
    def _create(cls, directory: Path, key: bytes, header: dict[str, Any]) -> Vault:
        vault = cls(directory, key, header)
        check = vault._seal(b"check", b"")
        write_private(directory / HEADER_FILE, orjson.dumps({**header, "check": _b64(check)}))
        return vault

    @classmethod
    def _checked(
        cls, directory: Path, key: bytes, header: dict[str, Any], check: bytes, wrong: str
    ) -> Vault:
        vault = cls(directory, key, header)
        try:
            vault._open(b"check", check)
        except InvalidTag as exc:
            raise _locked(f"{wrong} for the secret-chat vault (or its header was altered)") from exc
        return vault

    # --- sealed files ------------------------------------------------------------------------
    def _ad(self, name: bytes) -> bytes:
        return b"\x00".join([_AD, name, self._header_ad])

    def _seal(self, name: bytes, data: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, self._ad(name))

    def _open(self, name: bytes, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], self._ad(name))

    def _path(self, name: str) -> Path:
        if not name.isidentifier():
            raise ValueError(f"not a vault section name: {name!r}")
        return self.directory / f"{name}.sealed"

    def read(self, name: str) -> bytes | None:
        """A section's plaintext, or None if it was never written; VaultLocked if altered."""
        try:
            sealed = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return self._open(name.encode(), sealed)
        except (InvalidTag, ValueError) as exc:
            raise _locked(f"the vault section {name!r} was altered or damaged") from exc

    def write(self, name: str, data: bytes) -> None:
        """Seal and write a section (atomically, readable only by the owner)."""
        write_private(self._path(name), self._seal(name.encode(), data))

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def remove_matching(self, prefix: str) -> None:
        """Remove every section whose name starts with ``prefix`` (itself a section name's
        start: letters, digits and underscores)."""
        if not prefix.isidentifier():
            raise ValueError(f"not a vault section prefix: {prefix!r}")
        for path in self.directory.glob(f"{prefix}*.sealed"):
            path.unlink(missing_ok=True)

    def save_device(self, keys: SecretKeys, state: bytes) -> None:
        """Write the keys and the caller's state in one sealed file, so that a crash leaves
        both old or both new: an Olm session saved without the counts that go with it (or
        the reverse) would reuse a message key or misreport a replay."""
        self.seal_device(keys, state).write()

    def seal_device(self, keys: SecretKeys, state: bytes) -> SealedFile:
        """``save_device`` in two steps: capture and seal now, write (``SealedFile.write``,
        blocking: fsync) whenever, in any thread. Only ciphertext leaves this call."""
        keys_bytes = keys.to_bytes()
        data = len(keys_bytes).to_bytes(4, "big") + keys_bytes + state
        return SealedFile(self._path(DEVICE_SECTION), self._seal(DEVICE_SECTION.encode(), data))

    def load_device(self) -> tuple[SecretKeys, bytes] | None:
        """The keys and state ``save_device`` wrote, or None for a new vault."""
        data = self.read(DEVICE_SECTION)
        if data is None:
            return None
        size = int.from_bytes(data[:4], "big")
        try:
            return SecretKeys.from_bytes(data[4 : 4 + size]), data[4 + size :]
        except ValueError as exc:
            raise _locked("the secret-chat keys in the vault are damaged") from exc


@dataclass(frozen=True, slots=True)
class SealedFile:
    path: Path
    sealed: bytes = field(repr=False)

    def write(self) -> None:
        write_private(self.path, self.sealed)


def _derive(passphrase: str, header: dict[str, Any]) -> bytes:
    return hash_secret_raw(
        passphrase.encode(),
        base64.b64decode(header["salt"]),
        time_cost=int(header["t"]),
        memory_cost=int(header["m"]),
        parallelism=int(header["p"]),
        hash_len=32,
        type=Type.ID,
    )


__all__ = [
    "DEVICE_SECTION",
    "HEADER_FILE",
    "KEYRING_SERVICE",
    "KdfCost",
    "KeyringBackend",
    "SealedFile",
    "Vault",
    "VaultLocked",
]
