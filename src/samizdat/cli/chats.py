"""Chat commands: ``chats`` (the dialog list) and ``group create|add|remove|leave|rename``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output, dump
from samizdat.cli.render import chat_line, preview, when
from samizdat.cli.render import table as render_table
from samizdat.cli.session import Names, logged_in
from samizdat.protocol.methods import MAX_HISTORY_LIMIT
from samizdat.protocol.models import Chat, ChatKind, Dialog


@dataclass(frozen=True, slots=True)
class DialogRow:
    dialog: Dialog
    title: str
    sender: str


async def _dialogs(profile: Path, limit: int) -> list[DialogRow]:
    async with logged_in(profile) as client:
        names = Names(client)
        rows: list[DialogRow] = []
        for dialog in await client.dialogs(limit):
            chat = dialog.chat
            if chat.kind is ChatKind.PRIVATE and chat.peer_id is not None:
                title = await names.user(chat.peer_id)
            else:
                title = chat.title
            last = dialog.last_message
            sender = await names.user(last.sender_id) if last is not None else ""
            rows.append(DialogRow(dialog, title, sender))
        return rows


def chats(
    ctx: typer.Context,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_HISTORY_LIMIT, help="How many chats to show")
    ] = 100,
    json_: JsonFlag = False,
) -> None:
    """List your chats, most recent first: id, title (the other person's name for a 1:1
    chat), unread count and the last message.

    With --json, each line is a dialog with an added top-level "title".
    """
    out = Output(json_, ctx.obj)
    rows = out.run(_dialogs(ctx.obj, limit))
    table = render_table("ID", "Chat", "Unread", "Last message", "When", keep=("ID", "When"))
    for row in rows:
        last = row.dialog.last_message
        unread = row.dialog.unread_count
        table.add_row(
            str(row.dialog.chat.id),
            escape(row.title)
            + (" [dim](group)[/dim]" if row.dialog.chat.kind is ChatKind.GROUP else ""),
            f"[bold]{unread}[/bold]" if unread else "[dim]0[/dim]",
            preview(last, row.sender),
            when(last.date) if last is not None else "",
        )
    out.rows(
        ({**dump(row.dialog), "title": row.title} for row in rows),
        table,
        empty="No chats yet: `samizdat send @username TEXT` starts one.",
    )


group_app = typer.Typer(help="Create and manage group chats.", no_args_is_help=True)

ChatArg = Annotated[int, typer.Argument(help="The group's chat id", show_default=False)]
MemberHelp = "@username, +phone or user id"


async def _create(profile: Path, title: str, members: list[str]) -> Chat:
    async with logged_in(profile) as client:
        return await client.create_group(title, list[str | int](members))


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="The group's name", show_default=False)],
    members: Annotated[
        list[str] | None, typer.Argument(help=f"People to add: {MemberHelp}", show_default=False)
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Create a group with TITLE and MEMBERs; you become its admin."""
    out = Output(json_, ctx.obj)
    chat = out.run(_create(ctx.obj, title, members or []))
    out.result(dump(chat), f"Created {chat_line(chat)}")


async def _add(profile: Path, chat: int, members: list[str]) -> Chat:
    async with logged_in(profile) as client:
        return await client.add_members(chat, list[str | int](members))


@group_app.command("add")
def group_add(
    ctx: typer.Context,
    chat: ChatArg,
    members: Annotated[list[str], typer.Argument(help=f"People to add: {MemberHelp}")],
    json_: JsonFlag = False,
) -> None:
    """Add MEMBERs to the group CHAT (admins only)."""
    out = Output(json_, ctx.obj)
    found = out.run(_add(ctx.obj, chat, members))
    out.result(dump(found), f"Added {len(members)} to {chat_line(found)}")


async def _remove(profile: Path, chat: int, member: str) -> Chat:
    async with logged_in(profile) as client:
        return await client.remove_member(chat, member)


@group_app.command("remove")
def group_remove(
    ctx: typer.Context,
    chat: ChatArg,
    member: Annotated[str, typer.Argument(help=f"Who to remove: {MemberHelp}")],
    json_: JsonFlag = False,
) -> None:
    """Remove MEMBER from the group CHAT (admins only)."""
    out = Output(json_, ctx.obj)
    found = out.run(_remove(ctx.obj, chat, member))
    out.result(dump(found), f"Removed {escape(member)} from {chat_line(found)}")


async def _leave(profile: Path, chat: int) -> None:
    async with logged_in(profile) as client:
        await client.leave(chat)


@group_app.command("leave")
def group_leave(ctx: typer.Context, chat: ChatArg, json_: JsonFlag = False) -> None:
    """Leave the group CHAT."""
    out = Output(json_, ctx.obj)
    out.run(_leave(ctx.obj, chat))
    out.result({"ok": True, "chat_id": chat}, "Left the group.")


async def _rename(profile: Path, chat: int, title: str) -> Chat:
    async with logged_in(profile) as client:
        return await client.rename_group(chat, title)


@group_app.command("rename")
def group_rename(
    ctx: typer.Context,
    chat: ChatArg,
    title: Annotated[str, typer.Argument(help="The new name", show_default=False)],
    json_: JsonFlag = False,
) -> None:
    """Rename the group CHAT to TITLE (admins only)."""
    out = Output(json_, ctx.obj)
    found = out.run(_rename(ctx.obj, chat, title))
    out.result(dump(found), f"Renamed: now {chat_line(found)}")


__all__ = ["chats", "group_app"]
