"""The rules a lawful request is decided by come from the operator's files: a configured
policy file that is missing is an error, never the defaults (the file may be stricter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.legal.policy import PolicyError
from samizdat.server.legal import load_rules, registry_path
from samizdat.server.settings import ServerSettings, load_settings


def settings_with(tmp_path: Path, policy: str | None) -> ServerSettings:
    config = tmp_path / "samizdat.toml"
    config.write_text("" if policy is None else f'[legal]\npolicy_file = "{policy}"\n')
    return load_settings(config, data_dir=tmp_path / "data")


def test_without_a_policy_file_the_defaults_apply(tmp_path: Path) -> None:
    rules = load_rules(settings_with(tmp_path, None))
    assert rules.policy.categories == ("terrorism",)
    assert (rules.required, rules.recognised) == (2, frozenset({"XA", "XB", "XC"}))


def test_a_configured_policy_file_is_used(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("jurisdictions_required: 3\nip_window_days: 30\n")
    rules = load_rules(settings_with(tmp_path, str(policy)))
    assert (rules.required, rules.ip_window_days) == (3, 30)


def test_a_configured_policy_file_that_is_missing_is_an_error_not_the_defaults(
    tmp_path: Path,
) -> None:
    settings = settings_with(tmp_path, str(tmp_path / "typo.yaml"))
    with pytest.raises(PolicyError, match="configured disclosure policy file is missing"):
        load_rules(settings)


def test_the_court_registry_lives_where_the_cli_writes_it(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, None)
    assert registry_path(settings) == tmp_path / "data" / "legal" / "courts.json"
