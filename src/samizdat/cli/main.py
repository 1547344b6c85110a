"""The ``samizdat`` command: a server (``serve``) and a client for scripts and people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from samizdat.cli.serve import serve

DEFAULT_PROFILE = Path("~/.samizdat")

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


app.command()(serve)


def main() -> None:
    app()


__all__ = ["app", "main"]
