"""The transparency log's storage: leaves in order, and one signed tree head per size.

An append is one write transaction: the leaf takes the next index, the root is recomputed
over every leaf hash and the head for the new size is signed and stored with it, so the
latest head always covers exactly the stored leaves. Two appends racing (two nodes on one
PostgreSQL database) cannot take the same index: it is the primary key, so the loser's
transaction fails with ``StoreConflict`` and nothing of it is kept.

Heads are read back as they were signed; nothing here signs on a read, so a stolen read path
cannot mint heads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.engine import Row

from samizdat.crypto.custody_keys import b64
from samizdat.protocol.errors import InternalError
from samizdat.store.database import Database
from samizdat.store.tables import transparency_heads, transparency_leaves
from samizdat.transparency.heads import TreeHead, sign_head
from samizdat.transparency.merkle import leaf_hash, root_hash

__all__ = ["TransparencyStore"]

_HEAD_COLUMNS = (
    transparency_heads.c.tree_size,
    transparency_heads.c.timestamp_ms,
    transparency_heads.c.root_hash,
    transparency_heads.c.signature,
)


def _head(row: Row[Any, Any, Any, Any] | None) -> TreeHead | None:
    if row is None:
        return None
    return TreeHead(
        tree_size=int(row.tree_size),
        timestamp_ms=int(row.timestamp_ms),
        root_hash=b64(bytes(row.root_hash)),
        signature=b64(bytes(row.signature)),
    )


class TransparencyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def append(
        self, leaf: bytes, *, sign: Callable[[bytes], bytes], now: float
    ) -> tuple[int, TreeHead]:
        """Append ``leaf`` and sign the new head with ``sign``; returns (index, head).

        Costs O(n) hashing over the whole log, fine for the thousands of entries a
        transparency log holds.

        Raises:
            StoreConflict: a concurrent append (another node) took the index; nothing was kept.
            InternalError: the stored indices have a gap, or the stored leaves are not the
                ones the last head signed, i.e. the log was damaged: nothing is signed.
        """
        async with self.db.write() as conn:
            stored = (
                await conn.execute(
                    select(transparency_leaves.c.idx, transparency_leaves.c.leaf).order_by(
                        transparency_leaves.c.idx
                    )
                )
            ).all()
            if stored and stored[-1].idx != len(stored) - 1:
                raise InternalError(debug_context={"leaves": len(stored), "last": stored[-1].idx})
            hashes = [leaf_hash(bytes(row.leaf)) for row in stored]
            await self._check_signed(conn, hashes)
            index = len(stored)
            digest = leaf_hash(leaf)
            await conn.execute(
                insert(transparency_leaves).values(
                    idx=index, leaf=leaf, leaf_hash=digest, appended_at=now
                )
            )
            root = root_hash([*hashes, digest])
            head = sign_head(index + 1, int(now * 1000), root, sign)
            await conn.execute(
                insert(transparency_heads).values(
                    tree_size=head.tree_size,
                    timestamp_ms=head.timestamp_ms,
                    root_hash=root,
                    signature=head.signature_bytes(),
                )
            )
        return index, head

    @staticmethod
    async def _check_signed(conn: Any, hashes: list[bytes]) -> None:
        """Refuse to sign over a history that is not the one last signed: the root of the
        stored leaves (hashed afresh, not their stored hashes) must be the last head's. A
        rewritten or edited log is then never signed again, and stays visible to clients."""
        query = select(transparency_heads.c.root_hash).where(
            transparency_heads.c.tree_size == len(hashes)
        )
        last = (await conn.execute(query)).scalar_one_or_none() if hashes else None
        if hashes and (last is None or bytes(last) != root_hash(hashes)):
            raise InternalError(debug_context={"transparency_log": "stored leaves changed"})

    async def head(self) -> TreeHead | None:
        """The latest signed head, or None while the log is empty."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*_HEAD_COLUMNS).order_by(transparency_heads.c.tree_size.desc()).limit(1)
                )
            ).first()
        return _head(row)

    async def head_at(self, size: int) -> TreeHead | None:
        """The head signed when the log had ``size`` leaves, if there is one."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(*_HEAD_COLUMNS).where(transparency_heads.c.tree_size == size)
                )
            ).first()
        return _head(row)

    async def entries(self, start: int, end: int) -> list[bytes]:
        """The leaves with index in ``start..end-1``, in order (fewer if the log is shorter)."""
        async with self.db.read() as conn:
            result = await conn.execute(
                select(transparency_leaves.c.leaf)
                .where(transparency_leaves.c.idx >= start, transparency_leaves.c.idx < end)
                .order_by(transparency_leaves.c.idx)
            )
            return [bytes(leaf) for leaf in result.scalars()]

    async def leaf_hashes(self, size: int) -> list[bytes]:
        """The stored hashes of the first ``size`` leaves, in order (what proofs are built on)."""
        async with self.db.read() as conn:
            result = await conn.execute(
                select(transparency_leaves.c.leaf_hash)
                .where(transparency_leaves.c.idx < size)
                .order_by(transparency_leaves.c.idx)
            )
            return [bytes(digest) for digest in result.scalars()]

    async def size(self) -> int:
        """How many leaves the log holds."""
        async with self.db.read() as conn:
            result = await conn.execute(select(func.count()).select_from(transparency_leaves))
            return int(result.scalar_one())
