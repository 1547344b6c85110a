"""Writing files that hold secrets: owner-only from the first byte, replaced atomically."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def _fsync_dir(path: Path) -> None:
    """Make a rename, link or new file in directory ``path`` survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write ``data`` to ``path`` with mode 0600 (its directory 0700 if new); a reader sees the
    old file or the new one, never half of either.

    With ``exclusive`` the file must not exist yet: FileExistsError if it does (or another
    process makes it first), and it is left as it was. Either way the data is durable
    (file and directory fsynced) before this returns.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # the rename must not land before the data (power loss)
        if exclusive:
            os.link(tmp, path)  # unlike a rename, never replaces an existing file
        else:
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a second name after link; gone already after replace
    _fsync_dir(path.parent)  # and the rename itself must survive a power loss


__all__ = ["write_private"]
