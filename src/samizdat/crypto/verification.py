"""Key verification for secret chats: is the key I hold really my contact's device's key?

Olm encrypts to whatever identity key the server hands out, so a malicious server could hand
each side its own key and sit in the middle. This module closes that gap:

- **SAS** (short authentication string, Matrix ``m.sas.v1`` over vodozemac): both devices run
  an ephemeral Curve25519 exchange and show seven emoji (or three numbers) derived from the
  shared secret. If the people see the same emoji, nobody sat in the middle of the exchange;
  the devices then MAC their long-term keys under that secret, which binds those keys too.
- **The commitment**: the accepting device sends a hash of its ephemeral key before it sees
  the initiator's key, and reveals the key only afterwards. So no one (least of all a man in
  the middle) can choose a key after seeing the other's to make the emoji come out equal:
  an attacker gets one guess in 2**42, which is why 7 emoji are enough.
- **The safety number**: 60 digits derived from both parties' identity keys and user ids, the
  same on both phones, to compare out of band (read aloud, or side by side) with no exchange.

The SAS secret lives only inside ``SasExchange``; nothing here logs or returns it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import vodozemac

# The Matrix spec's SAS emoji table (data-definitions/sas-emoji.json), in its order: an emoji
# index from vodozemac is a position here. Variation selectors (U+FE0F) are as in the spec.
SAS_EMOJI: tuple[tuple[str, str], ...] = (
    ("🐶", "Dog"),
    ("🐱", "Cat"),
    ("🦁", "Lion"),
    ("🐎", "Horse"),
    ("🦄", "Unicorn"),
    ("🐷", "Pig"),
    ("🐘", "Elephant"),
    ("🐰", "Rabbit"),
    ("🐼", "Panda"),
    ("🐓", "Rooster"),
    ("🐧", "Penguin"),
    ("🐢", "Turtle"),
    ("🐟", "Fish"),
    ("🐙", "Octopus"),
    ("🦋", "Butterfly"),
    ("🌷", "Flower"),
    ("🌳", "Tree"),
    ("🌵", "Cactus"),
    ("🍄", "Mushroom"),
    ("🌏", "Globe"),
    ("🌙", "Moon"),
    ("\u2601\ufe0f", "Cloud"),
    ("🔥", "Fire"),
    ("🍌", "Banana"),
    ("🍎", "Apple"),
    ("🍓", "Strawberry"),
    ("🌽", "Corn"),
    ("🍕", "Pizza"),
    ("🎂", "Cake"),
    ("\u2764\ufe0f", "Heart"),
    ("😀", "Smiley"),
    ("🤖", "Robot"),
    ("🎩", "Hat"),
    ("👓", "Glasses"),
    ("🔧", "Spanner"),
    ("🎅", "Santa"),
    ("👍", "Thumbs Up"),
    ("\u2602\ufe0f", "Umbrella"),
    ("\u231b", "Hourglass"),
    ("\u23f0", "Clock"),
    ("🎁", "Gift"),
    ("💡", "Light Bulb"),
    ("📕", "Book"),
    ("\u270f\ufe0f", "Pencil"),
    ("📎", "Paperclip"),
    ("\u2702\ufe0f", "Scissors"),
    ("🔒", "Lock"),
    ("🔑", "Key"),
    ("🔨", "Hammer"),
    ("\u260e\ufe0f", "Telephone"),
    ("🏁", "Flag"),
    ("🚂", "Train"),
    ("🚲", "Bicycle"),
    ("\u2708\ufe0f", "Aeroplane"),
    ("🚀", "Rocket"),
    ("🏆", "Trophy"),
    ("\u26bd", "Ball"),
    ("🎸", "Guitar"),
    ("🎺", "Trumpet"),
    ("🔔", "Bell"),
    ("\u2693", "Anchor"),
    ("🎧", "Headphones"),
    ("📁", "Folder"),
    ("📌", "Pin"),
)

_SAS_INFO_PREFIX = "SAMIZDAT_SAS_V1"
_MAC_INFO_PREFIX = "SAMIZDAT_SAS_MAC_V1"

# Signal's numeric fingerprint parameters (NumericFingerprintGenerator, version 0).
_FINGERPRINT_VERSION = b"\x00\x00"
_FINGERPRINT_ITERATIONS = 5200
_CURVE25519_KEY_BYTES = 32


class VerificationError(ValueError):
    """A key, commitment or MAC did not check out."""


@dataclass(frozen=True, slots=True)
class SasCodes:
    """What both people compare: 7 ``(emoji, name)`` pairs from ``SAS_EMOJI``, or 3 numbers
    in 1000..9191. Either one is enough; they come from the same secret."""

    emoji: tuple[tuple[str, str], ...]
    decimals: tuple[int, int, int]


class SasExchange:
    """One side of a short-authentication-string exchange (vodozemac ``Sas``).

    Send ``public_key`` (after its ``commitment``, if this side accepted the request), call
    ``establish`` with the other side's key, then show ``codes`` and exchange ``mac``s of the
    long-term keys. An exchange is single-use: make a new one to retry.
    """

    __slots__ = ("_established", "_public_key", "_sas")

    def __init__(self) -> None:
        self._sas: vodozemac.Sas | None = vodozemac.Sas()
        self._public_key = str(self._sas.public_key.to_base64())
        self._established: vodozemac.EstablishedSas | None = None

    @property
    def public_key(self) -> str:
        """This side's ephemeral Curve25519 key, unpadded base64."""
        return self._public_key

    def establish(self, their_public_key: str) -> None:
        """Derive the shared secret from the other side's ephemeral key.

        Raises VerificationError if the key is malformed (the exchange stays usable), if
        vodozemac refuses it as a low-order point (the exchange is then spent: start a new one),
        or if this exchange was already established.
        """
        if self._sas is None:
            raise VerificationError("this SAS exchange has already been used")
        try:
            their_key = vodozemac.Curve25519PublicKey.from_base64(their_public_key)
        except (vodozemac.KeyException, vodozemac.DecodeException, ValueError, TypeError) as exc:
            raise VerificationError("the other side's SAS key is malformed") from exc
        sas, self._sas = self._sas, None  # vodozemac consumes it, even when it refuses the key
        try:
            self._established = sas.diffie_hellman(their_key)
        except (vodozemac.KeyException, vodozemac.SasException) as exc:
            raise VerificationError("the other side's SAS key was refused") from exc

    def codes(self, info: str) -> SasCodes:
        """The emoji and numbers for ``info`` (build it with ``sas_info``)."""
        sas_bytes = self._require_established().bytes(info)
        emoji = tuple(SAS_EMOJI[index] for index in sas_bytes.emoji_indices)
        first, second, third = sas_bytes.decimals
        return SasCodes(emoji=emoji, decimals=(first, second, third))

    def mac(self, message: str, info: str) -> str:
        """Base64 MAC of ``message`` (a key being vouched for) under the shared secret; build
        ``info`` with ``mac_info``."""
        return str(self._require_established().calculate_mac(message, info))

    def mac_valid(self, message: str, info: str, tag: str) -> bool:
        """Whether ``tag`` is the other side's ``mac(message, info)``, compared in constant
        time by vodozemac. A malformed tag is simply invalid."""
        established = self._require_established()
        try:
            established.verify_mac(message, info, tag)
        except (vodozemac.SasException, ValueError, TypeError):
            return False
        return True

    def _require_established(self) -> vodozemac.EstablishedSas:
        if self._established is None:
            raise VerificationError("establish the SAS exchange with the other side's key first")
        return self._established


