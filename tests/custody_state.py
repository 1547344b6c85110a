"""What someone holding custodians' state can open: the tests' view of threshold custody.

The embedded default keeps its in-process custodians under ``DATA/custodians/ID`` (one in each
of XA, XB and XC; each DC is kept by the two outside its own jurisdiction); a test can
take any subset of them (as a state that compels or seizes those custodians would) and try to
open envelopes offline, without asking anyone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from samizdat.crypto import DcKey, Keyring
from samizdat.crypto.custody_keys import CustodianKeys
from samizdat.crypto.threshold import Envelope, EnvelopeError, open_envelope
from tests.harness import ServerProcess, sql

CUSTODIAN_IDS = ("custodian-xa", "custodian-xb", "custodian-xc")
DC_IDS = ("xa", "xb", "xc")


def custodians_of(dc: str) -> tuple[str, ...]:
    """The embedded default's custodians of ``dc``: those outside its jurisdiction."""
    return tuple(cid for cid in CUSTODIAN_IDS if not cid.endswith(f"-{dc}"))


def custodian_key(directory: Path) -> CustodianKeys:
    """The private key in one custodian's state directory (``samizdat custodian init``)."""
    return CustodianKeys.load(directory / "custodian.key")


def custodian_keys(data_dir: Path, ids: Iterable[str] = CUSTODIAN_IDS) -> dict[str, CustodianKeys]:
    """The keys of a server's in-process custodians (``DATA/custodians/ID``)."""
    return {cid: custodian_key(data_dir / "custodians" / cid) for cid in ids}


def open_with(sealed: bytes, keys: dict[str, CustodianKeys]) -> bytes:
    """Open an envelope with whatever custodian keys are at hand; EnvelopeError if too few."""
    envelope = Envelope.from_bytes(sealed)
    shares = []
    for cid, key in keys.items():
        if cid in envelope.custodians:
            shares.append(key.open_share(envelope, cid))
    return open_envelope(envelope, shares)


async def dc_key_envelopes(server: ServerProcess, dc: str | None = None) -> dict[str, bytes]:
    """A DC's live key envelopes by key id (the default DC's unless ``dc`` names another)."""
    rows = await sql(server, "SELECT key_id, envelope FROM dc_keys WHERE retired_at IS NULL", dc=dc)
    return {row["key_id"]: bytes(row["envelope"]) for row in rows}


async def server_keyring(
    server: ServerProcess, keys: dict[str, CustodianKeys], dc: str | None = None
) -> Keyring:
    """Rebuild a DC's keyring offline from custodians' keys (raises if too few)."""
    envelopes = await dc_key_envelopes(server, dc)
    dc_keys = [DcKey.from_payload(open_with(e, keys), kid) for kid, e in envelopes.items()]
    ring = Keyring(dc or server.default_dc)
    ring.install(dc_keys, max(envelopes, key=lambda k: int(k[1:]) if k[1:].isdigit() else 0))
    return ring


__all__ = [
    "CUSTODIAN_IDS",
    "DC_IDS",
    "EnvelopeError",
    "custodian_key",
    "custodian_keys",
    "custodians_of",
    "dc_key_envelopes",
    "open_with",
    "server_keyring",
]
