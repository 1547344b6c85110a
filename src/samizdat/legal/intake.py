"""The intake of lawful requests: review, ask the custodians, publish the outcome.

All orders of a case come in one submission (nothing about a pending case is stored). For
each case the review (``review.py``, pure) allows, the intake finds the subject, then asks
the custodians of the subject's DC to open exactly the permitted records, each custodian
shown the order of its own jurisdiction. Each custodian re-checks that order on its own; the
intake's verdict is never sent, so a wrong one (a forged court in the operator's registry,
say) opens nothing. Every case, granted or refused, becomes one transparency-log leaf with
no personal data.

This module reaches the server only through ``IdentityRecords``: where a subject lives, that
user's sealed identity records, and a DC's custodians. There is no path from here to message
content, contacts, media or keys (an import contract in ``pyproject.toml`` keeps it so).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

import orjson

from samizdat.crypto.custody_keys import KeyFormatError, NodeKey, b64
from samizdat.crypto.recipient_keys import seal_package
from samizdat.crypto.threshold import Envelope, EnvelopeError
from samizdat.custody.node import CustodianRef, NotEnoughShares, disclose_record
from samizdat.custody.protocol import CourtOrder
from samizdat.legal.orders import Subject, body_digest
from samizdat.legal.review import CaseReview, RefusalReason, reason_text
from samizdat.transparency.records import LeafRecord

DAY_SECONDS = 86_400.0
_PLAIN_WORD = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True, slots=True)
class Located:
    """Where a subject's account lives."""

    dc: str
    user_id: int


@dataclass(frozen=True, slots=True)
class Keeper:
    """One custodian of a DC, with the jurisdiction the operator configured for it."""

    ref: CustodianRef
    jurisdiction: str


class IdentityRecords(Protocol):
    """All the intake may ask of the server."""

    async def locate(self, subject: Subject) -> Located | None:
        """The account an order's subject names, if it exists."""
        ...

    async def sealed(self, where: Located, field: str, since: float) -> list[bytes]:
        """That user's sealed ``field`` records ("phone", or "ip" logged since ``since``)."""
        ...

    def keepers(self, dc: str) -> tuple[int, list[Keeper]]:
        """A DC's threshold and custodians."""
        ...

    def node_key(self, dc: str) -> NodeKey:
        """This node's key for a DC: custodians answer only requests it signs."""
        ...


class RequestBook(Protocol):
    """Where outcomes go: the public log (a leaf) and the operator's list of requests; and
    which orders already led to a disclosure (each order opens records once)."""

    async def record(self, outcome: CaseOutcome, leaf: LeafRecord) -> int:
        """Store both; return the leaf's index in the transparency log."""
        ...

    async def used(self, digests: Sequence[str]) -> set[str]:
        """Which of these order digests were used by a granted case."""
        ...

    async def use(self, digests: Sequence[str]) -> None:
        """Mark them used (durably, before anything is disclosed); a conflict if another
        node marked one first."""
        ...

    async def release(self, digests: Sequence[str]) -> None:
        """Unmark them: nothing was disclosed after all."""
        ...


@dataclass(frozen=True, slots=True)
class Terms:
    """What the policy in force says beyond the review: how far back IP records go, how many
    distinct jurisdictions a disclosure needs, and the categories the log may name."""

    ip_window_days: int
    required: int
    categories: frozenset[str]


@dataclass(frozen=True, slots=True)
class IpRecord:
    ip: str
    at: str  # ISO 8601, UTC


@dataclass(frozen=True, slots=True)
class Disclosure:
    """What the requesting authorities receive: the permitted fields of one user, nothing
    else."""

    subject: str
    user_id: int
    phone: str | None
    ips: tuple[IpRecord, ...] | None


