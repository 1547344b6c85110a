"""Keeps the served DC's key in this node's memory: unseal at start, retry, follow rotations.

- **Start.** The node reads the DC's key envelopes from its database and asks the custodians
  for their shares (``custody/node.py``). With k good shares the keyring is installed and the
  DC serves; with fewer it stays sealed (every request: UNAVAILABLE, "temporarily
  unavailable") and the keeper tries again with backoff, so the DC unseals by itself when
  custodians come back.
- **First start** of a DC (no envelope yet): a fresh DC key is made in memory and sealed to
  the custodians; only the envelope is stored. A pre-custody ``dc.key`` file is imported
  once this way and then erased.
- **Rotation.** ``samizdat dc rotate-key`` adds an envelope; the keeper sees it within
  ``watch_interval`` and installs it beside the old key, so chats re-wrapped under the new
  key open at once, and retired keys are dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from samizdat.core.dc_state import DcEvent, DcState, next_state
from samizdat.crypto import DcKey, EnvelopeError, SealError
from samizdat.crypto.custody_keys import NodeKey
from samizdat.crypto.threshold import Envelope
from samizdat.custody.client import CustodianUnreachable
from samizdat.custody.node import CustodianRef, unseal_dc_key
from samizdat.custody.policy import DC_KEY_PURPOSE, dc_key_owner
from samizdat.protocol.errors import Unavailable
from samizdat.server.topology import DcSettings
from samizdat.store.database import StoreConflict
from samizdat.store.dc_keys import KeyRow, key_number
from samizdat.store.identity import Custody
from samizdat.store.sql import SqlStore

log = logging.getLogger(__name__)
LEGACY_KEY_FILE = "dc.key"
PROBE_CACHE_SECONDS = 5.0
#: What an attempt to open the DC's keys fails with; the keyring keeps what it had.
OPEN_FAILURES = (Unavailable, EnvelopeError, CustodianUnreachable, SealError)


def seal_dc_key(key: DcKey, custody: Custody) -> bytes:
    """Seal a DC key to the DC's custodians (the same ones its identity records go to)."""
    return custody.seal_as(key.payload(), purpose=DC_KEY_PURPOSE, owner=dc_key_owner(custody.dc_id))


async def open_dc_key(
    row: KeyRow, dc: DcSettings, node_key: NodeKey, custodians: Sequence[CustodianRef]
) -> DcKey:
    """Ask the custodians to open one stored DC key envelope."""
    try:
        envelope = Envelope.from_bytes(row.envelope)
    except EnvelopeError as exc:
        raise Unavailable(f"the stored envelope of DC key {row.key_id} is corrupt") from exc
    if envelope.purpose != DC_KEY_PURPOSE or envelope.owner != dc_key_owner(dc.id):
        raise Unavailable(f"stored envelope {row.key_id} is not this DC's key")
    payload, _ = await unseal_dc_key(envelope, dc=dc.id, node_key=node_key, custodians=custodians)
    return DcKey.from_payload(payload, row.key_id)


def next_key_id(existing: Sequence[str]) -> str:
    return f"k{max((key_number(k) for k in existing), default=0) + 1}"


