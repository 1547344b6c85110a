"""``samizdat transparency``: check the public log of lawful requests from the outside.

``verify`` trusts nothing the server says without checking it: the tree head must carry the
log key's signature (the key is pinned on first use, per server, in ``--state``); every entry
is fetched and the root recomputed, so a changed or removed entry shows; each entry new since
the last run must have a valid inclusion proof; and the head remembered from the last run must
be a prefix of the new one (a consistency proof). A head that is not consistent with one seen
before, by you or by anyone whose head you pass with ``--head``, is a **split view**: the log
showed different histories to different people. That is exit code 3 and a loud warning, and
the remembered head is kept, as evidence.

Exit codes: 0 verified, 1 a check failed (tampered entries, bad signature, changed key,
unreachable server), 3 split view.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from pydantic import BaseModel, ConfigDict, ValidationError
from rich.markup import escape
from rich.panel import Panel

from samizdat.cli.output import JsonFlag, Output
from samizdat.cli.session import DEFAULT_PROFILE
from samizdat.crypto.custody_keys import KeyFormatError, unb64
from samizdat.crypto.signing_keys import decode_public_key, encode_public_key
from samizdat.transparency.heads import HeadError, TreeHead, parse_head, verify_head
from samizdat.transparency.merkle import (
    ProofError,
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from samizdat.transparency.records import LeafError, LeafRecord, decode_leaf
from samizdat.transparency.report import build_report

if TYPE_CHECKING:
    import httpx

__all__ = ["EXIT_FAILED", "EXIT_SPLIT_VIEW", "STATE_FILE", "transparency_app"]

transparency_app = typer.Typer(
    help="Check the public transparency log of lawful requests: its signature, that no entry "
    "changed, that it only ever grew; and print the transparency report computed from it.",
    no_args_is_help=True,
)

EXIT_FAILED = 1
EXIT_SPLIT_VIEW = 3
STATE_FILE = "transparency.json"
PAGE = 1000  # the server's most entries per call

ServerOption = Annotated[str, typer.Option(help="The server's base URL", envvar="SAMIZDAT_SERVER")]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help=f"Where the pinned log key and last verified head are kept "
        f"(default: <profile>/{STATE_FILE})",
    ),
]
LogKeyOption = Annotated[
    str | None,
    typer.Option("--log-key", help="The log's public key (base64url), from a source you trust"),
]


class _Failed(Exception):
    """A check failed: ``code`` is stable (TAMPERED, BAD_SIGNATURE, KEY_CHANGED, ...)."""

    exit_code = EXIT_FAILED

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _SplitView(_Failed):
    """Two heads signed by the log key that cannot both be true: ``seen`` (remembered, or
    given with --head) and ``served`` (what the server shows now; None for an empty log)."""

    exit_code = EXIT_SPLIT_VIEW

    def __init__(self, message: str, seen: TreeHead, served: TreeHead | None) -> None:
        super().__init__("SPLIT_VIEW", message)
        self.seen = seen
        self.served = served


# what the server sends --------------------------------------------------------------------
class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


_WireT = TypeVar("_WireT", bound=_Wire)


class _Entry(_Wire):
    index: int
    leaf: str


class _Entries(_Wire):
    start: int
    entries: list[_Entry]


class _Inclusion(_Wire):
    audit_path: list[str]


class _Consistency(_Wire):
    proof: list[str]


class _Log:
    """The server's transparency endpoints; anything it cannot read is a ``_Failed``."""

    def __init__(self, server: str, http: httpx.Client) -> None:
        self.server = server
        self.http = http

    def _get(self, path: str, **params: int) -> tuple[int, Any]:
        import httpx

        try:
            response = self.http.get(self.server + path, params=params)
        except httpx.HTTPError as exc:
            raise _Failed(
                "UNAVAILABLE", f"no answer from {self.server} ({type(exc).__name__})"
            ) from None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if response.status_code >= 500:
            raise _Failed(
                "UNAVAILABLE", f"{self.server}{path} answered HTTP {response.status_code}"
            )
        if response.status_code not in (200, 404):
            raise _Failed("BAD_RESPONSE", f"{self.server}{path} refused: {_error_text(body)}")
        return response.status_code, body

    def _model(self, model: type[_WireT], path: str, **params: int) -> _WireT:
        status, body = self._get(path, **params)
        try:
            if status != 200:
                raise ValueError(f"HTTP {status}")
            return model.model_validate(body)
        except (ValueError, ValidationError):
            raise _Failed(
                "BAD_RESPONSE", f"{self.server}{path} sent something unreadable"
            ) from None

    def head(self) -> tuple[TreeHead, str] | None:
        """The latest head and the key the server names, or None for an empty log."""
        status, body = self._get("/transparency/head")
        if status == 404 and _error_code(body) == "LOG_EMPTY":
            return None
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("log_key"), str):
            raise _Failed("BAD_RESPONSE", f"{self.server} sent no readable tree head")
        try:
            return parse_head(body), body["log_key"]
        except HeadError as exc:
            raise _Failed("BAD_RESPONSE", f"the server's tree head is malformed: {exc}") from None

    def leaves(self, size: int) -> list[bytes]:
        found: list[bytes] = []
        while len(found) < size:
            page = self._model(
                _Entries,
                "/transparency/entries",
                start=len(found),
                end=min(size, len(found) + PAGE),
            )
            if not page.entries or page.start != len(found):
                raise _Failed("TAMPERED", f"the server lists {len(found)} entries, its head {size}")
            for entry in page.entries:
                if entry.index != len(found):
                    raise _Failed("BAD_RESPONSE", "the server sent entries out of order")
                found.append(_unb64(entry.leaf, f"entry {entry.index}"))
        return found[:size]

    def inclusion(self, index: int, size: int) -> list[bytes]:
        proof = self._model(_Inclusion, "/transparency/proof/inclusion", index=index, size=size)
        return [_unb64(p, "an inclusion proof") for p in proof.audit_path]

    def consistency(self, first: int, second: int) -> list[bytes]:
        proof = self._model(
            _Consistency, "/transparency/proof/consistency", first=first, second=second
        )
        return [_unb64(p, "a consistency proof") for p in proof.proof]


