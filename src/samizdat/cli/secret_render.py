"""Human text for secret chats: messages, loud notices, emoji to compare, safety numbers."""

from __future__ import annotations

import re
from typing import Any

from rich.markup import escape

from samizdat.cli.render import when
from samizdat.cli.session import Names
from samizdat.client.secret import MessageEntry, NoticeEntry, NoticeLevel, SecretChat
from samizdat.crypto.verification import SasCodes


async def chat_title(chat: SecretChat, names: Names) -> str:
    if chat.group is not None:
        return printable(chat.group.title)
    assert chat.peer is not None
    return printable(await names.user(chat.peer))


def ttl_text(seconds: int) -> str:
    if seconds == 0:
        return "off"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """A peer's text as it may reach a terminal: no control or bidi-override characters
    (they could rewrite the screen or disguise what is shown)."""
    return _CONTROL.sub("\ufffd", text)


_USER = re.compile(r"\buser (\d+)", re.IGNORECASE)


async def with_names(text: str, names: Names) -> str:
    """Notices name users by id (the engine knows no names); people read names."""
    found = {int(m) for m in _USER.findall(text)}
    named = {uid: await names.user(uid) for uid in found}
    return _USER.sub(lambda m: named[int(m.group(1))], text)


async def entry_line(entry: MessageEntry | NoticeEntry, names: Names) -> str:
    """One history line; notices that may mean interception or loss stand out."""
    if isinstance(entry, NoticeEntry):
        text = escape(printable(await with_names(entry.text, names)))
        match entry.level:
            case NoticeLevel.ALERT:
                return f"[bold red]⚠ {text}[/bold red]"
            case NoticeLevel.WARNING:
                return f"[yellow]! {text}[/yellow]"
            case _:
                return f"[dim]· {text}[/dim]"
    who = "You" if entry.outgoing else await names.user(entry.sender_user)
    marks = []
    if entry.ttl:
        marks.append(f"⏱ {ttl_text(entry.ttl)}")
    if entry.late:
        marks.append("arrived late")
    if entry.unverified:
        marks.append("from a new, unverified device")
    tail = f" [dim]({', '.join(marks)})[/dim]" if marks else ""
    stamp = f"[dim]{when(entry.sent_at)}[/dim]"
    warn = "[yellow]! [/yellow]" if entry.unverified else ""
    return f"{stamp} {warn}[bold]{escape(who)}[/bold]: {escape(printable(entry.text))}{tail}"


def entry_json(chat_id: str, entry: MessageEntry | NoticeEntry) -> dict[str, Any]:
    return {"chat": chat_id, **entry.model_dump(mode="json")}


def codes_text(codes: SasCodes) -> str:
    emoji = "   ".join(f"{e} {name}" for e, name in codes.emoji)
    numbers = " ".join(str(n) for n in codes.decimals)
    return f"{emoji}\n[dim]or the numbers[/dim] [bold]{numbers}[/bold]"


def safety_text(number: str) -> str:
    groups = number.split()
    return "\n".join(" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4))


__all__ = ["chat_title", "codes_text", "entry_json", "entry_line", "safety_text", "ttl_text"]
