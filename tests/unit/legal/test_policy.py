"""The disclosure policy is a small YAML file whose defaults are the strictest useful policy;
it can narrow what is disclosed, never widen it beyond the phone number and IP addresses."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from samizdat.legal.policy import (
    MAX_POLICY_BYTES,
    DisclosurePolicy,
    PolicyError,
    load_policy,
    policy_summary,
)

DEFAULTS = DisclosurePolicy(
    recognised_jurisdictions=(),
    categories=("terrorism",),
    fields=("phone", "ip"),
    jurisdictions_required=None,
    ip_window_days=None,
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_the_defaults_permit_only_phone_and_ip_for_terrorism() -> None:
    assert DisclosurePolicy() == DEFAULTS


def test_no_policy_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_policy(None) == DEFAULTS
    assert load_policy(tmp_path / "absent.yaml") == DEFAULTS
    assert load_policy(write(tmp_path, "")) == DEFAULTS
    assert load_policy(write(tmp_path, "# nothing configured\n")) == DEFAULTS


def test_a_policy_file_sets_every_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "recognised_jurisdictions: [DE, CH, XA, CH]\n"
        "categories: [terrorism]\n"
        "fields: [phone]\n"
        "jurisdictions_required: 3\n"
        "ip_window_days: 30\n",
    )
    assert load_policy(path) == DisclosurePolicy(
        recognised_jurisdictions=("CH", "DE", "XA"),
        categories=("terrorism",),
        fields=("phone",),
        jurisdictions_required=3,
        ip_window_days=30,
    )


def test_a_policy_may_permit_nothing_at_all(tmp_path: Path) -> None:
    policy = load_policy(write(tmp_path, "fields: []\ncategories: []\n"))
    assert policy.fields == ()
    assert policy.categories == ()


@pytest.mark.parametrize("field", ["messages", "contacts", "keys", "media", "Phone", "email"])
def test_a_policy_naming_anything_but_phone_or_ip_is_refused_at_load(
    tmp_path: Path, field: str
) -> None:
    path = write(tmp_path, f"fields: [phone, {field}]\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert str(path) in message
    assert "fields" in message
    assert f"'{field}' can never be disclosed" in message


@pytest.mark.parametrize("field", ["messages", "contacts", "keys", "media"])
def test_a_policy_built_in_code_cannot_name_them_either(field: str) -> None:
    with pytest.raises(ValidationError, match="can never be disclosed"):
        DisclosurePolicy(fields=("phone", field))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- phone\n- ip\n", "a mapping of keys"),
        ("terrorism\n", "a mapping of keys"),
        ("42\n", "a mapping of keys"),
        ("categories: [terrorism]\nfeilds: [phone]\n", "feilds: Extra inputs are not permitted"),
        ("jurisdictions_required: '2'\n", "jurisdictions_required: Input should be a valid"),
        ("jurisdictions_required: true\n", "jurisdictions_required: Input should be a valid"),
        ("jurisdictions_required: 2.0\n", "jurisdictions_required: Input should be a valid"),
        ("jurisdictions_required: 0\n", "jurisdictions_required: Input should be greater"),
        ("ip_window_days: -1\n", "ip_window_days: Input should be greater"),
        ("categories: terrorism\n", "categories: Input should be a valid tuple"),
        ("categories: [5]\n", "categories[0]: Input should be a valid string"),
        ("categories: [Terrorism]\n", "categories[0]: String should match pattern"),
        ("fields: phone\n", "fields: Input should be a valid tuple"),
        ("recognised_jurisdictions: [ch]\n", "recognised_jurisdictions[0]: String should"),
        ("recognised_jurisdictions: [ZX]\n", "'ZX' is not an ISO 3166-1 alpha-2"),
        ("categories: [terrorism\n", "not valid YAML"),
        ("a: b: c\n", "not valid YAML"),
    ],
)
def test_an_invalid_policy_names_the_file_and_the_key(
    tmp_path: Path, text: str, words: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert words in str(caught.value)


def test_an_unreadable_policy_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.mkdir()
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(path)


def test_an_oversized_policy_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "#" * (MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match="at most"):
        load_policy(path)


def test_the_policy_is_frozen() -> None:
    with pytest.raises(ValidationError):
        DEFAULTS.categories = ("anything",)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("configured", "threshold", "required"),
    [(None, 2, 2), (3, 2, 3), (1, 2, 2), (2, 2, 2)],
)
def test_the_jurisdictions_required_are_never_below_the_dc_threshold(
    configured: int | None, threshold: int, required: int
) -> None:
    policy = DisclosurePolicy(jurisdictions_required=configured)
    assert policy.required_for(threshold) == required


def test_no_recognised_jurisdictions_means_those_of_the_custodians() -> None:
    assert DisclosurePolicy().recognised_for(["XB", "XC"]) == {"XB", "XC"}
    configured = DisclosurePolicy(recognised_jurisdictions=("CH",))
    assert configured.recognised_for(["XB", "XC"]) == {"CH"}


def test_the_ip_window_never_exceeds_the_retention() -> None:
    assert DisclosurePolicy().ip_window_for(90) == 90
    assert DisclosurePolicy(ip_window_days=30).ip_window_for(90) == 30
    assert DisclosurePolicy(ip_window_days=365).ip_window_for(90) == 90


def test_the_summary_says_what_is_permitted_and_what_never_is() -> None:
    summary = policy_summary(DisclosurePolicy(fields=("phone",), jurisdictions_required=3))
    assert summary == {
        "recognised_jurisdictions": None,
        "categories": ["terrorism"],
        "fields": [{"field": "phone", "description": "the phone number"}],
        "jurisdictions_required": 3,
        "ip_window_days": None,
        "never_disclosed": ["message content", "contacts", "media", "key material"],
    }
