"""Sign-up/sign-in with a phone and a one-time code; device tokens; device management."""

from __future__ import annotations

import time
from typing import Any

from samizdat.bus.events import DevicesRevoked
from samizdat.core.ids import DeviceId, UserId
from samizdat.core.login_codes import CodeCheck, CodePolicy, check_code, raise_for
from samizdat.core.model import Account, Device
from samizdat.core.phone import parse_phone
from samizdat.core.ratelimit import KeyedLimiter
from samizdat.crypto import new_token, token_digest
from samizdat.protocol.errors import AuthError, ErrorCode, NotFound
from samizdat.protocol.methods import (
    Empty,
    RevokeDeviceParams,
    SendCodeParams,
    SignInParams,
)
from samizdat.protocol.models import PhoneVisibility
from samizdat.server import wire
from samizdat.server.deps import Anonymous, Caller, Deps
from samizdat.server.verifier import CodeIssuer

NEW_USER_NAME = "New user"
TOKEN_CACHE_SECONDS = 60.0


class AuthService:
    def __init__(self, deps: Deps, issuer: CodeIssuer) -> None:
        self.deps = deps
        self.issuer = issuer
        limits = deps.settings.limits
        self.policy = CodePolicy(
            ttl_seconds=deps.settings.verifier.code_ttl_seconds,
            max_attempts=deps.settings.verifier.max_attempts,
        )
        self._per_ip = KeyedLimiter[str](
            limits.auth_per_ip_per_minute / 60.0,
            limits.auth_per_ip_per_minute,
            what="login attempts",
        )
        self._per_phone = KeyedLimiter[bytes](
            limits.codes_per_phone_per_hour / 3600.0,
            limits.codes_per_phone_per_hour,
            what="login codes for this number",
        )
        # Token digest -> (caller, when cached). Revocations evict at once (``forget``); the
        # TTL is a backstop should a bus event be lost.
        self._callers: dict[bytes, tuple[Caller, float]] = {}
        self._revocations = 0
        self._digest_of: dict[int, bytes] = {}

    def _limit(self, limiter: KeyedLimiter[Any], key: object) -> None:
        """Spend one unit of ``key``'s budget (unless rate limits are off, for benchmarks)."""
        if self.deps.settings.limits.rate_limits:
            limiter.check(key, self.deps.clock.now())

    def _limit_ip(self, ip: str) -> None:
        self._limit(self._per_ip, ip)

    async def send_code(self, anon: Anonymous, p: SendCodeParams) -> wire.Json:
        self._limit_ip(anon.ip)
        phone = parse_phone(p.phone)
        store = await self.deps.dcs.home_of_number(phone)
        keyring = store.keyring
        keyring.require_unsealed()
        lookup = keyring.phone_lookup(phone.e164)
        self._limit(self._per_phone, lookup)
        code = await self.issuer.issue(phone)
        expires_at = self.deps.clock.now() + self.policy.ttl_seconds
        await store.put_code(lookup, keyring.code_digest(phone.e164, code), expires_at)
        return {"expires_in": int(self.policy.ttl_seconds), "code_length": len(code)}

    async def sign_in(self, anon: Anonymous, p: SignInParams) -> wire.Json:
        self._limit_ip(anon.ip)
        phone = parse_phone(p.phone)
        store = await self.deps.dcs.home_of_number(phone)
        store.keyring.require_unsealed()
        lookup = store.keyring.phone_lookup(phone.e164)
        now = self.deps.clock.now()
        pending = await store.claim_code_attempt(lookup, now, self.policy.max_attempts)
        outcome = check_code(
            pending, store.keyring.code_digest(phone.e164, p.code), now, self.policy
        )
        if outcome in (CodeCheck.EXPIRED, CodeCheck.TOO_MANY_ATTEMPTS):
            async with store.write() as conn:
                await store.consume_code(conn, lookup)
        raise_for(outcome)

        existing = await store.user_by_phone(lookup)
        token = new_token()
        account = existing or Account(
            id=UserId(self.deps.new_id()),
            display_name=p.display_name or NEW_USER_NAME,
            username=None,
            phone_visibility=PhoneVisibility.NOBODY,
            created_at=now,
        )
        dev = Device(DeviceId(self.deps.new_id()), account.id, p.device_name, now, now, False)
        async with store.write() as conn:
            if not await store.consume_code(conn, lookup):
                raise AuthError("this code was already used", code=ErrorCode.CODE_EXPIRED)
            if existing is None:
                await store.create_user(conn, account, phone.e164)
            await store.create_device(conn, dev, token_digest(token))
        self.deps.dcs.note_user(account.id, store)
        await self._log_ip(account.id, dev.id, anon.ip)
        return {
            "token": token,
            "device_id": dev.id,
            "user": wire.user(account, phone=phone.e164, own=True),
            "new_user": existing is None,
        }

    async def authenticate(self, token: str, ip: str) -> Caller:
        """Resolve a device token; raise UNAUTHORIZED or TOKEN_REVOKED.

        A token that fails is a failed login: it spends the address's login budget, so an
        address that keeps presenting bad tokens gets FLOOD_WAIT, as one guessing codes does.
        Good tokens spend nothing.
        """
        digest = token_digest(token)
        cached = self._callers.get(digest)
        now = time.monotonic()
        if cached is not None and now - cached[1] < TOKEN_CACHE_SECONDS:
            await self._log_ip(cached[0].user_id, cached[0].device_id, ip)
            return Caller(cached[0].user_id, cached[0].device_id, ip)
        revocations = self._revocations
        dev = await self.deps.dcs.device_by_token(digest)
        if dev is None or dev.revoked:
            self._limit_ip(ip)
        if dev is None:
            raise AuthError("unknown device token; sign in again")
        if dev.revoked:
            raise AuthError(
                "this device was logged out; sign in again", code=ErrorCode.TOKEN_REVOKED
            )
        caller = Caller(dev.user_id, dev.id, ip)
        if revocations == self._revocations:  # no revocation raced the read: safe to cache
            if len(self._callers) > 100_000:
                self._callers.clear()
                self._digest_of.clear()
            self._callers[digest] = (caller, now)
            self._digest_of[dev.id] = digest
        await self._log_ip(dev.user_id, dev.id, ip)
        return caller

    async def _log_ip(self, user_id: UserId, device_id: DeviceId, ip: str) -> None:
        """Every address a device uses goes into its home DC's sealed IP log (once a day each).

        Skipped while the DC is sealed: nothing can be done then, so nothing is logged."""
        store = await self.deps.dcs.find_user(user_id)
        if store is not None and store.keyring.unsealed:
            store.identity.note_ip(user_id, device_id, ip, self.deps.clock.now())

    @property
    def revocations(self) -> int:
        """How many revocation events this node has seen; compare before and after a wait."""
        return self._revocations

    async def is_revoked(self, device_id: int) -> bool:
        """Read the device from the store, not the cache (for a check after a race)."""
        devices = await self.deps.dcs.list_devices_by_id([DeviceId(device_id)])
        return not devices or devices[0].revoked

    def forget(self, device_ids: tuple[int, ...]) -> None:
        """Drop cached tokens of revoked devices (called for every DevicesRevoked event)."""
        self._revocations += 1
        for device_id in device_ids:
            digest = self._digest_of.pop(device_id, None)
            if digest is not None:
                self._callers.pop(digest, None)

    async def on_connect(self, caller: Caller) -> None:
        store = await self.deps.dcs.user_store(caller.user_id)
        store.touch_device(caller.device_id, self.deps.clock.now())

    # --- devices -------------------------------------------------------------------------
    async def list_devices(self, caller: Caller, _: Empty) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        devices = await store.list_devices(caller.user_id)
        return {"devices": [wire.device(d, current=d.id == caller.device_id) for d in devices]}

    async def revoke(self, caller: Caller, p: RevokeDeviceParams) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        revoked = await store.revoke_devices(
            caller.user_id, [DeviceId(p.device_id)], self.deps.clock.now()
        )
        if not revoked:
            raise NotFound("no such device of yours", code=ErrorCode.DEVICE_NOT_FOUND)
        await self.deps.dcs.drop_secrets_for([DeviceId(p.device_id)])
        await self.deps.publish(DevicesRevoked((p.device_id,)))
        return {"ok": True}

    async def revoke_others(self, caller: Caller, _: Empty) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        others = [d.id for d in await store.list_devices(caller.user_id)]
        others = [d for d in others if d != caller.device_id]
        count = await store.revoke_devices(caller.user_id, others, self.deps.clock.now())
        if others:
            await self.deps.dcs.drop_secrets_for(others)
            await self.deps.publish(DevicesRevoked(tuple(others)))
        return {"revoked": count}


__all__ = ["AuthService"]
