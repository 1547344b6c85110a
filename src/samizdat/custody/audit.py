"""The custodian's audit log: every request it answered or refused, in order, hash-chained.

A custodian must be able to show, later, every request it answered or refused. Each entry is
one JSON line carrying the digest of the entry before it, so a silent edit, deletion or
reordering breaks the chain at a line we can name. (Cutting entries off the end is only
detectable against a ``head`` published elsewhere, which is why ``head`` exists.) The log
holds no personal data: subjects are envelope owners such as ``dc:xa/user:42/phone``, never
phone numbers or IP addresses.

Several processes may write one log: the serving custodian and the operator's CLI
(``enroll-node``, ``revoke-node``, ``add-court``). Every append takes an exclusive ``flock``
on the file and first reads, and verifies, whatever the other processes appended since; so
the chain stays one chain and each process knows every nonce in it. Within a process,
``append`` is called from one asyncio loop (no thread locking).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import math
import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

import orjson

from samizdat.crypto.private_files import write_private
from samizdat.protocol.errors import InternalError

_GENESIS = "0" * 64
_OUTCOMES = frozenset({"granted", "refused", "done"})
_STR_FIELDS = ("kind", "outcome", "reason", "requester", "subject", "nonce", "prev", "digest")

logger = logging.getLogger(__name__)


class AuditError(InternalError):
    """The log is unreadable or its chain is broken; the message says at which line.

    ``line`` is the 1-based line number, or ``None`` when the file as a whole is at fault.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message, debug_context={"line": line})
        self.line = line


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    kind: str
    outcome: str
    reason: str
    requester: str
    subject: str
    nonce: str
    prev: str
    digest: str


_FIELDS = frozenset(f.name for f in fields(AuditEntry))


def _body(entry: AuditEntry) -> dict[str, object]:
    return {name: getattr(entry, name) for name in _FIELDS if name != "digest"}


def _digest(body: dict[str, object]) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _line(entry: AuditEntry) -> bytes:
    # orjson escapes control characters, so a line never contains b"\n" before its end.
    body = _body(entry)
    body["digest"] = entry.digest
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"


def _parse_line(raw: bytes, lineno: int, seq: int, prev: str) -> AuditEntry:
    """Parse one line (without its newline) that must be entry ``seq`` chained to ``prev``."""

    def fail(why: str) -> AuditError:
        return AuditError(f"audit log line {lineno}: {why}", line=lineno)

    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise fail("not valid JSON") from None
    if not isinstance(obj, dict):
        raise fail("not a JSON object")
    if missing := _FIELDS - obj.keys():
        raise fail(f"missing fields {sorted(missing)}")
    if extra := obj.keys() - _FIELDS:
        raise fail(f"unexpected fields {sorted(extra)}")
    # bool is an int subclass and JSON true/false must not pass as a number.
    if type(obj["seq"]) is not int:
        raise fail("seq is not an integer")
    if type(obj["at"]) is not float:
        raise fail("at is not a float")
    for name in _STR_FIELDS:
        if not isinstance(obj[name], str):
            raise fail(f"{name} is not a string")
    entry = AuditEntry(
        seq=obj["seq"],
        at=obj["at"],
        kind=obj["kind"],
        outcome=obj["outcome"],
        reason=obj["reason"],
        requester=obj["requester"],
        subject=obj["subject"],
        nonce=obj["nonce"],
        prev=obj["prev"],
        digest=obj["digest"],
    )
    if entry.seq != seq:
        raise fail(f"seq gap: expected {seq}, found {entry.seq}")
    if entry.prev != prev:
        raise fail("prev does not match the previous entry's digest")
    if entry.digest != _digest(_body(entry)):
        raise fail("digest mismatch")
    # Same values, different bytes (whitespace, key order, escapes) is still an edit.
    if _line(entry) != raw + b"\n":
        raise fail("not in canonical form")
    return entry


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise AuditError(f"audit log {path}: cannot read: {exc.strerror}") from exc


def _parse(data: bytes) -> tuple[list[AuditEntry], int]:
    """Verify every newline-terminated line; return the entries and the byte length they span."""
    end = data.rfind(b"\n") + 1
    entries: list[AuditEntry] = []
    prev = _GENESIS
    for lineno, raw in enumerate(data[:end].split(b"\n")[:-1], start=1):
        entry = _parse_line(raw, lineno, lineno, prev)
        entries.append(entry)
        prev = entry.digest
    return entries, end


def verify_log(path: Path) -> list[AuditEntry]:
    """Parse ``path`` and verify its whole chain; return the entries in order.

    Raises:
        AuditError: naming the 1-based line that is bad JSON, has missing or extra fields or
            wrong types, breaks the seq sequence, or whose ``prev`` or ``digest`` does not
            match; also for a final line without its newline (``AuditLog`` repairs that on
            open, this function only checks) and for a file that cannot be read.
    """
    data = _read(path)
    entries, end = _parse(data)
    if end != len(data):
        lineno = len(entries) + 1
        raise AuditError(f"audit log line {lineno}: incomplete (no trailing newline)", line=lineno)
    return entries


