"""``samizdat legal``: the courts an operator recognises, and court orders.

The operator registers each recognised court's public key with ``court add``; the registry is
``DATA/legal/courts.json``. A court (and the tests) makes its key with ``court keygen`` and
signs orders with ``order new``, which prints the order's JSON: the document a requester
submits, together with the orders of the same case from the other jurisdictions.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from samizdat.cli.output import JsonFlag, Output

if TYPE_CHECKING:  # imported when a command runs: every other command starts faster
    from samizdat.legal.registry import CourtRegistry

legal_app = typer.Typer(
    help="Lawful requests: the courts this server recognises, and court orders (a court signs "
    "them; at most the phone number and IP addresses of a subject can ever be disclosed).",
    no_args_is_help=True,
)
court_app = typer.Typer(
    help="The recognised courts of each jurisdiction and their public keys; `keygen` makes a "
    "court's key.",
    no_args_is_help=True,
)
order_app = typer.Typer(
    help="Court orders: `new` signs one with a court's key.", no_args_is_help=True
)
recipient_app = typer.Typer(
    help="The requesting authority's key: orders that name it get the result sealed to it.",
    no_args_is_help=True,
)
legal_app.add_typer(court_app, name="court")
legal_app.add_typer(order_app, name="order")
legal_app.add_typer(recipient_app, name="recipient")

DAY_MS = 86_400_000


class LegalErrorCode(StrEnum):
    """The stable codes of this command's errors (``{"error": {"code": ...}}`` with --json)."""

    KEY_FILE = "KEY_FILE"  # the court key file cannot be written or read
    KEY_INVALID = "KEY_INVALID"  # a public key is not a base64url Ed25519 key
    JURISDICTION_INVALID = "JURISDICTION_INVALID"
    COURT_INVALID = "COURT_INVALID"  # a bad name, or a conflict with a registered court
    COURT_NOT_FOUND = "COURT_NOT_FOUND"
    REGISTRY_INVALID = "REGISTRY_INVALID"  # the registry file is unreadable or malformed
    ORDER_INVALID = "ORDER_INVALID"  # a value of the order breaks the order format


DataOption = Annotated[
    Path, typer.Option("--data", help="The server's data directory (registry: legal/courts.json)")
]
JurisdictionArg = Annotated[
    str, typer.Argument(help="ISO 3166-1 alpha-2 code of the court's country, e.g. CH")
]
NameArg = Annotated[str, typer.Argument(help="The court's name, exactly as its orders state it")]


def _registry_path(data: Path) -> Path:
    from samizdat.legal.registry import REGISTRY_FILE

    return data / REGISTRY_FILE


def _load(out: Output, data: Path) -> CourtRegistry:
    from samizdat.legal.registry import CourtRegistry, RegistryError

    try:
        return CourtRegistry.load(_registry_path(data))
    except RegistryError as exc:
        out.fail_with(LegalErrorCode.REGISTRY_INVALID, str(exc))


def _save(out: Output, registry: CourtRegistry, data: Path) -> None:
    try:
        registry.save(_registry_path(data))
    except OSError as exc:
        out.fail_with(
            LegalErrorCode.REGISTRY_INVALID,
            f"cannot write {_registry_path(data)}: {exc.strerror or exc}",
        )


def _jurisdiction(out: Output, code: str) -> str:
    from samizdat.legal.registry import RegistryError, check_jurisdiction

    try:
        return check_jurisdiction(code.strip().upper())
    except RegistryError as exc:
        out.fail_with(LegalErrorCode.JURISDICTION_INVALID, str(exc))


@court_app.command("keygen")
def keygen(
    ctx: typer.Context,
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the new private key (mode 0600)")
    ],
    json_: JsonFlag = False,
) -> None:
    """Make a court's signing key; prints the public key the operator registers."""
    from samizdat.crypto.signing_keys import SigningKey

    _made_key(
        Output(json_, ctx.obj),
        out_file,
        SigningKey.create,
        "Court key",
        "The operator registers it with: samizdat legal court add JURISDICTION NAME "
        "{public} --data DIR",
    )


@court_app.command("add")
def add(
    ctx: typer.Context,
    jurisdiction: JurisdictionArg,
    name: NameArg,
    public_key: Annotated[
        str, typer.Argument(help="The court's Ed25519 public key, base64url (court keygen)")
    ],
    data: DataOption = Path("./var"),
    json_: JsonFlag = False,
) -> None:
    """Recognise a court: its signed orders may then be reviewed under the disclosure policy."""
    from samizdat.crypto.custody_keys import KeyFormatError
    from samizdat.crypto.signing_keys import decode_public_key
    from samizdat.legal.registry import RegistryError

    out = Output(json_, ctx.obj)
    code = _jurisdiction(out, jurisdiction)
    try:
        decode_public_key(public_key)
    except KeyFormatError as exc:
        out.fail_with(
            LegalErrorCode.KEY_INVALID,
            f"not a court key: {exc}; copy it from the court's `samizdat legal court keygen`",
        )
    registry = _load(out, data)
    try:
        court = registry.add(code, name, public_key)
    except RegistryError as exc:
        out.fail_with(LegalErrorCode.COURT_INVALID, str(exc))
    _save(out, registry, data)
    out.result(
        {"jurisdiction": court.jurisdiction, "court": court.name, "public_key": court.public_text},
        f"Court {escape(court.name)} ({court.jurisdiction}) recognised.",
    )


