"""The server's side of lawful requests: what the intake may reach, where outcomes go, and
the rules in force (court registry, disclosure policy) read from the data directory.

``RouterRecords`` is the intake's only view of the server: where a subject's account lives,
that user's sealed identity records, and a DC's custodians. ``SqlRequestBook`` appends each
outcome to the transparency log (in the default DC's database, signed with the log key in
``DATA/legal/``) and to the operator's list of requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import delete, insert, select

from samizdat.core.ids import UserId
from samizdat.core.phone import parse_phone
from samizdat.core.rules import normalize_username
from samizdat.crypto.custody_keys import NodeKey
from samizdat.crypto.signing_keys import SigningKey
from samizdat.legal.intake import CaseOutcome, Keeper, Located, Terms
from samizdat.legal.orders import Subject
from samizdat.legal.policy import DisclosurePolicy, PolicyError, load_policy
from samizdat.legal.registry import REGISTRY_FILE, CourtRegistry
from samizdat.protocol.errors import SamizdatError
from samizdat.server.placement import DcRouter, ServedDc
from samizdat.server.settings import ServerSettings
from samizdat.store.database import StoreConflict
from samizdat.store.tables import legal_requests, legal_used_orders
from samizdat.store.transparency import TransparencyStore
from samizdat.transparency.records import LeafRecord, encode_leaf

log = logging.getLogger(__name__)
LEGAL_DIR = "legal"
POLICY_FILE = "policy.yaml"
LOG_KEY_FILE = "transparency.key"
APPEND_ATTEMPTS = 3


def legal_dir(settings: ServerSettings) -> Path:
    return settings.data_dir / LEGAL_DIR


def registry_path(settings: ServerSettings) -> Path:
    return settings.data_dir / REGISTRY_FILE


def policy_path(settings: ServerSettings) -> Path | None:
    """The configured policy file, else ``DATA/legal/policy.yaml`` if there is one; None
    means the defaults (terrorism only; phone and IP; the DC's threshold). A configured file
    that is missing is an error, never the defaults: the operator's file may be stricter."""
    configured = settings.legal.policy_file
    if configured is not None:
        if not configured.exists():
            raise PolicyError(f"{configured}: the configured disclosure policy file is missing")
        return configured
    default = legal_dir(settings) / POLICY_FILE
    return default if default.exists() else None


@dataclass(frozen=True, slots=True)
class Rules:
    """What decides a submission, read afresh for each (operators edit the files)."""

    registry: CourtRegistry
    policy: DisclosurePolicy
    recognised: frozenset[str]
    required: int
    ip_window_days: int

    @property
    def terms(self) -> Terms:
        return Terms(self.ip_window_days, self.required, frozenset(self.policy.categories))


def load_rules(settings: ServerSettings) -> Rules:
    """Raises RegistryError / PolicyError (ValueErrors naming the file) if one is invalid."""
    policy = load_policy(policy_path(settings))
    places = {c.jurisdiction for c in settings.custodians}
    return Rules(
        registry=CourtRegistry.load(registry_path(settings)),
        policy=policy,
        recognised=policy.recognised_for(places),
        required=policy.required_for(max(dc.threshold for dc in settings.dcs)),
        ip_window_days=policy.ip_window_for(settings.identity.ip_retention_days),
    )


class RouterRecords:
    """Identity records through the DC router: the only door from the intake to data."""

    def __init__(self, dcs: DcRouter, served: Sequence[ServedDc], settings: ServerSettings):
        self.dcs = dcs
        self.by_id = {dc.settings.id: dc for dc in served}
        self.places = {c.id: c.jurisdiction for c in settings.custodians}

    async def locate(self, subject: Subject) -> Located | None:
        """The subject's account and home DC; None if there is none, or if the DC that
        would know is sealed (the case is then refused as not found, and can be re-sent)."""
        try:
            user_id = await self._user_id(subject)
            account = None if user_id is None else await self.dcs.get_user(UserId(user_id))
            store = None if account is None else await self.dcs.find_user(account.id)
        except SamizdatError:
            return None
        if account is None or store is None:
            return None
        dc = next(dc_id for dc_id, dc in self.by_id.items() if dc.store is store)
        return Located(dc, account.id)

    async def _user_id(self, subject: Subject) -> int | None:
        if subject.kind == "user_id":
            return int(subject.value)
        if subject.kind == "username":
            account = await self.dcs.user_by_username(normalize_username(subject.value)[1])
        else:
            phone = parse_phone(subject.value)
            home = await self.dcs.home_of_number(phone)
            home.keyring.require_unsealed()
            account = await home.user_by_phone(home.keyring.phone_lookup(phone.e164))
        return None if account is None else account.id

    async def sealed(self, where: Located, field: str, since: float) -> list[bytes]:
        return await self.by_id[where.dc].store.identity.sealed_of(where.user_id, field, since)

    def node_key(self, dc: str) -> NodeKey:
        return self.by_id[dc].keeper.node_key

    def keepers(self, dc: str) -> tuple[int, list[Keeper]]:
        served = self.by_id[dc]
        keepers = [Keeper(ref, self.places[ref.custodian_id]) for ref in served.keeper.custodians]
        return served.settings.threshold, keepers


class SqlRequestBook:
    """Outcomes into the transparency log and the operator's request list (default DC)."""

    def __init__(self, store: TransparencyStore, key: SigningKey) -> None:
        self.log = store
        self.key = key

    async def record(self, outcome: CaseOutcome, leaf: LeafRecord) -> int:
        now = time.time()
        for attempt in range(APPEND_ATTEMPTS):
            try:
                index, _ = await self.log.append(encode_leaf(leaf), sign=self.key.sign, now=now)
                break
            except StoreConflict:  # another node took the index: the next one is free
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        async with self.log.db.write() as conn:
            await conn.execute(
                insert(legal_requests).values(
                    received_at=now,
                    case_ref=outcome.case[:200],
                    jurisdictions=",".join(outcome.jurisdictions)[:100],
                    courts="\n".join(outcome.courts),
                    category=outcome.category[:64],
                    outcome=outcome.outcome,
                    reason=None if outcome.reason is None else str(outcome.reason),
                    accounts=outcome.accounts,
                    leaf_idx=index,
                )
            )
        log.info(
            "lawful request decided",
            extra={"outcome": outcome.outcome, "reason": str(outcome.reason), "leaf": index},
        )
        return index

    async def used(self, digests: Sequence[str]) -> set[str]:
        query = select(legal_used_orders.c.digest).where(legal_used_orders.c.digest.in_(digests))
        async with self.log.db.read() as conn:
            return {row[0] for row in await conn.execute(query)}

    async def use(self, digests: Sequence[str]) -> None:
        now = time.time()
        async with self.log.db.write() as conn:
            await conn.execute(
                insert(legal_used_orders), [{"digest": d, "used_at": now} for d in digests]
            )

    async def release(self, digests: Sequence[str]) -> None:
        async with self.log.db.write() as conn:
            await conn.execute(
                delete(legal_used_orders).where(legal_used_orders.c.digest.in_(digests))
            )

    async def requests(self, limit: int = 1000) -> list[dict[str, object]]:
        """The newest requests first, as the operator lists them."""
        query = select(legal_requests).order_by(legal_requests.c.id.desc()).limit(limit)
        async with self.log.db.read() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [
            {
                "id": row["id"],
                "received_at": row["received_at"],
                "case": row["case_ref"],
                "jurisdictions": row["jurisdictions"].split(",") if row["jurisdictions"] else [],
                "courts": row["courts"].split("\n") if row["courts"] else [],
                "category": row["category"],
                "outcome": row["outcome"],
                "reason": row["reason"],
                "accounts": row["accounts"],
                "leaf_index": row["leaf_idx"],
            }
            for row in rows
        ]


__all__ = [
    "LEGAL_DIR",
    "LOG_KEY_FILE",
    "POLICY_FILE",
    "RouterRecords",
    "Rules",
    "SqlRequestBook",
    "legal_dir",
    "load_rules",
    "policy_path",
    "registry_path",
]