def commitment(public_key: str, start_content: bytes) -> str:
    """Matrix ``m.sas.v1``'s commitment: unpadded base64 of SHA-256 of the accepting side's
    ephemeral ``public_key`` (UTF-8) followed by the canonical bytes of the start message."""
    digest = hashlib.sha256(public_key.encode() + start_content).digest()
    return base64.b64encode(digest).decode().rstrip("=")


def commitment_matches(expected: str, public_key: str, start_content: bytes) -> bool:
    """Whether the key the other side revealed is the one it committed to (constant time)."""
    actual = commitment(public_key, start_content)
    return hmac.compare_digest(expected.encode(), actual.encode())


def safety_number(user_a: int, identity_key_a: str, user_b: int, identity_key_b: str) -> str:
    """The 60-digit safety number of two parties, as 12 space-separated groups of 5 digits.

    It is the same whichever side computes it (the order of the parties does not matter), and
    it changes when either party's identity key or user id does. Each party's half is Signal's
    numeric fingerprint: SHA-512 applied 5200 times in all, first over ``00 00 || key bytes ||
    user id as ASCII decimal``, then over ``previous digest || key bytes``; its first 30 bytes,
    as six 5-byte big-endian numbers mod 100000, give 30 digits. The smaller half comes first.

    Raises VerificationError if a key is not base64 of 32 bytes.
    """
    half_a = _fingerprint(user_a, identity_key_a)
    half_b = _fingerprint(user_b, identity_key_b)
    digits = "".join(sorted((half_a, half_b)))
    return " ".join(digits[i : i + 5] for i in range(0, len(digits), 5))