@court_app.command("list")
def list_courts(
    ctx: typer.Context,
    data: DataOption = Path("./var"),
    json_: JsonFlag = False,
) -> None:
    """The recognised courts, by jurisdiction."""
    out = Output(json_, ctx.obj)
    courts = _load(out, data).courts()
    table = Table("jurisdiction", "court", "public key")
    for court in courts:
        table.add_row(court.jurisdiction, escape(court.name), court.public_text)
    out.rows(
        (
            {"jurisdiction": c.jurisdiction, "court": c.name, "public_key": c.public_text}
            for c in courts
        ),
        table,
        empty="No courts recognised; add one with `samizdat legal court add`.",
    )


@court_app.command("remove")
def remove(
    ctx: typer.Context,
    jurisdiction: JurisdictionArg,
    name: NameArg,
    data: DataOption = Path("./var"),
    json_: JsonFlag = False,
) -> None:
    """Stop recognising a court (its orders are refused from now on)."""
    from samizdat.legal.registry import CourtNotFound

    out = Output(json_, ctx.obj)
    code = _jurisdiction(out, jurisdiction)
    registry = _load(out, data)
    try:
        court = registry.remove(code, name)
    except CourtNotFound as exc:
        out.fail_with(LegalErrorCode.COURT_NOT_FOUND, f"{exc}; see `samizdat legal court list`")
    _save(out, registry, data)
    out.result(
        {"jurisdiction": court.jurisdiction, "court": court.name, "removed": True},
        f"Court {escape(court.name)} ({court.jurisdiction}) removed.",
    )


@order_app.command("new")
def new(
    ctx: typer.Context,
    key_file: Annotated[Path, typer.Option("--key", help="The court's key file (court keygen)")],
    court: Annotated[str, typer.Option(help="The court's name, as registered")],
    jurisdiction: Annotated[str, typer.Option(help="The court's country, ISO code, e.g. CH")],
    case: Annotated[str, typer.Option(help="The case reference, the same in every order")],
    subject: Annotated[
        str, typer.Option(help="Whom the order names: @username, +phone or a user id")
    ],
    category: Annotated[str, typer.Option(help="The offence category, e.g. terrorism")],
    fields: Annotated[str, typer.Option(help="Comma-separated fields requested, e.g. phone,ip")],
    expires: Annotated[
        int, typer.Option(min=1, max=3650, help="Days until the order expires")
    ] = 30,
    recipient: Annotated[
        str | None,
        typer.Option(
            help="The requesting authority's key (szr1:..., `legal recipient keygen`): "
            "the result is sealed to it, so only its holder can read it"
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Sign a court order and print it (JSON; compact on one line with --json)."""
    from samizdat.crypto.custody_keys import KeyFormatError
    from samizdat.crypto.signing_keys import SigningKey
    from samizdat.legal.orders import OrderFormatError, new_order, parse_subject

    out = Output(json_, ctx.obj)
    code = _jurisdiction(out, jurisdiction)
    try:
        parsed_subject = parse_subject(subject)
    except OrderFormatError as exc:
        out.fail_with(LegalErrorCode.ORDER_INVALID, str(exc))
    try:
        key = SigningKey.load(key_file)
    except KeyFormatError as exc:
        out.fail_with(
            LegalErrorCode.KEY_FILE, f"{exc}; make one with `samizdat legal court keygen`"
        )
    issued_at_ms = int(time.time() * 1000)
    try:
        order = new_order(
            key,
            court=court,
            jurisdiction=code,
            case=case,
            subject=parsed_subject,
            category=category,
            fields=[f.strip() for f in fields.split(",") if f.strip()],
            issued_at_ms=issued_at_ms,
            expires_at_ms=issued_at_ms + expires * DAY_MS,
            recipient=recipient,
        )
    except OrderFormatError as exc:
        out.fail_with(LegalErrorCode.ORDER_INVALID, str(exc))
    document = order.model_dump(mode="json")
    if out.json:
        out.record(document)
    else:  # plain JSON, not rich: it is meant for `> ORDER.json`
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
        sys.stdout.flush()


@recipient_app.command("keygen")
def recipient_keygen(
    ctx: typer.Context,
    out_file: Annotated[
        Path, typer.Option("--out", help="Where to write the new private key (mode 0600)")
    ],
    json_: JsonFlag = False,
) -> None:
    """Make a requesting authority's key; prints the public key courts put in their orders
    (`legal order new --recipient`)."""
    from samizdat.crypto.recipient_keys import RecipientKey

    _made_key(
        Output(json_, ctx.obj),
        out_file,
        RecipientKey.create,
        "Recipient key",
        "Courts name it with: samizdat legal order new ... --recipient {public}",
    )


def _made_key(
    out: Output, out_file: Path, create: Callable[[Path], Any], what: str, next_step: str
) -> None:
    """Make a key file with ``create`` and print its public key and what to do with it."""
    from samizdat.crypto.custody_keys import KeyFormatError

    try:
        key = create(out_file)
    except (KeyFormatError, OSError) as exc:
        message = str(exc) if isinstance(exc, KeyFormatError) else f"{out_file}: {exc.strerror}"
        out.fail_with(LegalErrorCode.KEY_FILE, message)
    public = key.public_text()
    out.result(
        {"key_file": str(out_file), "public_key": public},
        f"{what} written to {escape(str(out_file))} (readable only by you).\n"
        f"Public key: {public}\n" + next_step.format(public=public),
    )


__all__ = ["LegalErrorCode", "court_app", "legal_app", "order_app", "recipient_app"]
