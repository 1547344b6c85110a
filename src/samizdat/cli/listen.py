"""``listen``: print every update as it arrives, until Ctrl-C or SIGTERM.

On start the client authorises with the profile's session and catches up from the update
number the profile saved last, so what arrived while nothing was listening is printed first,
in order, then live updates. Each printed update's number is saved, so a restart resumes
where it stopped. A dropped connection is retried with backoff (and caught up again); a
revoked device ends the command with an error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import typer

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import AnyUpdateModel, update_line
from samizdat.cli.session import Names, load_session
from samizdat.client import AnyUpdate, Client
from samizdat.protocol.errors import Unavailable

#: Seconds between reconnection attempts: doubling from the first to the last.
FIRST_RETRY = 0.5
LAST_RETRY = 15.0


async def _follow(client: Client, out: Output, stop: asyncio.Event) -> None:
    """Connect, stay connected, and reconnect after a drop; returns only by raising."""
    names = Names(client)

    async def show(update: AnyUpdateModel) -> None:
        if stop.is_set():
            return
        try:
            if out.json:
                out.record(dump(update))
            else:
                out.console.print(await update_line(update, names), soft_wrap=True)
        except BrokenPipeError:
            # The reader went away (`samizdat listen | head`): stop quietly, and point stdout
            # at /dev/null so the interpreter's final flush cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            stop.set()

    client.on(AnyUpdate)(show)
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
        await client.run_until_disconnected()
        await client.close()
        out.note("[yellow]Connection lost; reconnecting…[/yellow]")


async def _listen(profile: Path, out: Output) -> None:
    client = Client(session=load_session(profile), profile=profile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    follow = asyncio.create_task(_follow(client, out, stop))
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
