"""A node reaches its in-process custodians only as they were when its DC was set up.

In-process custodians live under ``DATA/custodians/ID``, created on the very first start.
After that, a custodian whose state no longer matches what the node knows (another
jurisdiction than configured, another key than the one its shares were sealed to) is never
taken for the original: the server refuses to start, or the custodian counts as
down, and nothing it could not open is sealed to it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from samizdat.crypto.custody_keys import NodeKey
from samizdat.custody.client import CustodianUnreachable
from samizdat.custody.node import CustodianRef, unseal_dc_key
from samizdat.custody.service import Custodian
from samizdat.server.custodians import PUBLIC_KEYS_FILE, custodian_refs
from samizdat.server.settings import ConfigError, ServerSettings
from samizdat.server.topology import (
    CustodianSettings,
    DcSettings,
    one_dc_custodians,
    one_dc_dcs,
)
from tests.custody_requests import DC_KEY, dc_key_envelope, signed_unseal

DC = "local"
XB = "custodian-xb"


@pytest.fixture
def settings(tmp_path: Path) -> ServerSettings:
    """The one-DC layout (DC ``local`` kept by 2 of 3 custodians, the embedded default before
    three DCs) on a fresh data directory: losing one custodian, its DC still opens."""
    return ServerSettings(
        data_dir=tmp_path / "data", dcs=one_dc_dcs(), custodians=one_dc_custodians()
    )


@pytest.fixture
def node(settings: ServerSettings) -> NodeKey:
    settings.data_dir.mkdir(parents=True)
    return NodeKey.load_or_create(settings.data_dir / "node.key")


def refs_at_start(settings: ServerSettings, node: NodeKey) -> list[CustodianRef]:
    """What a server start does: one reference per custodian of DC ``local``."""
    return custodian_refs(settings, {DC: node})[DC]


def state_of(settings: ServerSettings, custodian_id: str) -> Path:
    return settings.data_dir / "custodians" / custodian_id


def known_public_keys(settings: ServerSettings) -> bytes:
    return (settings.data_dir / "custodians" / PUBLIC_KEYS_FILE).read_bytes()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_a_custodian_configured_in_another_jurisdiction_than_its_state_stops_the_start(
    settings: ServerSettings, node: NodeKey
) -> None:
    refs_at_start(settings, node)  # the first start creates xb in XB
    known = known_public_keys(settings)
    moved = ServerSettings(
        data_dir=settings.data_dir,
        dcs=(
            DcSettings(
                id=DC,
                jurisdiction="XA",
                custodians=(XB, "custodian-xc", "custodian-xd"),
                threshold=2,
            ),
        ),
        custodians=(
            CustodianSettings(id=XB, jurisdiction="XE"),
            CustodianSettings(id="custodian-xc", jurisdiction="XC"),
            CustodianSettings(id="custodian-xd", jurisdiction="XD"),
        ),
    )

    with pytest.raises(ConfigError, match=rf"custodian {XB} in .* is in XB, not XE as configured"):
        refs_at_start(moved, node)

    assert Custodian(state_of(settings, XB)).identity.jurisdiction == "XB"
    assert known_public_keys(settings) == known


async def test_a_missing_custodian_restored_with_another_key_counts_as_down(
    settings: ServerSettings, node: NodeKey, tmp_path: Path
) -> None:
    refs_at_start(settings, node)
    backup = tmp_path / "backup-of-xb"
    shutil.move(state_of(settings, XB), backup)
    refs = refs_at_start(settings, node)  # xb is gone: it counts as down, nothing replaces it
    xb, xc, _ = refs
    envelope = dc_key_envelope(DC, {ref.custodian_id: ref.public for ref in refs})
    # The wrong backup comes back while the node runs: same id and jurisdiction, another key.
    Custodian.init(state_of(settings, XB), XB, "XB")

    with pytest.raises(CustodianUnreachable, match="another key"):
        await xb.client.info()
    request = signed_unseal(node, envelope, custodian=XB, dc=DC, issued_at_ms=now_ms())
    with pytest.raises(CustodianUnreachable, match="another key"):
        await xb.client.unseal(request)
    payload, outcomes = await unseal_dc_key(envelope, dc=DC, node_key=node, custodians=refs)
    assert payload == DC_KEY
    assert (XB, False) in {(o.custodian_id, o.ok) for o in outcomes}

    # The right backup serves again, with the key the DC's envelopes were sealed to.
    shutil.rmtree(state_of(settings, XB))
    shutil.move(backup, state_of(settings, XB))
    assert (await xb.client.info()).public_key == xb.public.encode()
    payload, outcomes = await unseal_dc_key(envelope, dc=DC, node_key=node, custodians=[xb, xc])
    assert payload == DC_KEY
    assert {(o.custodian_id, o.ok) for o in outcomes} == {(XB, True), ("custodian-xc", True)}


async def test_a_custodian_restored_with_another_key_before_a_restart_counts_as_down(
    settings: ServerSettings, node: NodeKey
) -> None:
    original = refs_at_start(settings, node)[0].public.encode()
    known = known_public_keys(settings)
    shutil.rmtree(state_of(settings, XB))
    Custodian.init(state_of(settings, XB), XB, "XB")

    xb = refs_at_start(settings, node)[0]

    assert known_public_keys(settings) == known
    assert xb.public.encode() == original
    with pytest.raises(CustodianUnreachable):
        await xb.client.info()


def test_the_embedded_default_runs_one_custodian_per_country_each_enrolling_two_dcs(
    tmp_path: Path,
) -> None:
    """Three DCs, three in-process custodians: each custodian keeps the two DCs outside its
    own country, with one state (one audit log) and each DC's node key enrolled for that DC."""
    settings = ServerSettings(data_dir=tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    node_keys = {dc.id: NodeKey.load_or_create(settings.node_key_file(dc)) for dc in settings.dcs}
    refs = custodian_refs(settings, node_keys)

    assert {dc: [r.custodian_id for r in found] for dc, found in refs.items()} == {
        "xa": ["custodian-xb", "custodian-xc"],
        "xb": ["custodian-xa", "custodian-xc"],
        "xc": ["custodian-xa", "custodian-xb"],
    }
    states = sorted(p.name for p in (settings.data_dir / "custodians").iterdir() if p.is_dir())
    assert states == ["custodian-xa", "custodian-xb", "custodian-xc"]
    xa = Custodian(state_of(settings, "custodian-xa"))
    assert {key: node.dc for key, node in xa.nodes.items()} == {
        node_keys["xb"].encoded(): "xb",
        node_keys["xc"].encoded(): "xc",
    }
    assert xa.identity.jurisdiction == "XA"
