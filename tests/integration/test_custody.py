"""A DC's key comes only from its custodians: k of n must answer, and they answer only an
enrolled node's fresh, signed request, logging every request they answer or refuse.

Everything here is real processes on real sockets: one ``samizdat serve`` for DC ``eu`` (in
XA) and three ``samizdat custodian serve`` (XB, XC, XD; threshold 2), set up through the
operators' commands. Each backend gets one such site for the whole module; every test starts
from it healthy (all custodians up, the server unsealed on its usual configuration), and the
ones where the database adds nothing run on SQLite only.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from samizdat.client import Client
from samizdat.client.profile import Session
from samizdat.crypto.custody_keys import CustodianPublic, NodeKey
from samizdat.crypto.threshold import Envelope, seal
from samizdat.custody.audit import AuditEntry
from samizdat.custody.policy import DC_KEY_PURPOSE, dc_key_owner
from samizdat.protocol.errors import ErrorCode, SamizdatError
from samizdat.server.dc_keeper import DcKeeper
from tests.conftest import BACKENDS, _require_backend
from tests.custodians import (
    JURISDICTIONS,
    CustodianProcess,
    ForgingCustodian,
    custody_config,
    dc_sqlite_path,
    enroll_all,
    enroll_in_place,
    finish,
    health,
    init_all,
    launch,
    node_key_args,
    post_unseal,
    revoke_all,
    samizdat,
    samizdat_all,
    server_status,
    start_all,
    stop_all,
    succeeded,
)
from tests.custody_requests import signed_unseal
from tests.harness import (
    TEST_LIMITS,
    ServerProcess,
    dc_status,
    new_test_phone,
    signed_in,
    sql,
    wait_until,
)
from tests.inbox import private_chat

DC = "eu"
#: A sealed DC retries with backoff, waiting at most this long between attempts.
KEEPER_RETRY_MAX: float = inspect.signature(DcKeeper).parameters["retry_max"].default
#: Once custodians are back, a sealed DC must serve within one longest wait, the attempt
#: itself and a margin for a machine busy with other tests.
UNSEAL_WITHIN = KEEPER_RETRY_MAX + 10.0
sqlite_only = pytest.mark.parametrize("site", ["sqlite"], indirect=True)


@dataclass
class Site:
    """DC ``eu`` served by one real server, its key held 2-of-3 by three real custodians."""

    server: ServerProcess
    custodians: list[CustodianProcess]
    node_key: str

    @property
    def config(self) -> str:
        return TEST_LIMITS + custody_config(self.custodians, DC)

    @property
    def url(self) -> str:
        return self.server.url

    def restart(self, *, config: str | None = None, wait_unsealed: bool = True) -> None:
        self.server.stop()
        self.server.extra_config = config or self.config
        self.server.start(wait_unsealed=wait_unsealed)

    def make_healthy(self) -> None:
        start_all(self.custodians)
        running = self.server.proc is not None and self.server.proc.poll() is None
        if not running or self.server.extra_config != self.config or health(self.url) != 200:
            self.restart()

    def audit_since(self, marks: list[int]) -> list[list[AuditEntry]]:
        """Each custodian's audit entries written after ``marks`` (see ``audit_marks``)."""
        return [c.audit()[mark:] for c, mark in zip(self.custodians, marks, strict=True)]

    def audit_marks(self) -> list[int]:
        return [len(c.audit()) for c in self.custodians]


@dataclass
class Custodians:
    """Three custodians serving, with the node key of each backend's server enrolled."""

    processes: list[CustodianProcess]
    data_dirs: dict[str, Path]
    node_keys: dict[str, str]


@pytest.fixture(scope="module")
def custodians(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Custodians]:
    """Set up as the operators would: each custodian ``init``s, the server's operator hands
    them the node key (``dc node-key``), they enrol it and ``serve``."""
    root = tmp_path_factory.mktemp("custody")
    processes = [CustodianProcess.for_jurisdiction(root, j) for j in JURISDICTIONS]
    data_dirs = {backend: root / f"server-{backend}" for backend in BACKENDS}
    getting = {b: launch(*node_key_args(d)) for b, d in data_dirs.items()}  # beside the inits
    init_all(processes)
    node_keys = {
        b: str(succeeded(finish(p), "dc node-key")["node_key"]) for b, p in getting.items()
    }
    enroll_in_place(processes, node_keys.values(), DC)
    try:
        start_all(processes)
        yield Custodians(processes, data_dirs, node_keys)
    finally:
        stop_all(processes)


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest, custodians: Custodians) -> Iterator[Site]:
    """The server of DC ``eu`` on one backend, started with the custodians' URLs and public
    keys in its configuration."""
    backend: str = request.param
    _require_backend(backend)
    server = ServerProcess(custodians.data_dirs[backend], backend=backend)
    site = Site(server, custodians.processes, custodians.node_keys[backend])
    try:
        site.restart()
        yield site
    finally:
        server.cleanup()


@pytest.fixture
def dc(site: Site) -> Site:
    """The module's site, healthy again whatever the test before it did."""
    site.make_healthy()
    return site


