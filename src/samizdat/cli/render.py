"""Human text for wire objects. Everything returned is rich markup with user text escaped."""

from __future__ import annotations

from datetime import datetime

from rich import box
from rich.markup import escape
from rich.table import Column, Table

from samizdat.cli.session import Names
from samizdat.protocol.models import (
    Chat,
    ChatKind,
    ChatLeftUpdate,
    ChatUpdatedUpdate,
    Message,
    MessageEditedUpdate,
    MessagesDeletedUpdate,
    NewMessageUpdate,
    ReactionUpdate,
    ReadInboxUpdate,
    ReadOutboxUpdate,
    TypingUpdate,
    User,
)

AnyUpdateModel = (
    NewMessageUpdate
    | MessageEditedUpdate
    | MessagesDeletedUpdate
    | ReactionUpdate
    | ReadInboxUpdate
    | ReadOutboxUpdate
    | ChatUpdatedUpdate
    | ChatLeftUpdate
    | TypingUpdate
)


def table(*headers: str, keep: tuple[str, ...] = ()) -> Table:
    """A compact table; columns named in ``keep`` (ids, dates) are never wrapped or cut."""
    columns = [Column(h, no_wrap=h in keep) for h in headers]
    return Table(*columns, box=box.SIMPLE_HEAD, show_edge=False)


def when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def user_line(user: User) -> str:
    parts = [f"[bold]{escape(user.display_name)}[/bold]"]
    if user.username:
        parts.append(f"@{escape(user.username)}")
    if user.phone:
        parts.append(escape(user.phone))
    parts.append(f"[dim](id {user.id})[/dim]")
    return " ".join(parts)


def chat_line(chat: Chat) -> str:
    kind = "group" if chat.kind is ChatKind.GROUP else "chat"
    members = f", {chat.member_count} members" if chat.kind is ChatKind.GROUP else ""
    return f'{kind} [bold]"{escape(chat.title)}"[/bold] [dim](id {chat.id}{members})[/dim]'


def message_text(message: Message) -> str:
    """The body with its markers: reply, forward, edited, deleted, reactions."""
    if message.deleted or message.text is None:
        return "[dim italic]deleted[/dim italic]"
    parts: list[str] = []
    if message.reply_to_id is not None:
        parts.append(f"[dim]↪ #{message.reply_to_id}[/dim]")
    if message.forward is not None:
        parts.append("[dim]forwarded:[/dim]")
    parts.append(escape(message.text))
    if message.edit_date is not None:
        parts.append("[dim](edited)[/dim]")
    if message.reactions:
        counts = " ".join(f"{escape(e)}{n}" for e, n in sorted(message.reactions.items()))
        parts.append(f"[dim]{counts}[/dim]")
    return " ".join(parts)


def preview(message: Message | None, sender: str, width: int = 50) -> str:
    if message is None:
        return "[dim]no messages[/dim]"
    if message.deleted or message.text is None:
        return f"{escape(sender)}: [dim italic]deleted[/dim italic]"
    text = message.text.replace("\n", " ")
    if len(text) > width:
        text = text[: width - 1] + "…"
    return f"{escape(sender)}: {escape(text)}"


def chat_of(update: AnyUpdateModel) -> int:
    match update:
        case NewMessageUpdate(message=m) | MessageEditedUpdate(message=m):
            return m.chat_id
        case ChatUpdatedUpdate(chat=chat):
            return chat.id
        case _:
            return update.chat_id


async def update_line(update: AnyUpdateModel, names: Names) -> str:
    """One line for ``listen``: where, who, what."""
    if isinstance(update, ChatUpdatedUpdate) and update.chat.kind is ChatKind.GROUP:
        names.remember_chat(update.chat.id, update.chat.title)
    where = f"[cyan]\\[{escape(await names.chat(chat_of(update)))}][/cyan]"
    match update:
        case NewMessageUpdate(message=m):
            who = escape(await names.user(m.sender_id))
            return f"{where} [bold]{who}[/bold] [dim]#{m.id}[/dim]: {message_text(m)}"
        case MessageEditedUpdate(message=m):
            who = escape(await names.user(m.sender_id))
            return f"{where} {who} edited [dim]#{m.id}[/dim]: {message_text(m)}"
        case MessagesDeletedUpdate(message_ids=ids, for_everyone=everyone):
            listed = ", ".join(f"#{i}" for i in ids)
            scope = " for everyone" if everyone else ""
            return f"{where} deleted {listed}{scope}"
        case ReactionUpdate(message_id=mid, user_id=uid, emoji=emoji):
            who = escape(await names.user(uid))
            if emoji is None:
                return f"{where} {who} removed their reaction to [dim]#{mid}[/dim]"
            return f"{where} {who} reacted {escape(emoji)} to [dim]#{mid}[/dim]"
        case ReadInboxUpdate(max_id=max_id):
            return f"{where} read up to [dim]#{max_id}[/dim] on another device"
        case ReadOutboxUpdate(user_id=uid, max_id=max_id):
            return f"{where} {escape(await names.user(uid))} read up to [dim]#{max_id}[/dim]"
        case ChatUpdatedUpdate(chat=chat):
            return f"{where} now {chat_line(chat)}"
        case ChatLeftUpdate():
            return f"{where} you left or were removed"
        case TypingUpdate(user_id=uid):
            return f"{where} [dim]{escape(await names.user(uid))} is typing…[/dim]"


__all__ = [
    "AnyUpdateModel",
    "chat_line",
    "message_text",
    "preview",
    "table",
    "update_line",
    "user_line",
    "when",
]