@dataclass(slots=True)
class CaseOutcome:
    case: str
    jurisdictions: tuple[str, ...]
    courts: tuple[str, ...]
    category: str
    outcome: Literal["granted", "refused"]
    reason: RefusalReason | None
    detail: str  # one sentence: why, or what was disclosed
    orders: list[dict[str, str | None]]  # per order: jurisdiction, court, reason
    disclosure: Disclosure | None = None  # when the orders name no recipient key
    #: base64url of the package (``Disclosure`` as JSON) sealed to the orders' recipient key
    sealed_disclosure: str | None = None
    custodians: list[str] = field(default_factory=list)  # what each custodian said
    leaf_index: int | None = None

    @property
    def accounts(self) -> int:
        return 1 if self.disclosure is not None or self.sealed_disclosure is not None else 0


class CaseRefused(Exception):
    def __init__(self, reason: RefusalReason, detail: str, custodians: Sequence[str] = ()):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.custodians = list(custodians)


def _day(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


class LegalDesk:
    """Takes submissions one at a time (the log is one sequence)."""

    def __init__(
        self,
        records: IdentityRecords,
        book: RequestBook,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.book = book
        self.clock = clock
        self._lock = asyncio.Lock()

    async def decide(self, reviews: Sequence[CaseReview], terms: Terms) -> list[CaseOutcome]:
        """Carry out reviewed cases (``review.review_submission``): disclose where allowed,
        and record every outcome."""
        async with self._lock:
            return [await self._decide(review, terms) for review in reviews]

    async def _decide(self, review: CaseReview, terms: Terms) -> CaseOutcome:
        outcome = CaseOutcome(
            case=review.case,
            jurisdictions=tuple(sorted({v.jurisdiction for v in review.verdicts})),
            courts=tuple(sorted({v.court for v in review.verdicts})),
            category=_category(review, terms.categories),
            outcome="refused",
            reason=review.refusal,
            detail=review.refusal_text or "",
            orders=[
                {"jurisdiction": v.jurisdiction, "court": v.court, "reason": v.reason}
                for v in review.verdicts
            ],
        )
        if review.refusal is None:
            try:
                disclosure = await self._disclose(review, terms)
            except CaseRefused as refused:
                outcome.reason, outcome.detail = refused.reason, refused.detail
                outcome.custodians = refused.custodians
            else:
                if review.recipient is None:
                    outcome.disclosure = disclosure
                else:
                    package = orjson.dumps(dataclasses.asdict(disclosure))
                    sealed = seal_package(review.recipient, review.case, package)
                    outcome.sealed_disclosure = b64(sealed)
                outcome.outcome, outcome.reason = "granted", None
                outcome.detail = f"disclosed {', '.join(review.fields)} of one account"
        leaf = LeafRecord(
            date=_day(self.clock()),
            jurisdictions=outcome.jurisdictions,
            category=outcome.category,
            outcome=outcome.outcome,
            reason=None if outcome.reason is None else str(outcome.reason),
            accounts=outcome.accounts,
        )
        outcome.leaf_index = await self.book.record(outcome, leaf)
        return outcome

    async def _disclose(self, review: CaseReview, terms: Terms) -> Disclosure:
        subject = review.subject
        if subject is None:  # the review refuses every case without exactly one subject
            raise CaseRefused(
                RefusalReason.SUBJECT_MISMATCH, reason_text(RefusalReason.SUBJECT_MISMATCH)
            )
        if review.recipient is not None:
            try:  # a key that cannot be sealed to: refuse before anything opens
                seal_package(review.recipient, review.case, b"")
            except KeyFormatError:
                raise CaseRefused(
                    RefusalReason.MALFORMED, "the orders' recipient key is not usable"
                ) from None
        digests = [body_digest(order) for order in review.valid]
        if await self.book.used(digests):
            raise CaseRefused(RefusalReason.ALREADY_USED, reason_text(RefusalReason.ALREADY_USED))
        where = await self.records.locate(subject)
        if where is None:
            raise CaseRefused(
                RefusalReason.SUBJECT_NOT_FOUND, reason_text(RefusalReason.SUBJECT_NOT_FOUND)
            )
        threshold, keepers = self.records.keepers(where.dc)
        orders = _orders_for(keepers, review.valid)
        covered = {k.jurisdiction for k in keepers if k.ref.custodian_id in orders}
        if len(orders) < threshold or len(covered) < max(threshold, terms.required):
            # The same words as a case short of jurisdictions in the review: a court of a
            # country that keeps nothing of this account learns nothing of where it is.
            raise CaseRefused(
                RefusalReason.TOO_FEW_JURISDICTIONS,
                reason_text(RefusalReason.TOO_FEW_JURISDICTIONS),
            )
        # Claimed before anything opens (two nodes racing on the same orders: one claim
        # wins), and given back if nothing is disclosed after all.
        await self.book.use(digests)
        try:
            return await self._open(review, subject, where, keepers, orders, terms)
        except Exception:
            await self.book.release(digests)
            raise

    async def _open(
        self,
        review: CaseReview,
        subject: Subject,
        where: Located,
        keepers: Sequence[Keeper],
        orders: dict[str, CourtOrder],
        terms: Terms,
    ) -> Disclosure:
        asked = [k.ref for k in keepers if k.ref.custodian_id in orders]
        node_key = self.records.node_key(where.dc)
        resolved = None if subject.kind == "user_id" else where.user_id
        since = self.clock() - terms.ip_window_days * DAY_SECONDS

        async def open_all(field_name: str) -> list[bytes]:
            opened = []
            for sealed in await self.records.sealed(where, field_name, since):
                try:
                    envelope = Envelope.from_bytes(sealed)
                    plain, _ = await disclose_record(
                        envelope,
                        orders=orders,
                        custodians=asked,
                        resolved_user=resolved,
                        node_key=node_key,
                    )
                except NotEnoughShares as exc:
                    said = [f"{o.custodian_id}: {o.detail}" for o in exc.outcomes]
                    raise CaseRefused(
                        RefusalReason.CUSTODIANS_REFUSED,
                        reason_text(RefusalReason.CUSTODIANS_REFUSED),
                        said,
                    ) from None
                except EnvelopeError:
                    continue  # a damaged record opens for nobody; the rest still do
                opened.append(plain)
            return opened

        phone = ips = None
        if "phone" in review.fields:
            numbers = await open_all("phone")
            phone = numbers[0].decode() if numbers else None
        if "ip" in review.fields:
            ips = tuple(_ip_record(raw) for raw in await open_all("ip"))
        return Disclosure(subject.text, where.user_id, phone, ips)


def _category(review: CaseReview, known: frozenset[str]) -> str:
    """The case's category as the public log may show it: one of ``known`` (the policy's
    categories), "mixed" for several, else "other". Never the order's own words: anyone can
    submit an order, and the log is public and permanent."""
    stated = {v.category.strip().lower() for v in review.verdicts}
    if len(stated) != 1:
        return "mixed"
    (category,) = stated
    return category if category in known and _PLAIN_WORD.fullmatch(category) else "other"


def _orders_for(keepers: Sequence[Keeper], valid: Sequence[CourtOrder]) -> dict[str, CourtOrder]:
    """For each custodian, an order of a court of its own jurisdiction, if there is one."""
    by_place: dict[str, CourtOrder] = {}
    for order in valid:
        by_place.setdefault(order.order.jurisdiction, order)
    return {
        k.ref.custodian_id: by_place[k.jurisdiction] for k in keepers if k.jurisdiction in by_place
    }


def _ip_record(raw: bytes) -> IpRecord:
    try:
        record = orjson.loads(raw)
        return IpRecord(ip=str(record["ip"]), at=_iso(float(record["at"])))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        return IpRecord(ip="(unreadable record)", at="")


__all__ = [
    "CaseOutcome",
    "Disclosure",
    "IdentityRecords",
    "IpRecord",
    "Keeper",
    "LegalDesk",
    "Located",
    "RequestBook",
    "Terms",
]