@pytest.fixture
def forger(site: Site) -> Iterator[ForgingCustodian]:
    """A fake custodian-xb: xb's id and public key, worthless answers."""
    fake = ForgingCustodian(site.custodians[0]).start()
    yield fake
    fake.stop()


async def conversation(url: str, text: str) -> tuple[Session, int]:
    """Alice writes ``text`` to Bob; returns Bob's session and their chat."""
    alice = await signed_in(url, "Alice")
    bob = await signed_in(url, "Bob")
    try:
        chat = await private_chat(alice, bob)
        await alice.send_message(chat, text)
        assert bob.session is not None
        return bob.session, chat
    finally:
        await alice.close()
        await bob.close()


async def texts_in(url: str, session: Session, chat: int) -> list[str]:
    """What a returning device reads in a chat (newest first)."""
    async with Client(url, session=session) as client:
        return [m.text or "" for m in await client.history(chat)]


def refused_unseals(entries: list[AuditEntry], code: str) -> list[AuditEntry]:
    return [e for e in entries if (e.kind, e.outcome) == ("unseal", "refused") and code in e.reason]


# k of n -------------------------------------------------------------------------------------
async def test_a_dc_unseals_at_start_with_its_custodians_and_serves(dc: Site) -> None:
    bob, chat = await conversation(dc.url, "hello from eu")

    assert await texts_in(dc.url, bob, chat) == ["hello from eu"]
    status = server_status(dc.url)
    assert status.code == 0, status.out + status.err
    eu = status.record
    assert (eu["id"], eu["jurisdiction"], eu["state"]) == ("eu", "XA", "unsealed")
    assert (eu["threshold"], eu["node_key"]) == (2, dc.node_key)
    assert [(c["id"], c["reachable"]) for c in eu["custodians"]] == [
        ("custodian-xb", True),
        ("custodian-xc", True),
        ("custodian-xd", True),
    ]
    for custodian in dc.custodians:
        granted = [e for e in custodian.audit() if (e.kind, e.outcome) == ("unseal", "granted")]
        assert (dc.node_key, "dc:eu") in {(e.requester, e.subject) for e in granted}, custodian.id


@sqlite_only
async def test_losing_one_custodian_of_three_loses_nothing(dc: Site) -> None:
    bob, chat = await conversation(dc.url, "written before the loss")
    dc.custodians[0].stop()

    dc.restart()  # waits until unsealed

    assert await texts_in(dc.url, bob, chat) == ["written before the loss"]


async def test_with_fewer_than_k_custodians_the_dc_stays_sealed_until_one_comes_back(
    dc: Site,
) -> None:
    bob, chat = await conversation(dc.url, "kept under seal")
    _, xc, xd = dc.custodians
    xc.stop()
    xd.stop()

    dc.restart(wait_unsealed=False)

    assert health(dc.url) == 503
    async with Client(dc.url) as newcomer:
        with pytest.raises(SamizdatError) as caught:
            await newcomer.send_code(new_test_phone()[0])
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert "temporarily unavailable" in caught.value.message
    with pytest.raises(SamizdatError) as caught:
        await texts_in(dc.url, bob, chat)
    assert caught.value.code is ErrorCode.UNAVAILABLE
    status = server_status(dc.url)
    assert status.code == 2, status.out + status.err
    eu = status.record
    assert eu["state"] != "unsealed"
    assert "1 of the 2 custodians needed for dc:eu answered" in eu["last_error"]
    assert [c["id"] for c in eu["custodians"] if c["reachable"]] == ["custodian-xb"]

    xc.start()

    await wait_until(lambda: health(dc.url) == 200, UNSEAL_WITHIN, "unsealing by itself")
    assert await texts_in(dc.url, bob, chat) == ["kept under seal"]


# who may ask --------------------------------------------------------------------------------
@sqlite_only
async def test_custodians_refuse_a_node_they_never_enrolled_and_log_it(
    dc: Site, tmp_path: Path
) -> None:
    stranger = ServerProcess(tmp_path / "stranger", extra_config=dc.config)
    marks = dc.audit_marks()
    try:
        stranger.start(wait_unsealed=False)
        stranger_key = dc_status(stranger.url)["node_key"]

        assert health(stranger.url) == 503
        statuses = samizdat_all(c.status_command() for c in dc.custodians)
        for custodian, status, entries in zip(
            dc.custodians, statuses, dc.audit_since(marks), strict=True
        ):
            recent = succeeded(status, f"custodian status {custodian.id}")["recent"]
            assert any(
                (e["kind"], e["outcome"]) == ("unseal", "refused")
                and "NODE_NOT_ENROLLED" in e["reason"]
                for e in recent
            ), f"{custodian.id}: {recent}"
            refused = refused_unseals(entries, "NODE_NOT_ENROLLED")
            assert {e.requester for e in refused} == {stranger_key}, custodian.id
    finally:
        stranger.cleanup()