class DcKeeper:
    def __init__(
        self,
        dc: DcSettings,
        store: SqlStore,
        node_key: NodeKey,
        custodians: Sequence[CustodianRef],
        *,
        data_dir: Path,
        legacy_key: bool = True,
        retry_max: float = 10.0,
        watch_interval: float = 2.0,
    ) -> None:
        self.dc = dc
        self.store = store
        self.keyring = store.keyring
        self.node_key = node_key
        self.custodians = list(custodians)
        self.data_dir = data_dir
        #: Whether a pre-custody ``dc.key`` in the data directory is this DC's (the default
        #: DC's only: from before a node served several DCs).
        self.legacy_key = legacy_key
        self.retry_max = retry_max
        self.watch_interval = watch_interval
        self.state = DcState.SEALED
        self.last_error = ""
        self.unseal_seconds: float | None = None
        self._keys: dict[str, DcKey] = {}
        self._legacy_phones_tried = False
        self._task: asyncio.Task[None] | None = None
        self._rotation: asyncio.Task[None] | None = None
        self._probe_lock = asyncio.Lock()
        self._probes: list[dict[str, object]] = []
        self._probed_at = -PROBE_CACHE_SECONDS
        #: Progress of the last rotation, for ``/status`` and ``samizdat dc rotate-key``.
        self.rotation: dict[str, object] = {"state": "idle"}

    def _move(self, event: DcEvent) -> None:
        self.state = next_state(self.state, event)

    # lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        """Try once now (so a healthy DC serves from its first request), then keep going."""
        await self.unseal_once()
        self._task = asyncio.create_task(self._run(), name=f"dc-keeper-{self.dc.id}")

    async def stop(self) -> None:
        for task in (self._rotation, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._move(DcEvent.RESEAL)
        self.keyring.seal()
        self._keys.clear()
        for ref in self.custodians:
            await ref.client.aclose()

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                if self.state is DcState.UNSEALED:
                    await asyncio.sleep(self.watch_interval)
                    await self._follow_rotation()
                    continue
                await asyncio.sleep(delay)
                delay = 0.5 if await self.unseal_once() else min(delay * 2, self.retry_max)
            except asyncio.CancelledError:
                raise
            except Exception:  # the keeper must outlive any one bad attempt; try again later
                log.exception("DC keeper attempt failed", extra={"dc": self.dc.id})
                if self.state is DcState.UNSEALING:
                    self._move(DcEvent.FAILED)
                delay = self.retry_max

    # unsealing ----------------------------------------------------------------------------
    async def unseal_once(self) -> bool:
        """One attempt; True when the DC is unsealed afterwards."""
        self._move(DcEvent.ATTEMPT)
        started = time.perf_counter()
        try:
            keys = await self._install_live()
            if keys is None:
                await self._first_key()
                keys = await self._install_live()
            if keys is None:
                raise Unavailable("this DC has no key envelope yet")
        except OPEN_FAILURES as exc:
            self._move(DcEvent.FAILED)
            if str(exc) != self.last_error:
                log.warning("DC still sealed", extra={"dc": self.dc.id, "why": str(exc)})
            self.last_error = str(exc)
            return False
        self._move(DcEvent.SUCCEEDED)
        self.unseal_seconds = time.perf_counter() - started
        self.last_error = ""
        log.info(
            "DC unsealed",
            extra={"dc": self.dc.id, "keys": sorted(keys), "seconds": self.unseal_seconds},
        )
        await self._settle_legacy_key_file()
        if not self._legacy_phones_tried:  # once per process: a full scan of users
            self._legacy_phones_tried = True
            try:
                await self.store.identity.seal_legacy_phones()
            except (Unavailable, SealError) as exc:  # serve anyway; the next start tries again
                log.warning("could not seal older phone numbers yet", extra={"why": str(exc)})
        return True

    async def _install_live(self) -> dict[str, DcKey] | None:
        """Open every live key envelope and install them, the newest active; None if the DC
        has no envelope yet. Keys already held are reused, not asked for again. While a
        newer key exists that this node cannot open yet, it makes no new chat keys (under a
        key about to be retired).

        Raises one of ``OPEN_FAILURES``; the keyring then keeps what it had."""
        rows = await self.store.dc_keys.live()
        if not rows:
            return None
        if rows[-1].key_id not in self._keys:
            self.keyring.hold_new_chats(True)
        keys: dict[str, DcKey] = {}
        for row in rows:
            known = self._keys.get(row.key_id)
            if known is None:
                known = await open_dc_key(row, self.dc, self.node_key, self.custodians)
            keys[row.key_id] = known
        self.keyring.install(list(keys.values()), rows[-1].key_id)
        self._keys = keys
        return keys

    async def _first_key(self) -> None:
        """No envelope yet: make the DC's first key (or import a pre-custody key file)."""
        legacy = self.data_dir / LEGACY_KEY_FILE
        if self.legacy_key and legacy.exists():
            raw = legacy.read_bytes()
            if len(raw) != 32:
                raise Unavailable(f"{LEGACY_KEY_FILE} is not a 32-byte key; refusing to guess")
            if await self.store.dc_keys.chat_count() == 0 and await self.store.user_count() == 0:
                raise Unavailable(
                    f"{LEGACY_KEY_FILE} exists but this DC's database is empty: refusing to "
                    "import the key into the wrong database (is the old samizdat.sqlite3, or "
                    "the old database_url, what this DC is configured with?)"
                )
            key = DcKey(raw, raw, "file:1")
        else:
            if await self.store.dc_keys.chat_count() > 0:
                raise Unavailable(
                    "this database holds chats but no DC key envelope; refusing to make a new "
                    "key that could not open them (restore the dc_keys table from a backup)"
                )
            key = DcKey.generate("k1")
        envelope = seal_dc_key(key, self.store.identity.custody)
        try:
            await self.store.dc_keys.insert(key.key_id, envelope, time.time())
        except StoreConflict:
            return  # another node of this DC made it first; open theirs
        await self.store.db.make_durable()  # before anything relies on the stored envelope

    async def _settle_legacy_key_file(self) -> None:
        """After an unseal from real custodians' shares: a pre-custody ``dc.key`` on this
        node is either the imported key (now safely in custody) or a stale copy; erase it.
        Every node of the DC does this at its start, so no copy stays on any of them."""
        legacy = self.data_dir / LEGACY_KEY_FILE
        if not self.legacy_key or not legacy.exists():
            return
        await self.store.db.make_durable()
        _erase(legacy)
        log.warning(
            "erased the pre-custody dc.key file (the DC key now lives with its custodians); "
            "run `samizdat dc rotate-key` to replace the chat-wrapping key. Phone lookups "
            "stay keyed by the old file (they cannot be recomputed without the numbers): "
            "destroy every other copy of it, backups included",
            extra={"dc": self.dc.id},
        )

    async def _follow_rotation(self) -> None:
        """Install keys other nodes added or removed (envelopes are fetched only then)."""
        try:
            ids = await self.store.dc_keys.live_ids()
            if not ids or (set(ids) == set(self._keys) and ids[-1] == self.keyring.key_id):
                return
            keys = await self._install_live()
        except OPEN_FAILURES as exc:
            log.warning("could not follow a DC key change", extra={"why": str(exc)})
            return
        if keys is not None:
            log.info("DC keys changed", extra={"dc": self.dc.id, "keys": sorted(keys)})

    # rotation -----------------------------------------------------------------------------
    def start_rotation(self) -> str:
        """Begin rotating the DC key in the background; returns the new key id.

        Raises Unavailable if the DC is sealed or a rotation is already running."""
        self.keyring.require_unsealed()
        if self._rotation is not None and not self._rotation.done():
            raise Unavailable("a key rotation is already running; see `samizdat status`")
        new_id = next_key_id(list(self._keys))
        self.rotation = {"state": "starting", "new_key": new_id, "rewrapped": 0, "left": None}
        self._rotation = asyncio.create_task(self._rotate(new_id), name="dc-key-rotation")
        return new_id

    async def _rotate(self, new_id: str) -> None:
        try:
            await self._rotate_steps(new_id)
        except Exception as exc:  # reported in /status; the old key stays live, nothing lost
            log.exception("DC key rotation failed", extra={"dc": self.dc.id})
            self.rotation = {**self.rotation, "state": "failed", "error": str(exc)[:200]}

    async def _rotate_steps(self, new_id: str) -> None:
        active = self._keys[self.keyring.key_id]
        new = DcKey.generate(new_id, keep_index_of=active)
        await self.store.dc_keys.insert(
            new_id, seal_dc_key(new, self.store.identity.custody), time.time()
        )
        old_ids = list(self._keys)
        self._keys = {**self._keys, new_id: new}
        self.keyring.install(list(self._keys.values()), new_id)
        # Other nodes of this DC learn the new key within watch_interval; wait for them
        # before any chat key moves under it, so none of them ever meets a key it lacks.
        self.rotation = {**self.rotation, "state": "waiting for other nodes"}
        await asyncio.sleep(2 * self.watch_interval)
        left = await self.store.dc_keys.chats_not_under(new_id)
        self.rotation = {**self.rotation, "state": "re-wrapping", "left": left}
        done = 0
        pending = set(old_ids)
        while pending:
            while batch := await self.store.dc_keys.rewrap_batch(self.keyring):
                done += batch
                self.rotation = {**self.rotation, "rewrapped": done, "left": max(left - done, 0)}
                await asyncio.sleep(0)  # let requests in between batches
            # Forgotten only if no chat refers to it (one statement): a chat another node
            # made under it meanwhile sends us round again.
            pending = {old for old in pending if not await self.store.dc_keys.forget(old)}
        self._keys = {new_id: new}
        self.keyring.install([new], new_id)
        self.rotation = {**self.rotation, "state": "done", "left": 0, "retired": old_ids}
        log.info("DC key rotated", extra={"dc": self.dc.id, "key": new_id, "chats": done})

    # status -------------------------------------------------------------------------------
    async def _probe(self, ref: CustodianRef, seconds: float) -> dict[str, object]:
        try:
            info = await asyncio.wait_for(ref.client.info(), seconds)
        except TimeoutError:
            return {"id": ref.custodian_id, "reachable": False, "detail": "timed out"}
        except CustodianUnreachable:
            return {"id": ref.custodian_id, "reachable": False, "detail": "not answering"}
        return {"id": ref.custodian_id, "jurisdiction": info.jurisdiction, "reachable": True}

    async def status(self, *, probe_timeout: float = 2.0) -> dict[str, object]:
        """The DC's state and whether each custodian answers (probed at most every 5 s, one
        probe at a time, so a flood of /status requests cannot crowd out unsealing)."""
        async with self._probe_lock:
            if time.monotonic() - self._probed_at > PROBE_CACHE_SECONDS:
                self._probes = list(
                    await asyncio.gather(*(self._probe(r, probe_timeout) for r in self.custodians))
                )
                self._probed_at = time.monotonic()
        probes = self._probes
        return {
            "id": self.dc.id,
            "jurisdiction": self.dc.jurisdiction,
            "state": str(self.state),
            "threshold": self.dc.threshold,
            "key_ids": sorted(self._keys),
            "active_key": self.keyring.key_id if self.keyring.unsealed else None,
            "node_key": self.node_key.encoded(),
            "unseal_seconds": self.unseal_seconds,
            "last_error": self.last_error,
            "rotation": self.rotation,
            "custodians": probes,
        }


def _erase(path: Path) -> None:
    """Overwrite and remove a key file (best effort on copy-on-write file systems)."""
    size = path.stat().st_size
    with path.open("r+b") as handle:
        handle.write(os.urandom(size))
        handle.flush()
        os.fsync(handle.fileno())
    path.unlink()


__all__ = ["DcKeeper", "next_key_id", "open_dc_key", "seal_dc_key"]