class AuditLog:
    """An append-only audit log at ``path``, verified in full when opened.

    Raises:
        AuditError: from the constructor if any line but a torn final one is corrupt.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        if not path.exists():
            write_private(path, b"", exclusive=True)
        data = _read(path)
        entries, end = _parse(data)
        self._size = end
        self._count = len(entries)
        self._head = entries[-1].digest if entries else _GENESIS
        self.nonces: dict[str, float] = {e.nonce: e.at for e in entries if e.nonce}
        if end != len(data):
            self._repair_tail(data[end:])

    def _repair_tail(self, tail: bytes) -> None:
        """Deal with a final line a crash left without its newline.

        If it is a whole, correctly chained entry that only lost its newline, keep it: it may
        record a request that was answered. Otherwise it is a fragment, cut it off.
        """
        try:
            entry = _parse_line(tail, self._count + 1, self._count + 1, self._head)
        except AuditError:
            logger.warning(
                "audit log %s: dropping a torn final line (%d bytes) left by an interrupted write",
                self._path,
                len(tail),
            )
            fd = os.open(self._path, os.O_WRONLY)
            try:
                os.ftruncate(fd, self._size)
                os.fsync(fd)
            finally:
                os.close(fd)
            return
        logger.warning(
            "audit log %s: entry %d was complete but lacked its newline; restoring it",
            self._path,
            entry.seq,
        )
        self._size += len(tail)
        self._write(b"\n")
        self._remember(entry)

    def _remember(self, entry: AuditEntry) -> None:
        self._count = entry.seq
        self._head = entry.digest
        if entry.nonce:
            self.nonces[entry.nonce] = entry.at

    def _catch_up(self, fd: int) -> None:
        """Under the lock: read and verify what other processes appended since we last looked.

        Raises AuditError if the file shrank, or if the new part does not continue our chain."""
        size = os.fstat(fd).st_size
        if size == self._size:
            return
        if size < self._size:
            raise AuditError(f"audit log {self._path}: shrank on disk; not appending")
        data = os.pread(fd, size - self._size, self._size)
        if not data.endswith(b"\n"):
            raise AuditError(f"audit log {self._path}: another writer left a torn line")
        for raw in data.split(b"\n")[:-1]:
            self._remember(_parse_line(raw, self._count + 1, self._count + 1, self._head))
        self._size = size

    def refresh(self) -> None:
        """Take in entries other processes appended (e.g. the CLI enrolling a node)."""
        fd = os.open(self._path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            self._catch_up(fd)
        finally:
            os.close(fd)

    def _write(self, line: bytes) -> None:
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close()
            self._write_locked(fd, line)
        finally:
            os.close(fd)

    def _write_locked(self, fd: int, line: bytes) -> None:
        if os.fstat(fd).st_size != self._size:
            raise AuditError(f"audit log {self._path}: changed on disk; not appending")
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write: {written} of {len(line)} bytes")
            os.fsync(fd)
        except OSError:
            # Never leave a fragment behind: the next line would land after it and turn
            # a recoverable torn tail into corruption in the middle of the log.
            os.ftruncate(fd, self._size)
            raise
        self._size += len(line)

    def append(
        self,
        *,
        at: float,
        kind: str,
        outcome: str,
        reason: str = "",
        requester: str = "",
        subject: str = "",
        nonce: str = "",
    ) -> AuditEntry:
        """Write one entry and make it durable (fsync) before returning it.

        Raises:
            ValueError: ``at`` is not finite, ``kind`` is empty or not ASCII, or ``outcome``
                is not ``granted``, ``refused`` or ``done``. Nothing is written.
            AuditError: the file changed on disk since it was opened.
            OSError: the write or fsync failed; the file is left as it was.
        """
        if not math.isfinite(at):
            raise ValueError(f"audit entry time must be finite, got {at!r}")
        if not kind or not kind.isascii():
            raise ValueError(f"audit entry kind must be non-empty ASCII, got {kind!r}")
        if outcome not in _OUTCOMES:
            raise ValueError(f"audit entry outcome must be one of {sorted(_OUTCOMES)}")
        draft = AuditEntry(
            seq=self._count + 1,
            at=float(at),
            kind=kind,
            outcome=outcome,
            reason=reason,
            requester=requester,
            subject=subject,
            nonce=nonce,
            prev=self._head,
            digest="",
        )
        fd = os.open(self._path, os.O_RDWR | os.O_APPEND)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released by close()
            self._catch_up(fd)  # seq and prev must follow what others wrote
            draft = replace(draft, seq=self._count + 1, prev=self._head)
            entry = replace(draft, digest=_digest(_body(draft)))
            self._write_locked(fd, _line(entry))
        finally:
            os.close(fd)
        self._remember(entry)
        return entry

    def entries(self) -> list[AuditEntry]:
        """Re-read and verify the file.

        Raises:
            AuditError: the chain is broken, or the file no longer ends where this log
                last wrote (entries were cut off or added by someone else).
        """
        self.refresh()
        entries = verify_log(self._path)
        head = entries[-1].digest if entries else _GENESIS
        if len(entries) != self._count or head != self._head:
            raise AuditError(
                f"audit log {self._path}: has {len(entries)} entries, expected {self._count} "
                "ending at the known head; it changed on disk since it was opened"
            )
        return entries

    def prune_nonces(self, before: float) -> None:
        """Forget nonces of entries older than ``before`` (requests that old are stale anyway)."""
        self.nonces = {nonce: at for nonce, at in self.nonces.items() if at >= before}

    @property
    def head(self) -> str:
        """Digest of the last entry, or ``"0" * 64`` for an empty log."""
        return self._head

    def __len__(self) -> int:
        return self._count


__all__ = ["AuditEntry", "AuditError", "AuditLog", "verify_log"]
