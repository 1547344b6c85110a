"""A client's saved state: server, device token and the last update number it has seen.

Stored as JSON readable only by its owner (0600) in the profile directory. The token is the
device's credential: anyone holding this file can act as the device until it is revoked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from samizdat.crypto.private_files import write_private

FILE_NAME = "session.json"


@dataclass(slots=True)
class Session:
    server: str
    token: str
    user_id: int
    device_id: int
    seq: int = 0
    #: Your own number, kept here because the server keeps no copy it can read (unless you
    #: let others see it); sent back when you choose to show it.
    phone: str | None = None


class Profile:
    def __init__(self, directory: Path) -> None:
        self.directory = directory.expanduser()
        self.path = self.directory / FILE_NAME

    def load(self) -> Session | None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"profile file {self.path} is corrupt; log in again") from exc
        return Session(**data)

    def save(self, session: Session) -> None:
        write_private(self.path, orjson.dumps(asdict(session)))

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


__all__ = ["Profile", "Session"]
