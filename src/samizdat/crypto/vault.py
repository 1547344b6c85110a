"""A client's end-to-end state on disk, readable only with its passphrase.

The device's Olm account and sessions are vodozemac pickles inside one JSON document, sealed
with AES-GCM under a key derived from the passphrase with argon2id (salt and cost stored in
the file's header, authenticated with the ciphertext). Losing the file or the passphrase
loses secret history: by design there is no copy anywhere else.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path

import orjson
import vodozemac
from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from samizdat.crypto.e2ee import DeviceCrypto, OlmSessions
from samizdat.crypto.private_files import write_private
from samizdat.protocol.errors import AuthError, ErrorCode

FILE_NAME = "e2ee.vault"
_AD = b"samizdat-vault-v1"


@dataclass(frozen=True, slots=True)
class KdfCost:
    """argon2id cost; the defaults follow RFC 9106's second recommendation (64 MiB)."""

    time_cost: int = 3
    memory_kib: int = 64 * 1024
    parallelism: int = 1


class VaultLocked(AuthError):
    """The passphrase is wrong, or the file was altered."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class Vault:
    def __init__(self, directory: Path, passphrase: str, *, cost: KdfCost | None = None) -> None:
        self.path = directory / FILE_NAME
        self._passphrase = passphrase.encode()
        self._cost = cost or KdfCost()

    def _key(self, salt: bytes, cost: KdfCost) -> bytes:
        return hash_secret_raw(
            self._passphrase,
            salt,
            time_cost=cost.time_cost,
            memory_cost=cost.memory_kib,
            parallelism=cost.parallelism,
            hash_len=32,
            type=Type.ID,
        )

    def save(self, crypto: DeviceCrypto, sessions: OlmSessions) -> None:
        """Seal and write the account and sessions (atomically, readable only by the owner)."""
        pickle_key = secrets.token_bytes(32)
        document = orjson.dumps(
            {
                "pickle_key": _b64(pickle_key),
                "device_id": crypto.device_id,
                "account": crypto.pickle(pickle_key),
                "sessions": sessions.pickle(pickle_key),
            }
        )
        salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
        header = {
            "v": 1,
            "salt": _b64(salt),
            "t": self._cost.time_cost,
            "m": self._cost.memory_kib,
            "p": self._cost.parallelism,
        }
        ad = _AD + orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
        sealed = AESGCM(self._key(salt, self._cost)).encrypt(nonce, document, ad)
        body = orjson.dumps({**header, "nonce": _b64(nonce), "sealed": _b64(sealed)})
        write_private(self.path, body)

    def load(self) -> tuple[DeviceCrypto, OlmSessions] | None:
        """The saved state, or None if there is none; VaultLocked if it will not open."""
        try:
            stored = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise VaultLocked(
                "the secret-chat vault is damaged", code=ErrorCode.UNAUTHORIZED
            ) from exc
        try:
            header = {k: stored[k] for k in ("v", "salt", "t", "m", "p")}
            cost = KdfCost(int(header["t"]), int(header["m"]), int(header["p"]))
            key = self._key(base64.b64decode(header["salt"]), cost)
            ad = _AD + orjson.dumps(header, option=orjson.OPT_SORT_KEYS)
            document = orjson.loads(
                AESGCM(key).decrypt(
                    base64.b64decode(stored["nonce"]), base64.b64decode(stored["sealed"]), ad
                )
            )
            pickle_key = base64.b64decode(document["pickle_key"])
            crypto = DeviceCrypto.from_pickle(
                document["account"], pickle_key, document["device_id"]
            )
            sessions = OlmSessions.from_pickle(crypto, document["sessions"], pickle_key)
        except (InvalidTag, KeyError, TypeError, ValueError, vodozemac.PickleException) as exc:
            raise VaultLocked(
                "wrong passphrase for the secret-chat vault (or the file was altered)",
                code=ErrorCode.UNAUTHORIZED,
            ) from exc
        return crypto, sessions


__all__ = ["FILE_NAME", "KdfCost", "Vault", "VaultLocked"]
