"""Account commands: ``login``, ``logout``, ``whoami``, ``username ...``, ``profile set``."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import user_line
from samizdat.cli.secret_session import PASSPHRASE_ENV, secret_chats, vault_dir
from samizdat.cli.session import load_session, logged_in
from samizdat.client import Client, Profile, Session
from samizdat.crypto.vault import Vault
from samizdat.protocol.errors import AuthError, ErrorCode, SamizdatError
from samizdat.protocol.models import PhoneVisibility, User

#: Wrong codes typed at the prompt before login gives up (the server allows five per code).
PROMPT_ATTEMPTS = 3


def _default_device_name() -> str:
    return f"samizdat-cli on {socket.gethostname()}"[:64]


def _server_url(server: str) -> str:
    """The HTTP base URL the SDK wants; a ws:// address or a trailing /ws is accepted too."""
    if not server.startswith(("http://", "https://", "ws://", "wss://")):
        raise typer.BadParameter("give a URL such as http://127.0.0.1:8080", param_hint="--server")
    if server.startswith("ws"):
        server = "http" + server[2:]
    return server.rstrip("/").removesuffix("/ws")


async def _send_code(server: str, phone: str) -> int:
    async with Client(server, receive_updates=False) as client:
        return await client.send_code(phone)


async def _sign_in(
    server: str, phone: str, code: str, name: str | None, device_name: str, *, retry: bool
) -> Client:
    """Sign in. With ``retry``, when no code is pending (or it expired) one is requested and
    the same code tried again: for dev-mode test numbers, whose code is known, that makes
    ``login --code`` a single step."""
    client = Client(server, device_name=device_name, receive_updates=False)
    async with client:
        try:
            await client.sign_in(phone, code, display_name=name)
        except AuthError as exc:
            if not retry or exc.code is not ErrorCode.CODE_EXPIRED:
                raise
            await client.send_code(phone)
            await client.sign_in(phone, code, display_name=name)
    return client


def _read_code() -> str | None:
    """Prompt on stderr and read one line from stdin (a terminal or a pipe).

    Not ``typer.prompt``: click writes the prompt's trailing space to stdout, which would
    corrupt ``--json`` output.
    """
    sys.stderr.write("Code: ")
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        sys.stderr.write("\n")
        return None
    return line.strip()


def _prompt_and_sign_in(
    out: Output, server: str, phone: str, name: str | None, device_name: str
) -> Client:
    length = out.run(_send_code(server, phone))
    out.note(f"A {length}-digit code was sent to {escape(phone)}.")
    for attempt in range(1, PROMPT_ATTEMPTS + 1):
        typed = _read_code()
        if typed is None:
            out.fail(AuthError("no code was entered", code=ErrorCode.CODE_INVALID))
        try:
            return asyncio.run(_sign_in(server, phone, typed, name, device_name, retry=False))
        except AuthError as exc:
            if exc.code is not ErrorCode.CODE_INVALID or attempt == PROMPT_ATTEMPTS:
                out.fail(exc)
            out.note("[yellow]That code is not right; try again.[/yellow]")
        except SamizdatError as exc:
            out.fail(exc)
    raise AssertionError("unreachable")  # pragma: no cover


