"""The RPC table: method name -> parameter model -> service call. Shared by WebSocket and HTTP.

``dispatch`` is where every request is parsed (strict pydantic, once), authorised, rate
limited, run, and where every error becomes a typed, client-safe error: anything that is not
a SamizdatError is logged with its traceback and reaches the client as a bare INTERNAL.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from samizdat.core.ratelimit import KeyedLimiter
from samizdat.protocol.errors import ErrorCode, InternalError, ProtocolError, SamizdatError
from samizdat.protocol.methods import METHODS, Method
from samizdat.server import wire
from samizdat.server.deps import Anonymous, Caller, Deps
from samizdat.server.services.auth import AuthService
from samizdat.server.services.chats import ChatService
from samizdat.server.services.keys import KeyService
from samizdat.server.services.messages import MessageService
from samizdat.server.services.secret import SecretService
from samizdat.server.services.sync import SyncService
from samizdat.server.services.users import UserService

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Awaitable[wire.Json]]


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "params"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


class Dispatcher:
    def __init__(self, deps: Deps, auth: AuthService) -> None:
        self.deps = deps
        self.auth = auth
        users = UserService(deps)
        chats = ChatService(deps)
        messages = MessageService(deps)
        sync = SyncService(deps)
        keys = KeyService(deps)
        secret = SecretService(deps)
        limits = deps.settings.limits
        self._limiter = KeyedLimiter[int](limits.requests_per_second, limits.request_burst)
        self._rate_limits = limits.rate_limits
        self.handlers: dict[str, Handler] = {
            "auth.send_code": auth.send_code,
            "auth.sign_in": auth.sign_in,
            "users.me": users.me,
            "users.get": users.get,
            "users.resolve": users.resolve,
            "profile.update": users.update_profile,
            "profile.set_username": users.set_username,
            "contacts.add": users.add_contact,
            "contacts.remove": users.remove_contact,
            "contacts.list": users.contacts,
            "devices.list": auth.list_devices,
            "devices.revoke": auth.revoke,
            "devices.revoke_others": auth.revoke_others,
            "chats.open_private": chats.open_private,
            "chats.get": chats.get,
            "chats.members": chats.members,
            "groups.create": chats.create_group,
            "groups.add": chats.add,
            "groups.remove": chats.remove,
            "groups.leave": chats.leave,
            "groups.rename": chats.rename,
            "groups.set_admin": chats.set_admin,
            "messages.send": messages.send,
            "messages.forward": messages.forward,
            "messages.edit": messages.edit,
            "messages.delete": messages.delete,
            "messages.react": messages.react,
            "messages.read": messages.read,
            "messages.typing": messages.typing,
            "messages.history": messages.history,
            "dialogs.list": messages.dialogs,
            "keys.upload": keys.upload,
            "keys.count": keys.count,
            "keys.query": keys.query,
            "keys.claim": keys.claim,
            "secret.send": secret.send,
            "secret.pending": secret.pending,
            "secret.ack": secret.ack,
            "updates.state": sync.state,
            "updates.difference": sync.difference,
        }
        missing = {m for m, spec in METHODS.items() if spec.http} - self.handlers.keys()
        if missing:
            raise RuntimeError(f"methods without a handler: {sorted(missing)}")

    def method(self, name: str) -> Method:
        spec = METHODS.get(name)
        if spec is None:
            raise ProtocolError(f"unknown method {name[:64]!r}", code=ErrorCode.UNKNOWN_METHOD)
        return spec

    def parse(self, spec: Method, params: dict[str, Any] | BaseModel) -> BaseModel:
        if isinstance(params, spec.params):
            return params
        try:
            return spec.params.model_validate(params)
        except ValidationError as exc:
            raise ProtocolError(_describe(exc), code=ErrorCode.INVALID_PARAMS) from None

    def check_rate(self, caller: Caller) -> None:
        if self._rate_limits:
            self._limiter.check(caller.device_id, self.deps.clock.now())

    async def call(self, spec: Method, who: Caller | Anonymous, params: BaseModel) -> wire.Json:
        """Run one parsed request; errors that are not ours become INTERNAL (logged here)."""
        try:
            if isinstance(who, Caller):
                await self.deps.dcs.user_store(who.user_id)  # sealed: UNAVAILABLE
            else:
                self.deps.dcs.require_any_unsealed()
            result = await self.handlers[spec.name](who, params)
        except SamizdatError as exc:
            self.deps.metrics.requests.labels(spec.name, exc.code.value).inc()
            if exc.code is ErrorCode.INTERNAL:
                # Raised on purpose but still a failure (a sealed record that will not open):
                # the operator gets the details, the client a bare INTERNAL like any other.
                log.error(
                    "internal error",
                    exc_info=exc,
                    extra={"method": spec.name, "debug": exc.debug_context},
                )
                raise InternalError() from exc
            if exc.debug_context:
                log.info(
                    "request refused",
                    extra={"method": spec.name, "code": exc.code.value, "debug": exc.debug_context},
                )
            raise
        except Exception as exc:
            self.deps.metrics.requests.labels(spec.name, ErrorCode.INTERNAL.value).inc()
            log.exception("unexpected error", extra={"method": spec.name})
            raise InternalError() from exc
        self.deps.metrics.requests.labels(spec.name, "ok").inc()
        return result


__all__ = ["Dispatcher"]
