"""``samizdat status`` and ``samizdat dc ...``: the operator's view of the DC and its keys.

``status`` asks a running server (its ``/status``): each DC sealed or unsealed, each
custodian reachable or not. ``dc node-key`` prints the key custodians enrol. ``dc rotate-key``
asks the running server, with the admin token from its data directory, to re-key the DC: the
server keeps serving while it re-wraps every chat key, and this command shows the progress.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output

dc_app = typer.Typer(help="Operate the DC this server serves: node key, key rotation.")

ServerOption = Annotated[
    str, typer.Option(help="The running server's base URL", envvar="SAMIZDAT_SERVER")
]
DataOption = Annotated[Path, typer.Option("--data", help="The server's data directory")]
SEALED_EXIT = 2


def _get_status(out: Output, server: str) -> list[dict[str, Any]]:
    import httpx  # here, not at the top: every other command starts faster

    try:
        response = httpx.get(server.rstrip("/") + "/status", timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        out.fail_with(
            "UNAVAILABLE", f"no status from {server} ({type(exc).__name__}); is the server running?"
        )
    dcs: list[dict[str, Any]] = response.json()["dcs"]
    return dcs


def status(
    ctx: typer.Context,
    server: ServerOption = "http://127.0.0.1:8080",
    json_: JsonFlag = False,
) -> None:
    """Each DC sealed or unsealed and each custodian reachable or not (exit 2 if sealed)."""
    from rich.table import Table

    out = Output(json_, ctx.obj)
    dcs = _get_status(out, server)
    if out.json:
        for dc in dcs:
            out.record(dc)
    else:
        table = Table("DC", "where", "state", "key", "custodians (k of n)")
        for dc in dcs:
            reachable = [c for c in dc["custodians"] if c["reachable"]]
            state = dc["state"]
            colour = "green" if state == "unsealed" else "red"
            custodians = ", ".join(
                f"{c['id']} {'up' if c['reachable'] else '[red]down[/red]'}"
                for c in dc["custodians"]
            )
            table.add_row(
                dc["id"],
                dc["jurisdiction"],
                f"[{colour}]{state}[/{colour}]",
                str(dc["active_key"] or "-"),
                f"{dc['threshold']} of {len(dc['custodians'])}: {custodians}"
                f" ({len(reachable)} reachable)",
            )
        out.console.print(table)
        for dc in dcs:
            if dc["last_error"]:
                out.console.print(f"DC {dc['id']}: {escape(dc['last_error'])}")
    if any(dc["state"] != "unsealed" for dc in dcs):
        raise typer.Exit(SEALED_EXIT)


@dc_app.command("node-key")
def node_key(
    ctx: typer.Context,
    dc: Annotated[
        str | None, typer.Argument(help="The DC (default: the configuration's default DC)")
    ] = None,
    data: DataOption = Path("./var"),
    config: Annotated[
        Path | None, typer.Option("--config", help="The server's TOML configuration")
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """This node's public key for one DC (created if new): each of that DC's custodians
    enrols it with `samizdat custodian enroll-node KEY DC`."""
    from samizdat.crypto.custody_keys import NodeKey
    from samizdat.server.settings import ConfigError, load_settings

    out = Output(json_, ctx.obj)
    try:
        settings = load_settings(config, data_dir=data)
    except ConfigError as exc:
        out.fail_with("CONFIG", str(exc))
    chosen = next((d for d in settings.dcs if d.id == (dc or settings.dc.id)), None)
    if chosen is None:
        out.fail_with("DC_NOT_SERVED", f"no DC {dc!r} in the configuration")
    data.mkdir(parents=True, exist_ok=True)
    key = NodeKey.load_or_create(settings.node_key_file(chosen))
    out.result({"dc": chosen.id, "node_key": key.encoded()}, key.encoded())


@dc_app.command("rotate-key")
def rotate_key(
    ctx: typer.Context,
    dc: Annotated[str, typer.Argument(help="The DC to re-key (one this server serves)")],
    data: DataOption = Path("./var"),
    server: ServerOption = "http://127.0.0.1:8080",
    json_: JsonFlag = False,
) -> None:
    """Make a new DC key, seal it to the custodians and re-wrap every chat key under it,
    while the server keeps serving; then retire the old key."""
    import httpx

    from samizdat.server.bootstrap import ADMIN_TOKEN_FILE

    out = Output(json_, ctx.obj)
    served = [d["id"] for d in _get_status(out, server)]
    if dc not in served:
        out.fail_with("DC_NOT_SERVED", f"{server} serves DC {', '.join(served)}, not {dc}")
    try:
        token = (data / ADMIN_TOKEN_FILE).read_text().strip()
    except OSError:
        out.fail_with("NO_TOKEN", f"no admin token in {data}; give the server's --data directory")
    try:
        response = httpx.post(
            server.rstrip("/") + "/admin/rotate-key",
            params={"dc": dc},
            headers={"authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        out.fail_with("UNAVAILABLE", f"{server}: {type(exc).__name__}")
    if response.status_code != 200:
        error = response.json().get("error", {})
        out.fail_with(error.get("code", "?"), error.get("message", f"HTTP {response.status_code}"))
    new_key = response.json()["new_key"]
    out.note(f"Rotating DC {dc} to key {new_key}; the server keeps serving meanwhile.")
    rotation = _follow(out, server, dc, new_key)
    if rotation["state"] != "done":
        out.fail_with("ROTATION", f"rotation {rotation['state']}: {rotation.get('error', '')}")
    out.result(
        {"dc": dc, **rotation},
        f"DC {dc} now uses key {new_key}; {rotation['rewrapped']} chat key(s) re-wrapped, "
        f"retired {', '.join(rotation['retired'])}.",
    )


def _follow(out: Output, server: str, dc: str, new_key: str) -> dict[str, Any]:
    from rich.progress import Progress

    with Progress(disable=out.json, transient=True) as progress:
        task = progress.add_task("re-wrapping chat keys", total=None)
        while True:
            rotation = next(d for d in _get_status(out, server) if d["id"] == dc)["rotation"]
            if rotation.get("new_key") == new_key:
                done, left = rotation.get("rewrapped", 0), rotation.get("left")
                if left is not None:
                    progress.update(task, completed=done, total=done + left)
                if rotation["state"] in ("done", "failed"):
                    return dict(rotation)
            time.sleep(0.3)


__all__ = ["dc_app", "status"]