def login(
    ctx: typer.Context,
    server: Annotated[
        str, typer.Option(help="Server URL, e.g. http://127.0.0.1:8080", show_default=False)
    ],
    phone: Annotated[
        str,
        typer.Option(help="Your phone number in international form, e.g. +447700900123"),
    ],
    code: Annotated[
        str | None,
        typer.Option(
            help="The login code, for scripts. Without it a code is sent and you are prompted "
            "for it. If no code is pending, one is requested first, so dev-mode test numbers "
            "(+99966D..., code DDDDD) log in in one step.",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Your display name, if this creates your account")
    ] = None,
    device_name: Annotated[
        str | None,
        typer.Option(
            help="How this device is listed in `samizdat devices` "
            "(default: samizdat-cli on HOSTNAME)"
        ),
    ] = None,
    secret: Annotated[
        bool,
        typer.Option(
            "--secret/--no-secret",
            help="Set up secret chats on this device now: create its end-to-end keys and "
            "publish them (the vault's passphrase comes from SAMIZDAT_PASSPHRASE or is asked)",
        ),
    ] = True,
    keyring: Annotated[
        bool, typer.Option("--keyring", help="Keep the vault's key in the OS keyring")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Sign in (or sign up) with a phone number and save the session in the profile.

    The new session replaces any earlier one in the profile. Its device token is kept in a
    file only you can read and is never printed. The device then publishes its end-to-end
    keys, so others can start secret chats with it.
    """
    profile: Path = ctx.obj
    out = Output(json_, profile)
    server = _server_url(server)
    device = device_name or _default_device_name()
    if code is None:
        client = _prompt_and_sign_in(out, server, phone, name, device)
    else:
        client = out.run(_sign_in(server, phone, code, name, device, retry=True))
    assert client.session is not None
    assert client.me is not None
    Profile(profile).save(client.session)
    out.result(
        {"user": dump(client.me), "server": server, "device_id": client.session.device_id},
        f"Logged in as {user_line(client.me)} on {escape(server)}",
    )
    if secret:
        _set_up_secret_chats(out, profile, keyring=keyring)


def _set_up_secret_chats(out: Output, profile: Path, *, keyring: bool) -> None:
    """Publish the new device's end-to-end keys; a login never fails for want of them."""
    can_unlock = (
        keyring
        or PASSPHRASE_ENV in os.environ
        or sys.stdin.isatty()
        or Vault.exists(vault_dir(profile))
    )
    later = "run `samizdat secret chats` once to set them up"
    if not can_unlock:
        out.note(f"[dim]Secret chats are not set up on this device yet: {later}.[/dim]")
        return

    async def set_up() -> None:
        async with secret_chats(profile, keyring=keyring):
            pass

    try:
        asyncio.run(set_up())
    except SamizdatError as exc:
        out.note(f"[yellow]Secret chats are not set up: {escape(exc.message)}; {later}.[/yellow]")
        return
    out.note("[dim]Secret chats are ready: this device's end-to-end keys are published.[/dim]")


async def _logout(profile: Path) -> bool:
    """Revoke the profile's device; False when the server had already logged it out."""
    client = Client(session=load_session(profile), receive_updates=False)
    try:
        await client.connect()
        await client.log_out()
    except AuthError as exc:
        if exc.code not in (ErrorCode.UNAUTHORIZED, ErrorCode.TOKEN_REVOKED):
            raise
        return False
    finally:
        await client.close()
    return True


def logout(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Log this device out on the server and clear the profile.

    If the server already logged the device out (from another device), only the profile is
    cleared. If the server cannot be reached, the profile is kept so you can try again.
    """
    profile: Path = ctx.obj
    out = Output(json_, profile)
    revoked = out.run(_logout(profile))
    Profile(profile).clear()
    out.result(
        {"ok": True, "revoked": revoked},
        "Logged out." if revoked else "This device was already logged out; profile cleared.",
    )


async def _whoami(profile: Path) -> tuple[User, Session]:
    async with logged_in(profile) as client:
        me = await client.get_me()
        assert client.session is not None
        return me, client.session


def whoami(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Show the account and server this profile is logged in to."""
    out = Output(json_, ctx.obj)
    me, session = out.run(_whoami(ctx.obj))
    out.result(
        {"user": dump(me), "server": session.server, "device_id": session.device_id},
        f"{user_line(me)} on {escape(session.server)} [dim](device {session.device_id})[/dim]",
    )


username_app = typer.Typer(help="Set or clear your public @username.", no_args_is_help=True)


async def _set_username(profile: Path, username: str | None) -> User:
    async with logged_in(profile) as client:
        return await client.set_username(username)


@username_app.command("set")
def username_set(
    ctx: typer.Context,
    name: Annotated[
        str,
        typer.Argument(
            help="5-32 letters, digits or underscores; a leading @ is dropped", show_default=False
        ),
    ],
    json_: JsonFlag = False,
) -> None:
    """Take a username, so others can find you as @NAME."""
    out = Output(json_, ctx.obj)
    me = out.run(_set_username(ctx.obj, name))
    out.result(dump(me), f"Your username is now [bold]@{escape(me.username or '')}[/bold]")


@username_app.command("clear")
def username_clear(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Give up your username; nobody can find you by it any more."""
    out = Output(json_, ctx.obj)
    me = out.run(_set_username(ctx.obj, None))
    out.result(dump(me), "Your username is cleared.")


profile_app = typer.Typer(help="Change your profile.", no_args_is_help=True)


async def _update_profile(profile: Path, changes: dict[str, Any]) -> User:
    async with logged_in(profile) as client:
        return await client.update_profile(**changes)


@profile_app.command("set")
def profile_set(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option(help="New display name (1-64 characters)")] = None,
    phone_visibility: Annotated[
        PhoneVisibility | None,
        typer.Option(help="Who can see your phone number", case_sensitive=False),
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option(
            help="Your number, if this profile does not know it yet (the server keeps no "
            "copy it can read unless you let others see it)"
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Change your display name and/or who can see your phone number."""
    changes: dict[str, Any] = {}
    if name is not None:
        changes["display_name"] = name
    if phone_visibility is not None:
        changes["phone_visibility"] = phone_visibility.value
        if phone is not None:
            changes["phone"] = phone
    if not changes:
        raise typer.BadParameter("give --name and/or --phone-visibility")
    out = Output(json_, ctx.obj)
    me = out.run(_update_profile(ctx.obj, changes))
    shown = me.phone_visibility.value if me.phone_visibility else "?"
    out.result(dump(me), f"Profile updated: {user_line(me)}, phone visible to {shown}")


__all__ = [
    "login",
    "logout",
    "profile_app",
    "username_app",
    "whoami",
]
