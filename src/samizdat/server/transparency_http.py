"""The public transparency log over HTTP, read-only, at ``/transparency``.

``GET /transparency/head``                    latest signed tree head (+ ``log_key``);
                                              ``?size=N`` for the head signed at size N
``GET /transparency/entries?start=&end=``     leaves (base64url) and their decoded records,
                                              at most ``MAX_ENTRIES`` per call
``GET /transparency/proof/inclusion?index=&size=``
``GET /transparency/proof/consistency?first=&second=``
``GET /transparency/report``                  the report rows, computed from the log
``GET /transparency``                         the same as a page, with how to verify it

Proofs are built from the stored leaf hashes and never vouched for by the server: a client
checks them against a head signed by the log key (``samizdat transparency verify``). Bad query
values get 400 with ``INVALID_PARAMS``; an empty log or a size never signed gets 404.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from samizdat.crypto.custody_keys import b64
from samizdat.crypto.signing_keys import encode_public_key
from samizdat.protocol.errors import ErrorCode, InternalError, ProtocolError, SamizdatError
from samizdat.server.http import error_response, json_response
from samizdat.store.transparency import TransparencyStore
from samizdat.transparency.heads import TreeHead
from samizdat.transparency.merkle import consistency_proof, inclusion_proof
from samizdat.transparency.records import LeafError, LeafRecord, decode_leaf
from samizdat.transparency.report import ReportRow, build_report

__all__ = ["LOG_EMPTY", "MAX_ENTRIES", "NO_SUCH_HEAD", "add_transparency_routes"]

MAX_ENTRIES = 1000
#: 404 codes of this API (the RPC ErrorCode set has no "not found" for logs).
LOG_EMPTY = "LOG_EMPTY"
NO_SUCH_HEAD = "NO_SUCH_HEAD"
_MAX_INDEX = 2**63 - 1


class _NotThere(Exception):
    """A 404 of this API: the code and a client-safe message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad(message: str) -> ProtocolError:
    return ProtocolError(message, code=ErrorCode.INVALID_PARAMS)


