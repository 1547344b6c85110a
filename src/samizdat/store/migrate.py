"""Bring a DC's database to the newest schema with Alembic, on SQLite or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection

from samizdat.store.engine import Engines

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, *_: Any) -> None:
    command.upgrade(alembic_config(connection), "head")


async def migrate(engines: Engines) -> None:
    async with engines.writer.begin() as conn:
        await conn.run_sync(_upgrade)


__all__ = ["alembic_config", "migrate"]
