"""``samizdat secret group ...``: secret groups (Megolm), managed by their creator.

The server knows nothing of a secret group: its title and members travel end-to-end
encrypted from the creator's device to every member's devices, and each member's client
enforces them (messages from non-members are refused).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output
from samizdat.cli.secret import StrictFlag, YesFlag, _options, with_secret
from samizdat.client.secret import SecretChat
from samizdat.client.secret.payloads import MAX_SECRET_GROUP_MEMBERS

secret_group_app = typer.Typer(
    help=f"Secret groups (up to {MAX_SECRET_GROUP_MEMBERS} members): end-to-end encrypted, "
    "changed only by their creator.",
    no_args_is_help=True,
)

GroupArg = Annotated[str, typer.Argument(help="The secret group's title or id", show_default=False)]
MembersArg = Annotated[
    list[str], typer.Argument(help="Members: @username, +phone or user id", show_default=False)
]


def _group_json(chat: SecretChat) -> dict[str, Any]:
    assert chat.group is not None
    return {"id": chat.id, **chat.group.model_dump(mode="json"), "left": chat.left}


def _group_text(chat: SecretChat, verb: str) -> str:
    assert chat.group is not None
    return (
        f"{verb} secret group [bold]{escape(chat.group.title)}[/bold] "
        f"[dim]({chat.id}, {len(chat.group.members)} members)[/dim]"
    )


@secret_group_app.command()
def create(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="The group's title", show_default=False)],
    members: MembersArg,
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Create a secret group with MEMBERS; you are its admin."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat = out.run(
        with_secret(options, out, lambda s: s.create_group(title, members), strict=strict, yes=yes)
    )
    out.result(_group_json(chat), _group_text(chat, "Created"))


@secret_group_app.command()
def add(
    ctx: typer.Context,
    group: GroupArg,
    members: MembersArg,
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Add MEMBERS to a secret group you created. They read from the next message on."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat = out.run(
        with_secret(options, out, lambda s: s.add_members(group, members), strict=strict, yes=yes)
    )
    out.result(_group_json(chat), _group_text(chat, "Updated"))


@secret_group_app.command()
def remove(
    ctx: typer.Context,
    group: GroupArg,
    member: Annotated[str, typer.Argument(help="@username, +phone or user id", show_default=False)],
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Remove MEMBER from a secret group you created. Every member's next message uses new
    keys that MEMBER never gets."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    chat = out.run(
        with_secret(options, out, lambda s: s.remove_member(group, member), strict=strict, yes=yes)
    )
    out.result(_group_json(chat), _group_text(chat, "Updated"))


@secret_group_app.command()
def leave(
    ctx: typer.Context,
    group: GroupArg,
    strict: StrictFlag = False,
    yes: YesFlag = False,
    json_: JsonFlag = False,
) -> None:
    """Leave a secret group."""
    options = _options(ctx)
    out = Output(json_, options.profile)
    out.run(with_secret(options, out, lambda s: s.leave_group(group), strict=strict, yes=yes))
    out.result({"left": group}, f"You left {escape(group)}")


__all__ = ["secret_group_app"]
