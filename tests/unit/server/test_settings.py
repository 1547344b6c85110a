"""Configuration is validated once, and errors name the key and the bad value."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.server.settings import ConfigError, load_settings


def test_defaults_are_the_embedded_single_machine_setup() -> None:
    settings = load_settings(None)
    assert (settings.host, settings.port, settings.dev) == ("127.0.0.1", 8080, False)
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.storage.sqlite_synchronous == "NORMAL"


def test_a_file_sets_values_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("port = 9000\n[limits]\nrequests_per_second = 5.0\n")
    settings = load_settings(path, port=9100)
    assert settings.port == 9100
    assert settings.limits.requests_per_second == 5.0


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("prot = 1\n", "prot"),
        ("port = 'eighty'\n", "port"),
        ("[limits]\nrequests_per_second = -1\n", "limits.requests_per_second"),
        ("[storage]\nsqlite_synchronous = 'OFF'\n", "storage.sqlite_synchronous"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_configuration_is_refused_with_the_key_named(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "absent.toml")


def test_an_install_from_before_dc_ids_keeps_its_database_file(tmp_path: Path) -> None:
    assert load_settings(None, data_dir=tmp_path).database_url.endswith("/dc-xa.sqlite3")
    (tmp_path / "samizdat.sqlite3").write_bytes(b"")
    assert load_settings(None, data_dir=tmp_path).database_url.endswith("/samizdat.sqlite3")
    (tmp_path / "dc-local.sqlite3").write_bytes(b"")
    assert load_settings(None, data_dir=tmp_path).database_url.endswith("/dc-local.sqlite3")
