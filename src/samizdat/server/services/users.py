"""Profiles, usernames, contacts and user lookup, with the phone-number privacy rule applied."""

from __future__ import annotations

import hmac

from samizdat.core.ids import UserId
from samizdat.core.model import Account
from samizdat.core.phone import parse_phone
from samizdat.core.ratelimit import KeyedLimiter
from samizdat.core.rules import normalize_username, phone_visible_to
from samizdat.protocol.errors import ErrorCode, NotFound, ProtocolError, SamizdatError
from samizdat.protocol.methods import (
    Empty,
    ResolveParams,
    SetUsernameParams,
    UpdateProfileParams,
    UserIdParams,
)
from samizdat.protocol.models import PhoneVisibility
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps

PHONE_LOOKUPS_PER_HOUR = 30


class UserService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps
        # Looking people up by number is how a state maps numbers to accounts: a user gets
        # a handful of lookups an hour, whether they find anyone or not.
        self._phone_lookups = KeyedLimiter[int](
            PHONE_LOOKUPS_PER_HOUR / 3600.0, PHONE_LOOKUPS_PER_HOUR, what="lookups by phone number"
        )

    async def view(self, account: Account, viewer: UserId) -> wire.Json:
        """A user as ``viewer`` may see them: the phone only if the owner's setting allows."""
        store = await self.deps.dcs.user_store(account.id)
        own = account.id == viewer
        is_contact = (not own) and await store.is_contact_of(account.id, viewer)
        visible = phone_visible_to(
            account.phone_visibility, owner=account.id, viewer=viewer, viewer_is_contact=is_contact
        )
        phone = await store.user_phone(account.id) if visible else None
        return wire.user(account, phone=phone, own=own)

    async def _account(self, user_id: UserId) -> Account:
        account = await self.deps.dcs.get_user(user_id)
        if account is None:
            raise NotFound("no such user", code=ErrorCode.USER_NOT_FOUND)
        return account

    async def me(self, caller: Caller, _: Empty) -> wire.Json:
        return await self.view(await self._account(caller.user_id), caller.user_id)

    async def get(self, caller: Caller, p: UserIdParams) -> wire.Json:
        return await self.view(await self._account(UserId(p.user_id)), caller.user_id)

    async def resolve(self, caller: Caller, p: ResolveParams) -> wire.Json:
        """Find by @username, or by +phone (you must already know the number to ask)."""
        dcs = self.deps.dcs
        peer = p.peer.strip()
        found: Account | None
        if peer.startswith("+"):
            self._phone_lookups.check(caller.user_id, self.deps.clock.now())
            try:
                phone = parse_phone(peer)
            except SamizdatError:
                raise NotFound("no user with that number", code=ErrorCode.USER_NOT_FOUND) from None
            home = await dcs.home_of_number(phone)
            home.keyring.require_unsealed()
            found = await home.user_by_phone(home.keyring.phone_lookup(phone.e164))
        else:
            try:
                _, key = normalize_username(peer)
            except SamizdatError:
                raise NotFound(
                    "no user with that username", code=ErrorCode.USER_NOT_FOUND
                ) from None
            found = await dcs.user_by_username(key)
        if found is None:
            raise NotFound(f"no user found for {peer[:1]}…", code=ErrorCode.USER_NOT_FOUND)
        return await self.view(found, caller.user_id)

    async def update_profile(self, caller: Caller, p: UpdateProfileParams) -> wire.Json:
        """Showing the number needs the client to send it: the server keeps only a copy
        sealed to the custodians, which it cannot read, plus this one while it is shown."""
        store = await self.deps.dcs.user_store(caller.user_id)
        shown: str | None = None
        if p.phone_visibility not in (None, PhoneVisibility.NOBODY):
            if p.phone is None:
                raise ProtocolError(
                    "to let others see your number, send it too (phone): the server keeps "
                    "no copy it can read",
                    code=ErrorCode.INVALID_PARAMS,
                )
            shown = parse_phone(p.phone).e164
            lookup = await store.phone_lookup_of(caller.user_id)
            if lookup is None or not hmac.compare_digest(lookup, store.keyring.phone_lookup(shown)):
                raise ProtocolError(
                    "that is not the number of this account", code=ErrorCode.PHONE_INVALID
                )
        await store.update_profile(caller.user_id, p.display_name, p.phone_visibility, shown)
        return await self.me(caller, Empty())

    async def set_username(self, caller: Caller, p: SetUsernameParams) -> wire.Json:
        if p.username is None or p.username == "":
            await self.deps.dcs.set_username(caller.user_id, None, None)
        else:
            await self.deps.dcs.set_username(caller.user_id, *normalize_username(p.username))
        return await self.me(caller, Empty())

    async def add_contact(self, caller: Caller, p: UserIdParams) -> wire.Json:
        await self._account(UserId(p.user_id))
        store = await self.deps.dcs.user_store(caller.user_id)
        await store.add_contact(caller.user_id, UserId(p.user_id))
        return {"ok": True}

    async def remove_contact(self, caller: Caller, p: UserIdParams) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        await store.remove_contact(caller.user_id, UserId(p.user_id))
        return {"ok": True}

    async def contacts(self, caller: Caller, _: Empty) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        ids = await store.contact_ids(caller.user_id)
        accounts = await self.deps.dcs.get_users(ids)
        return {
            "users": [await self.view(accounts[i], caller.user_id) for i in ids if i in accounts]
        }


__all__ = ["UserService"]
