"""How the client commands print: JSON lines for scripts, rich for people, one error path.

With ``--json`` every result is one JSON object per line on stdout, and an error is the line
``{"error": {"code": ..., "message": ...}}`` (plus ``retry_after`` seconds for FLOOD_WAIT;
on stdout too, so a script reads one stream) with exit code 1. Without it results are rich
text and tables on stdout, and an error is one red line on stderr that says what to do next,
again with exit code 1.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Table

from samizdat.cli.session import NotLoggedIn, login_command
from samizdat.protocol.errors import ErrorCode, RateLimited, SamizdatError

JsonFlag = Annotated[
    bool,
    typer.Option(
        "--json", help='Print one JSON object per line (for scripts); errors as {"error": ...}'
    ),
]

Record = Mapping[str, Any]
T = TypeVar("T")


def dump(model: BaseModel) -> dict[str, Any]:
    """A wire model as plain JSON-ready data."""
    return model.model_dump(mode="json")


def _hint(exc: SamizdatError, profile: Path) -> str | None:
    """What the user should do about an error, or None when the message says it already."""
    if isinstance(exc, NotLoggedIn) or "samizdat " in exc.message:
        return None  # the message already says what to run
    match exc.code:
        case ErrorCode.UNAUTHORIZED | ErrorCode.TOKEN_REVOKED:
            return f"run {login_command(profile)}"
        case ErrorCode.CODE_INVALID:
            return "check the code, or run login without --code to get a new one"
        case ErrorCode.CODE_EXPIRED:
            return "run login again to get a new code"
        case ErrorCode.PHONE_INVALID:
            return "give the number in international form, e.g. +447700900123"
        case ErrorCode.USER_NOT_FOUND:
            return "check the @username or +phone number"
        case ErrorCode.CHAT_NOT_FOUND:
            return "give @username, +phone or a chat id from `samizdat chats`"
        case ErrorCode.MESSAGE_NOT_FOUND:
            return "see message ids with `samizdat history CHAT`"
        case ErrorCode.DEVICE_NOT_FOUND:
            return "see device ids with `samizdat devices`"
        case ErrorCode.NOT_ADMIN:
            return "ask a group admin to do it"
        case ErrorCode.NOT_AUTHOR:
            return "you can only change your own messages"
        case ErrorCode.NOT_MEMBER:
            return "you are not a member of that chat"
        case ErrorCode.USERNAME_TAKEN:
            return "pick another username"
        case ErrorCode.FLOOD_WAIT if isinstance(exc, RateLimited):
            # The server's message usually says when already; do not say it twice.
            return None if "try again" in exc.message else f"wait {exc.retry_after:.0f} s"
        case ErrorCode.UNAVAILABLE:
            # A sealed DC says "temporarily unavailable ... try again": nothing to add.
            if "try again" in exc.message:
                return None
            return "check that the server is running and its URL is right"
        case ErrorCode.INTERNAL:
            return "try again; if it keeps failing, tell the server's operator"
        case _:
            return None


class Output:
    """The printer one command invocation uses; chosen by its ``--json`` flag."""

    def __init__(self, json_mode: bool, profile: Path) -> None:
        self.json = json_mode
        self.profile = profile
        self.console = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False)

    def record(self, data: Record) -> None:
        """Write one JSON line now (flushed, so a reader of a pipe sees it at once)."""
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
        sys.stdout.flush()

    def result(self, data: Record, human: RenderableType) -> None:
        """One result: ``data`` as a JSON line, or ``human`` (rich markup allowed)."""
        if self.json:
            self.record(data)
        else:
            self.console.print(human)

    def rows(self, records: Iterable[Record], table: Table, *, empty: str) -> None:
        """A list: one JSON line per record, or the table (``empty`` when it has no rows)."""
        if self.json:
            for item in records:
                self.record(item)
        elif table.row_count == 0:
            self.console.print(empty)
        else:
            self.console.print(table)

    def note(self, text: str) -> None:
        """Progress for people, on stderr; silent in --json mode."""
        if not self.json:
            self.err.print(text)

    def fail(self, exc: SamizdatError) -> NoReturn:
        """Report a typed error (with a hint of what to do) and exit 1."""
        self._fail(exc.to_wire(), exc.message, _hint(exc, self.profile))  # + retry_after

    def fail_with(self, code: str, message: str) -> NoReturn:
        """Report an error of the command itself (not from a server) and exit 1:
        ``{"error": {"code": code, "message": message}}`` with --json, else a red line."""
        self._fail({"code": code, "message": message}, message, None)

    def _fail(self, wire: Record, message: str, hint: str | None) -> NoReturn:
        if self.json:
            self.record({"error": wire})
        else:
            tail = f" — {escape(hint)}" if hint else ""
            self.err.print(f"[red]error:[/red] {escape(message)}{tail}", soft_wrap=True)
        raise typer.Exit(1)

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run one command's coroutine; typed errors become the error output and exit 1."""
        try:
            return asyncio.run(main)
        except SamizdatError as exc:
            self.fail(exc)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None  # Ctrl-C: the shell's convention, no traceback


__all__ = ["JsonFlag", "Output", "Record", "dump"]
