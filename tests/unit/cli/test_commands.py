"""The command tree: every command documents itself and its arguments; errors print one way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from samizdat.cli.main import app
from samizdat.cli.output import Output
from samizdat.cli.session import NotLoggedIn, login_command
from samizdat.protocol.errors import ErrorCode, NotFound, RateLimited

ROOT = get_command(app)
CLIENT_COMMANDS = {
    "login", "logout", "whoami", "username set", "username clear", "profile set", "send",
    "group create", "group add", "group remove", "group leave", "group rename", "chats",
    "history", "edit", "delete", "react", "read", "listen", "devices", "devices revoke",
    "devices revoke-others",
}  # fmt: skip


def _walk(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every command by its full name (typer vendors its own click)."""
    found = {" ".join(path): command} if path else {}
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            found |= _walk(sub, (*path, name))
    return found


COMMANDS = _walk(ROOT)


def test_every_client_command_of_the_interface_exists() -> None:
    assert set(COMMANDS) >= CLIENT_COMMANDS


@pytest.mark.parametrize("name", sorted(CLIENT_COMMANDS))
def test_every_command_explains_itself_and_each_argument(name: str) -> None:
    command = COMMANDS[name]
    assert command.help, f"{name} has no help text"
    for param in command.params:
        assert getattr(param, "help", None), f"{name}: {param.name} has no help"
    assert any(p.name == "json_" for p in command.params), f"{name} lacks --json"
    result = CliRunner().invoke(app, [*name.split(), "--help"])
    assert result.exit_code == 0, result.output


def _fail(output: Output, exc: Exception) -> None:
    with pytest.raises(typer.Exit) as exited:
        output.fail(exc)  # type: ignore[arg-type]
    assert exited.value.exit_code == 1


def test_json_errors_are_one_line_with_code_and_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _fail(Output(True, tmp_path), NotFound("no such chat", code=ErrorCode.CHAT_NOT_FOUND))
    out = capsys.readouterr().out
    assert json.loads(out) == {"error": {"code": "CHAT_NOT_FOUND", "message": "no such chat"}}


def test_human_errors_are_one_red_line_on_stderr_naming_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _fail(Output(False, tmp_path), RateLimited("slow down [now]", retry_after=3))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: slow down [now] — wait 3 s\n"


def test_not_logged_in_names_the_login_command_for_this_profile(tmp_path: Path) -> None:
    assert (
        login_command(tmp_path)
        == f"samizdat --profile {tmp_path} login --server URL --phone NUMBER"
    )
    assert login_command(Path("~/.samizdat").expanduser()).startswith("samizdat login ")
    assert NotLoggedIn("x").code is ErrorCode.UNAUTHORIZED
