"""Phone numbers, parsed once at the edge into E.164.

A phone number is a login identity, so two spellings of one number must give one key: every
number is normalised to E.164 ("+16502530000") with ``phonenumbers``. Only the international
form (leading "+") is accepted, because the server cannot guess which country a local number
belongs to.

Reserved test numbers ("+99966" then 1-10 digits) exist so developers and CI can log in without
an SMS gateway; their code is fixed (see ``test_code``). Country code 999 is unassigned, so
``phonenumbers`` rejects them and they are recognised first. Whether they may log in at all is
the server's decision (dev mode only), not this module's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

from samizdat.protocol.errors import AuthError, ErrorCode

#: Longer input is rejected before parsing; no real number written out comes close.
MAX_PHONE_INPUT = 64
TEST_PREFIX = "+99966"
TEST_CODE_LENGTH = 5

# ASCII digits only: ``\d`` would also match other scripts' digits, which E.164 cannot hold.
_TEST_NUMBER = re.compile(r"\+99966[0-9]{1,10}")
_SEPARATORS = re.compile(r"[\s().-]+")
# phonenumbers gives "001" for non-geographic numbers (+800, +882, ...) and "ZZ" for unknown.
_NO_REGION = frozenset({"001", "ZZ"})


@dataclass(frozen=True, slots=True)
class Phone:
    """A valid phone number in E.164; build it with ``parse_phone``.

    ``region`` is the ISO 3166-1 alpha-2 code ("US", "GB") used to home the user in a data
    centre; it is None for test numbers and non-geographic numbers such as +800.
    """

    e164: str
    region: str | None
    is_test: bool


def _invalid(message: str) -> AuthError:
    return AuthError(message, code=ErrorCode.PHONE_INVALID)


def parse_phone(raw: str) -> Phone:
    """Parse a number in international form ("+44 20 7946 0958") into a ``Phone``.

    Spaces, dashes, dots and brackets are allowed between digits. Raises AuthError with
    PHONE_INVALID for anything that is not a valid number in international form, including
    numbers with an extension (an extension cannot receive SMS).
    """
    text = raw.strip()
    if len(text) > MAX_PHONE_INPUT:
        raise _invalid("the phone number is too long")
    if not text.startswith("+"):
        raise _invalid("write the number in international form: + then the country code")
    compact = _SEPARATORS.sub("", text)
    if _TEST_NUMBER.fullmatch(compact):
        return Phone(e164=compact, region=None, is_test=True)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise _invalid("this is not a phone number") from exc
    if number.extension:
        raise _invalid("a phone number with an extension cannot receive login codes")
    if not phonenumbers.is_valid_number(number):
        raise _invalid("this phone number does not exist")
    region = phonenumbers.region_code_for_number(number)
    return Phone(
        e164=phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        region=None if region is None or region in _NO_REGION else region,
        is_test=False,
    )


def test_code(phone: Phone) -> str:
    """The fixed login code of a test number: five times the digit after "+99966".

    "+999661234567" has code "11111". Raises ValueError for a real number, which has no fixed
    code.
    """
    if not phone.is_test:
        raise ValueError("only test numbers have a fixed login code")
    return phone.e164[len(TEST_PREFIX)] * TEST_CODE_LENGTH


# pytest would otherwise collect ``test_code`` as a test wherever it is imported.
test_code.__test__ = False  # type: ignore[attr-defined]

__all__ = ["MAX_PHONE_INPUT", "TEST_PREFIX", "Phone", "parse_phone", "test_code"]
