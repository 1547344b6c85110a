"""``samizdat legal submit|requests|operator``: lawful requests against a running server.

``submit`` sends every order of a case at once (``POST /legal/orders``) and prints each
case's outcome: the reason when refused, the disclosure package when granted. ``requests``
lists what the server received (the operator's admin token, from ``--data``). ``operator``
prints the public ``/legal`` page: who runs the service, where its DCs and custodians are,
the disclosure policy, the latest signed tree head of the transparency log.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from samizdat.cli.output import JsonFlag, Output

ServerOption = Annotated[str, typer.Option(help="The server's base URL", envvar="SAMIZDAT_SERVER")]
DEFAULT_SERVER = "http://127.0.0.1:8080"
HTTP_TIMEOUT = 120.0  # a granted case waits for every custodian to open every record


def _call(out: Output, method: str, url: str, **kwargs: Any) -> Any:
    import httpx  # here, not at the top: every other command starts faster

    try:
        response = httpx.request(method, url, timeout=HTTP_TIMEOUT, **kwargs)
    except httpx.HTTPError as exc:
        out.fail_with("UNAVAILABLE", f"no answer from {url} ({type(exc).__name__})")
    try:
        body = response.json()
    except ValueError:
        out.fail_with("UNAVAILABLE", f"{url} answered HTTP {response.status_code}, not JSON")
    if response.status_code != 200:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        out.fail_with(
            str(error.get("code", "FAILED")),
            str(error.get("message", f"HTTP {response.status_code}")),
        )
    return body


def submit(
    ctx: typer.Context,
    order_files: Annotated[
        list[Path],
        typer.Argument(help="Every order of the case, one JSON file each (legal order new)"),
    ],
    server: ServerOption = DEFAULT_SERVER,
    recipient_key: Annotated[
        Path | None,
        typer.Option(help="Your key file (legal recipient keygen): opens a sealed result"),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Submit court orders; print each case's outcome (exit 1 if any case is refused)."""
    import orjson

    out = Output(json_, ctx.obj)
    key = _recipient(out, recipient_key)
    orders = []
    for path in order_files:
        try:
            orders.append(orjson.loads(path.read_bytes()))
        except OSError as exc:
            out.fail_with("ORDER_FILE", f"cannot read {path}: {exc.strerror}")
        except orjson.JSONDecodeError:
            out.fail_with("ORDER_FILE", f"{path} is not JSON; make it with `legal order new`")
    body = _call(out, "POST", server.rstrip("/") + "/legal/orders", json={"orders": orders})
    cases: list[dict[str, Any]] = body["cases"]
    for case in cases:
        if key is not None and case.get("sealed_disclosure"):
            case["disclosure"] = _opened(out, key, case)
        out.record(case)
        if out.json:
            continue
        colour = "green" if case["outcome"] == "granted" else "red"
        out.console.print(
            f"case {escape(case['case'])}: [{colour}]{case['outcome']}[/{colour}]"
            f"{'' if case['reason'] is None else ' (' + case['reason'] + ')'}: "
            f"{escape(case['detail'])}"
        )
        for said in case["custodians"]:
            out.console.print(f"  {escape(said)}")
        disclosure = case["disclosure"]
        if disclosure is None and case.get("sealed_disclosure"):
            out.console.print("  the result is sealed to the orders' recipient: --recipient-key")
        if disclosure is not None:
            out.console.print(f"  user {disclosure['user_id']} ({escape(disclosure['subject'])})")
            if disclosure["phone"] is not None:
                out.console.print(f"  phone {escape(disclosure['phone'])}")
            for record in disclosure["ips"] or []:
                out.console.print(f"  ip {escape(record['ip'])} at {record['at']}")
        out.console.print(f"  transparency log entry {case['leaf_index']}")
    if any(case["outcome"] != "granted" for case in cases):
        raise typer.Exit(1)


def _recipient(out: Output, path: Path | None) -> Any:
    if path is None:
        return None
    from samizdat.crypto.custody_keys import KeyFormatError
    from samizdat.crypto.recipient_keys import RecipientKey

    try:
        return RecipientKey.load(path)
    except KeyFormatError as exc:
        out.fail_with("KEY_FILE", str(exc))


def _opened(out: Output, key: Any, case: dict[str, Any]) -> Any:
    """The sealed package of a case, opened with the authority's key."""
    import orjson

    from samizdat.crypto.custody_keys import KeyFormatError, unb64
    from samizdat.crypto.recipient_keys import SealedPackageError

    try:
        return orjson.loads(key.open_package(case["case"], unb64(case["sealed_disclosure"])))
    except (KeyFormatError, SealedPackageError, orjson.JSONDecodeError):
        out.fail_with("SEALED", f"case {case['case']}: the result does not open with this key")


def requests(
    ctx: typer.Context,
    server: ServerOption = DEFAULT_SERVER,
    data: Annotated[
        Path, typer.Option("--data", help="The server's data directory (its admin token)")
    ] = Path("./var"),
    json_: JsonFlag = False,
) -> None:
    """Every lawful request the server received, newest first, with its outcome."""
    from rich.table import Table

    from samizdat.server.bootstrap import ADMIN_TOKEN_FILE

    out = Output(json_, ctx.obj)
    try:
        token = (data / ADMIN_TOKEN_FILE).read_text().strip()
    except OSError:
        out.fail_with("NO_TOKEN", f"no admin token in {data}; give the server's --data directory")
    body = _call(
        out,
        "GET",
        server.rstrip("/") + "/admin/legal/requests",
        headers={"authorization": f"Bearer {token}"},
    )
    rows: list[dict[str, Any]] = body["requests"]
    if out.json:
        for row in rows:
            out.record(row)
        return
    table = Table("received", "case", "jurisdictions", "outcome", "reason", "accounts", "log")
    for row in rows:
        table.add_row(
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(row["received_at"])),
            escape(row["case"]),
            ", ".join(row["jurisdictions"]),
            row["outcome"],
            row["reason"] or "",
            str(row["accounts"]),
            str(row["leaf_index"]),
        )
    out.console.print(table if rows else "No lawful requests received.")


def operator(
    ctx: typer.Context,
    server: ServerOption = DEFAULT_SERVER,
    json_: JsonFlag = False,
) -> None:
    """The operator's public legal information (the /legal page)."""
    out = Output(json_, ctx.obj)
    info = _call(out, "GET", server.rstrip("/") + "/legal", headers={"accept": "application/json"})
    if out.json:
        out.record(info)
        return
    who = info["operator"]
    out.console.print(f"[bold]{escape(who['name'])}[/bold], contact: {escape(who['contact'])}")
    for dc in info["dcs"]:
        keepers = ", ".join(dc["custodian_jurisdictions"])
        out.console.print(
            f"DC {dc['id']} in {dc['jurisdiction']}: keys held by custodians in {keepers}; "
            f"orders of {dc['threshold']} of those jurisdictions needed"
        )
    for key, value in info["policy"].items():
        out.console.print(f"policy {key}: {escape(str(value))}")
    head = info["transparency_head"]
    out.console.print(
        "transparency log: empty"
        if head is None
        else f"transparency log: {head['tree_size']} entries, root {head['root_hash']}"
    )


__all__ = ["operator", "requests", "submit"]