@sqlite_only
async def test_a_node_revoked_by_enough_custodians_stays_sealed_until_enrolled_again(
    dc: Site,
) -> None:
    bob, chat = await conversation(dc.url, "before the seizure")
    # Two revocations leave the node one custodian of the two it needs; the custodians keep
    # serving while their operators revoke (the CLI is another process, the service sees it).
    revoking = dc.custodians[:2]
    revoke_all(revoking, dc.node_key)
    marks = dc.audit_marks()

    dc.restart(wait_unsealed=False)

    assert health(dc.url) == 503
    for custodian, entries in zip(dc.custodians, dc.audit_since(marks), strict=True):
        refused = refused_unseals(entries, "NODE_NOT_ENROLLED")
        expected = {dc.node_key} if custodian in revoking else set()
        assert {e.requester for e in refused} == expected, custodian.id

    enroll_all(revoking, [dc.node_key], DC)

    await wait_until(lambda: health(dc.url) == 200, UNSEAL_WITHIN, "unsealing once enrolled again")
    assert await texts_in(dc.url, bob, chat) == ["before the seizure"]


@sqlite_only
async def test_a_replayed_or_stale_unseal_request_is_refused_and_logged(dc: Site) -> None:
    node_key = NodeKey.load_or_create(dc.server.data_dir / "node.key")
    [row] = await sql(
        dc.server,
        "SELECT envelope FROM dc_keys WHERE retired_at IS NULL",
        sqlite_path=dc_sqlite_path(dc.server.data_dir, DC),
    )
    envelope = Envelope.from_bytes(bytes(row["envelope"]))
    xb = dc.custodians[0]
    now_ms = int(time.time() * 1000)
    request = signed_unseal(node_key, envelope, custodian=xb.id, dc=DC, issued_at_ms=now_ms)
    ten_minutes_ago = now_ms - 600_000
    stale = signed_unseal(node_key, envelope, custodian=xb.id, dc=DC, issued_at_ms=ten_minutes_ago)
    mark = len(xb.audit())

    first = post_unseal(xb.url, request)
    replayed = post_unseal(xb.url, request)
    late = post_unseal(xb.url, stale)

    assert first.status_code == 200
    assert (replayed.status_code, replayed.json()["code"]) == (403, "REPLAYED")
    assert (late.status_code, late.json()["code"]) == (403, "STALE")
    logged = [(e.nonce, e.outcome, e.reason.split(":")[0]) for e in xb.audit()[mark:]]
    assert logged == [
        (request.request.nonce, "granted", ""),
        (request.request.nonce, "refused", "REPLAYED"),
        (stale.request.nonce, "refused", "STALE"),
    ]


# who may answer ---------------------------------------------------------------------------
@sqlite_only
async def test_forged_custodian_answers_never_unseal_the_dc(
    dc: Site, forger: ForgingCustodian
) -> None:
    bob, chat = await conversation(dc.url, "signed by the real key")
    _, xc, xd = dc.custodians
    xd.stop()
    log_start = dc.server.log_path.stat().st_size

    dc.restart(config=TEST_LIMITS + custody_config([forger, xc, xd], DC), wait_unsealed=False)

    await wait_until(lambda: len(forger.forged) >= 3, 10, "every kind of forgery being tried")
    assert set(forger.forged) == set(ForgingCustodian.FORGERIES)
    assert health(dc.url) == 503
    xd.start()
    await wait_until(lambda: health(dc.url) == 200, UNSEAL_WITHIN, "unsealing with xc and xd")
    assert await texts_in(dc.url, bob, chat) == ["signed by the real key"]
    with dc.server.log_path.open("rb") as log:
        log.seek(log_start)
        assert b"Traceback" not in log.read()


# operators' commands while the custodian serves ---------------------------------------
def test_a_node_revoked_while_its_custodian_serves_is_refused_at_once(tmp_path: Path) -> None:
    custodian = CustodianProcess.for_jurisdiction(tmp_path, "XB").init()
    node_key = NodeKey.load_or_create(tmp_path / "node.key")
    enroll_in_place([custodian], [node_key.encoded()], DC)
    recipient = CustodianPublic.decode(custodian.public_key).recipient(custodian.id)
    envelope = seal(
        b"a DC key",
        purpose=DC_KEY_PURPOSE,
        owner=dc_key_owner(DC),
        recipients=[recipient],
        threshold=1,
    )
    custodian.start()
    try:
        revoked = samizdat(
            "custodian", "revoke-node", "--dir", str(custodian.directory), node_key.encoded()
        )
        assert revoked.code == 0, revoked.err

        now_ms = int(time.time() * 1000)
        request = signed_unseal(
            node_key, envelope, custodian=custodian.id, dc=DC, issued_at_ms=now_ms
        )
        answer = post_unseal(custodian.url, request)

        assert answer.status_code == 403, f"HTTP {answer.status_code}: {answer.text}"
        assert answer.json()["code"] == "NODE_NOT_ENROLLED"
        entries = custodian.audit()
        assert [e.kind for e in entries[-2:]] == ["revoke", "unseal"]
        assert "NODE_NOT_ENROLLED" in entries[-1].reason
    finally:
        custodian.stop()
