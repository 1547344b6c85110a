"""The ``samizdat`` command: a server (``serve``) and a client for scripts and people.

Every client command takes ``--json`` (one JSON object per line; errors as
``{"error": {"code", "message"}}``, exit 1) and keeps its state in ``--profile``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samizdat.cli.account import login, logout, profile_app, username_app, whoami
from samizdat.cli.chats import chats, group_app
from samizdat.cli.custodian import custodian_app
from samizdat.cli.dc import dc_app, status
from samizdat.cli.devices import devices_app
from samizdat.cli.legal import legal_app
from samizdat.cli.legal_requests import operator, requests, submit
from samizdat.cli.listen import listen
from samizdat.cli.messages import delete, edit, history, react, read, send
from samizdat.cli.secret import secret_app
from samizdat.cli.secret_groups import secret_group_app
from samizdat.cli.serve import serve
from samizdat.cli.session import DEFAULT_PROFILE
from samizdat.cli.transparency import transparency_app

app = typer.Typer(
    help="Samizdat: a self-hostable messenger. `samizdat serve --dev` runs a server; the other "
    "commands are a client that keeps its state in --profile.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        Path,
        typer.Option(
            help="Client state directory (token, update state)", envvar="SAMIZDAT_PROFILE"
        ),
    ] = DEFAULT_PROFILE,
) -> None:
    ctx.obj = profile.expanduser()


app.command(rich_help_panel="Operators")(serve)
app.command(rich_help_panel="Operators")(status)
app.add_typer(dc_app, name="dc", rich_help_panel="Operators")
app.add_typer(custodian_app, name="custodian", rich_help_panel="Operators")
legal_app.command()(submit)
legal_app.command()(requests)
legal_app.command()(operator)
app.add_typer(legal_app, name="legal", rich_help_panel="Lawful requests")
app.add_typer(transparency_app, name="transparency", rich_help_panel="Lawful requests")

app.command(rich_help_panel="Account")(login)
app.command(rich_help_panel="Account")(logout)
app.command(rich_help_panel="Account")(whoami)
app.add_typer(username_app, name="username", rich_help_panel="Account")
app.add_typer(profile_app, name="profile", rich_help_panel="Account")
app.add_typer(devices_app, name="devices", rich_help_panel="Account")

app.command(rich_help_panel="Chats")(chats)
app.add_typer(group_app, name="group", rich_help_panel="Chats")
app.command(rich_help_panel="Chats")(listen)

app.command(rich_help_panel="Messages")(send)
app.command(rich_help_panel="Messages")(history)
app.command(rich_help_panel="Messages")(edit)
app.command(rich_help_panel="Messages")(delete)
app.command(rich_help_panel="Messages")(react)
app.command(rich_help_panel="Messages")(read)

secret_app.add_typer(secret_group_app, name="group")
app.add_typer(secret_app, name="secret", rich_help_panel="Secret chats")


def main() -> None:
    app()


__all__ = ["app", "main"]
