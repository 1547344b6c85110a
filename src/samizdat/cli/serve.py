"""``samizdat serve``: run a server on the embedded defaults or a configuration file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True)


def serve(
    data: Annotated[
        Path | None,
        typer.Option(help="Directory for the DCs' databases, this node's keys and the admin token"),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    dev: Annotated[
        bool, typer.Option("--dev", help="Accept test numbers +99966… (never in production)")
    ] = False,
    config: Annotated[Path | None, typer.Option(help="TOML configuration file")] = None,
    no_rate_limits: Annotated[
        bool, typer.Option("--no-rate-limits", help="For benchmarks only")
    ] = False,
) -> None:
    """Run a Samizdat server (SQLite under --data, in-process bus) until Ctrl-C."""
    import uvloop

    from samizdat.server.bootstrap import serve as run_server
    from samizdat.server.custodians import uses_in_process_custodians
    from samizdat.server.logs import configure_logging
    from samizdat.server.settings import ConfigError, load_settings

    overrides: dict[str, object] = {"data_dir": data, "host": host, "port": port}
    if dev:
        overrides["dev"] = True
    try:
        settings = load_settings(config, **overrides)
        if no_rate_limits:
            limits = settings.limits.model_copy(update={"rate_limits": False})
            settings = settings.model_copy(update={"limits": limits})
    except ConfigError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    url = f"http://{settings.host}:{settings.port}"
    dcs = ", ".join(f"{dc.id} ({dc.jurisdiction})" for dc in settings.dcs)
    err.print(
        f"[bold]Samizdat[/bold] serving DC{'s' if len(settings.dcs) > 1 else ''} {dcs} on "
        f"{url}  (data: {settings.data_dir.resolve()}; new accounts in {settings.dc.id} unless "
        "homing rules say otherwise)"
    )
    if uses_in_process_custodians(settings):
        err.print(
            "[yellow]key custodians run in this process[/yellow] (their keys under "
            f"{settings.data_dir.resolve() / 'custodians'}): fine for trying Samizdat, but a "
            "seizure of this machine takes data and keys together. For real use run "
            "`samizdat custodian` elsewhere, in other jurisdictions (see the README)."
        )
    if settings.dev:
        err.print(
            "[yellow]dev mode:[/yellow] test numbers +99966<digit>… sign in with that digit five "
            "times, e.g. +999661234567 -> 11111"
        )
        err.print(
            "next, in another terminal ([cyan]. .venv/bin/activate[/cyan] first if you used "
            f"make run):\n  [cyan]samizdat --profile /tmp/alice login --server {url} "
            "--phone +999661000001 --code 11111 --name Alice[/cyan]"
        )
    try:
        uvloop.run(run_server(settings))
    except ConfigError as exc:  # found while opening the DCs (custodian state, say)
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


__all__ = ["serve"]