def _int_param(request: Request, name: str, default: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        if default is None:
            raise _bad(f"query parameter {name!r} is required")
        return default
    # isdigit() alone would accept other scripts' digits and int() would take "+1" or " 1".
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > _MAX_INDEX:
        raise _bad(f"query parameter {name!r} must be a whole number from 0 to 2**63-1")
    return int(raw)


async def _latest(store: TransparencyStore) -> TreeHead:
    head = await store.head()
    if head is None:
        raise _NotThere(LOG_EMPTY, "the transparency log is empty")
    return head


async def _hashes(store: TransparencyStore, size: int) -> list[bytes]:
    hashes = await store.leaf_hashes(size)
    if len(hashes) != size:
        raise InternalError(debug_context={"wanted": size, "stored": len(hashes)})
    return hashes


def _record(leaf: bytes) -> LeafRecord | None:
    try:
        return decode_leaf(leaf)
    except LeafError:
        return None


async def _report(store: TransparencyStore) -> tuple[list[ReportRow], int]:
    """The report over every stored leaf, and how many leaves did not decode."""
    head = await store.head()
    size = head.tree_size if head is not None else 0
    records: list[LeafRecord] = []
    for start in range(0, size, MAX_ENTRIES):
        for leaf in await store.entries(start, start + MAX_ENTRIES):
            record = _record(leaf)
            if record is not None:
                records.append(record)
    return build_report(records), size - len(records)


def add_transparency_routes(
    app: Starlette, store_of: Callable[[], TransparencyStore], public_key: bytes
) -> None:
    """Serve the log held by ``store_of()`` (called per request, so the caller may swap
    stores) whose heads ``public_key`` (raw Ed25519) signs."""
    log_key = encode_public_key(public_key)

    def endpoint(
        work: Callable[[Request, TransparencyStore], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            try:
                return await work(request, store_of())
            except _NotThere as exc:
                return json_response({"error": {"code": exc.code, "message": exc.message}}, 404)
            except SamizdatError as exc:
                return error_response(exc)

        handle.__name__ = work.__name__
        return handle

    async def head(request: Request, store: TransparencyStore) -> Response:
        if "size" in request.query_params:
            size = _int_param(request, "size")
            found = await store.head_at(size)
            if found is None:
                raise _NotThere(NO_SUCH_HEAD, f"no tree head was signed at size {size}")
        else:
            found = await _latest(store)
        return json_response({**found.model_dump(), "log_key": log_key})

    async def entries(request: Request, store: TransparencyStore) -> Response:
        size = (await _latest(store)).tree_size
        start = _int_param(request, "start", 0)
        end = _int_param(request, "end", min(start + MAX_ENTRIES, size))
        if start > size:
            raise _bad(f"start {start} is past the end of the log ({size} entries)")
        if end < start:
            raise _bad(f"end {end} is before start {start}")
        end = min(end, size, start + MAX_ENTRIES)
        leaves = await store.entries(start, end)
        listed = []
        for index, leaf in enumerate(leaves, start):
            record = _record(leaf)
            listed.append(
                {
                    "index": index,
                    "leaf": b64(leaf),
                    "record": record.model_dump(mode="json") if record is not None else None,
                }
            )
        return json_response({"start": start, "end": start + len(leaves), "entries": listed})

    async def inclusion(request: Request, store: TransparencyStore) -> Response:
        latest = (await _latest(store)).tree_size
        index, size = _int_param(request, "index"), _int_param(request, "size")
        if not 0 < size <= latest:
            raise _bad(f"size must be from 1 to the log's size, {latest}")
        if index >= size:
            raise _bad(f"index {index} is not below size {size}")
        path = inclusion_proof(index, await _hashes(store, size))
        return json_response(
            {"index": index, "tree_size": size, "audit_path": [b64(p) for p in path]}
        )

    async def consistency(request: Request, store: TransparencyStore) -> Response:
        latest = (await _latest(store)).tree_size
        first, second = _int_param(request, "first"), _int_param(request, "second")
        if not first <= second <= latest:
            raise _bad(f"need first <= second <= the log's size, {latest}")
        proof = [] if first == 0 else consistency_proof(first, await _hashes(store, second))
        return json_response({"first": first, "second": second, "proof": [b64(p) for p in proof]})

    async def report(_: Request, store: TransparencyStore) -> Response:
        rows, undecodable = await _report(store)
        return json_response(
            {"rows": [row.model_dump() for row in rows], "undecodable_entries": undecodable}
        )

    async def page(request: Request, store: TransparencyStore) -> Response:
        latest = await store.head()
        rows, undecodable = await _report(store)
        server = str(request.base_url).rstrip("/")
        return HTMLResponse(_page(latest, rows, undecodable, log_key, server))

    routes: list[tuple[str, Callable[[Request, TransparencyStore], Awaitable[Response]]]] = [
        ("/transparency", page),
        ("/transparency/head", head),
        ("/transparency/entries", entries),
        ("/transparency/proof/inclusion", inclusion),
        ("/transparency/proof/consistency", consistency),
        ("/transparency/report", report),
    ]
    for path, work in routes:
        app.add_route(path, endpoint(work), methods=["GET"], include_in_schema=False)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
    "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3rem .6rem}"
    "td.n{text-align:right}code{word-break:break-all}"
)


def _page(
    head: TreeHead | None, rows: list[ReportRow], undecodable: int, log_key: str, server: str
) -> str:
    e = html.escape
    if head is None:
        head_html = "<p>The log is empty: no lawful request has been recorded.</p>"
    else:
        head_html = (
            "<dl>"
            f"<dt>Entries</dt><dd>{head.tree_size}</dd>"
            f"<dt>Signed at (ms since 1970, UTC)</dt><dd>{head.timestamp_ms}</dd>"
            f"<dt>Root hash</dt><dd><code>{e(head.root_hash)}</code></dd>"
            f"<dt>Signature</dt><dd><code>{e(head.signature)}</code></dd>"
            "</dl>"
        )
    if rows:
        cells = "".join(
            f"<tr><td>{e(r.period)}</td><td>{e(r.jurisdiction)}</td><td class=n>{r.received}"
            f"</td><td class=n>{r.granted}</td><td class=n>{r.refused}</td>"
            f"<td class=n>{r.accounts}</td></tr>"
            for r in rows
        )
        report_html = (
            "<table><tr><th>Half-year</th><th>Jurisdiction</th><th>Received</th>"
            f"<th>Granted</th><th>Refused</th><th>Accounts disclosed</th></tr>{cells}</table>"
        )
    else:
        report_html = "<p>No requests yet.</p>"
    if undecodable:
        report_html += f"<p><strong>{undecodable} entries could not be read.</strong></p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Transparency log</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Transparency log of lawful requests</h1>"
        "<p>Every lawful request this service decided is an entry of an append-only Merkle "
        "log (RFC 9162 style). Entries hold no personal data: the date, the jurisdictions, "
        "the category, the outcome and the number of accounts disclosed.</p>"
        f"<h2>Latest signed tree head</h2>{head_html}"
        f"<p>Log key (Ed25519): <code>{e(log_key)}</code> (compare it with the key the "
        "operator publishes elsewhere)</p>"
        f"<h2>Report</h2>{report_html}"
        "<h2>Check it yourself</h2>"
        "<p>Do not trust this page: verify the log, its signature and that it only ever grew "
        "since you last looked:</p>"
        f"<pre>samizdat transparency verify --server {e(server)} --log-key {e(log_key)}</pre>"
        "<p>Compare your tree head with other people's (<code>--head FILE</code>): two heads "
        "that are not consistent prove the log showed different histories.</p>"
        '<p>Raw data: <a href="/transparency/head">head</a>, '
        '<a href="/transparency/entries">entries</a>, '
        '<a href="/transparency/report">report</a>.</p>'
        "</body></html>"
    )
