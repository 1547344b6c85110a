"""``samizdat custodian``: run a key custodian, in a jurisdiction other than the data's.

A custodian is a small service with its own key pair and an append-only audit log. The
operator of a custodian (a different person or organisation from the server's, ideally)
runs ``init`` once, gives the printed public key to the server's operator, enrols the
server's node key with ``enroll-node``, and keeps ``serve`` running.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from samizdat.cli.output import JsonFlag, Output

if TYPE_CHECKING:  # imported when a command runs: every other command starts faster
    from samizdat.custody.service import Custodian

custodian_app = typer.Typer(
    help="Run a key custodian: it holds shares of DC keys and identity records and opens "
    "them only when its policy allows (an enrolled node unsealing its DC, or a court order of "
    "its own jurisdiction). Every request is written to its audit log.",
    no_args_is_help=True,
)
#: The error code of every failure of these commands.
ERROR_CODE = "CUSTODIAN"

DirOption = Annotated[
    Path,
    typer.Option("--dir", help="The custodian's state directory (keys, nodes, audit log)"),
]


def _open(directory: Path, out: Output) -> Custodian:
    from samizdat.crypto.custody_keys import KeyFormatError
    from samizdat.custody.audit import AuditError
    from samizdat.custody.service import Custodian, CustodianStateError

    try:
        return Custodian(directory)
    except (CustodianStateError, AuditError, KeyFormatError) as exc:
        out.fail_with(ERROR_CODE, str(exc))


@custodian_app.command("init")
def init(
    ctx: typer.Context,
    directory: DirOption,
    custodian_id: Annotated[str, typer.Option("--id", help="A short id, e.g. custodian-ch")],
    jurisdiction: Annotated[
        str, typer.Option(help="ISO 3166-1 alpha-2 code of where this custodian sits, e.g. CH")
    ],
    json_: JsonFlag = False,
) -> None:
    """Create a custodian's keys and state; prints the public key for the server's config."""
    from samizdat.custody.service import Custodian, CustodianStateError

    out = Output(json_, ctx.obj)
    try:
        custodian = Custodian.init(directory, custodian_id, jurisdiction.upper())
    except (CustodianStateError, OSError) as exc:
        out.fail_with(ERROR_CODE, str(exc))
    info = custodian.info()
    out.result(
        info.model_dump(mode="json"),
        f"Custodian [bold]{info.id}[/bold] ({info.jurisdiction}) created in {directory}.\n"
        "Give the server's operator this block for their configuration:\n\n"
        f'[[custodians]]\nid = "{info.id}"\njurisdiction = "{info.jurisdiction}"\n'
        f'url = "http://THIS-HOST:8450"\npublic_key = "{info.public_key}"\n\n'
        "Then enrol their node: samizdat custodian enroll-node --dir "
        f"{directory} NODE_KEY --dc DC",
    )


@custodian_app.command("serve")
def serve(
    directory: DirOption,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8450,
) -> None:
    """Answer unseal and disclosure requests over HTTP until Ctrl-C."""
    import uvicorn

    from samizdat.custody.http import custodian_app as make_app
    from samizdat.server.logs import configure_logging

    configure_logging("INFO")
    out = Output(False, directory)
    custodian = _open(directory, out)
    info = custodian.info()
    out.err.print(
        f"[bold]custodian {info.id}[/bold] ({info.jurisdiction}) serving on "
        f"http://{host}:{port}  ({info.enrolled_nodes} enrolled node(s), audit log "
        f"{info.audit_entries} entries)"
    )
    uvicorn.run(make_app(custodian), host=host, port=port, log_config=None, access_log=False)


@custodian_app.command("enroll-node")
def enroll_node(
    ctx: typer.Context,
    directory: DirOption,
    node_key: Annotated[
        str, typer.Argument(help="The node's key, szn1:... (samizdat dc node-key)")
    ],
    dc: Annotated[str, typer.Option(help="The DC this node may unseal")],
    json_: JsonFlag = False,
) -> None:
    """Let a server node unseal its DC's key (only that DC's)."""
    from samizdat.crypto.custody_keys import KeyFormatError

    out = Output(json_, ctx.obj)
    custodian = _open(directory, out)
    try:
        node = custodian.enroll_node(node_key, dc)
    except KeyFormatError as exc:
        out.fail_with(ERROR_CODE, f"{exc}; copy the key from `samizdat dc node-key` on the server")
    out.result(
        {"node_key": node.node_key, "dc": node.dc},
        f"Enrolled {escape(node.node_key)} for DC {escape(node.dc)}.",
    )


@custodian_app.command("revoke-node")
def revoke_node(
    ctx: typer.Context,
    directory: DirOption,
    node_key: Annotated[str, typer.Argument(help="The node's key, szn1:...")],
    json_: JsonFlag = False,
) -> None:
    """Stop answering a node, e.g. because its machine was seized."""
    out = Output(json_, ctx.obj)
    removed = _open(directory, out).revoke_node(node_key)
    if not removed:
        out.fail_with(ERROR_CODE, "that node is not enrolled here")
    out.result({"node_key": node_key, "revoked": True}, f"Revoked {escape(node_key)}.")


@custodian_app.command("add-court")
def add_court(
    ctx: typer.Context,
    directory: DirOption,
    name: Annotated[str, typer.Argument(help="The court's name, as its orders state it")],
    public_key: Annotated[
        str, typer.Argument(help="The court's public key, szk1:... (legal court keygen)")
    ],
    json_: JsonFlag = False,
) -> None:
    """Recognise a court of this custodian's own jurisdiction (its orders may then open
    identity records, within the disclosure policy)."""
    from samizdat.crypto.custody_keys import KeyFormatError
    from samizdat.crypto.signing_keys import decode_public_key

    out = Output(json_, ctx.obj)
    custodian = _open(directory, out)
    try:
        custodian.add_court(name, decode_public_key(public_key))
    except (KeyFormatError, ValueError) as exc:
        out.fail_with(ERROR_CODE, f"not a court key: {exc}")
    out.result(
        {"court": name, "jurisdiction": custodian.identity.jurisdiction},
        f"Court {escape(name)} ({custodian.identity.jurisdiction}) recognised.",
    )


@custodian_app.command("status")
def status(
    ctx: typer.Context,
    directory: DirOption,
    last: Annotated[int, typer.Option(help="How many recent audit entries to show")] = 10,
    json_: JsonFlag = False,
) -> None:
    """Who this custodian is, which nodes it serves, and its audit log (chain verified)."""
    out = Output(json_, ctx.obj)
    custodian = _open(directory, out)  # opening verifies the whole audit chain
    info = custodian.info()
    entries = custodian.audit.entries()[-last:] if last > 0 else []
    nodes = [{"node_key": n.node_key, "dc": n.dc} for n in custodian.nodes.values()]
    if out.json:
        out.record(
            {
                **info.model_dump(mode="json"),
                "audit_chain": "verified",
                "nodes": nodes,
                "courts": sorted(custodian.courts),
                "recent": [
                    {
                        "seq": e.seq,
                        "at": e.at,
                        "kind": e.kind,
                        "outcome": e.outcome,
                        "reason": e.reason,
                        "subject": e.subject,
                    }
                    for e in entries
                ],
            }
        )
        return
    out.console.print(
        f"[bold]{info.id}[/bold] ({info.jurisdiction})  public key {info.public_key}\n"
        f"audit log: {info.audit_entries} entries, chain verified, head {info.audit_head[:16]}…\n"
        f"enrolled nodes: {len(nodes)}; courts: {', '.join(sorted(custodian.courts)) or 'none'}"
    )
    table = Table("seq", "kind", "outcome", "subject", "reason")
    for e in entries:
        table.add_row(str(e.seq), e.kind, e.outcome, escape(e.subject), escape(e.reason))
    if entries:
        out.console.print(table)


__all__ = ["custodian_app"]
