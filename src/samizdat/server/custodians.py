"""Reach the served DC's custodians as its configuration names them.

A custodian with a ``url`` is a separate service (``samizdat custodian serve``), known by its
configured public key. One without is *in-process*: its state lives under
``DATA/custodians/ID`` and this node enrols itself there automatically. That is the embedded
default, for trying Samizdat on one machine; it protects nothing against a seizure of that
machine, and ``samizdat serve`` says so when it starts.
"""

from __future__ import annotations

from pathlib import Path

from samizdat.crypto.custody_keys import CustodianPublic, KeyFormatError, NodeKey
from samizdat.custody.client import HttpCustodianClient, InProcessCustodianClient
from samizdat.custody.node import CustodianRef
from samizdat.custody.service import Custodian, CustodianStateError
from samizdat.server.settings import ConfigError, ServerSettings
from samizdat.server.topology import CustodianSettings, DcSettings


def _in_process(
    spec: CustodianSettings, dc: DcSettings, data_dir: Path, node_key: NodeKey
) -> CustodianRef:
    directory = data_dir / "custodians" / spec.id
    try:
        if (directory / "custodian.key").exists():
            custodian = Custodian(directory)
        else:
            custodian = Custodian.init(directory, spec.id, spec.jurisdiction)
    except CustodianStateError as exc:
        raise ConfigError(f"in-process custodian {spec.id}: {exc}") from exc
    if custodian.identity.jurisdiction != spec.jurisdiction:
        raise ConfigError(
            f"custodian {spec.id} in {directory} is in {custodian.identity.jurisdiction}, "
            f"not {spec.jurisdiction} as configured"
        )
    if node_key.encoded() not in custodian.nodes:
        custodian.enroll_node(node_key.encoded(), dc.id)
    public = CustodianPublic.decode(custodian.public_key)
    if spec.public_key is not None and spec.public_key != custodian.public_key:
        raise ConfigError(f"custodian {spec.id}: public_key does not match its state")
    return CustodianRef(spec.id, public, InProcessCustodianClient(custodian))


def custodian_refs(settings: ServerSettings, node_key: NodeKey) -> list[CustodianRef]:
    """One reference per custodian of the served DC, in the DC's configured order."""
    dc = settings.dc
    refs = []
    for spec in settings.custodians_of(dc):
        if spec.url is None:
            refs.append(_in_process(spec, dc, settings.data_dir, node_key))
            continue
        try:
            public = CustodianPublic.decode(spec.public_key or "")
        except KeyFormatError as exc:
            raise ConfigError(f"custodians.{spec.id}.public_key: {exc}") from exc
        refs.append(CustodianRef(spec.id, public, HttpCustodianClient(spec.id, str(spec.url))))
    return refs


def uses_in_process_custodians(settings: ServerSettings) -> bool:
    return any(spec.url is None for spec in settings.custodians_of(settings.dc))


__all__ = ["custodian_refs", "uses_in_process_custodians"]
