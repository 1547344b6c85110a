"""Publishing and fetching end-to-end keys (Olm identity, one-time and fallback keys).

The server checks every signature before it stores anything: device keys must be signed by
their own signing key for the calling user and device (so one device's upload cannot be
replayed for another), and every one-time or fallback key by that same signing key. It stores
only public keys; it can verify them, hand them out, and nothing else.
"""

from __future__ import annotations

from samizdat.core.ids import DeviceId, UserId
from samizdat.crypto.e2ee import curve25519_valid, signature_valid
from samizdat.protocol.keys import device_keys_message, one_time_key_message
from samizdat.protocol.methods import (
    ClaimKeysParams,
    Empty,
    QueryKeysParams,
    UploadKeysParams,
)
from samizdat.protocol.methods import (
    SignedKey as SignedKeyParams,
)
from samizdat.server import wire
from samizdat.server.deps import Caller, Deps
from samizdat.store.keys import DeviceKeys, SignedKey, keys_invalid

MAX_ONE_TIME_KEYS = 200


class KeyService:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def upload(self, caller: Caller, p: UploadKeysParams) -> wire.Json:
        published = DeviceKeys(
            caller.user_id, caller.device_id, p.identity_key, p.signing_key, p.signature
        )
        message = device_keys_message(
            caller.user_id, caller.device_id, p.identity_key, p.signing_key
        )
        if not curve25519_valid(p.identity_key):
            raise keys_invalid("identity_key is not a Curve25519 public key")
        if not signature_valid(p.signing_key, message, p.signature):
            raise keys_invalid("the device keys' signature does not verify for this device")
        one_time = [
            self._checked(caller.device_id, p.signing_key, k, False) for k in p.one_time_keys
        ]
        fallback = (
            self._checked(caller.device_id, p.signing_key, p.fallback_key, True)
            if p.fallback_key is not None
            else None
        )
        store = await self.deps.dcs.user_store(caller.user_id)
        count, has_fallback = await store.keys.publish(
            published,
            one_time,
            fallback,
            now=self.deps.clock.now(),
            max_one_time_keys=MAX_ONE_TIME_KEYS,
        )
        return {"one_time_key_count": count, "fallback_key": has_fallback}

    @staticmethod
    def _checked(
        device_id: DeviceId, signing_key: str, key: SignedKeyParams, fallback: bool
    ) -> SignedKey:
        if not curve25519_valid(key.key):
            raise keys_invalid(f"key {key.key_id} is not a Curve25519 public key")
        message = one_time_key_message(device_id, key.key_id, key.key, fallback=fallback)
        if not signature_valid(signing_key, message, key.signature):
            raise keys_invalid(f"the signature on key {key.key_id} does not verify")
        return SignedKey(key.key_id, key.key, key.signature)

    async def count(self, caller: Caller, _: Empty) -> wire.Json:
        store = await self.deps.dcs.user_store(caller.user_id)
        count, has_fallback = await store.keys.counts(caller.device_id)
        return {"one_time_key_count": count, "fallback_key": has_fallback}

    async def query(self, caller: Caller, p: QueryKeysParams) -> wire.Json:
        found = await self.deps.dcs.query_keys(UserId(u) for u in p.user_ids)
        return {
            "devices": [
                {
                    "user_id": d.user_id,
                    "device_id": d.device_id,
                    "identity_key": d.identity_key,
                    "signing_key": d.signing_key,
                    "signature": d.signature,
                }
                for d in found
            ]
        }

    async def claim(self, caller: Caller, p: ClaimKeysParams) -> wire.Json:
        claimed = await self.deps.dcs.claim_keys(DeviceId(d) for d in p.device_ids)
        return {
            "keys": [
                {
                    "device_id": c.device_id,
                    "key_id": c.key.key_id,
                    "key": c.key.key,
                    "signature": c.key.signature,
                    "fallback": c.fallback,
                }
                for c in claimed
            ]
        }


__all__ = ["MAX_ONE_TIME_KEYS", "KeyService"]
