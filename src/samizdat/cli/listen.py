"""``listen``: print every update as it arrives, until Ctrl-C or SIGTERM.

On start the client authorises with the profile's session and catches up from the update
number the profile saved last, so what arrived while nothing was listening is printed first,
in order, then live updates. Each printed update's number is saved, so a restart resumes
where it stopped. A dropped connection is retried with backoff (and caught up again); a
revoked device ends the command with an error.

If the profile has a secret-chat vault, secret messages are decrypted and printed too (and
count as read: their self-destruct timers start), with any loud notice (a gap, a message
that did not decrypt, a changed key); expired messages are deleted as their time comes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import AnyUpdateModel, update_line
from samizdat.cli.secret_render import chat_title, entry_json, entry_line
from samizdat.cli.secret_session import open_vault, vault_dir
from samizdat.cli.session import Names, load_session
from samizdat.client import AnyUpdate, Client
from samizdat.client.secret import (
    SecretChats,
    SecretMessage,
    SecretNotice,
    VerificationRequested,
)
from samizdat.crypto.vault import Vault
from samizdat.protocol.errors import Unavailable
from samizdat.protocol.models import SecretMessageUpdate

log = logging.getLogger(__name__)

#: Seconds between reconnection attempts: doubling from the first to the last.
FIRST_RETRY = 0.5
LAST_RETRY = 15.0


def _printer(
    out: Output, stop: asyncio.Event
) -> Callable[[Callable[[], Awaitable[None]]], Awaitable[None]]:
    async def guarded(write: Callable[[], Awaitable[None]]) -> None:
        if stop.is_set():
            return
        try:
            await write()
        except BrokenPipeError:
            # The reader went away (`samizdat listen | head`): stop quietly, and point stdout
            # at /dev/null so the interpreter's final flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            stop.set()

    return guarded


def _show_secret(secret: SecretChats, out: Output, names: Names, stop: asyncio.Event) -> None:
    guarded = _printer(out, stop)

    async def message(event: SecretMessage | SecretNotice) -> None:
        async def write() -> None:
            kind = "secret_message" if isinstance(event, SecretMessage) else "secret_notice"
            if out.json:
                out.record({"type": kind, **entry_json(event.chat_id, event.entry)})
            else:
                chat = secret.state.chats.get(event.chat_id)
                title = await chat_title(chat, names) if chat is not None else event.chat_id
                line = await entry_line(event.entry, names)
                out.console.print(
                    f"[magenta]\\[🔒 {escape(title)}][/magenta] {line}", soft_wrap=True
                )

        await guarded(write)
        if isinstance(event, SecretMessage) and not event.entry.outgoing:
            await secret.mark_read(event.chat_id)  # printed is read: its timer starts

    async def request(event: VerificationRequested) -> None:
        async def write() -> None:
            if out.json:
                out.record(
                    {
                        "type": "verification_requested",
                        "user_id": event.user_id,
                        "device_id": event.device_id,
                    }
                )
            else:
                who = await names.user(event.user_id)
                out.console.print(
                    f"[yellow]{escape(who)} wants to compare emoji with you: run "
                    f"samizdat secret verify {event.user_id}[/yellow]"
                )

        await guarded(write)

    secret.on(SecretMessage)(message)
    secret.on(SecretNotice)(message)
    secret.on(VerificationRequested)(request)


async def _expire(secret: SecretChats) -> None:
    """Delete self-destructing messages when their time comes."""
    while True:
        await asyncio.sleep(1.0)
        if secret.opened:
            try:
                await secret.purge_expired()
            except Exception:  # a failed save is retried next second; the timer must go on
                log.exception("could not delete expired secret messages")


async def _follow(client: Client, out: Output, stop: asyncio.Event, vault: Vault | None) -> None:
    """Connect, stay connected, and reconnect after a drop; returns only by raising."""
    names = Names(client)
    guarded = _printer(out, stop)

    async def show(update: AnyUpdateModel | SecretMessageUpdate) -> None:
        if isinstance(update, SecretMessageUpdate):
            return  # the secret-chat engine decrypts and shows these

        async def write() -> None:
            if out.json:
                out.record(dump(update))
            else:
                out.console.print(await update_line(update, names), soft_wrap=True)

        await guarded(write)

    client.on(AnyUpdate)(show)
    secret = SecretChats(client, vault) if vault is not None else None
    if secret is None:
        await _stay_connected(client, out, None)
        return
    _show_secret(secret, out, names, stop)
    expiry = asyncio.create_task(_expire(secret))
    try:
        await _stay_connected(client, out, secret)
    finally:
        expiry.cancel()


async def _stay_connected(client: Client, out: Output, secret: SecretChats | None) -> None:
    delay = FIRST_RETRY
    connected_before = False
    while True:
        try:
            await client.connect()  # delivers what was missed before returning
        except Unavailable:
            if not connected_before:
                raise  # a wrong URL or a server that is down: say so, do not spin
            await client.close()
            await asyncio.sleep(delay)
            delay = min(delay * 2, LAST_RETRY)
            continue
        if not connected_before and client.me is not None:
            out.note(f"[dim]Listening as {client.me.display_name}; Ctrl-C to stop.[/dim]")
        connected_before = True
        delay = FIRST_RETRY
        if secret is not None:
            try:
                if secret.opened:
                    await secret.sync()  # what arrived while the socket was down
                else:
                    await secret.open()
            except Unavailable:
                await client.close()
                continue
        await client.run_until_disconnected()
        await client.close()
        out.note("[yellow]Connection lost; reconnecting…[/yellow]")


async def _listen(profile: Path, out: Output) -> None:
    session = load_session(profile)
    vault = open_vault(profile) if Vault.exists(vault_dir(profile)) else None
    client = Client(session=session, profile=profile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    follow = asyncio.create_task(_follow(client, out, stop, vault))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({follow, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (follow, stopped):
            task.cancel()
        await asyncio.wait({follow, stopped})
        await client.close()
    if not follow.cancelled():
        follow.result()  # a typed error (revoked, unreachable) ends the command with it


def listen(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Print each update as it arrives: first what this profile missed since it last
    listened, then live ones, until Ctrl-C. With --json, one update object per line."""
    out = Output(json_, ctx.obj)
    out.run(_listen(ctx.obj, out))


__all__ = ["listen"]