def _error_text(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message")) if isinstance(error, dict) else "no reason given"


def _error_code(body: Any) -> Any:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def _unb64(text: str, what: str) -> bytes:
    try:
        return unb64(text)
    except KeyFormatError:
        raise _Failed("BAD_RESPONSE", f"{what} is not base64url") from None


# what the client remembers ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Remembered:
    """What verified last time for one server: the pinned key and the head."""

    log_key: bytes
    head: TreeHead


def _load_state(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {"logs": {}}
    except (OSError, orjson.JSONDecodeError) as exc:
        raise _Failed("STATE", f"cannot read {path} ({exc}); fix or move it away") from None
    if not isinstance(data, dict) or not isinstance(data.get("logs"), dict):
        raise _Failed("STATE", f"{path} is not a transparency state file; fix or move it away")
    return data


def _remembered(state: dict[str, Any], server: str, path: Path) -> _Remembered | None:
    entry = state["logs"].get(server)
    if entry is None:
        return None
    try:
        return _Remembered(decode_public_key(entry["log_key"]), parse_head(entry["head"]))
    except (KeyError, TypeError, KeyFormatError, HeadError) as exc:
        raise _Failed("STATE", f"{path} has a broken entry for {server} ({exc})") from None


def _remember(path: Path, state: dict[str, Any], server: str, seen: _Remembered) -> None:
    from samizdat.crypto.private_files import write_private

    state["logs"][server] = {
        "log_key": encode_public_key(seen.log_key),
        "head": seen.head.model_dump(),
    }
    write_private(path, orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


# the checks -------------------------------------------------------------------------------
def _given_matches_pinned(given: bytes | None, pinned: bytes | None) -> None:
    if given is not None and pinned is not None and given != pinned:
        raise _Failed(
            "KEY_CHANGED",
            f"--log-key {encode_public_key(given)} is not the key pinned for this server, "
            f"{encode_public_key(pinned)}",
        )


def _key(given: bytes | None, pinned: bytes | None, served: str | None) -> bytes:
    """The key heads must carry: the one given, else the pinned one, else (first use) the one
    the server names. A server naming another key than the expected one is a failure."""
    _given_matches_pinned(given, pinned)
    expected = given or pinned
    if served is not None:
        try:
            named = decode_public_key(served)
        except KeyFormatError:
            raise _Failed("BAD_RESPONSE", "the server's log key is malformed") from None
        if expected is not None and named != expected:
            raise _Failed(
                "KEY_CHANGED",
                f"the server now signs with key {encode_public_key(named)}, not "
                f"{encode_public_key(expected)}: the log "
                "key changed; old heads can no longer be checked against new ones",
            )
        expected = expected or named
    if expected is None:
        raise _Failed("NO_KEY", "no log key to check heads with; pass --log-key")
    return expected


def _signed(head: TreeHead, key: bytes, whose: str) -> None:
    try:
        verify_head(head, key)
    except HeadError as exc:
        raise _Failed("BAD_SIGNATURE", f"{whose}: {exc}") from None


def _records(leaves: list[bytes]) -> list[LeafRecord]:
    records = []
    for index, leaf in enumerate(leaves):
        try:
            records.append(decode_leaf(leaf))
        except LeafError as exc:
            raise _Failed("BAD_ENTRY", f"entry {index} is not a valid record: {exc}") from None
    return records


def _matches_root(head: TreeHead, hashes: list[bytes]) -> None:
    if root_hash(hashes) != head.root():
        raise _Failed(
            "TAMPERED",
            f"the log's {head.tree_size} entries do not hash to the root its key signed: an "
            "entry was changed, removed or reordered after it was logged",
        )


def _consistent(seen: TreeHead, served: TreeHead, hashes: list[bytes], log: _Log) -> None:
    """``seen`` must be a prefix of ``served``, by the server's proof and by the entries."""
    if seen.tree_size > served.tree_size:
        raise _SplitView(
            f"the server shows {served.tree_size} entries, but a head with {seen.tree_size} "
            "was signed before: the log lost entries or forked",
            seen,
            served,
        )
    if seen.tree_size == served.tree_size:
        if seen.root_hash != served.root_hash:
            raise _SplitView(
                f"two heads of the same size {seen.tree_size} have different roots", seen, served
            )
        return
    proof = log.consistency(seen.tree_size, served.tree_size)
    try:
        verify_consistency(seen.tree_size, served.tree_size, seen.root(), served.root(), proof)
    except ProofError as exc:
        raise _SplitView(f"the log cannot prove it only grew since: {exc}", seen, served) from None
    if root_hash(hashes[: seen.tree_size]) != seen.root():
        raise _SplitView(
            f"the first {seen.tree_size} entries served now are not those signed before",
            seen,
            served,
        )


@dataclass(frozen=True, slots=True)
class _Verified:
    head: TreeHead
    key: bytes
    records: list[LeafRecord]
    newly_proven: int
    previous: TreeHead | None
    pinned_now: bool


def _check_log(
    log: _Log,
    remembered: _Remembered | None,
    given_key: bytes | None,
    other: TreeHead | None,
    *,
    proofs: bool = True,
) -> _Verified | None:
    """Run every check; returns None for an empty log that was never seen non-empty.

    Raises:
        _Failed: a check failed (_SplitView for inconsistent heads).
    """
    pinned = remembered.log_key if remembered else None
    _given_matches_pinned(given_key, pinned)
    fetched = log.head()
    if fetched is None:
        if other is not None:
            known = given_key or pinned
            if known is None:
                raise _Failed("NO_KEY", "to check the --head given, pass the log's --log-key")
            _signed(other, known, "the tree head given with --head")
        for seen in (remembered.head if remembered else None, other):
            if seen is not None and seen.tree_size > 0:
                raise _SplitView(
                    f"the server shows an empty log, but a head with {seen.tree_size} entries "
                    "was signed before",
                    seen,
                    None,
                )
        return None
    served, named = fetched
    key = _key(given_key, pinned, named)
    _signed(served, key, "the server's tree head")
    leaves = log.leaves(served.tree_size)
    hashes = [leaf_hash(leaf) for leaf in leaves]
    _matches_root(served, hashes)
    records = _records(leaves)
    previous = remembered.head if remembered else None
    if previous is not None:
        _signed(previous, key, "the remembered tree head (the state file was altered?)")
        _consistent(previous, served, hashes, log)
    if other is not None:
        _signed(other, key, "the tree head given with --head")
        _consistent(other, served, hashes, log)
    first_new = previous.tree_size if previous else 0
    if proofs:
        for index in range(first_new, served.tree_size):
            proof = log.inclusion(index, served.tree_size)
            try:
                verify_inclusion(index, served.tree_size, hashes[index], proof, served.root())
            except ProofError as exc:
                raise _Failed("BAD_PROOF", f"entry {index}: {exc}") from None
    return _Verified(served, key, records, served.tree_size - first_new, previous, pinned is None)


# output -----------------------------------------------------------------------------------
def _when(head: TreeHead) -> str:
    moment = datetime.datetime.fromtimestamp(head.timestamp_ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _describe(head: TreeHead | None) -> str:
    if head is None:
        return "an empty log"
    return f"size {head.tree_size}, root {head.root_hash}, signed {_when(head)}"


def _fail(out: Output, exc: _Failed, server: str) -> NoReturn:
    data: dict[str, Any] = {
        "ok": False,
        "server": server,
        "verdict": exc.code.lower(),
        "error": {"code": exc.code, "message": exc.message},
    }
    if isinstance(exc, _SplitView):
        data["seen_head"] = exc.seen.model_dump()
        data["served_head"] = exc.served.model_dump() if exc.served else None
        # Loud on stderr in both modes: this is evidence of an attack, not a glitch.
        out.err.print(
            Panel(
                f"[bold]{escape(exc.message)}[/bold]\n\n"
                f"head seen before:   {escape(_describe(exc.seen))}\n"
                f"head served now:    {escape(_describe(exc.served))}\n\n"
                "Both carry the log's signature, and they cannot both be true: the log has "
                "shown different histories to different people. Keep both heads as evidence "
                "(the one seen before stays in the state file) and tell others.",
                title="[bold]SPLIT VIEW: the transparency log forked[/bold]",
                border_style="bold red",
                style="red",
            )
        )
    if out.json:
        out.record(data)
    elif not isinstance(exc, _SplitView):
        out.err.print(
            f"[bold red]VERIFICATION FAILED ({exc.code}):[/bold red] {escape(exc.message)}"
        )
    raise typer.Exit(exc.exit_code)


@dataclass(frozen=True, slots=True)
class _Setup:
    out: Output
    server: str
    state_path: Path
    given_key: bytes | None

    def remembered(self) -> _Remembered | None:
        """The head last verified for this server, from the state file."""
        return _remembered(_load_state(self.state_path), self.server, self.state_path)


def _setup(
    ctx: typer.Context, server: str, state: Path | None, log_key: str | None, json_: bool
) -> _Setup:
    profile: Path = ctx.obj if isinstance(ctx.obj, Path) else DEFAULT_PROFILE.expanduser()
    out = Output(json_, profile)
    given = None
    if log_key is not None:
        try:
            given = decode_public_key(log_key)
        except KeyFormatError as exc:
            out.fail_with("BAD_KEY", f"--log-key: {exc}")
    return _Setup(out, server.rstrip("/"), state or profile / STATE_FILE, given)


def _client() -> httpx.Client:
    import httpx

    return httpx.Client(timeout=10, follow_redirects=False)


# commands ---------------------------------------------------------------------------------
@transparency_app.command("verify")
def verify(
    ctx: typer.Context,
    server: ServerOption = "http://127.0.0.1:8080",
    state: StateOption = None,
    log_key: LogKeyOption = None,
    head: Annotated[
        Path | None,
        typer.Option(
            "--head",
            help="Also check a tree head obtained elsewhere (a JSON file, e.g. another user's "
            "`samizdat transparency head --json`) against the server's",
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Check the log's signature, every entry, and that it only grew since you last checked;
    remember the new head. Exit 1 if a check fails, 3 on a split view."""
    setup = _setup(ctx, server, state, log_key, json_)
    out = setup.out
    try:
        other = _read_head(head) if head is not None else None
        saved = _load_state(setup.state_path)
        remembered = _remembered(saved, setup.server, setup.state_path)
        with _client() as http:
            verified = _check_log(_Log(setup.server, http), remembered, setup.given_key, other)
    except _Failed as exc:
        _fail(out, exc, setup.server)
    if verified is None:
        out.result(
            {"ok": True, "server": setup.server, "verdict": "empty", "tree_size": 0},
            f"The log at {escape(setup.server)} is empty; nothing to verify yet.",
        )
        return
    _remember(setup.state_path, saved, setup.server, _Remembered(verified.key, verified.head))
    result = {
        "ok": True,
        "server": setup.server,
        "verdict": "ok",
        "log_key": encode_public_key(verified.key),
        "key_pinned_now": verified.pinned_now,
        "head": verified.head.model_dump(),
        "previous_size": verified.previous.tree_size if verified.previous else None,
        "new_entries_proven": verified.newly_proven,
        "checked_head": other.model_dump() if other else None,
    }
    lines = [
        f"[green]✓ verified[/green] {escape(setup.server)}: {escape(_describe(verified.head))}",
        f"  every entry matches the signed root; {verified.newly_proven} new entr"
        f"{'y' if verified.newly_proven == 1 else 'ies'} proven included",
    ]
    if verified.previous is not None:
        lines.append(
            f"  consistent with the head seen before ({verified.previous.tree_size} entries)"
        )
    if other is not None:
        lines.append(f"  consistent with the head from {escape(str(head))}")
    if verified.pinned_now:
        pinned = encode_public_key(verified.key)
        lines.append(f"  log key {pinned} pinned in {escape(str(setup.state_path))}")
    out.result(result, "\n".join(lines))


def _read_head(path: Path) -> TreeHead:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise _Failed("BAD_HEAD", f"cannot read a tree head from {path} ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("head"), dict):
        data = data["head"]  # the output of `verify --json` holds it under "head"
    try:
        return parse_head(data)
    except HeadError as exc:
        raise _Failed("BAD_HEAD", f"{path}: {exc}") from None


@transparency_app.command("head")
def show_head(
    ctx: typer.Context,
    server: ServerOption = "http://127.0.0.1:8080",
    state: StateOption = None,
    log_key: LogKeyOption = None,
    json_: JsonFlag = False,
) -> None:
    """Print the server's latest signed tree head, its signature checked (nothing is
    remembered; `verify` does that). Save the --json output to compare with others."""
    setup = _setup(ctx, server, state, log_key, json_)
    out = setup.out
    try:
        remembered = setup.remembered()
        with _client() as http:
            fetched = _Log(setup.server, http).head()
        if fetched is None:
            out.result({"server": setup.server, "tree_size": 0}, "The log is empty.")
            return
        served, named = fetched
        key = _key(setup.given_key, remembered.log_key if remembered else None, named)
        _signed(served, key, "the server's tree head")
    except _Failed as exc:
        _fail(out, exc, setup.server)
    out.result(
        {**served.model_dump(), "log_key": encode_public_key(key), "server": setup.server},
        f"{escape(_describe(served))}\nsignature valid, log key {encode_public_key(key)}"
        + ("" if remembered else " (not pinned yet: run `samizdat transparency verify`)"),
    )


@transparency_app.command("report")
def report(
    ctx: typer.Context,
    server: ServerOption = "http://127.0.0.1:8080",
    state: StateOption = None,
    log_key: LogKeyOption = None,
    json_: JsonFlag = False,
) -> None:
    """The transparency report (per half-year and jurisdiction), computed here from the
    log's entries after checking them against its signed head."""
    from rich.table import Table

    setup = _setup(ctx, server, state, log_key, json_)
    out = setup.out
    try:
        remembered = setup.remembered()
        with _client() as http:
            verified = _check_log(
                _Log(setup.server, http), remembered, setup.given_key, None, proofs=False
            )
    except _Failed as exc:
        _fail(out, exc, setup.server)
    rows = build_report(verified.records if verified else [])
    table = Table("half-year", "jurisdiction")
    for count in ("received", "granted", "refused", "accounts disclosed"):
        table.add_column(count, justify="right")
    for row in rows:
        table.add_row(
            row.period,
            row.jurisdiction,
            str(row.received),
            str(row.granted),
            str(row.refused),
            str(row.accounts),
        )
    out.rows((row.model_dump() for row in rows), table, empty="No lawful requests logged.")
