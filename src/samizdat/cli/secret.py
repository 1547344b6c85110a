"""``samizdat secret ...``: end-to-end encrypted chats and groups from the command line.

Each command unlocks the profile's vault, publishes or tops up this device's keys, decrypts
whatever secret messages are waiting, does its work, and saves before it acknowledges
anything to the server.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output
from samizdat.cli.render import table as render_table
from samizdat.cli.secret_render import (
    chat_title,
    codes_text,
    entry_json,
    entry_line,
    safety_text,
    ttl_text,
)
from samizdat.cli.secret_session import secret_chats
from samizdat.cli.session import Names
from samizdat.client.secret import (
    KnownDevice,
    MessageEntry,
    SecretChats,
    fingerprints,
    verify,
)
from samizdat.client.secret.engine import ConfirmDevices
from samizdat.client.secret.payloads import MAX_TTL
from samizdat.crypto.verification import SasCodes
from samizdat.protocol.errors import ErrorCode, SamizdatError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SecretOptions:
    profile: Path
    keyring: bool


secret_app = typer.Typer(
    help="End-to-end encrypted chats: only the devices at the ends can read them. The "
    "server relays ciphertext and keeps no history. Keys and history live in a vault in "
    "the profile, sealed with a passphrase (SAMIZDAT_PASSPHRASE, or asked) or --keyring.",
    no_args_is_help=True,
)

PeerArg = Annotated[
    str,
    typer.Argument(
        help="@username, +phone or user id; for a secret group, its title or id (verify and "
        "fingerprint also take your own @username: your other devices)",
        show_default=False,
    ),
]
StrictFlag = Annotated[
    bool,
    typer.Option(
        "--strict",
        help="Refuse to send if a verified contact has a new, unverified device (no question)",
    ),
]
YesFlag = Annotated[
    bool,
    typer.Option("--yes", help="Send even to new, unverified devices of verified contacts"),
]


@secret_app.callback()
def secret_root(
    ctx: typer.Context,
    keyring: Annotated[
        bool,
        typer.Option(
            "--keyring",
            help="Create the vault with a random key kept in the OS keyring instead of a "
            "passphrase (an existing vault opens the way it was made)",
        ),
    ] = False,
) -> None:
    ctx.obj = SecretOptions(ctx.obj, keyring)


def _options(ctx: typer.Context) -> SecretOptions:
    options = ctx.obj
    assert isinstance(options, SecretOptions)
    return options


async def _ask_yes(question: str) -> bool:
    """Ask on the terminal (without blocking the event loop); only y/yes is a yes."""
    answer = await asyncio.to_thread(input, f"{question} [y/N] ")
    return answer.strip().lower() in {"y", "yes"}


def _confirmer(out: Output, *, strict: bool, yes: bool) -> ConfirmDevices:
    """How a send treats a verified contact's new devices: ask, refuse, or allow."""

    async def confirm(devices: list[KnownDevice]) -> bool:
        if yes:
            return True
        if strict or not sys.stdin.isatty():
            return False
        listed = ", ".join(f"user {d.user_id}'s device {d.device_id}" for d in devices)
        out.err.print(f"[yellow]! {escape(listed)} is new and not verified.[/yellow]")
        return await _ask_yes("Send to it anyway?")

    return confirm


async def with_secret(
    options: SecretOptions,
    out: Output,
    work: Callable[[SecretChats], Awaitable[T]],
    *,
    strict: bool = False,
    yes: bool = False,
) -> T:
    """Open the profile's secret chats (with the send policy for new devices), do ``work``."""
    confirm = _confirmer(out, strict=strict, yes=yes)
    async with secret_chats(options.profile, keyring=options.keyring, confirm=confirm) as secret:
        return await work(secret)


# --- chats -------------------------------------------------------------------------------------
async def _chats(secret: SecretChats) -> list[dict[str, Any]]:
    names = Names(secret.client)
    rows = []
    for chat in secret.chats():
        last = next((e for e in reversed(chat.history) if isinstance(e, MessageEntry)), None)
        unread = sum(
            1
            for e in chat.history
            if isinstance(e, MessageEntry) and e.read_at is None and not e.outgoing
        )
        rows.append(
            {
                "id": chat.id,
                "title": await chat_title(chat, names),
                "kind": "group" if chat.group is not None else "direct",
                "ttl": chat.ttl,
                "unread": unread,
                "last": last.text if last is not None else None,
            }
        )
    return rows


def chats(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List your secret chats and groups (decrypting anything that was waiting)."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    rows = out.run(with_secret(options, out, _chats))
    table = render_table("ID", "Chat", "Kind", "Timer", "Unread", "Last", keep=("ID",))
    for row in rows:
        table.add_row(
            row["id"],
            escape(row["title"]),
            row["kind"],
            ttl_text(row["ttl"]),
            str(row["unread"]),
            escape((row["last"] or "")[:50]),
        )
    out.rows(rows, table, empty="No secret chats yet: samizdat secret start @someone")


def start(
    ctx: typer.Context,
    peer: PeerArg,
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Start a secret chat with PEER: Olm sessions to every device of theirs and of yours.
    Compare safety numbers (secret fingerprint) or emoji (secret verify) to be sure."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat = out.run(with_secret(options, out, lambda s: s.start(peer), strict=strict, yes=yes))
    chat_id = chat.id
    out.result(
        {"chat": chat_id},
        f"Secret chat started [dim]({chat_id})[/dim]. To be sure no one is in between: "
        f"samizdat secret verify {escape(peer)}",
    )


async def _send(
    secret: SecretChats, peer: str, text: str, ttl: int | None
) -> tuple[str, MessageEntry]:
    chat = await secret.resolve(peer)
    return chat.id, await secret.send(chat, text, ttl=ttl)


def send(
    ctx: typer.Context,
    peer: PeerArg,
    text: Annotated[str, typer.Argument(help="The message (quote it)", show_default=False)],
    ttl: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=MAX_TTL,
            help="Self-destruct this many seconds after it is read (5 s to 1 week; 0 off). "
            "Default: the chat's timer",
        ),
    ] = None,
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Encrypt TEXT on this device for each of PEER's devices and your other devices, and
    send it. The server never sees the text."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat_id, entry = out.run(
        with_secret(options, out, lambda s: _send(s, peer, text, ttl), strict=strict, yes=yes)
    )
    timer = f", self-destructs {ttl_text(entry.ttl)} after it is read" if entry.ttl else ""
    out.result(entry_json(chat_id, entry), f"Sent secretly [dim]({chat_id}{timer})[/dim]")


