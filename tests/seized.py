"""What a state holding a DC's machine gets: every file it wrote and, on PostgreSQL, every row.

Tests search these bytes for what must never be there (message text, phone numbers, client
addresses, key material), in every form they could take.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.harness import ServerProcess, database_dump


def data_files(server: ServerProcess, *, exclude: Iterable[Path] = ()) -> dict[str, bytes]:
    """Every file under the data directory, by relative path, except the ``exclude``d files
    and directories (with everything under them)."""
    left_out = set(exclude)
    return {
        str(path.relative_to(server.data_dir)): path.read_bytes()
        for path in sorted(server.data_dir.rglob("*"))
        if path.is_file() and not left_out.intersection({path, *path.parents})
    }


async def everything_stored(
    server: ServerProcess, *, exclude: Iterable[Path] = ()
) -> dict[str, bytes]:
    """``data_files`` plus, on PostgreSQL, every row of every table."""
    stored = data_files(server, exclude=exclude)
    if server.backend == "postgres":
        stored.update(await database_dump(server))
    return stored


def occurrences(stored: Mapping[str, bytes], needles: Mapping[str, bytes]) -> list[str]:
    """``"what in where"`` for every needle found in a stored blob (empty if none is)."""
    return [
        f"{what} in {where}"
        for what, needle in needles.items()
        for where, blob in stored.items()
        if needle in blob
    ]


__all__ = ["data_files", "everything_stored", "occurrences"]
