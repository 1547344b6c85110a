"""The operator's small legal files (court registry, disclosure policy), read whole."""

from __future__ import annotations

from pathlib import Path


class TooLarge(ValueError):
    """The file is over its limit."""


def read_capped(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path``; None if it does not exist. Raises TooLarge past ``limit``
    bytes (never reading more than one byte beyond it) and OSError if it cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        return None
    if len(data) > limit:
        raise TooLarge(f"{path} is over {limit} bytes")
    return data


__all__ = ["TooLarge", "read_capped"]
