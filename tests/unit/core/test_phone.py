from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from samizdat.core import phone as phone_module
from samizdat.core.phone import MAX_PHONE_INPUT, Phone, parse_phone
from samizdat.protocol.errors import AuthError, ErrorCode


@pytest.mark.parametrize(
    ("raw", "e164", "region"),
    [
        ("+1 650 253 0000", "+16502530000", "US"),
        ("+44 20 7946 0958", "+442079460958", "GB"),
        ("+33 1 42 68 53 00", "+33142685300", "FR"),
        ("  +1-650-253-0000 ", "+16502530000", "US"),
        ("+1 (650) 253.0000", "+16502530000", "US"),
        ("+16502530000", "+16502530000", "US"),
    ],
)
def test_international_numbers_normalise_to_e164_with_their_region(
    raw: str, e164: str, region: str
) -> None:
    assert parse_phone(raw) == Phone(e164=e164, region=region, is_test=False)


def test_non_geographic_numbers_have_no_region() -> None:
    assert parse_phone("+800 1234 5678") == Phone("+80012345678", region=None, is_test=False)


@pytest.mark.parametrize(
    "raw",
    [
        "650 253 0000",  # national form: the country is unknown
        "0044 20 7946 0958",  # international prefix instead of +
        "",
        "+",
        "hello",
        "+1 650 253 0000 ext. 12",  # an extension cannot receive SMS
        "+1 000 000 0000",  # well formed but not a number that exists
        "+999 12345678",  # unassigned country code, not a test number
        "+99966",  # test prefix with no digits
        "+9996612345678901",  # test prefix with 11 digits
        "+1 " + "6" * MAX_PHONE_INPUT,
    ],
)
def test_invalid_or_national_numbers_are_refused_as_phone_invalid(raw: str) -> None:
    with pytest.raises(AuthError) as info:
        parse_phone(raw)
    assert info.value.code is ErrorCode.PHONE_INVALID
    assert info.value.message


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("+999661234567", "+999661234567"),
        ("+99966 1", "+999661"),
        ("+999 66 1234-567", "+999661234567"),
        ("+99966" + "9" * 10, "+99966" + "9" * 10),
    ],
)
def test_reserved_test_numbers_are_recognised_without_a_region(raw: str, e164: str) -> None:
    assert parse_phone(raw) == Phone(e164=e164, region=None, is_test=True)


def test_test_number_code_is_five_times_the_first_digit() -> None:
    assert phone_module.test_code(parse_phone("+999661234567")) == "11111"
    assert phone_module.test_code(parse_phone("+99966 0")) == "00000"


def test_a_real_number_has_no_test_code() -> None:
    with pytest.raises(ValueError, match="only test numbers"):
        phone_module.test_code(parse_phone("+1 650 253 0000"))


def test_digits_from_other_scripts_never_make_a_test_number() -> None:
    with pytest.raises(AuthError):
        parse_phone("+99966\u0661\u0662\u0663")  # Arabic-Indic 1 2 3


def parse_or_error(raw: str) -> Phone | AuthError:
    """Any other exception escapes and fails the test."""
    try:
        return parse_phone(raw)
    except AuthError as exc:
        return exc


@given(st.text(max_size=40))
def test_any_text_parses_to_e164_or_raises_phone_invalid(raw: str) -> None:
    parsed = parse_or_error(raw)
    if isinstance(parsed, AuthError):
        assert parsed.code is ErrorCode.PHONE_INVALID
        return
    assert parsed.e164.startswith("+")
    assert parsed.e164[1:].isascii()
    assert parsed.e164[1:].isdigit()
    assert len(parsed.e164) <= 16


@given(st.from_regex(r"\+[1-9][0-9 -]{4,18}", fullmatch=True))
def test_any_phone_like_text_parses_or_raises_phone_invalid(raw: str) -> None:
    parsed = parse_or_error(raw)
    if isinstance(parsed, AuthError):
        assert parsed.code is ErrorCode.PHONE_INVALID
        return
    assert parse_phone(parsed.e164) == parsed


@given(st.sampled_from(sorted(phonenumbers.SUPPORTED_REGIONS)))
def test_every_regions_example_number_parses_back_to_its_region(region: str) -> None:
    example = phonenumbers.example_number(region)
    if example is None:
        return
    raw = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    parsed = parse_phone(raw)
    assert not parsed.is_test
    # Regions sharing a country code with a main region (e.g. Jersey in +44) may resolve to it.
    assert parsed.region is not None
    assert phonenumbers.country_code_for_region(parsed.region) == example.country_code


@given(st.text(alphabet="0123456789", min_size=1, max_size=10))
def test_every_test_number_has_a_five_digit_code_of_its_first_digit(digits: str) -> None:
    parsed = parse_phone("+99966" + digits)
    assert parsed.is_test
    assert phone_module.test_code(parsed) == digits[0] * 5
