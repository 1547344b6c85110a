"""Key custodians in real processes, for tests of a DC whose key only they can open.

``CustodianProcess`` drives ``samizdat custodian`` as a custodian's operator would: ``init``
once, ``enroll`` a server's node key (from ``samizdat dc node-key``, see ``node_key_of``),
``start`` the service and ``stop`` or ``kill9`` it. ``custody_config`` is the ``[[dcs]]`` and
``[[custodians]]`` configuration a ``ServerProcess`` appends to its own. ``ForgingCustodian``
stands in for a custodian that answers every unseal request with a well-formed, worthless
answer; ``post_unseal`` sends a request (``tests.custody_requests.signed_unseal`` builds one
as a node would) for tests that talk to a custodian directly.

A running ``serve`` does not see node enrolments or revocations made by another process (it
read its node list at start, and its audit log refuses to append after someone else did), so
``enroll`` and ``revoke`` insist that the custodian is stopped. ``enroll_in_place`` does what
``enroll-node`` does without a process per node and custodian, for set-ups that enrol many.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

import httpx

from samizdat.crypto.custody_keys import CustodianKeys, b64, grant_share, unb64
from samizdat.crypto.threshold import SHARE_BYTES, Envelope, Share
from samizdat.custody.audit import AuditEntry, verify_log
from samizdat.custody.protocol import (
    Answer,
    CustodianInfo,
    SignedUnseal,
    answer_message,
    request_digest,
)
from samizdat.custody.service import Custodian
from tests.cli_runner import CALL_TIMEOUT, ENV, Result
from tests.custody_state import custodian_key
from tests.harness import ChildProcess, free_port

COMMAND = [sys.executable, "-m", "samizdat"]
#: Custodians of the tests' DC, one per jurisdiction, none in the DC's own (XA).
JURISDICTIONS = ("XB", "XC", "XD")


# the samizdat command --------------------------------------------------------------------
def launch(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV
    )


def finish(proc: subprocess.Popen[str]) -> Result:
    try:
        out, err = proc.communicate(timeout=CALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return Result(proc.returncode, out, err)


def samizdat(*args: str) -> Result:
    """Run one ``samizdat`` command to its end."""
    return finish(launch(*args))


def samizdat_all(commands: Iterable[Sequence[str]]) -> list[Result]:
    """Run several ``samizdat`` commands at once (each costs a second of imports)."""
    return [finish(proc) for proc in [launch(*command) for command in commands]]


def succeeded(result: Result, what: str) -> dict[str, Any]:
    assert result.code == 0, f"{what} failed ({result.code}):\n{result.out}\n{result.err}"
    return result.record


def node_key_args(data_dir: Path) -> list[str]:
    return ["dc", "node-key", "--data", str(data_dir), "--json"]


def node_key_of(data_dir: Path) -> str:
    """The node key of the server on ``data_dir`` (created now if new), as its operator gets
    it for the custodians: ``samizdat dc node-key``."""
    return str(succeeded(samizdat(*node_key_args(data_dir)), "dc node-key")["node_key"])


def server_status(url: str) -> Result:
    """``samizdat status`` of a running server: exit 0 unsealed, 2 sealed."""
    return samizdat("status", "--server", url, "--json")


# custodians --------------------------------------------------------------------------------
class ConfiguredCustodian(Protocol):
    """What a server's configuration says about a custodian."""

    @property
    def id(self) -> str: ...
    @property
    def jurisdiction(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def public_key(self) -> str: ...


@dataclass
class CustodianProcess(ChildProcess):
    """One custodian: its state directory (``init`` creates it) and, while started, its
    ``samizdat custodian serve`` on a free loopback port (log beside the directory)."""

    directory: Path
    id: str
    jurisdiction: str
    port: int = field(default_factory=free_port)
    public_key: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_jurisdiction(cls, root: Path, jurisdiction: str) -> CustodianProcess:
        custodian_id = f"custodian-{jurisdiction.lower()}"
        return cls(root / custodian_id, custodian_id, jurisdiction)

    @property
    def name(self) -> str:
        return self.id

    @property
    def log_path(self) -> Path:
        return self.directory.with_name(f"{self.directory.name}.log")

    # the operator's commands (each a separate process) -----------------------------------
    def init_command(self) -> list[str]:
        return [
            "custodian",
            *("init", "--dir", str(self.directory)),
            *("--id", self.id, "--jurisdiction", self.jurisdiction, "--json"),
        ]

    def init(self) -> CustodianProcess:
        """``samizdat custodian init``: create its keys; remember the public key it prints."""
        return self.initialised(samizdat(*self.init_command()))

    def initialised(self, result: Result) -> CustodianProcess:
        info = CustodianInfo.model_validate(succeeded(result, f"custodian init {self.id}"))
        assert (info.id, info.jurisdiction) == (self.id, self.jurisdiction)
        self.public_key = info.public_key
        return self

    def enroll_command(self, node_key: str, dc: str) -> list[str]:
        return [
            "custodian",
            *("enroll-node", "--dir", str(self.directory), node_key),
            *("--dc", dc, "--json"),
        ]

    def enroll(self, node_key: str, dc: str) -> None:
        """``samizdat custodian enroll-node``: let that node unseal ``dc``."""
        succeeded(samizdat(*self.enroll_command(node_key, dc)), f"enrol at {self.id}")

    def revoke_command(self, node_key: str) -> list[str]:
        return ["custodian", "revoke-node", "--dir", str(self.directory), node_key, "--json"]

    def revoke(self, node_key: str) -> None:
        """``samizdat custodian revoke-node``."""
        succeeded(samizdat(*self.revoke_command(node_key)), f"revoke at {self.id}")

    def status_command(self, last: int = 50) -> list[str]:
        return ["custodian", "status", "--dir", str(self.directory), "--last", str(last), "--json"]

    def status(self, last: int = 50) -> dict[str, Any]:
        """``samizdat custodian status``: who it is, its nodes, its recent audit entries."""
        return succeeded(samizdat(*self.status_command(last)), f"custodian status {self.id}")

    def audit(self) -> list[AuditEntry]:
        """Every audit entry, read from its log with the chain verified."""
        return verify_log(self.directory / "audit.log")

    def require_stopped(self, what: str) -> None:
        assert not self.running, f"stop {self.id} to {what}: a running custodian won't see it"

    # the service --------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start ``samizdat custodian serve`` without waiting for it (see ``wait_serving``)."""
        assert not self.running, f"{self.id} is already running"
        args = [*COMMAND, "custodian", "serve", "--dir", str(self.directory)]
        self.launch([*args, "--port", str(self.port)])

    def wait_serving(self, timeout: float = 20.0) -> None:
        self.wait_http("/v1/info", timeout)

    def start(self) -> CustodianProcess:
        """Serve, and return once ``GET /v1/info`` answers."""
        self.spawn()
        self.wait_serving()
        return self


def init_all(custodians: Sequence[CustodianProcess]) -> None:
    for custodian, result in zip(
        custodians, samizdat_all(c.init_command() for c in custodians), strict=True
    ):
        custodian.initialised(result)


def enroll_all(custodians: Iterable[CustodianProcess], node_keys: Iterable[str], dc: str) -> None:
    """Enrol every node at every custodian (running or not: the service sees the change)."""
    commands = [c.enroll_command(k, dc) for c in custodians for k in node_keys]
    for result in samizdat_all(commands):
        succeeded(result, "enroll-node")


def enroll_in_place(
    custodians: Iterable[CustodianProcess], node_keys: Iterable[str], dc: str
) -> None:
    """What ``enroll_all`` does, in this process: no second of imports per node and
    custodian, for set-ups that enrol many (the command itself is tested elsewhere)."""
    keys = list(node_keys)
    for custodian in custodians:
        custodian.require_stopped("enrol a node")
        state = Custodian(custodian.directory)
        for key in keys:
            state.enroll_node(key, dc)


def revoke_all(custodians: Iterable[CustodianProcess], node_key: str) -> None:
    for result in samizdat_all(c.revoke_command(node_key) for c in custodians):
        succeeded(result, "revoke-node")


def start_all(custodians: Iterable[CustodianProcess]) -> None:
    """Start every custodian not running, in parallel; return when all serve."""
    starting = [c for c in custodians if not c.running]
    for custodian in starting:
        custodian.spawn()
    for custodian in starting:
        custodian.wait_serving()


def stop_all(custodians: Iterable[CustodianProcess]) -> None:
    for custodian in custodians:
        custodian.stop()


def custody_config(
    custodians: Sequence[ConfiguredCustodian],
    dc_id: str = "eu",
    jurisdiction: str = "XA",
    threshold: int = 2,
) -> str:
    """The TOML that makes a server serve DC ``dc_id`` with these (remote) custodians; append
    it to ``ServerProcess.extra_config`` (by default ``TEST_LIMITS``)."""
    ids = ", ".join(f'"{c.id}"' for c in custodians)
    lines = [
        "",
        "[[dcs]]",
        f'id = "{dc_id}"',
        f'jurisdiction = "{jurisdiction}"',
        f"custodians = [{ids}]",
        f"threshold = {threshold}",
    ]
    for c in custodians:
        lines += [
            "",
            "[[custodians]]",
            f'id = "{c.id}"',
            f'jurisdiction = "{c.jurisdiction}"',
            f'url = "{c.url}"',
            f'public_key = "{c.public_key}"',
        ]
    return "\n".join(lines) + "\n"


def dc_sqlite_path(data_dir: Path, dc_id: str = "eu") -> Path:
    """The SQLite file of the DC a server on ``data_dir`` serves."""
    return data_dir / f"dc-{dc_id}.sqlite3"


# talking to a custodian directly --------------------------------------------------------
def post_unseal(url: str, signed: SignedUnseal) -> httpx.Response:
    return httpx.post(
        url + "/v1/unseal",
        content=signed.model_dump_json(),
        headers={"content-type": "application/json"},
        timeout=10,
    )


# a lying custodian -------------------------------------------------------------------------
class ForgingCustodian:
    """Plays custodian ``impersonated`` on a port of its own: same id and public key (so a
    server's configuration accepts it), but every unseal request gets 200 and an ``Answer``
    that parses and names the right share index, yet is worthless. It takes turns with three
    forgeries (see ``FORGERIES``); ``forged`` lists what it sent, in order."""

    FORGERIES = (
        "signed by another key",
        # a custodian lying with its own key, as one compelled or compromised might:
        "random grant, signed by the real key",
        "a well-formed share of the wrong value, signed by the real key",
    )

    def __init__(self, impersonated: CustodianProcess) -> None:
        self.id = impersonated.id
        self.jurisdiction = impersonated.jurisdiction
        self.public_key = impersonated.public_key
        self._real_keys = custodian_key(impersonated.directory)
        self._other_keys = CustodianKeys.generate()
        self.forged: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ForgingCustodian:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def info(self) -> bytes:
        info = CustodianInfo(
            id=self.id,
            jurisdiction=self.jurisdiction,
            public_key=self.public_key,
            enrolled_nodes=1,
            audit_entries=0,
            audit_head="0" * 64,
        )
        return info.model_dump_json().encode()

    def answer(self, body: bytes) -> bytes:
        request = SignedUnseal.model_validate_json(body).request
        index = Envelope.from_bytes(unb64(request.envelope)).custodians.index(self.id) + 1
        kind = self.FORGERIES[len(self.forged) % len(self.FORGERIES)]
        self.forged.append(kind)
        signer = self._real_keys
        if kind == self.FORGERIES[0]:
            signer, grant = self._other_keys, secrets.token_bytes(81)
        elif kind == self.FORGERIES[1]:
            grant = secrets.token_bytes(81)
        else:
            wrong = Share(index, secrets.token_bytes(SHARE_BYTES - 1))
            grant = grant_share(wrong, unb64(request.requester_key), request_digest(request))
        forged = Answer(
            custodian=self.id,
            index=index,
            grant=b64(grant),
            signature=b64(signer.sign(answer_message(request, grant))),
        )
        return forged.model_dump_json().encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forger = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(forger.info())

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                self._send(forger.answer(self.rfile.read(length)))

            def log_message(self, format: str, *args: Any) -> None:
                return None  # keep the test output quiet

        return Handler


# a server's health ------------------------------------------------------------------------
def health(url: str) -> int:
    """``/health``: 200 when the server serves, 503 while its DC is sealed."""
    return httpx.get(url + "/health", timeout=5).status_code


__all__ = [
    "JURISDICTIONS",
    "CustodianProcess",
    "ForgingCustodian",
    "custody_config",
    "dc_sqlite_path",
    "enroll_all",
    "enroll_in_place",
    "finish",
    "health",
    "init_all",
    "launch",
    "node_key_args",
    "node_key_of",
    "post_unseal",
    "revoke_all",
    "samizdat",
    "samizdat_all",
    "server_status",
    "start_all",
    "stop_all",
    "succeeded",
]
