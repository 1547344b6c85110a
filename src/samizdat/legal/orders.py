"""Court orders: who they name, how a court signs one, and how one is read back. No I/O.

An order is the JSON ``{"order": {...}, "signature": "..."}`` of ``custody.protocol.CourtOrder``,
the format custodians already check. The court signs the body's canonical JSON (sorted keys,
orjson), recomputed from the parsed model, so whitespace and key order on the wire change
nothing. The subject is stored in one normalised text form, so two orders naming one person
compare equal as text:

- ``user:<n>`` for a user id (``<n>`` written without leading zeros),
- ``@name`` for a username (lower case: usernames are unique regardless of case),
- ``+<E.164>`` for a phone number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import ValidationError

from samizdat.core.phone import parse_phone
from samizdat.core.rules import normalize_username
from samizdat.crypto.custody_keys import b64, canonical
from samizdat.crypto.signing_keys import SigningKey
from samizdat.custody.protocol import CourtOrder, CourtOrderBody
from samizdat.custody.protocol import order_digest as order_body_digest
from samizdat.protocol.errors import SamizdatError

#: An order (or a file claiming to be one) longer than this is refused unread.
MAX_ORDER_BYTES = 64 * 1024
#: User ids are below 2**53 (see ``core.ids``).
_MAX_USER_ID = 2**53 - 1
_USER_ID = re.compile(r"(?:user:)?([0-9]{1,16})")

SubjectKind = Literal["user_id", "username", "phone"]


class OrderFormatError(ValueError):
    """An order, or a subject, is malformed; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Subject:
    """The person an order names; build it with ``parse_subject``."""

    kind: SubjectKind
    value: str  # digits, a lower-case username without "@", or an E.164 number

    @property
    def text(self) -> str:
        """The normalised form an order carries: ``user:<n>``, ``@name`` or ``+E164``."""
        match self.kind:
            case "user_id":
                return f"user:{self.value}"
            case "username":
                return f"@{self.value}"
            case "phone":
                return self.value

    def __str__(self) -> str:
        return self.text


def parse_subject(text: str) -> Subject:
    """Parse ``@username``, ``+phone`` (international form), ``user:<n>`` or a bare user id.

    Usernames follow the account rule (5-32 letters, digits, underscore) and are
    case-insensitive; phone numbers are normalised to E.164 (reserved test numbers
    ``+99966...`` included); user ids are 1 .. 2**53-1. Raises OrderFormatError otherwise.
    """
    raw = text.strip()
    if raw.startswith("@"):
        try:
            _, key = normalize_username(raw)
        except SamizdatError as exc:
            raise OrderFormatError(
                f"the subject {raw[:64]!r} is not a username: {exc.message}"
            ) from exc
        return Subject("username", key)
    if raw.startswith("+"):
        try:
            phone = parse_phone(raw)
        except SamizdatError as exc:
            raise OrderFormatError(
                f"the subject {raw[:64]!r} is not a phone number: {exc.message}"
            ) from exc
        return Subject("phone", phone.e164)
    match = _USER_ID.fullmatch(raw)
    if match is None:
        raise OrderFormatError(
            f"the subject {raw[:64]!r} is not @username, +phone (international form), "
            "user:<id> or a user id"
        )
    user_id = int(match.group(1))
    if not 1 <= user_id <= _MAX_USER_ID:
        raise OrderFormatError(f"the subject {raw!r} is not a valid user id")
    return Subject("user_id", str(user_id))


def _first_error(exc: ValidationError) -> str:
    """The first problem of a validation error, without echoing the (untrusted) input."""
    errors = exc.errors(include_input=False, include_url=False)
    if not errors:
        return "it does not match the order format"
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def new_order(
    key: SigningKey,
    *,
    court: str,
    jurisdiction: str,
    case: str,
    subject: Subject,
    category: str,
    fields: Iterable[str],
    issued_at_ms: int,
    expires_at_ms: int,
    recipient: str | None = None,
) -> CourtOrder:
    """An order signed with ``key`` (the court's). Raises OrderFormatError if a value breaks
    the order format (e.g. a jurisdiction that is not two capital letters, no fields, or an
    expiry not after the issue date).

    Nothing checks here whether a field may be disclosed: that is the reviewer's decision,
    and an order asking for more than the policy permits is refused there, with the reason.
    """
    requested = tuple(dict.fromkeys(fields))  # order kept, duplicates dropped
    if not requested:
        raise OrderFormatError("an order names at least one field")
    if expires_at_ms <= issued_at_ms:
        raise OrderFormatError("an order expires after it is issued")
    try:
        body = CourtOrderBody(
            case=case,
            court=court,
            jurisdiction=jurisdiction,
            subject=subject.text,
            category=category,
            fields=requested,
            issued_at_ms=issued_at_ms,
            expires_at_ms=expires_at_ms,
            recipient=recipient,
        )
    except ValidationError as exc:
        raise OrderFormatError(f"not a valid order: {_first_error(exc)}") from exc
    return CourtOrder(order=body, signature=b64(key.sign(canonical(body))))


def parse_order(data: bytes) -> CourtOrder:
    """Read one order (strict JSON: no extra keys, no type coercion).

    Raises OrderFormatError for anything else: more than MAX_ORDER_BYTES, not JSON, or not an
    order. The signature is not checked here (see ``review.check_order``).
    """
    if len(data) > MAX_ORDER_BYTES:
        raise OrderFormatError(f"an order is at most {MAX_ORDER_BYTES} bytes")
    try:
        return CourtOrder.model_validate_json(data, strict=True)
    except ValidationError as exc:
        raise OrderFormatError(f"not a court order: {_first_error(exc)}") from exc


def order_digest(order: CourtOrder) -> str:
    """Hex SHA-256 of the order's canonical JSON (body and signature): its identity in logs."""
    return hashlib.sha256(canonical(order)).hexdigest()


#: Hex SHA-256 of the signed body alone (the custodians' name for an order): the same
#: decision, however its signature is spelled (base64 leaves spare bits), has one body
#: digest. Duplicates and used orders are found by this.
body_digest = order_body_digest


__all__ = [
    "MAX_ORDER_BYTES",
    "OrderFormatError",
    "Subject",
    "SubjectKind",
    "body_digest",
    "new_order",
    "order_digest",
    "parse_order",
    "parse_subject",
]
