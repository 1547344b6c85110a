"""The topology refuses to start unless seizing one DC yields nothing and no single state can
compel disclosure: a DC's custodians sit outside its country, fewer than k of them share any
one country, and every id the configuration names exists.

Each refusal below breaks one rule in an otherwise valid three-DC configuration (DCs in DE, CH
and IS, each kept by the custodians of the other two countries) and must name the DC.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from samizdat.core.phone import parse_phone
from samizdat.crypto.custody_keys import CustodianKeys
from samizdat.server.settings import ConfigError, ServerSettings, load_settings

Table = Mapping[str, object]

CUSTODIANS: list[Table] = [
    {"id": "c-de", "jurisdiction": "DE"},
    {"id": "c-ch", "jurisdiction": "CH"},
    {"id": "c-is", "jurisdiction": "IS"},
]
DCS: list[Table] = [
    {"id": "de", "jurisdiction": "DE", "custodians": ["c-ch", "c-is"], "threshold": 2},
    {"id": "ch", "jurisdiction": "CH", "custodians": ["c-de", "c-is"], "threshold": 2},
    {"id": "is", "jurisdiction": "IS", "custodians": ["c-de", "c-ch"], "threshold": 2},
]


def _value(value: object) -> str:
    # Strings, integers and lists of strings: their JSON form is also valid TOML.
    return json.dumps(value)


def _table(header: str, table: Table) -> str:
    lines = [header, *(f"{key} = {_value(value)}" for key, value in table.items())]
    return "\n".join(lines) + "\n"


def toml(
    *,
    dcs: Sequence[Table] = DCS,
    custodians: Sequence[Table] = CUSTODIANS,
    top: Table | None = None,
    homing: Table | None = None,
    countries: Table | None = None,
    prefixes: Table | None = None,
) -> str:
    parts = [_table("", top or {})]
    parts += [_table("[[custodians]]", c) for c in custodians]
    parts += [_table("[[dcs]]", d) for d in dcs]
    if homing is not None:
        parts.append(_table("[homing]", homing))
    if countries is not None:
        parts.append(_table("[homing.countries]", countries))
    if prefixes is not None:
        parts.append(_table("[homing.prefixes]", {f'"{k}"': v for k, v in prefixes.items()}))
    return "\n".join(parts)


def load(tmp_path: Path, text: str, **overrides: object) -> ServerSettings:
    path = tmp_path / "samizdat.toml"
    path.write_text(text)
    return load_settings(path, **overrides)


def with_dc(dc_id: str, **changes: object) -> list[Table]:
    return [{**dc, **changes} if dc["id"] == dc_id else dc for dc in DCS]


def with_custodian(custodian_id: str, **changes: object) -> list[Table]:
    return [{**c, **changes} if c["id"] == custodian_id else c for c in CUSTODIANS]


# what loads --------------------------------------------------------------------------------
def test_the_embedded_default_is_three_dcs_each_kept_by_the_two_other_custodians(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    assert [(d.id, d.jurisdiction, d.threshold) for d in settings.dcs] == [
        ("xa", "XA", 2),
        ("xb", "XB", 2),
        ("xc", "XC", 2),
    ]
    assert [(c.id, c.jurisdiction, c.url) for c in settings.custodians] == [
        ("custodian-xa", "XA", None),
        ("custodian-xb", "XB", None),
        ("custodian-xc", "XC", None),
    ]
    for dc in settings.dcs:
        keepers = [c.jurisdiction for c in settings.custodians_of(dc)]
        assert sorted(keepers) == sorted({"XA", "XB", "XC"} - {dc.jurisdiction}), dc.id
    assert settings.dc.id == "xa"
    assert [settings.database_url_of(d).rsplit("/", 1)[-1] for d in settings.dcs] == [
        "dc-xa.sqlite3",
        "dc-xb.sqlite3",
        "dc-xc.sqlite3",
    ]


def test_the_embedded_default_homes_dev_numbers_by_their_digit_and_the_rest_in_xa(
    tmp_path: Path,
) -> None:
    settings = load_settings(None, data_dir=tmp_path)

    def home(number: str) -> str:
        return settings.homing.dc_for(parse_phone(number), settings.dc.id)

    assert home("+999661000001") == "xa"
    assert home("+999662000001") == "xb"
    assert home("+999663000001") == "xc"
    assert home("+41446681800") == "xa"


def test_configured_homing_wins_over_the_embedded_default(tmp_path: Path) -> None:
    settings = load(tmp_path, '[homing]\ndefault_dc = "xc"\n', data_dir=tmp_path)
    assert settings.dc.id == "xc"
    assert settings.homing.prefixes == {}


@pytest.mark.parametrize(
    "left_behind",
    [
        "dc-local.sqlite3",
        "samizdat.sqlite3",
        "custodians/custodian-xd/",
        "dc.key",
    ],
)
def test_a_data_directory_made_with_one_dc_keeps_that_layout(
    tmp_path: Path, left_behind: str
) -> None:
    """Its data and keys were sealed for DC ``local`` and custodians in XB, XC and XD."""
    target = tmp_path / left_behind
    if left_behind.endswith("/"):
        target.mkdir(parents=True)
    else:
        target.write_bytes(b"")
    settings = load_settings(None, data_dir=tmp_path)
    (dc,) = settings.dcs
    assert (dc.id, dc.jurisdiction, dc.threshold) == ("local", "XA", 2)
    assert [(c.id, c.jurisdiction) for c in settings.custodians_of(dc)] == [
        ("custodian-xb", "XB"),
        ("custodian-xc", "XC"),
        ("custodian-xd", "XD"),
    ]
    assert settings.homing.prefixes == {}


def test_a_one_dc_install_whose_custodian_directory_is_lost_is_still_recognised(
    tmp_path: Path,
) -> None:
    custodians = tmp_path / "custodians"
    custodians.mkdir()
    (custodians / "public-keys.json").write_text('{"custodian-xd": "szc1:..."}')
    assert [d.id for d in load_settings(None, data_dir=tmp_path).dcs] == ["local"]


def test_a_three_dc_install_with_a_leftover_key_file_stays_three_dcs(tmp_path: Path) -> None:
    """``dc.key`` alone means "before custody" only where no custodian was ever set up."""
    (tmp_path / "custodians" / "custodian-xa").mkdir(parents=True)
    (tmp_path / "dc.key").write_bytes(b"")
    assert [d.id for d in load_settings(None, data_dir=tmp_path).dcs] == ["xa", "xb", "xc"]


def test_three_dcs_each_kept_by_the_other_two_countries_load(tmp_path: Path) -> None:
    settings = load(tmp_path, toml())
    assert [d.id for d in settings.dcs] == ["de", "ch", "is"]
    by_id = {d.id: d for d in settings.dcs}
    assert [c.jurisdiction for c in settings.custodians_of(by_id["de"])] == ["CH", "IS"]
    assert [c.jurisdiction for c in settings.custodians_of(by_id["ch"])] == ["DE", "IS"]
    assert [c.jurisdiction for c in settings.custodians_of(by_id["is"])] == ["DE", "CH"]


def test_a_node_serves_the_first_dc_unless_homing_names_a_default(tmp_path: Path) -> None:
    assert load(tmp_path, toml()).dc.id == "de"
    assert load(tmp_path, toml(homing={"default_dc": "ch"})).dc.id == "ch"


def test_serve_dc_is_no_longer_an_option_a_node_serves_every_dc(tmp_path: Path) -> None:
    refused(tmp_path, toml(top={"serve_dc": "is"}), "serve_dc")


def test_homing_takes_the_longest_prefix_then_the_country_then_the_default(
    tmp_path: Path,
) -> None:
    text = toml(
        homing={"default_dc": "ch"},
        countries={"DE": "de", "AT": "de"},
        prefixes={"+41": "is", "+4175": "de", "+99966": "is"},
    )
    homing = load(tmp_path, text).homing
    assert homing.dc_for(parse_phone("+4930123456"), "x") == "de"  # Germany by country
    assert homing.dc_for(parse_phone("+41446681800"), "x") == "is"  # +41 prefix beats the default
    assert homing.dc_for(parse_phone("+41751234567"), "x") == "de"  # the longer prefix wins
    assert homing.dc_for(parse_phone("+999661234567"), "x") == "is"  # test number: no country
    assert homing.dc_for(parse_phone("+33142685300"), "x") == "ch"  # France: the default


def test_homing_may_send_each_phone_country_to_a_dc(tmp_path: Path) -> None:
    settings = load(tmp_path, toml(homing={}, countries={"AT": "de", "LI": "ch"}))
    assert dict(settings.homing.countries) == {"AT": "de", "LI": "ch"}


@pytest.mark.parametrize("places", [("QQ", "XX", "AA"), ("XB", "ZZ", "QM")])
def test_user_assigned_country_codes_are_accepted_for_private_set_ups(
    tmp_path: Path, places: tuple[str, str, str]
) -> None:
    dc_place, *custodian_places = places
    custodians = [{"id": f"c-{p.lower()}", "jurisdiction": p} for p in custodian_places]
    dcs = [
        {
            "id": "private",
            "jurisdiction": dc_place,
            "custodians": [c["id"] for c in custodians],
            "threshold": 2,
        }
    ]
    assert load(tmp_path, toml(dcs=dcs, custodians=custodians)).dc.jurisdiction == dc_place


def test_a_remote_custodian_with_its_public_key_loads(tmp_path: Path) -> None:
    key = CustodianKeys.generate().public.encode()
    custodians = with_custodian("c-ch", url="https://custodian.example.ch/", public_key=key)
    settings = load(tmp_path, toml(custodians=custodians))
    (remote,) = [c for c in settings.custodians if c.url is not None]
    assert (remote.id, remote.public_key) == ("c-ch", key)


# what is refused ---------------------------------------------------------------------------
def refused(tmp_path: Path, text: str, *fragments: str, **overrides: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, **overrides)
    message = str(caught.value)
    for fragment in fragments:
        assert re.search(re.escape(fragment), message), message
    return message


def test_a_custodian_in_the_dcs_own_jurisdiction_is_refused(tmp_path: Path) -> None:
    dcs = with_dc("de", custodians=["c-de", "c-ch", "c-is"])
    refused(tmp_path, toml(dcs=dcs), "dc de:", "own jurisdiction DE")


def test_k_custodians_in_one_country_are_refused(tmp_path: Path) -> None:
    custodians = [*CUSTODIANS, {"id": "c-ch-2", "jurisdiction": "CH"}]
    dcs = with_dc("de", custodians=["c-ch", "c-ch-2", "c-is"], threshold=2)
    refused(tmp_path, toml(dcs=dcs, custodians=custodians), "dc de:", "2 of its custodians", "CH")


def test_fewer_than_k_custodians_in_one_country_are_accepted(tmp_path: Path) -> None:
    custodians = [*CUSTODIANS, {"id": "c-ch-2", "jurisdiction": "CH"}]
    dcs = with_dc("de", custodians=["c-ch", "c-ch-2", "c-is"], threshold=3)
    assert load(tmp_path, toml(dcs=dcs, custodians=custodians)).dcs[0].threshold == 3


def test_a_threshold_of_one_is_refused_since_one_state_could_compel_it(tmp_path: Path) -> None:
    refused(tmp_path, toml(dcs=with_dc("ch", threshold=1)), "dc ch:", "threshold 1")


def test_a_threshold_above_the_number_of_custodians_is_refused(tmp_path: Path) -> None:
    dcs = with_dc("is", threshold=3)
    refused(tmp_path, toml(dcs=dcs), "dc is:", "threshold 3 exceeds its 2 custodians")


def test_an_unknown_custodian_id_is_refused(tmp_path: Path) -> None:
    dcs = with_dc("de", custodians=["c-ch", "c-fr"])
    refused(tmp_path, toml(dcs=dcs), "dc de:", "unknown custodian(s) c-fr")


def test_a_custodian_listed_twice_for_one_dc_is_refused(tmp_path: Path) -> None:
    dcs = with_dc("de", custodians=["c-ch", "c-is", "c-ch"])
    refused(tmp_path, toml(dcs=dcs), "dc de:", "listed twice")


def test_two_custodians_with_one_id_are_refused(tmp_path: Path) -> None:
    custodians = [*CUSTODIANS, {"id": "c-ch", "jurisdiction": "LI"}]
    refused(tmp_path, toml(custodians=custodians), "custodian ids must be unique")


def test_two_dcs_with_one_id_are_refused(tmp_path: Path) -> None:
    dcs = [*DCS, {**DCS[0], "jurisdiction": "AT"}]
    refused(tmp_path, toml(dcs=dcs), "dc ids must be unique")


@pytest.mark.parametrize("code", ["AB", "EU", "ZY", "UK"])
def test_a_dc_in_a_place_that_is_not_an_iso_country_is_refused(tmp_path: Path, code: str) -> None:
    refused(tmp_path, toml(dcs=with_dc("de", jurisdiction=code)), "dcs.0", f"{code!r} is not")


@pytest.mark.parametrize("code", ["AB", "EU", "ZY", "UK"])
def test_a_custodian_in_a_place_that_is_not_an_iso_country_is_refused(
    tmp_path: Path, code: str
) -> None:
    custodians = with_custodian("c-is", jurisdiction=code)
    refused(tmp_path, toml(custodians=custodians), "custodians.2", f"{code!r} is not")


@pytest.mark.parametrize("code", ["de", "DEU", "XX1", "D", ""])
def test_a_jurisdiction_that_is_not_two_capital_letters_is_refused(
    tmp_path: Path, code: str
) -> None:
    refused(tmp_path, toml(dcs=with_dc("ch", jurisdiction=code)), "dcs.1.jurisdiction")


def test_a_remote_custodian_without_its_public_key_is_refused(tmp_path: Path) -> None:
    custodians = with_custodian("c-ch", url="https://custodian.example.ch/")
    refused(tmp_path, toml(custodians=custodians), "custodian c-ch", "needs its public_key")


def test_a_homing_default_dc_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, toml(homing={"default_dc": "mars"}), "'mars' is not a configured DC")


def test_homing_a_prefix_to_a_dc_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, toml(prefixes={"+49": "mars"}), "'mars' is not a configured DC")


def test_homing_a_country_to_a_dc_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    text = toml(homing={}, countries={"AT": "de", "FR": "fr"})
    refused(tmp_path, text, "'fr' is not a configured DC")


def test_a_custodian_configuration_without_the_default_dcs_custodians_is_refused(
    tmp_path: Path,
) -> None:
    # Custodians without [[dcs]] leave the embedded DCs naming custodians that do not exist.
    refused(tmp_path, toml(dcs=[]), "dc xa:", "unknown custodian")


def test_a_configuration_error_names_the_problem_without_printing_other_values(
    tmp_path: Path,
) -> None:
    text = (
        '[storage]\ndatabase_url = "postgresql+asyncpg://samizdat:hunter2@db/samizdat"\n'
        '[homing]\ndefault_dc = "mars"\n'
    )
    message = refused(tmp_path, text, "'mars' is not a configured DC")
    assert "hunter2" not in message
    assert "Value error" not in message


def test_custodians_configured_alone_keep_the_data_directorys_dcs(tmp_path: Path) -> None:
    """Moving an old one-DC install's custodians out of process configures only
    ``[[custodians]]``: its DC stays ``local``, not the three-DC default."""
    (tmp_path / "dc-local.sqlite3").write_bytes(b"")
    places = {"custodian-xb": "XB", "custodian-xc": "XC", "custodian-xd": "XD"}
    custodians = [{"id": cid, "jurisdiction": place} for cid, place in places.items()]
    settings = load(tmp_path, toml(dcs=[], custodians=custodians), data_dir=tmp_path)
    assert [d.id for d in settings.dcs] == ["local"]
    assert settings.homing.prefixes == {}