async def _history(
    secret: SecretChats, peer: str, limit: int, *, human: bool
) -> tuple[str, list[Any], list[str]]:
    chat = await secret.resolve(peer)
    entries = chat.history[-limit:]
    names = Names(secret.client)
    lines = [await entry_line(e, names) for e in entries] if human else []
    await secret.mark_read(chat)  # shown now: self-destruct timers start
    return chat.id, entries, lines


def history(
    ctx: typer.Context,
    peer: PeerArg,
    limit: Annotated[int, typer.Option(min=1, help="How many entries, newest last")] = 50,
    json_: JsonFlag = False,
) -> None:
    """Show a secret chat's history from this device's vault, oldest first, with notices
    (gaps, messages that did not decrypt, key changes). Showing a message counts as reading
    it: its self-destruct timer starts, here and on the sender's devices."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat_id, entries, lines = out.run(
        with_secret(options, out, lambda s: _history(s, peer, limit, human=not out.json))
    )
    if out.json:
        for entry in entries:
            out.record(entry_json(chat_id, entry))
    elif not entries:
        out.console.print("[dim]No secret messages here yet.[/dim]")
    else:
        for line in lines:
            out.console.print(line)


def ttl(
    ctx: typer.Context,
    peer: PeerArg,
    seconds: Annotated[int, typer.Argument(min=0, max=MAX_TTL, help="0 (off) or 5 to 604800")],
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Set the chat's self-destruct timer: new messages are deleted on every device that
    many seconds after they are read."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat = out.run(
        with_secret(options, out, lambda s: s.set_ttl(peer, seconds), strict=strict, yes=yes)
    )
    chat_id = chat.id
    out.result({"chat": chat_id, "ttl": seconds}, f"Self-destruct timer: {ttl_text(seconds)}")


# --- verification ------------------------------------------------------------------------------
async def _fingerprint(secret: SecretChats, peer: str) -> tuple[str, list[dict[str, Any]]]:
    found = await fingerprints(secret, peer)
    rows = [
        {
            "user_id": f.device.user_id,
            "device_id": f.device.device_id,
            "identity_key": f.device.identity_key,
            "trust": f.device.trust.value,
            "safety_number": f.safety_number,
        }
        for f in found
    ]
    return secret.keys.identity_key, rows


def fingerprint(ctx: typer.Context, peer: PeerArg, json_: JsonFlag = False) -> None:
    """Show the safety number of this device with each of PEER's devices. Compare it with
    what PEER's device shows (read it aloud, or side by side): equal means no one is in
    between."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    mine, rows = out.run(with_secret(options, out, lambda s: _fingerprint(s, peer)))
    if out.json:
        for row in rows:
            out.record({**row, "my_identity_key": mine})
        return
    out.console.print(f"[dim]This device's identity key: {mine}[/dim]")
    if not rows:
        out.console.print("They have no device that can receive secret chats yet.")
    for row in rows:
        out.console.print(
            f"\nDevice {row['device_id']} [dim]({row['trust']}, key {row['identity_key']})[/dim]"
        )
        out.console.print(f"[bold]{safety_text(row['safety_number'])}[/bold]")


async def _verify(secret: SecretChats, out: Output, peer: str, patience: float) -> KnownDevice:
    async def show(codes: SasCodes, device: KnownDevice) -> bool:
        out.console.print(
            f"\nCompare with user {device.user_id}'s device {device.device_id}. "
            "They must see exactly these, in this order:\n"
        )
        out.console.print(codes_text(codes))
        return await _ask_yes("\nDo they match?")

    out.note(f"Waiting for {escape(peer)} to run: samizdat secret verify (you) …")
    return await verify(secret, peer, show, patience=patience)


def verify_command(
    ctx: typer.Context,
    peer: PeerArg,
    timeout: Annotated[float, typer.Option(min=5, help="Give up after this many seconds")] = 300,
    json_: JsonFlag = False,
) -> None:
    """Verify PEER by comparing emoji (SAS). Both of you run this at the same time; each
    sees seven emoji and three numbers and answers whether the other sees the same. A match
    proves no one is in between; the device is then marked verified."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    try:
        device = out.run(with_secret(options, out, lambda s: _verify(s, out, peer, timeout)))
    except TimeoutError:
        out.fail(
            SamizdatError(
                f"{peer} did not answer within {timeout:.0f} s", code=ErrorCode.UNAVAILABLE
            )
        )
    out.result(
        {"user_id": device.user_id, "device_id": device.device_id, "trust": device.trust.value},
        f"[green]✓ Verified user {device.user_id}'s device {device.device_id}.[/green]",
    )


secret_app.command()(chats)
secret_app.command()(start)
secret_app.command()(send)
secret_app.command()(history)
secret_app.command()(ttl)
secret_app.command()(fingerprint)
secret_app.command("verify")(verify_command)


__all__ = ["secret_app"]