def _fingerprint(user_id: int, identity_key: str) -> str:
    key = _curve25519_bytes(identity_key)
    digest = hashlib.sha512(_FINGERPRINT_VERSION + key + str(user_id).encode("ascii")).digest()
    for _ in range(_FINGERPRINT_ITERATIONS - 1):
        digest = hashlib.sha512(digest + key).digest()
    chunks = (digest[i : i + 5] for i in range(0, 30, 5))
    return "".join(f"{int.from_bytes(chunk, 'big') % 100000:05d}" for chunk in chunks)


def _curve25519_bytes(key: str) -> bytes:
    # vodozemac writes keys unpadded; accept padded ones too, but nothing else.
    try:
        raw = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise VerificationError("an identity key is not valid base64") from exc
    if len(raw) != _CURVE25519_KEY_BYTES:
        raise VerificationError("an identity key is not 32 bytes long")
    return raw


def sas_info(
    *,
    initiator_user: int,
    initiator_device: int,
    initiator_key: str,
    acceptor_user: int,
    acceptor_device: int,
    acceptor_key: str,
    transaction_id: str,
) -> str:
    """The info string for ``SasExchange.codes``: both devices and their ephemeral keys, so
    the codes are bound to this exchange between these two devices.

    Raises VerificationError if a text field contains ``|``, which would make the string
    ambiguous.
    """
    return _joined(
        _SAS_INFO_PREFIX,
        initiator_user,
        initiator_device,
        initiator_key,
        acceptor_user,
        acceptor_device,
        acceptor_key,
        transaction_id,
    )


def mac_info(
    *,
    sender_user: int,
    sender_device: int,
    receiver_user: int,
    receiver_device: int,
    transaction_id: str,
    key_id: str,
) -> str:
    """The info string for ``SasExchange.mac`` of one key (``key_id``) sent from the sender's
    device to the receiver's. Raises VerificationError if a text field contains ``|``."""
    return _joined(
        _MAC_INFO_PREFIX,
        sender_user,
        sender_device,
        receiver_user,
        receiver_device,
        transaction_id,
        key_id,
    )


def _joined(prefix: str, *fields: int | str) -> str:
    parts = [prefix]
    for field in fields:
        text = str(field)
        if "|" in text:
            raise VerificationError("a SAS info field may not contain '|'")
        parts.append(text)
    return "|".join(parts)


__all__ = [
    "SAS_EMOJI",
    "SasCodes",
    "SasExchange",
    "VerificationError",
    "commitment",
    "commitment_matches",
    "mac_info",
    "safety_number",
    "sas_info",
]
