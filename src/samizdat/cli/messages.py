"""Message commands: ``send``, ``history``, ``edit``, ``delete``, ``react``, ``read``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import message_text, when
from samizdat.cli.render import table as render_table
from samizdat.cli.session import Names, chat_id, chat_ref, logged_in
from samizdat.protocol.methods import MAX_HISTORY_LIMIT
from samizdat.protocol.models import Message

PeerArg = Annotated[
    str,
    typer.Argument(
        help="Who or where: @username or +phone (their 1:1 chat), or a chat id",
        show_default=False,
    ),
]
ChatArg = Annotated[
    str,
    typer.Argument(
        help="The chat: a chat id, or @username / +phone for your 1:1 chat", show_default=False
    ),
]
MessageIdArg = Annotated[int, typer.Argument(help="The message id (see `samizdat history`)")]


async def _send(profile: Path, peer: str, text: str, reply_to: int | None) -> Message:
    async with logged_in(profile) as client:
        return await client.send_message(chat_ref(peer), text, reply_to=reply_to)


def send(
    ctx: typer.Context,
    peer: PeerArg,
    text: Annotated[str, typer.Argument(help="The message (quote it)", show_default=False)],
    reply_to: Annotated[
        int | None, typer.Option(help="Id of a message in the same chat to reply to")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Send TEXT to PEER. Prints the sent message (its id is what edit/delete/react take)."""
    out = Output(json_, ctx.obj)
    message = out.run(_send(ctx.obj, peer, text, reply_to))
    out.result(dump(message), f"Sent #{message.id} [dim](chat {message.chat_id})[/dim]")


async def _history(
    profile: Path, peer: str, limit: int, before: int | None, *, with_names: bool
) -> tuple[list[Message], dict[int, str]]:
    async with logged_in(profile) as client:
        messages = await client.history(chat_ref(peer), limit=limit, before_id=before)
        messages.reverse()  # the server pages newest first; people read oldest first
        senders: dict[int, str] = {}
        if with_names:
            names = Names(client)
            for message in messages:
                senders[message.sender_id] = await names.user(message.sender_id)
        return messages, senders


def history(
    ctx: typer.Context,
    peer: PeerArg,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_HISTORY_LIMIT, help="How many messages")
    ] = 20,
    before: Annotated[
        int | None,
        typer.Option(help="Only messages older than this id (to page back: the first id shown)"),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Show the latest messages of a chat, oldest first (one JSON message per line)."""
    out = Output(json_, ctx.obj)
    messages, senders = out.run(_history(ctx.obj, peer, limit, before, with_names=not json_))
    table = render_table("#", "When", "From", "Message", keep=("#", "When"))
    for m in messages:
        table.add_row(
            str(m.id), when(m.date), escape(senders.get(m.sender_id, "")), message_text(m)
        )
    out.rows((dump(m) for m in messages), table, empty="No messages.")


async def _edit(profile: Path, chat: str, message_id: int, text: str) -> Message:
    async with logged_in(profile) as client:
        return await client.edit_message(await chat_id(client, chat), message_id, text)


def edit(
    ctx: typer.Context,
    chat: ChatArg,
    message_id: MessageIdArg,
    text: Annotated[str, typer.Argument(help="The new text", show_default=False)],
    json_: JsonFlag = False,
) -> None:
    """Replace the text of your message MESSAGE_ID in CHAT."""
    out = Output(json_, ctx.obj)
    message = out.run(_edit(ctx.obj, chat, message_id, text))
    out.result(dump(message), f"Edited #{message.id}")


async def _delete(profile: Path, chat: str, ids: list[int], for_everyone: bool) -> int:
    async with logged_in(profile) as client:
        found = await chat_id(client, chat)
        await client.delete_messages(found, ids, for_everyone=for_everyone)
        return found


def delete(
    ctx: typer.Context,
    chat: ChatArg,
    message_ids: Annotated[list[int], typer.Argument(help="Ids of the messages to delete")],
    for_everyone: Annotated[
        bool,
        typer.Option("--for-everyone", help="Delete for every member, not just for you"),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Delete messages in CHAT: for you only, or with --for-everyone for all members."""
    out = Output(json_, ctx.obj)
    found = out.run(_delete(ctx.obj, chat, message_ids, for_everyone))
    scope = " for everyone" if for_everyone else ""
    out.result(
        {"ok": True, "chat_id": found, "message_ids": message_ids, "for_everyone": for_everyone},
        f"Deleted {len(message_ids)} message(s){scope}.",
    )


async def _react(profile: Path, chat: str, message_id: int, emoji: str | None) -> int:
    async with logged_in(profile) as client:
        found = await chat_id(client, chat)
        await client.react(found, message_id, emoji)
        return found


def react(
    ctx: typer.Context,
    chat: ChatArg,
    message_id: MessageIdArg,
    emoji: Annotated[
        str | None, typer.Argument(help="The reaction, e.g. 👍 (omit with --remove)")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take back your reaction")] = False,
    json_: JsonFlag = False,
) -> None:
    """React to message MESSAGE_ID in CHAT with EMOJI (one reaction per person), or --remove it."""
    if remove == (emoji is not None):
        raise typer.BadParameter("give an EMOJI, or --remove without one")
    out = Output(json_, ctx.obj)
    found = out.run(_react(ctx.obj, chat, message_id, emoji))
    out.result(
        {"ok": True, "chat_id": found, "message_id": message_id, "emoji": emoji},
        f"Reacted {escape(emoji)} to #{message_id}." if emoji else "Reaction removed.",
    )


async def _read(profile: Path, chat: str, up_to: int | None) -> tuple[int, int | None]:
    async with logged_in(profile) as client:
        found = await chat_id(client, chat)
        if up_to is None:
            newest = await client.history(found, limit=1)
            if not newest:
                return found, None
            up_to = newest[0].id
        await client.mark_read(found, up_to)
        return found, up_to


def read(
    ctx: typer.Context,
    chat: ChatArg,
    up_to: Annotated[
        int | None, typer.Option(help="Mark read up to this message id (default: the newest)")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Mark CHAT as read, which clears its unread count and tells the senders."""
    out = Output(json_, ctx.obj)
    found, max_id = out.run(_read(ctx.obj, chat, up_to))
    out.result(
        {"ok": True, "chat_id": found, "max_id": max_id},
        f"Read up to #{max_id}." if max_id is not None else "The chat has no messages.",
    )


__all__ = ["delete", "edit", "history", "react", "read", "send"]
