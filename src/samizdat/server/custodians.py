"""Reach each served DC's custodians as its configuration names them.

A custodian with a ``url`` is a separate service (``samizdat custodian serve``), known by its
configured public key. One without is *in-process*: its state lives under
``DATA/custodians/ID`` and this node enrols itself there automatically. That is the embedded
default, for trying Samizdat on one machine; it protects nothing against a seizure of that
machine, and ``samizdat serve`` says so when it starts.

In-process custodians are created only on the very first start (no ``custodians/`` yet);
later, a missing one counts as down, so its loss is visible instead of silently replaced by a
new custodian that could open nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import orjson

from samizdat.crypto.custody_keys import CustodianPublic, KeyFormatError, NodeKey
from samizdat.crypto.private_files import write_private
from samizdat.custody.audit import AuditError
from samizdat.custody.client import (
    CustodianUnreachable,
    HttpCustodianClient,
    InProcessCustodianClient,
)
from samizdat.custody.node import CustodianRef
from samizdat.custody.protocol import Answer, CustodianInfo, SignedDisclose, SignedUnseal
from samizdat.custody.service import Custodian, CustodianStateError
from samizdat.server.settings import ConfigError, ServerSettings
from samizdat.server.topology import CustodianSettings, DcSettings

log = logging.getLogger(__name__)
PUBLIC_KEYS_FILE = "public-keys.json"


class MissingCustodian:
    """An in-process custodian whose state directory is gone: it answers nothing, like a
    custodian that is down, until its directory is restored (then it serves again). Its
    public key (from ``public-keys.json``) still seals new records meanwhile."""

    def __init__(self, custodian_id: str, directory: Path, public_key: str) -> None:
        self.custodian_id = custodian_id
        self.directory = directory
        self.public_key = public_key
        self._back: InProcessCustodianClient | None = None

    def _client(self) -> InProcessCustodianClient:
        if self._back is None:
            if not (self.directory / "custodian.key").exists():
                raise CustodianUnreachable(
                    f"custodian {self.custodian_id}: its state {self.directory} is missing"
                )
            try:
                custodian = Custodian(self.directory)
            except (CustodianStateError, AuditError, KeyFormatError) as exc:
                raise CustodianUnreachable(f"custodian {self.custodian_id}: {exc}") from exc
            if custodian.public_key != self.public_key:
                raise CustodianUnreachable(
                    f"custodian {self.custodian_id}: restored state has another key"
                )
            self._back = InProcessCustodianClient(custodian)
        return self._back

    async def unseal(self, signed: SignedUnseal) -> Answer:
        return await self._client().unseal(signed)

    async def disclose(self, signed: SignedDisclose) -> Answer:
        return await self._client().disclose(signed)

    async def info(self) -> CustodianInfo:
        return await self._client().info()

    async def aclose(self) -> None:
        return None


def _open_in_process(
    spec: CustodianSettings, root: Path, first_start: bool
) -> Custodian | MissingCustodian:
    directory = root / spec.id
    public_keys = root / PUBLIC_KEYS_FILE
    known = orjson.loads(public_keys.read_bytes()) if public_keys.exists() else {}
    try:
        if (directory / "custodian.key").exists():
            custodian = Custodian(directory)
        elif first_start:
            custodian = Custodian.init(directory, spec.id, spec.jurisdiction)
        elif spec.id in known:
            return MissingCustodian(spec.id, directory, known[spec.id])
        else:
            raise ConfigError(
                f"in-process custodian {spec.id}: no state in {directory} and no known "
                "public key; restore its directory from a backup"
            )
    except (CustodianStateError, AuditError, KeyFormatError) as exc:
        raise ConfigError(f"in-process custodian {spec.id}: {exc}") from exc
    if spec.id in known and known[spec.id] != custodian.public_key:
        # Not the custodian everything so far was sealed to: it could open none of it, and
        # taking its key would seal new records to a stranger. Down until the right one is back.
        log.warning("in-process custodian state holds another key", extra={"custodian": spec.id})
        return MissingCustodian(spec.id, directory, known[spec.id])
    if custodian.identity.jurisdiction != spec.jurisdiction:
        raise ConfigError(
            f"custodian {spec.id} in {directory} is in {custodian.identity.jurisdiction}, "
            f"not {spec.jurisdiction} as configured"
        )
    if spec.public_key is not None and spec.public_key != custodian.public_key:
        raise ConfigError(f"custodian {spec.id}: public_key does not match its state")
    if spec.id not in known:
        write_private(public_keys, orjson.dumps({**known, spec.id: custodian.public_key}))
    return custodian


def _in_process_ref(
    spec: CustodianSettings, dc: DcSettings, node_key: NodeKey, held: Custodian | MissingCustodian
) -> CustodianRef:
    if isinstance(held, MissingCustodian):
        return CustodianRef(spec.id, CustodianPublic.decode(held.public_key), held)
    if node_key.encoded() not in held.nodes:
        held.enroll_node(node_key.encoded(), dc.id)
    return CustodianRef(
        spec.id, CustodianPublic.decode(held.public_key), InProcessCustodianClient(held)
    )


def custodian_refs(
    settings: ServerSettings, node_keys: Mapping[str, NodeKey]
) -> dict[str, list[CustodianRef]]:
    """Per DC (by id), one reference per custodian, in the DC's configured order.

    An in-process custodian serving several DCs is one instance (one audit log) and enrols
    each DC's node key. Its state is created only on the very first start (no custodians
    directory yet); later a missing one counts as down rather than being replaced.
    """
    root = settings.data_dir / "custodians"
    first_start = not root.exists()
    held: dict[str, Custodian | MissingCustodian] = {}
    out: dict[str, list[CustodianRef]] = {}
    for dc in settings.dcs:
        refs = out[dc.id] = []
        for spec in settings.custodians_of(dc):
            if spec.url is None:
                if spec.id not in held:
                    held[spec.id] = _open_in_process(spec, root, first_start)
                refs.append(_in_process_ref(spec, dc, node_keys[dc.id], held[spec.id]))
                continue
            try:
                public = CustodianPublic.decode(spec.public_key or "")
            except KeyFormatError as exc:
                raise ConfigError(f"custodians.{spec.id}.public_key: {exc}") from exc
            refs.append(CustodianRef(spec.id, public, HttpCustodianClient(spec.id, str(spec.url))))
    return out


def uses_in_process_custodians(settings: ServerSettings) -> bool:
    return any(spec.url is None for spec in settings.custodians)


__all__ = ["MissingCustodian", "custodian_refs", "uses_in_process_custodians"]
