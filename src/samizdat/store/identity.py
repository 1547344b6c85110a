"""Identity records: phone numbers and IP addresses, sealed to the DC's custodians.

These are the only records a court could ever ask for, so they are sealed in threshold
envelopes (``crypto/threshold.py``): opening one needs k custodians, each of which checks a
court order of its own jurisdiction. The running server only ever *seals* them; it holds no
key that opens them. It finds a user by number through a keyed hash (``Keyring.phone_lookup``)
and never needs the number back.

IP addresses are logged once per (device, address, day): the dedupe digest is keyed by the
DC key, kept in memory only, and cleared each day. Records older than the retention (12
months by default) are erased by the housekeeping loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from sqlalchemy import bindparam, delete, insert, select, update

from samizdat.crypto import Keyring
from samizdat.crypto.threshold import Recipient, seal
from samizdat.custody.policy import IDENTITY_PURPOSE, identity_owner
from samizdat.store.database import Database
from samizdat.store.tables import ip_log, users

log = logging.getLogger(__name__)
DAY = 86_400.0
MAX_PENDING_IPS = 100_000
#: Distinct addresses logged per device per day; beyond it, one that hops addresses (a whole
#: IPv6 prefix, say) could grow the log and the sealing work without bound.
MAX_ADDRESSES_PER_DEVICE_DAY = 64
#: Legacy phone numbers sealed per write transaction.
LEGACY_BATCH = 500
_SEAL_LEGACY_PHONE = (
    update(users)
    .where(users.c.id == bindparam("user"))
    .values(phone_envelope=bindparam("envelope"), phone_shown=bindparam("shown"))
)


@dataclass(frozen=True, slots=True)
class Custody:
    """Who a DC's sealed records (identity records, the DC key itself) are sealed to:
    public keys only, no secrets."""

    dc_id: str
    recipients: tuple[Recipient, ...]
    threshold: int

    def seal(self, user_id: int, field: str, payload: bytes) -> bytes:
        """Seal one identity record (``field`` of ``user_id``)."""
        return self.seal_as(
            payload, purpose=IDENTITY_PURPOSE, owner=identity_owner(self.dc_id, user_id, field)
        )

    def seal_as(self, payload: bytes, *, purpose: str, owner: str) -> bytes:
        """Seal ``payload`` to this DC's custodians (k of n) as ``purpose`` of ``owner``,
        which their policy checks before opening it (e.g. the DC key itself)."""
        return seal(
            payload,
            purpose=purpose,
            owner=owner,
            recipients=self.recipients,
            threshold=self.threshold,
        ).to_bytes()


class IdentityRecords:
    def __init__(
        self,
        db: Database,
        keyring: Keyring,
        custody: Custody,
        *,
        ip_retention_seconds: float = 365 * DAY,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.custody = custody
        self.ip_retention_seconds = ip_retention_seconds
        self._seen_today: set[bytes] = set()
        self._per_device: dict[int, int] = {}
        self._day = -1
        self._pending: list[dict[str, object]] = []

    def seal_phone(self, user_id: int, e164: str) -> bytes:
        return self.custody.seal(user_id, "phone", e164.encode())

    def note_ip(self, user_id: int, device_id: int, ip: str, now: float) -> None:
        """Queue a sealed record of this address unless this device used it today already.

        Cheap when already seen (one HMAC); sealing (~1 ms) happens once a day per address
        and device. ``flush`` writes the queue; a crash loses at most a second of records.
        """
        day = int(now // DAY)
        if day != self._day:
            self._day, self._seen_today, self._per_device = day, set(), {}
        seen = self.keyring.ip_seen_digest(device_id, ip, day)
        if seen in self._seen_today or len(self._pending) >= MAX_PENDING_IPS:
            return
        logged = self._per_device.get(device_id, 0)
        if logged >= MAX_ADDRESSES_PER_DEVICE_DAY:
            return
        self._per_device[device_id] = logged + 1
        self._seen_today.add(seen)
        payload = orjson.dumps({"ip": ip, "at": round(now, 3), "device": device_id})
        self._pending.append(
            {"user_id": user_id, "at": now, "envelope": self.custody.seal(user_id, "ip", payload)}
        )

    async def flush(self) -> int:
        pending, self._pending = self._pending, []
        if pending:
            async with self.db.write() as conn:
                await conn.execute(insert(ip_log), pending)
        return len(pending)

    async def expire(self, now: float | None = None) -> int:
        """Erase IP records older than the retention window; returns how many."""
        cutoff = (time.time() if now is None else now) - self.ip_retention_seconds
        async with self.db.write() as conn:
            result = await conn.execute(delete(ip_log).where(ip_log.c.at < cutoff))
        return int(result.rowcount)

    async def sealed_of(self, user_id: int, field: str, since: float) -> list[bytes]:
        """One user's sealed ``field`` records ("phone", or "ip" logged at ``since`` or
        later, oldest first), as the envelopes they are: what a lawful disclosure asks the
        custodians to open. Nothing else of an account can be read through here."""
        async with self.db.read() as conn:
            if field == "phone":
                query = select(users.c.phone_envelope).where(users.c.id == user_id)
                found = [r[0] for r in await conn.execute(query) if r[0] is not None]
            elif field == "ip":
                query = (
                    select(ip_log.c.envelope)
                    .where(ip_log.c.user_id == user_id, ip_log.c.at >= since)
                    .order_by(ip_log.c.at, ip_log.c.id)
                )
                found = [r[0] for r in await conn.execute(query)]
            else:
                raise ValueError(f"{field!r} is not an identity record")
        return [bytes(envelope) for envelope in found]

    async def seal_legacy_phones(self, *, batch: int = LEGACY_BATCH) -> int:
        """Rows from before threshold custody: seal their numbers to the custodians and keep
        the DC-key copy only where the owner shows the number. Needs the keyring unsealed.

        Writes ``batch`` rows per transaction (one statement each), so the other writes of
        the node wait for one batch at a time, not for every row."""
        async with self.db.read() as conn:
            legacy = (
                await conn.execute(
                    select(users.c.id, users.c.phone_shown, users.c.phone_visibility).where(
                        users.c.phone_envelope.is_(None), users.c.phone_shown.is_not(None)
                    )
                )
            ).all()
        for start in range(0, len(legacy), batch):
            values = []
            for user_id, shown, visibility in legacy[start : start + batch]:
                e164 = self.keyring.open_phone(user_id, bytes(shown))
                values.append(
                    {
                        "user": user_id,
                        "envelope": self.seal_phone(user_id, e164),
                        "shown": shown if visibility != "nobody" else None,
                    }
                )
            async with self.db.write() as conn:
                await conn.execute(_SEAL_LEGACY_PHONE, values)
        if legacy:
            log.info("sealed legacy phone numbers", extra={"count": len(legacy)})
        return len(legacy)


__all__ = ["Custody", "IdentityRecords"]
