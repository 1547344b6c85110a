"""A custodian: its state directory, and the two requests it answers (unseal, disclose).

State directory (created by ``samizdat custodian init``)::

    custodian.json  id, jurisdiction
    custodian.key   X25519 + Ed25519 private keys (0600); never leaves this process
    nodes.json      enrolled DC nodes (public key -> DC)
    courts.json     courts of this custodian's jurisdiction it recognises (name -> key)
    orders.json     orders by @username or phone number, bound to the one user they were
                    first granted for (order digest -> user id); written only by the serving
                    custodian, before the grant leaves
    audit.log       every request answered or refused, hash-chained (audit.py)

Every request ends in exactly one audit entry, granted or refused, written (and fsynced)
before the answer leaves, so there is no answer the log does not show. A disclosure's entry
names the record, the order that was presented (its digest) and, for an order by @username or
phone number, which of the two the user was resolved from: never the username or number.
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
    RESOLVED_KINDS,
    Court,
    EnrolledNode,
    Refusal,
    RefusalCode,
    check_disclose,
    check_unseal,
    subject_kind,
)
from samizdat.custody.protocol import (
    FRESHNESS_SECONDS,
    Answer,
    CustodianInfo,
    DiscloseRequest,
    SignedDisclose,
    SignedUnseal,
    UnsealRequest,
    answer_message,
    b64,
    order_digest,
    request_digest,
    unb64,
)

log = logging.getLogger(__name__)
_ID_FILE = "custodian.json"
_KEY_FILE = "custodian.key"
_NODES_FILE = "nodes.json"
_COURTS_FILE = "courts.json"
_ORDERS_FILE = "orders.json"
_AUDIT_FILE = "audit.log"
#: Longest ``requester`` and ``subject`` of an audit entry.
_REQUESTER_MAX = 80
_SUBJECT_MAX = 200
#: Hex digits of an order's digest an audit entry names it by.
_ORDER_IN_LOG = 32

#: The policy check of one request kind, run on its parsed envelope at a time. It returns
#: what must be made durable before a grant is logged and returned (or None).
Check = Callable[[Envelope, float], Callable[[], None] | None]


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


def disclose_subject(owner: str, request: DiscloseRequest) -> str:
    """A disclosure's audit subject: the record's owner, the order presented (the first hex of
    its digest) and, when the node resolved the order's @username or phone number to a user,
    which of the two (``via:username``/``via:phone``); never the username or number itself.
    E.g. ``dc:xa/user:7/phone order:3f2a... via:username``."""
    tags = []
    if request.order is not None:
        tags.append(f"order:{order_digest(request.order)[:_ORDER_IN_LOG]}")
        kind = subject_kind(request.order.order.subject)
        if kind in RESOLVED_KINDS and request.resolved_user is not None:
            tags.append(f"via:{kind}")
    suffix = " ".join(tags)
    room = _SUBJECT_MAX - len(suffix) - 1
    return " ".join(part for part in (owner[:room], suffix) if part)


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
        if not (directory / _ORDERS_FILE).exists():  # a directory from before order binding
            _write_json(directory / _ORDERS_FILE, {})
        self.nodes = self._load_nodes()
        self.courts = self._load_courts()
        #: Order digest -> the one user an order by @username or phone number opens.
        self.order_users = self._load_order_users()
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
        _write_json(directory / _ORDERS_FILE, {})
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

    def _load_order_users(self) -> dict[str, int]:
        path = self.directory / _ORDERS_FILE
        raw = _read_json(path)
        if not isinstance(raw, dict) or not all(
            isinstance(user, int) and not isinstance(user, bool) for user in raw.values()
        ):
            raise CustodianStateError(f"{path} must map order digests to user ids")
        return {str(order): int(user) for order, user in raw.items()}

    def _bind_order(self, order: str, user_id: int) -> None:
        """Bind an order to the user it is granted for; durable when this returns."""
        if self.order_users.get(order) == user_id:
            return
        bound = {**self.order_users, order: user_id}
        _write_json(self.directory / _ORDERS_FILE, bound)
        # Our own write: the next ``refresh`` need not reload every state file for it.
        self.order_users, self._state_stamp = bound, self._stamp()

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
    def _stamp(self) -> tuple[int, ...]:
        return tuple(
            (self.directory / name).stat().st_mtime_ns
            for name in (_NODES_FILE, _COURTS_FILE, _ORDERS_FILE)
        )

    def refresh(self) -> None:
        """Take in what the operator's CLI (or another process) changed meanwhile: enrolled
        or revoked nodes, courts, order bindings, and the audit entries (and nonces) it
        appended. A revoked node is refused from its very next request."""
        self.audit.refresh()
        if len(self.audit.nonces) > 10_000:
            self.audit.prune_nonces(time.time() - 2 * FRESHNESS_SECONDS)
        stamp = self._stamp()
        if stamp != self._state_stamp:
            self.nodes, self.courts, self.order_users, self._state_stamp = (
                self._load_nodes(),
                self._load_courts(),
                self._load_order_users(),
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
            requester=requester[:_REQUESTER_MAX],
            subject=subject[:_SUBJECT_MAX],
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

        return self._answer("unseal", request, request.node_key, check, lambda owner: owner, now)

    def disclose(self, signed: SignedDisclose, *, now: float | None = None) -> Answer:
        """Answer a node's disclosure request against a court order, or raise Refusal (logged
        either way). An order by @username or phone number is bound to its first granted user
        (``orders.json``) before the grant leaves; any other user is refused from then on."""
        request = signed.request

        def check(envelope: Envelope, at: float) -> Callable[[], None] | None:
            disclosure = check_disclose(
                request,
                signed.signature,
                envelope,
                custodian_id=self.identity.custodian_id,
                jurisdiction=self.identity.jurisdiction,
                nodes=self.nodes,
                courts=self.courts,
                order_users=self.order_users,
                seen_nonces=self.audit.nonces,
                now_ms=int(at * 1000),
            )
            if not disclosure.binds:
                return None
            return lambda: self._bind_order(disclosure.order, disclosure.user_id)

        requester = request.order.order.court if request.order else "(no order)"
        return self._answer(
            "disclose",
            request,
            requester,
            check,
            lambda owner: disclose_subject(owner, request),
            now,
        )

    def _answer(
        self,
        kind: str,
        request: UnsealRequest | DiscloseRequest,
        requester: str,
        check: Check,
        subject: Callable[[str], str],
        now: float | None,
    ) -> Answer:
        """Parse the envelope, run the policy ``check``, grant: every way out of here leaves
        exactly one audit entry (whose subject is ``subject`` of the envelope's owner), but
        for an OSError or AuditError, when nothing is granted either."""
        self.refresh()
        at = time.time() if now is None else now
        try:
            envelope = Envelope.from_bytes(unb64(request.envelope))
        except (EnvelopeError, ValueError):
            refusal = Refusal(RefusalCode.MALFORMED, "the envelope is malformed")
            raise self.refuse(
                kind, refusal, requester=requester, subject=subject(""), nonce=request.nonce, now=at
            ) from None
        try:
            before_grant = check(envelope, at)
            share, grant = self._share_for(request, envelope)
        except Refusal as refusal:
            raise self.refuse(
                kind,
                refusal,
                requester=requester,
                subject=subject(envelope.owner),
                nonce=request.nonce,
                now=at,
            ) from None
        if before_grant is not None:  # e.g. an order's binding: on disk before the grant exists
            before_grant()
        return self._grant(kind, request, subject(envelope.owner), requester, at, share, grant)

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
        subject: str,
        requester: str,
        now: float,
        share: Share,
        grant: bytes,
    ) -> Answer:
        self.audit.append(
            at=now,
            kind=kind,
            outcome="granted",
            requester=requester[:_REQUESTER_MAX],
            subject=subject[:_SUBJECT_MAX],
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


__all__ = ["Custodian", "CustodianStateError", "Identity", "disclose_subject", "parse_model"]
