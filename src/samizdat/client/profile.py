"""A client's saved state: server, device token and the last update number it has seen.

Stored as JSON readable only by its owner (0600) in the profile directory. The token is the
device's credential: anyone holding this file can act as the device until it is revoked.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

FILE_NAME = "session.json"


@dataclass(slots=True)
class Session:
    server: str
    token: str
    user_id: int
    device_id: int
    seq: int = 0


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
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(orjson.dumps(asdict(session)))
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


__all__ = ["Profile", "Session"]
