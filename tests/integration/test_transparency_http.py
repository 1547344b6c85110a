"""The transparency log served by a real uvicorn and checked by the real CLI.

The HTTP routes serve heads, entries, proofs that verify, and a report computed from the log;
bad query values get 400, an empty log 404, never a 500. ``samizdat transparency verify`` pins
the log key, notices a stored entry changed behind the server's back (exit 1), a forged
signature (exit 1), a changed key (exit 1), and a forked history shown after it saw another
(exit 3, a split-view warning, the remembered head kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from samizdat.crypto.custody_keys import b64, unb64
from samizdat.crypto.signing_keys import SigningKey
from samizdat.server.transparency_http import add_transparency_routes
from samizdat.store.database import Database
from samizdat.store.engine import open_engines, sqlite_url
from samizdat.store.migrate import migrate
from samizdat.store.transparency import TransparencyStore
from samizdat.transparency.heads import TreeHead, parse_head, verify_head
from samizdat.transparency.merkle import (
    leaf_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from samizdat.transparency.records import LeafRecord, decode_leaf, encode_leaf
from samizdat.transparency.report import build_report
from tests.cli_runner import CALL_TIMEOUT, ENV, Result, samizdat
from tests.harness import free_port

NOW = 1_800_000_000.0
EXIT_FAILED, EXIT_SPLIT_VIEW = 1, 3


def record(
    date: str, jurisdictions: tuple[str, ...], outcome: str = "granted", accounts: int = 1
) -> LeafRecord:
    refused = outcome == "refused"
    return LeafRecord(
        date=date,
        jurisdictions=jurisdictions,
        category="terrorism",
        outcome="refused" if refused else "granted",
        reason="ORDER_EXPIRED" if refused else None,
        accounts=0 if refused else accounts,
    )


RECORDS = [
    record("2026-02-03", ("CH", "DE"), accounts=2),
    record("2026-03-10", ("DE",), "refused"),
    record("2026-08-01", ("CH",), accounts=1),
    record("2026-09-21", ("AT", "CH"), "refused"),
    record("2026-11-30", ("DE",), accounts=4),
]
# Another history with the same first entries: what a forked log shows someone else.
FORKED = [*RECORDS[:3], record("2026-10-01", ("FR",), accounts=9), *RECORDS[3:]]


async def seed(path: Path, records: list[LeafRecord], key: SigningKey) -> None:
    engines = open_engines(sqlite_url(path))
    await migrate(engines)
    store = TransparencyStore(Database(engines))
    try:
        for i, item in enumerate(records):
            await store.append(encode_leaf(item), sign=key.sign, now=NOW + i)
    finally:
        await store.db.close()


class LogServer:
    """A real uvicorn, in a thread, serving the transparency routes over one of several
    SQLite logs; ``serving`` picks which (a forked log is just another file)."""

    def __init__(self, logs: dict[str, Path], key: SigningKey) -> None:
        self.logs = logs
        self.serving = next(iter(logs))
        self.stores: dict[str, TransparencyStore] = {}
        self.port = free_port()

        @contextlib.asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            for name, path in logs.items():
                self.stores[name] = TransparencyStore(Database(open_engines(sqlite_url(path))))
            try:
                yield
            finally:
                for store in self.stores.values():
                    await store.db.close()

        app = FastAPI(lifespan=lifespan)
        add_transparency_routes(app, lambda: self.stores[self.serving], key.public)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn exited while starting"
            assert time.monotonic() < deadline, "uvicorn did not start in 15 s"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def sql(self, log: str, statement: str, *args: Any) -> None:
        """Change a log's database behind the server's back, as someone holding the disk."""
        with contextlib.closing(sqlite3.connect(self.logs[log])) as conn, conn:
            conn.execute(statement, args)

    def append(self, log: str, records: list[LeafRecord], key: SigningKey) -> None:
        """Append through a second connection, as the legal intake on this node would."""
        asyncio.run(seed(self.logs[log], records, key))

    def get(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(self.url + path, params=params, timeout=10)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return SigningKey.create(tmp_path_factory.mktemp("log-key") / "log.key")


@pytest.fixture
def log(tmp_path: Path, key: SigningKey) -> Iterator[LogServer]:
    logs = {name: tmp_path / f"{name}.sqlite3" for name in ("main", "fork", "empty")}
    asyncio.run(seed(logs["main"], RECORDS, key))
    asyncio.run(seed(logs["fork"], FORKED, key))
    asyncio.run(seed(logs["empty"], [], key))
    server = LogServer(logs, key)
    server.start()
    yield server
    server.stop()


# the CLI ----------------------------------------------------------------------------------
def _registered() -> bool:
    from samizdat.cli.main import app

    return any(group.name == "transparency" for group in app.registered_groups)


# Until `samizdat transparency` is registered in cli/main.py, run the same app with it added.
_WIRED = (
    "import sys; from samizdat.cli.main import app; "
    "from samizdat.cli.transparency import transparency_app; "
    "app.add_typer(transparency_app, name='transparency'); sys.argv[0] = 'samizdat'; app()"
)


def transparency(profile: Path, *args: str) -> Result:
    if _registered():
        return samizdat(profile, "transparency", *args)
    done = subprocess.run(
        [sys.executable, "-c", _WIRED, "--profile", str(profile), "transparency", *args],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        env=ENV,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def verify(profile: Path, server: LogServer, *args: str) -> Result:
    return transparency(profile, "verify", "--server", server.url, "--json", *args)


def state_of(profile: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((profile / "transparency.json").read_text())
    return data


# HTTP -------------------------------------------------------------------------------------
def served_head(log: LogServer, key: SigningKey) -> TreeHead:
    response = log.get("/transparency/head")
    assert response.status_code == 200
    body = response.json()
    assert body["log_key"] == key.public_text()
    head = parse_head(body)
    verify_head(head, key.public)
    return head


def test_the_head_is_signed_by_the_log_key_over_every_entry(
    log: LogServer, key: SigningKey
) -> None:
    head = served_head(log, key)
    assert head.tree_size == len(RECORDS)
    leaves = [encode_leaf(r) for r in RECORDS]
    assert head.root() == root_hash([leaf_hash(x) for x in leaves])
    earlier = log.get("/transparency/head", size=2).json()
    assert parse_head(earlier).tree_size == 2
    verify_head(parse_head(earlier), key.public)
    missing = log.get("/transparency/head", size=99)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NO_SUCH_HEAD"


def test_entries_are_served_as_leaves_and_their_records_in_pages(log: LogServer) -> None:
    body = log.get("/transparency/entries").json()
    assert (body["start"], body["end"]) == (0, len(RECORDS))
    assert [e["index"] for e in body["entries"]] == list(range(len(RECORDS)))
    for entry, expected in zip(body["entries"], RECORDS, strict=True):
        assert decode_leaf(unb64(entry["leaf"])) == expected
        assert entry["record"] == expected.model_dump(mode="json")
    page = log.get("/transparency/entries", start=1, end=3).json()
    assert [e["index"] for e in page["entries"]] == [1, 2]
    past_the_end = log.get("/transparency/entries", start=4, end=10_000).json()
    assert [e["index"] for e in past_the_end["entries"]] == [4]
    at_the_end = log.get("/transparency/entries", start=5).json()
    assert at_the_end["entries"] == []


def test_inclusion_and_consistency_proofs_verify_against_signed_heads(
    log: LogServer, key: SigningKey
) -> None:
    head = served_head(log, key)
    leaves = [encode_leaf(r) for r in RECORDS]
    for index in range(head.tree_size):
        body = log.get("/transparency/proof/inclusion", index=index, size=head.tree_size).json()
        proof = [unb64(p) for p in body["audit_path"]]
        verify_inclusion(index, head.tree_size, leaf_hash(leaves[index]), proof, head.root())
    for first in range(1, head.tree_size + 1):
        old = parse_head(log.get("/transparency/head", size=first).json())
        body = log.get("/transparency/proof/consistency", first=first, second=head.tree_size)
        proof = [unb64(p) for p in body.json()["proof"]]
        verify_consistency(first, head.tree_size, old.root(), head.root(), proof)
    assert log.get("/transparency/proof/consistency", first=0, second=3).json()["proof"] == []


def test_the_report_is_computed_from_the_log(log: LogServer) -> None:
    body = log.get("/transparency/report").json()
    assert body["rows"] == [row.model_dump() for row in build_report(RECORDS)]
    assert body["undecodable_entries"] == 0
    assert {"period": "2026-H1", "jurisdiction": "DE", "received": 2, "granted": 1,
            "refused": 1, "accounts": 2} in body["rows"]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/transparency/entries", {"start": "-1"}),
        ("/transparency/entries", {"start": "abc"}),
        ("/transparency/entries", {"start": "6"}),
        ("/transparency/entries", {"start": "3", "end": "2"}),
        ("/transparency/entries", {"start": "1" * 40}),
        ("/transparency/entries", {"start": "+1"}),
        ("/transparency/entries", {"start": "\u0661"}),  # an Arabic-Indic one
        ("/transparency/entries", {"end": "9223372036854775808"}),
        ("/transparency/head", {"size": "x"}),
        ("/transparency/proof/inclusion", {}),
        ("/transparency/proof/inclusion", {"index": "0"}),
        ("/transparency/proof/inclusion", {"index": "5", "size": "5"}),
        ("/transparency/proof/inclusion", {"index": "0", "size": "0"}),
        ("/transparency/proof/inclusion", {"index": "0", "size": "6"}),
        ("/transparency/proof/inclusion", {"index": "1.5", "size": "2"}),
        ("/transparency/proof/consistency", {"first": "3"}),
        ("/transparency/proof/consistency", {"first": "4", "second": "3"}),
        ("/transparency/proof/consistency", {"first": "1", "second": "6"}),
        ("/transparency/proof/consistency", {"first": " 1", "second": "2"}),
    ],
)
def test_bad_query_values_get_400_with_a_clear_message(
    log: LogServer, path: str, params: dict[str, str]
) -> None:
    response = log.get(path, **params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "INVALID_PARAMS"
    assert error["message"]


def test_an_empty_log_answers_404_for_heads_and_proofs_and_an_empty_report(
    log: LogServer,
) -> None:
    log.serving = "empty"
    for path, params in [
        ("/transparency/head", {}),
        ("/transparency/entries", {}),
        ("/transparency/proof/inclusion", {"index": 0, "size": 1}),
        ("/transparency/proof/consistency", {"first": 0, "second": 0}),
    ]:
        response = log.get(path, **params)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "LOG_EMPTY"
    assert log.get("/transparency/report").json() == {"rows": [], "undecodable_entries": 0}
    page = log.get("/transparency")
    assert page.status_code == 200
    assert "The log is empty" in page.text


def test_the_page_shows_the_head_the_report_and_how_to_verify_all_escaped(
    log: LogServer, key: SigningKey
) -> None:
    head = served_head(log, key)
    response = httpx.get(log.url + "/transparency", headers={"host": "<b>evil</b>"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert head.root_hash in page
    assert key.public_text() in page
    assert "samizdat transparency verify --server" in page
    assert "<td>2026-H2</td><td>CH</td>" in page
    assert "<b>evil</b>" not in page  # a Host header is never reflected as markup


def test_an_undecodable_stored_entry_is_listed_without_a_record_and_not_a_500(
    log: LogServer,
) -> None:
    log.sql("main", "UPDATE transparency_leaves SET leaf = ? WHERE idx = 2", b"garbage")
    body = log.get("/transparency/entries").json()
    assert body["entries"][2]["record"] is None
    assert unb64(body["entries"][2]["leaf"]) == b"garbage"
    assert log.get("/transparency/report").json()["undecodable_entries"] == 1
    assert log.get("/transparency").status_code == 200


# samizdat transparency verify -------------------------------------------------------------
def test_verify_pins_the_key_then_checks_only_new_entries_and_growth(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    profile = tmp_path / "alice"
    first = verify(profile, log)
    assert first.code == 0, first.err
    assert first.record["ok"] is True
    assert first.record["key_pinned_now"] is True
    assert first.record["new_entries_proven"] == len(RECORDS)
    assert first.record["previous_size"] is None
    remembered = state_of(profile)["logs"][log.url]
    assert remembered["log_key"] == key.public_text()
    assert remembered["head"]["tree_size"] == len(RECORDS)

    log.append("main", [record("2026-12-01", ("NL",), accounts=3)], key)
    second = verify(profile, log)
    assert second.code == 0, second.err
    assert second.record["previous_size"] == len(RECORDS)
    assert second.record["new_entries_proven"] == 1
    assert second.record["key_pinned_now"] is False
    assert state_of(profile)["logs"][log.url]["head"]["tree_size"] == len(RECORDS) + 1

    human = transparency(profile, "verify", "--server", log.url)
    assert human.code == 0, human.err
    assert "verified" in human.out
    assert "consistent with the head seen before" in human.out


def test_a_stored_entry_changed_behind_the_servers_back_fails_verify(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    profile = tmp_path / "alice"
    assert verify(profile, log).code == 0
    before = state_of(profile)
    # The operator rewrites a refusal as a grant that disclosed nothing, and fixes up its hash.
    softened = encode_leaf(record("2026-03-10", ("DE",), accounts=0))
    log.sql(
        "main",
        "UPDATE transparency_leaves SET leaf = ?, leaf_hash = ? WHERE idx = 1",
        softened,
        leaf_hash(softened),
    )
    result = verify(profile, log)
    assert result.code == EXIT_FAILED, result.out
    assert result.record["ok"] is False
    assert result.record["error"]["code"] == "TAMPERED"
    assert state_of(profile) == before
    # A first-time user is not fooled either, and nothing gets pinned for them.
    newcomer = tmp_path / "bob"
    fresh = verify(newcomer, log)
    assert fresh.code == EXIT_FAILED
    assert fresh.record["error"]["code"] == "TAMPERED"
    assert not (newcomer / "transparency.json").exists()


def test_a_changed_leaf_without_its_hash_changed_fails_verify_too(
    log: LogServer, tmp_path: Path
) -> None:
    log.sql(
        "main",
        "UPDATE transparency_leaves SET leaf = ? WHERE idx = 0",
        encode_leaf(record("2026-02-03", ("CH", "DE"), accounts=0)),
    )
    result = verify(tmp_path / "carol", log)
    assert result.code == EXIT_FAILED
    assert result.record["error"]["code"] == "TAMPERED"


def test_a_head_with_a_bad_signature_fails_verify(log: LogServer, tmp_path: Path) -> None:
    log.sql(
        "main",
        "UPDATE transparency_heads SET signature = ? WHERE tree_size = ?",
        b"\x01" * 64,
        len(RECORDS),
    )
    result = verify(tmp_path / "alice", log)
    assert result.code == EXIT_FAILED
    assert result.record["error"]["code"] == "BAD_SIGNATURE"
    human = transparency(tmp_path / "alice", "verify", "--server", log.url)
    assert human.code == EXIT_FAILED
    assert "VERIFICATION FAILED" in human.err


def test_a_log_key_other_than_the_pinned_one_is_a_loud_failure(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    stranger = SigningKey.create(tmp_path / "stranger.key")
    given = verify(tmp_path / "dave", log, "--log-key", stranger.public_text())
    assert given.code == EXIT_FAILED
    assert given.record["error"]["code"] == "KEY_CHANGED"
    profile = tmp_path / "alice"
    assert verify(profile, log, "--log-key", key.public_text()).code == 0
    state = state_of(profile)
    state["logs"][log.url]["log_key"] = stranger.public_text()
    (profile / "transparency.json").write_text(json.dumps(state))
    pinned = verify(profile, log)
    assert pinned.code == EXIT_FAILED
    assert pinned.record["error"]["code"] == "KEY_CHANGED"


def test_a_forked_history_shown_after_another_is_a_split_view(
    log: LogServer, tmp_path: Path
) -> None:
    profile = tmp_path / "alice"
    assert verify(profile, log).code == 0
    before = state_of(profile)
    log.serving = "fork"  # the same key signs a history with an entry slipped in
    result = verify(profile, log)
    assert result.code == EXIT_SPLIT_VIEW, result.out + result.err
    assert result.record["error"]["code"] == "SPLIT_VIEW"
    assert result.record["seen_head"] == before["logs"][log.url]["head"]
    assert result.record["served_head"]["tree_size"] == len(FORKED)
    assert "SPLIT VIEW" in result.err
    assert state_of(profile) == before  # the evidence is kept

    human = transparency(profile, "verify", "--server", log.url)
    assert human.code == EXIT_SPLIT_VIEW
    assert "SPLIT VIEW" in human.err
    assert f"size {len(RECORDS)}" in human.err
    assert f"size {len(FORKED)}" in human.err


def test_a_log_that_shrank_or_emptied_after_it_was_seen_is_a_split_view(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    profile = tmp_path / "alice"
    log.serving = "fork"
    assert verify(profile, log).code == 0  # saw 6 entries
    log.serving = "main"  # now 5, all the same key
    shrank = verify(profile, log)
    assert shrank.code == EXIT_SPLIT_VIEW
    log.serving = "empty"
    emptied = verify(profile, log)
    assert emptied.code == EXIT_SPLIT_VIEW
    assert emptied.record["served_head"] is None


def test_a_head_from_another_user_is_checked_against_the_servers(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    log.serving = "fork"
    bob_head = transparency(tmp_path / "bob", "head", "--server", log.url, "--json")
    assert bob_head.code == 0, bob_head.err
    assert bob_head.record["tree_size"] == len(FORKED)
    bobs = tmp_path / "bob-head.json"
    bobs.write_text(bob_head.out)

    log.serving = "main"
    alice = verify(tmp_path / "alice", log, "--head", str(bobs))
    assert alice.code == EXIT_SPLIT_VIEW
    assert alice.record["seen_head"]["tree_size"] == len(FORKED)
    assert not (tmp_path / "alice" / "transparency.json").exists()

    # An honest head from earlier in the same history is consistent.
    earlier = tmp_path / "earlier.json"
    earlier.write_text(log.get("/transparency/head", size=2).text)
    assert verify(tmp_path / "carol", log, "--head", str(earlier)).code == 0
    # A head whose signature is not the log's is not evidence of anything: a plain failure.
    forged = {**json.loads(earlier.read_text()), "signature": b64(b"\x02" * 64)}
    earlier.write_text(json.dumps(forged))
    bad = verify(tmp_path / "dave", log, "--head", str(earlier))
    assert bad.code == EXIT_FAILED
    assert bad.record["error"]["code"] == "BAD_SIGNATURE"


def test_an_empty_log_verifies_as_empty_and_pins_nothing(log: LogServer, tmp_path: Path) -> None:
    log.serving = "empty"
    result = verify(tmp_path / "alice", log)
    assert result.code == 0
    assert result.record["verdict"] == "empty"


def test_an_unreachable_server_fails_with_exit_1(tmp_path: Path) -> None:
    result = transparency(
        tmp_path / "alice", "verify", "--server", f"http://127.0.0.1:{free_port()}", "--json"
    )
    assert result.code == EXIT_FAILED
    assert result.record["error"]["code"] == "UNAVAILABLE"


# samizdat transparency report / head ------------------------------------------------------
def test_report_prints_rows_computed_from_the_verified_log(log: LogServer, tmp_path: Path) -> None:
    rows = transparency(tmp_path / "alice", "report", "--server", log.url, "--json")
    assert rows.code == 0, rows.err
    assert rows.records == [row.model_dump() for row in build_report(RECORDS)]
    table = transparency(tmp_path / "alice", "report", "--server", log.url)
    assert table.code == 0
    assert "2026-H2" in table.out
    assert "jurisdiction" in table.out


def test_report_refuses_a_tampered_log(log: LogServer, tmp_path: Path) -> None:
    log.sql("main", "DELETE FROM transparency_leaves WHERE idx = 4")
    result = transparency(tmp_path / "alice", "report", "--server", log.url, "--json")
    assert result.code == EXIT_FAILED
    assert result.record["ok"] is False


def test_head_prints_the_signed_head_and_its_key(
    log: LogServer, key: SigningKey, tmp_path: Path
) -> None:
    result = transparency(tmp_path / "alice", "head", "--server", log.url, "--json")
    assert result.code == 0
    assert result.record["log_key"] == key.public_text()
    verify_head(parse_head(result.record), key.public)
    human = transparency(tmp_path / "alice", "head", "--server", log.url)
    assert "signature valid" in human.out
