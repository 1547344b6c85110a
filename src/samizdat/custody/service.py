"""A custodian: its state directory, and the two requests it answers (unseal, disclose).

State directory (created by ``samizdat custodian init``)::

    custodian.json  id, jurisdiction
    custodian.key   X25519 + Ed25519 private keys (0600); never leaves this process
    nodes.json      enrolled DC nodes (public key -> DC)
    courts.json     courts of this custodian's jurisdiction it recognises (name -> key)
    audit.log       every request answered or refused, hash-chained (audit.py)

Every request ends in exactly one audit entry, granted or refused, written (and fsynced)
before the answer leaves, so there is no answer the log does not show.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from samizdat.crypto.custody_keys import (
    CustodianKeys,
    KeyFormatError,
    decode_node_key,
    grant_share,
)
from samizdat.crypto.private_files import write_private
from samizdat.crypto.threshold import Envelope, EnvelopeError, Share
from samizdat.custody.audit import AuditLog
from samizdat.custody.policy import (
    Court,
    EnrolledNode,
    Refusal,
    RefusalCode,
    check_disclose,
    check_unseal,
)
from samizdat.custody.protocol import (
    FRESHNESS_SECONDS,
    Answer,
    CustodianInfo,
    DiscloseRequest,
    SignedUnseal,
    UnsealRequest,
    answer_message,
    b64,
    request_digest,
    unb64,
)

log = logging.getLogger(__name__)
_ID_FILE = "custodian.json"
_KEY_FILE = "custodian.key"
_NODES_FILE = "nodes.json"
_COURTS_FILE = "courts.json"
_AUDIT_FILE = "audit.log"


class CustodianStateError(RuntimeError):
    """The state directory is missing, incomplete or already initialised; says which."""


def _write_json(path: Path, data: object) -> None:
    write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def _read_json(path: Path) -> object:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise CustodianStateError(f"{path} is missing; run `samizdat custodian init`") from None
    except orjson.JSONDecodeError as exc:
        raise CustodianStateError(f"{path} is not valid JSON: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Identity:
    custodian_id: str
    jurisdiction: str


class Custodian:
    """One custodian's policy, keys and audit log. Not thread-safe: one event loop drives it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        raw = _read_json(directory / _ID_FILE)
        if not isinstance(raw, dict) or not {"id", "jurisdiction"} <= raw.keys():
            raise CustodianStateError(f"{directory / _ID_FILE} lacks id or jurisdiction")
        self.identity = Identity(str(raw["id"]), str(raw["jurisdiction"]))
        try:
            self._keys = CustodianKeys.load(directory / _KEY_FILE)
        except KeyFormatError as exc:
            raise CustodianStateError(str(exc)) from exc
        self.audit = AuditLog(directory / _AUDIT_FILE)
        self.nodes = self._load_nodes()
        self.courts = self._load_courts()
        self._state_stamp = self._stamp()

    # set-up -------------------------------------------------------------------------------
    @classmethod
    def init(cls, directory: Path, custodian_id: str, jurisdiction: str) -> Custodian:
        """Create a new custodian's state; refuses to overwrite an existing one."""
        if (directory / _KEY_FILE).exists():
            raise CustodianStateError(f"{directory} already holds a custodian; not overwriting")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        CustodianKeys.generate().save(directory / _KEY_FILE)
        _write_json(directory / _NODES_FILE, [])
        _write_json(directory / _COURTS_FILE, [])
        _write_json(directory / _ID_FILE, {"id": custodian_id, "jurisdiction": jurisdiction})
        return cls(directory)

    @property
    def public_key(self) -> str:
        return self._keys.public.encode()

    def _load_nodes(self) -> dict[str, EnrolledNode]:
        raw = _read_json(self.directory / _NODES_FILE)
        if not isinstance(raw, list):
            raise CustodianStateError(f"{self.directory / _NODES_FILE} must be a list")
        return {
            str(n["node_key"]): EnrolledNode(str(n["node_key"]), str(n["dc"]), float(n["at"]))
            for n in raw
        }

    def _load_courts(self) -> dict[str, Court]:
        raw = _read_json(self.directory / _COURTS_FILE)
        if not isinstance(raw, list):
            raise CustodianStateError(f"{self.directory / _COURTS_FILE} must be a list")
        return {str(c["name"]): Court(str(c["name"]), unb64(str(c["key"]))) for c in raw}

    def _save_nodes(self) -> None:
        _write_json(
            self.directory / _NODES_FILE,
            [
                {"node_key": n.node_key, "dc": n.dc, "at": n.enrolled_at}
                for n in self.nodes.values()
            ],
        )

    def enroll_node(self, node_key: str, dc: str) -> EnrolledNode:
        """Let this node unseal ``dc``'s key. Raises KeyFormatError for a malformed key."""
        decode_node_key(node_key)
        node = EnrolledNode(node_key, dc, time.time())
        self.nodes[node_key] = node
        self._save_nodes()
        self.audit.append(
            at=node.enrolled_at,
            kind="enroll",
            outcome="done",
            requester="operator",
            subject=f"dc:{dc}",
            reason=node_key,
        )
        return node

    def revoke_node(self, node_key: str) -> bool:
        """Stop answering this node (e.g. its machine was seized). True if it was enrolled."""
        node = self.nodes.pop(node_key, None)
        if node is None:
            return False
        self._save_nodes()
        self.audit.append(
            at=time.time(),
            kind="revoke",
            outcome="done",
            requester="operator",
            subject=f"dc:{node.dc}",
            reason=node_key,
        )
        return True

    def add_court(self, name: str, public_key: bytes) -> None:
        if len(public_key) != 32:
            raise KeyFormatError("a court's Ed25519 public key is 32 bytes")
        self.courts[name] = Court(name, public_key)
        _write_json(
            self.directory / _COURTS_FILE,
            [{"name": c.name, "key": b64(c.public_key)} for c in self.courts.values()],
        )
        self.audit.append(
            at=time.time(), kind="court", outcome="done", requester="operator", subject=name
        )

    def info(self) -> CustodianInfo:
        self.refresh()
        return CustodianInfo(
            id=self.identity.custodian_id,
            jurisdiction=self.identity.jurisdiction,
            public_key=self.public_key,
            enrolled_nodes=len(self.nodes),
            audit_entries=len(self.audit),
            audit_head=self.audit.head,
        )

    # requests -----------------------------------------------------------------------------
    def _stamp(self) -> tuple[int, int]:
        return tuple(  # type: ignore[return-value]
            (self.directory / name).stat().st_mtime_ns for name in (_NODES_FILE, _COURTS_FILE)
        )

    def refresh(self) -> None:
        """Take in what the operator's CLI changed meanwhile (another process): enrolled or
        revoked nodes, courts, and the audit entries (and nonces) it appended. A revoked node
        is refused from its very next request."""
        self.audit.refresh()
        if len(self.audit.nonces) > 10_000:
            self.audit.prune_nonces(time.time() - 2 * FRESHNESS_SECONDS)
        stamp = self._stamp()
        if stamp != self._state_stamp:
            self.nodes, self.courts, self._state_stamp = (
                self._load_nodes(),
                self._load_courts(),
                stamp,
            )

    def refuse(
        self,
        kind: str,
        refusal: Refusal,
        *,
        requester: str = "",
        subject: str = "",
        nonce: str = "",
        now: float | None = None,
    ) -> Refusal:
        """Log a refusal and hand it back to raise. Its nonce counts as used from now on (the
        log's nonces are the custodian's memory of requests, across restarts too)."""
        at = time.time() if now is None else now
        self.audit.append(
            at=at,
            kind=kind,
            outcome="refused",
            reason=f"{refusal.code}: {refusal.message}",
            requester=requester[:80],
            subject=subject[:200],
            nonce=nonce[:32],
        )
        log.info("custodian refused", extra={"kind": kind, "code": str(refusal.code)})
        return refusal

    def unseal(self, signed: SignedUnseal, *, now: float | None = None) -> Answer:
        """Answer a node's unseal request, or raise Refusal (logged either way)."""
        request = signed.request

        def check(envelope: Envelope, at: float) -> None:
            check_unseal(
                request,
                signed.signature,
                envelope,
                custodian_id=self.identity.custodian_id,
                nodes=self.nodes,
                seen_nonces=self.audit.nonces,
                now_ms=int(at * 1000),
            )

        return self._answer("unseal", request, request.node_key, check, now)

    def disclose(self, request: DiscloseRequest, *, now: float | None = None) -> Answer:
        """Answer a disclosure request against a court order, or raise Refusal (logged)."""

        def check(envelope: Envelope, at: float) -> None:
            check_disclose(
                request,
                envelope,
                custodian_id=self.identity.custodian_id,
                jurisdiction=self.identity.jurisdiction,
                courts=self.courts,
                seen_nonces=self.audit.nonces,
                now_ms=int(at * 1000),
            )

        requester = request.order.order.court if request.order else "(no order)"
        return self._answer("disclose", request, requester, check, now)

    def _answer(
        self,
        kind: str,
        request: UnsealRequest | DiscloseRequest,
        requester: str,
        check: Callable[[Envelope, float], None],
        now: float | None,
    ) -> Answer:
        """Parse the envelope, run the policy ``check``, grant: every way out of here leaves
        exactly one audit entry."""
        self.refresh()
        at = time.time() if now is None else now
        try:
            envelope = Envelope.from_bytes(unb64(request.envelope))
        except (EnvelopeError, ValueError):
            refusal = Refusal(RefusalCode.MALFORMED, "the envelope is malformed")
            raise self.refuse(
                kind, refusal, requester=requester, nonce=request.nonce, now=at
            ) from None
        try:
            check(envelope, at)
            share, grant = self._share_for(request, envelope)
        except Refusal as refusal:
            raise self.refuse(
                kind,
                refusal,
                requester=requester,
                subject=envelope.owner,
                nonce=request.nonce,
                now=at,
            ) from None
        return self._grant(kind, request, envelope, requester, at, share, grant)

    def _share_for(
        self, request: UnsealRequest | DiscloseRequest, envelope: Envelope
    ) -> tuple[Share, bytes]:
        """Open this custodian's share and seal it to the requester (a Refusal if it can't)."""
        try:
            share = self._keys.open_share(envelope, self.identity.custodian_id)
            grant = grant_share(share, unb64(request.requester_key), request_digest(request))
        except (EnvelopeError, ValueError):
            raise Refusal(
                RefusalCode.NO_SHARE, "this envelope holds no share that opens here"
            ) from None
        return share, grant

    def _grant(
        self,
        kind: str,
        request: UnsealRequest | DiscloseRequest,
        envelope: Envelope,
        requester: str,
        now: float,
        share: Share,
        grant: bytes,
    ) -> Answer:
        self.audit.append(
            at=now,
            kind=kind,
            outcome="granted",
            requester=requester[:80],
            subject=envelope.owner,
            nonce=request.nonce,
        )
        return Answer(
            custodian=self.identity.custodian_id,
            index=share.index,
            grant=b64(grant),
            signature=b64(self._keys.sign(answer_message(request, grant))),
        )


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], body: bytes) -> M:
    """Parse a request body strictly; ValidationError and bad JSON become Refusal(MALFORMED)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refusal(RefusalCode.MALFORMED, f"{where}: {first['msg']}") from None


__all__ = ["Custodian", "CustodianStateError", "Identity", "parse_model"]
