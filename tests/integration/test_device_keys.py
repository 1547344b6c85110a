"""The end-to-end device-key directory: devices publish signed keys; others look them up and
claim one-time keys to start Olm sessions with them.

The server cannot read end-to-end encrypted messages, but it could still betray users by
handing out keys that are not theirs or by handing the same one-time key to two senders. So it
checks every signature before storing anything, stores an upload all or nothing, and gives
each one-time key to one claimer only, however many claim at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import vodozemac

from samizdat.client import Client
from samizdat.crypto.e2ee import DeviceCrypto
from samizdat.protocol.errors import ErrorCode
from samizdat.protocol.keys import device_keys_message, one_time_key_message
from tests.harness import ServerProcess, signed_in
from tests.inbox import another_device, refused, uid
from tests.raw_socket import RawSocket, device_id_of, error_code

pytestmark = pytest.mark.timeout(90)

NONE = {"one_time_key_count": 0, "fallback_key": False}


def verifies(signing_key: str, message: bytes, signature: str) -> bool:
    public = vodozemac.Ed25519PublicKey.from_base64(signing_key)
    try:
        public.verify_signature(message, vodozemac.Ed25519Signature.from_base64(signature))
    except vodozemac.SignatureException:
        return False
    return True


def otk_verifies(signing_key: str, claimed: dict[str, Any]) -> bool:
    message = one_time_key_message(
        claimed["device_id"], claimed["key_id"], claimed["key"], fallback=claimed["fallback"]
    )
    return verifies(signing_key, message, claimed["signature"])


class RawAccount:
    """A vodozemac account driven by hand, to sign exactly what a test needs (forgeries,
    malformed keys) with the protocol's message builders."""

    def __init__(self) -> None:
        self.account = vodozemac.Account()
        self.identity_key = self.account.curve25519_key.to_base64()
        self.signing_key = self.account.ed25519_key.to_base64()

    def sign(self, message: bytes) -> str:
        return str(self.account.sign(message).to_base64())

    def device_keys(
        self,
        user_id: int,
        device_id: int,
        *,
        identity_key: str | None = None,
        signing_key: str | None = None,
    ) -> dict[str, str]:
        identity = self.identity_key if identity_key is None else identity_key
        signing = self.signing_key if signing_key is None else signing_key
        message = device_keys_message(user_id, device_id, identity, signing)
        return {"identity_key": identity, "signing_key": signing, "signature": self.sign(message)}

    def signed_key(
        self, device_id: int, key_id: str, key: str, *, fallback: bool = False
    ) -> dict[str, str]:
        message = one_time_key_message(device_id, key_id, key, fallback=fallback)
        return {"key_id": key_id, "key": key, "signature": self.sign(message)}

    def one_time_keys(self, device_id: int, count: int) -> list[dict[str, str]]:
        self.account.generate_one_time_keys(count)
        keys = [
            self.signed_key(device_id, key_id, public.to_base64())
            for key_id, public in self.account.one_time_keys.items()
        ]
        self.account.mark_keys_as_published()
        return keys


def ids(client: Client) -> tuple[int, int]:
    return uid(client), device_id_of(client)


def device_crypto(client: Client) -> DeviceCrypto:
    """A new device account that knows it is ``client``'s device (it signs one-time keys
    for the device id its last ``device_keys_upload`` named)."""
    crypto = DeviceCrypto.create()
    crypto.device_keys_upload(*ids(client))
    return crypto


async def count(client: Client) -> dict[str, Any]:
    result: dict[str, Any] = await client.call("keys.count")
    return result


async def upload(
    client: Client,
    crypto: DeviceCrypto,
    *,
    one_time_keys: list[dict[str, str]] | None = None,
    fallback_key: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``keys.upload`` by hand, with the device's own signed device keys."""
    result: dict[str, Any] = await client.call(
        "keys.upload",
        **crypto.device_keys_upload(*ids(client)),
        one_time_keys=one_time_keys or [],
        fallback_key=fallback_key,
    )
    return result


async def query(client: Client, *user_ids: int) -> list[dict[str, Any]]:
    result = await client.call("keys.query", user_ids=list(user_ids))
    devices: list[dict[str, Any]] = result["devices"]
    return devices


async def claim(client: Client, *device_ids: int) -> list[dict[str, Any]]:
    result = await client.call("keys.claim", device_ids=list(device_ids))
    keys: list[dict[str, Any]] = result["keys"]
    return keys


@pytest.fixture
async def crowd(server: ServerProcess) -> AsyncIterator[list[Client]]:
    """Four more signed-in users, to claim keys side by side."""
    clients = list(await asyncio.gather(*(signed_in(server.url, f"c{i}") for i in range(4))))
    yield clients
    await asyncio.gather(*(c.close() for c in clients))


# --- publishing and counting ------------------------------------------------------------------


async def test_uploaded_one_time_keys_and_fallback_key_are_counted(alice: Client) -> None:
    assert await count(alice) == NONE
    crypto = DeviceCrypto.create()
    await alice.upload_keys(crypto, one_time_keys=10)
    assert await count(alice) == {"one_time_key_count": 10, "fallback_key": True}

    more = await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(5))
    assert more == {"one_time_key_count": 15, "fallback_key": True}
    assert await count(alice) == more


async def test_device_keys_alone_can_be_uploaded_and_repeated(alice: Client) -> None:
    crypto = device_crypto(alice)
    assert await upload(alice, crypto) == NONE
    assert await upload(alice, crypto) == NONE
    assert await upload(alice, crypto, fallback_key=crypto.new_fallback_key()) == {
        "one_time_key_count": 0,
        "fallback_key": True,
    }


async def test_a_query_shows_each_device_with_keys_and_its_signature_verifies(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    crypto = DeviceCrypto.create()
    await alice.upload_keys(crypto, one_time_keys=2)
    async with another_device(server.url, alice) as without_keys:
        devices = await query(bob, uid(alice), uid(bob), 2**52)
        assert devices == await bob.query_keys([uid(alice)])
        assert devices == await alice.query_keys([uid(alice)])
        assert device_id_of(without_keys) not in [d["device_id"] for d in devices]

    assert devices == [
        {
            "user_id": uid(alice),
            "device_id": device_id_of(alice),
            "identity_key": crypto.identity_key,
            "signing_key": crypto.signing_key,
            "signature": devices[0]["signature"],
        }
    ]
    (device,) = devices
    message = device_keys_message(
        device["user_id"], device["device_id"], device["identity_key"], device["signing_key"]
    )
    assert verifies(device["signing_key"], message, device["signature"])
    # The signature is bound to the user and the device.
    assert not verifies(
        device["signing_key"],
        device_keys_message(uid(bob), device["device_id"], crypto.identity_key, crypto.signing_key),
        device["signature"],
    )


async def test_a_query_lists_every_device_of_a_user_that_has_keys(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    phone_crypto = DeviceCrypto.create()
    await alice.upload_keys(phone_crypto, one_time_keys=1)
    async with another_device(server.url, alice) as laptop:
        laptop_crypto = DeviceCrypto.create()
        await laptop.upload_keys(laptop_crypto, one_time_keys=1)
        devices = await bob.query_keys([uid(alice)])

        assert sorted((d["device_id"], d["identity_key"]) for d in devices) == sorted(
            [
                (device_id_of(alice), phone_crypto.identity_key),
                (device_id_of(laptop), laptop_crypto.identity_key),
            ]
        )
        for d in devices:
            message = device_keys_message(
                uid(alice), d["device_id"], d["identity_key"], d["signing_key"]
            )
            assert verifies(d["signing_key"], message, d["signature"])


# --- claiming -------------------------------------------------------------------------------


async def test_claims_hand_out_each_one_time_key_exactly_once_and_then_the_fallback_key(
    alice: Client, bob: Client, carol: Client
) -> None:
    crypto = DeviceCrypto.create()
    await alice.call("keys.upload", **crypto.device_keys_upload(*ids(alice)))
    published = crypto.new_one_time_keys(3)
    fallback = crypto.new_fallback_key()
    await upload(alice, crypto, one_time_keys=published, fallback_key=fallback)
    alice_device = device_id_of(alice)

    got = [await bob.claim_keys([alice_device]), await carol.claim_keys([alice_device])]
    got.append(await claim(bob, alice_device))
    assert all(len(keys) == 1 for keys in got)
    claimed = [keys[0] for keys in got]
    assert {(k["key_id"], k["key"]) for k in claimed} == {
        (k["key_id"], k["key"]) for k in published
    }
    for k in claimed:
        assert k["device_id"] == alice_device
        assert k["fallback"] is False
        assert otk_verifies(crypto.signing_key, k)
    assert await count(alice) == {"one_time_key_count": 0, "fallback_key": True}

    # None left: the fallback key, again and again.
    for claimer in (bob, carol, bob):
        (k,) = await claim(claimer, alice_device)
        assert (k["key_id"], k["key"], k["fallback"]) == (fallback["key_id"], fallback["key"], True)
        assert otk_verifies(crypto.signing_key, k)
        # A fallback key's signature is not a one-time key's.
        assert not otk_verifies(crypto.signing_key, {**k, "fallback": False})
    assert await count(alice) == {
        "one_time_key_count": 0,
        "fallback_key": False,
    }  # handed out: rotate it


async def test_one_claim_takes_a_key_from_each_device_and_skips_devices_without_keys(
    server: ServerProcess, alice: Client, bob: Client, carol: Client
) -> None:
    alice_crypto, bob_crypto = DeviceCrypto.create(), DeviceCrypto.create()
    await alice.upload_keys(alice_crypto, one_time_keys=2)
    await bob.upload_keys(bob_crypto, one_time_keys=2)
    async with another_device(server.url, alice) as without_keys:
        keys = await claim(
            carol, device_id_of(alice), device_id_of(without_keys), device_id_of(bob), 2**52
        )
    assert sorted(k["device_id"] for k in keys) == sorted([device_id_of(alice), device_id_of(bob)])
    signing = {
        device_id_of(alice): alice_crypto.signing_key,
        device_id_of(bob): bob_crypto.signing_key,
    }
    for k in keys:
        assert k["fallback"] is False
        assert otk_verifies(signing[k["device_id"]], k)
    assert (await count(alice))["one_time_key_count"] == 1
    assert (await count(bob))["one_time_key_count"] == 1
    assert await claim(carol, 2**52) == []


async def test_a_device_may_use_the_same_key_ids_as_another_device(
    alice: Client, bob: Client, carol: Client
) -> None:
    # vodozemac numbers key ids per account from zero: every device's first key is the same id.
    alice_crypto, bob_crypto = DeviceCrypto.create(), DeviceCrypto.create()
    await alice.upload_keys(alice_crypto, one_time_keys=3)
    await bob.upload_keys(bob_crypto, one_time_keys=3)
    assert (await count(alice))["one_time_key_count"] == 3
    assert (await count(bob))["one_time_key_count"] == 3
    (from_alice,) = await claim(carol, device_id_of(alice))
    assert otk_verifies(alice_crypto.signing_key, from_alice)
    assert (await count(bob))["one_time_key_count"] == 3


async def test_concurrent_claims_hand_out_no_key_twice(
    alice: Client, bob: Client, carol: Client, crowd: list[Client]
) -> None:
    crypto = device_crypto(alice)
    await upload(
        alice,
        crypto,
        one_time_keys=crypto.new_one_time_keys(10),
        fallback_key=crypto.new_fallback_key(),
    )
    device = device_id_of(alice)
    claimers = [bob, carol, *crowd]  # six clients, twenty claims in flight together
    results = await asyncio.wait_for(
        asyncio.gather(*(claim(claimers[i % len(claimers)], device) for i in range(20))), 30
    )

    assert all(len(keys) == 1 for keys in results)
    claimed = [keys[0] for keys in results]
    one_time = [k for k in claimed if not k["fallback"]]
    fallbacks = [k for k in claimed if k["fallback"]]
    assert len(one_time) == 10
    assert len({k["key_id"] for k in one_time}) == 10
    assert len({k["key"] for k in one_time}) == 10
    assert len(fallbacks) == 10
    assert len({(k["key_id"], k["key"]) for k in fallbacks}) == 1
    assert fallbacks[0]["key"] not in {k["key"] for k in one_time}
    assert all(otk_verifies(crypto.signing_key, k) for k in claimed)
    assert await count(alice) == {
        "one_time_key_count": 0,
        "fallback_key": False,
    }  # handed out: rotate it


async def test_without_a_fallback_key_a_drained_device_is_absent(
    alice: Client, bob: Client
) -> None:
    crypto = device_crypto(alice)
    await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(1))
    assert len(await claim(bob, device_id_of(alice))) == 1
    assert await claim(bob, device_id_of(alice)) == []
    assert await count(alice) == NONE


# --- what is refused, and that a refusal stores nothing ---------------------------------------


async def test_a_forged_device_signature_is_refused_and_nothing_is_stored(
    alice: Client, bob: Client
) -> None:
    crypto = device_crypto(alice)
    params = crypto.device_keys_upload(*ids(alice))
    forger = RawAccount()
    params["signature"] = forger.sign(
        device_keys_message(*ids(alice), crypto.identity_key, crypto.signing_key)
    )
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call(
            "keys.upload",
            **params,
            one_time_keys=crypto.new_one_time_keys(5),
            fallback_key=crypto.new_fallback_key(),
        )
    # The device's genuine signature does not cover another identity key put in its place.
    genuine = crypto.device_keys_upload(*ids(alice))
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **{**genuine, "identity_key": forger.identity_key})
    assert await count(alice) == NONE
    assert await query(bob, uid(alice)) == []
    assert await claim(bob, device_id_of(alice)) == []


async def test_one_forged_one_time_key_signature_refuses_the_whole_batch(
    alice: Client, bob: Client
) -> None:
    crypto = device_crypto(alice)
    forger = RawAccount()
    batch = crypto.new_one_time_keys(5)
    batch[3] = forger.signed_key(device_id_of(alice), batch[3]["key_id"], batch[3]["key"])
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=batch, fallback_key=crypto.new_fallback_key())

    # Another key's genuine signature does not cover this key either.
    batch = crypto.new_one_time_keys(5)
    batch[0] = {**batch[0], "signature": batch[1]["signature"]}
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=batch)

    # Nor does a forged fallback key pass with good one-time keys.
    fallback = crypto.new_fallback_key()
    forged = forger.signed_key(
        device_id_of(alice), fallback["key_id"], fallback["key"], fallback=True
    )
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(3), fallback_key=forged)

    assert await count(alice) == NONE
    assert await query(bob, uid(alice)) == []
    assert await claim(bob, device_id_of(alice)) == []


async def test_device_keys_signed_for_another_device_are_refused(
    server: ServerProcess, alice: Client, bob: Client, carol: Client
) -> None:
    crypto = DeviceCrypto.create()
    alices_upload = crypto.device_keys_upload(*ids(alice))

    # Bob replays Alice's upload as his own device's keys.
    with refused(ErrorCode.KEYS_INVALID):
        await bob.call("keys.upload", **alices_upload)
    # Alice's own other device cannot publish keys signed for this one, nor this one for it.
    async with another_device(server.url, alice) as laptop:
        with refused(ErrorCode.KEYS_INVALID):
            await laptop.call("keys.upload", **alices_upload)
        with refused(ErrorCode.KEYS_INVALID):
            await alice.call(
                "keys.upload", **crypto.device_keys_upload(uid(alice), device_id_of(laptop))
            )
        assert await count(laptop) == NONE
    # Signed for another user with the same device id.
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **crypto.device_keys_upload(uid(bob), device_id_of(alice)))

    assert await count(alice) == NONE
    assert await count(bob) == NONE
    assert await query(carol, uid(alice), uid(bob)) == []


async def test_signed_keys_cannot_be_passed_off_as_another_device_or_kind(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    device = RawAccount()
    device_keys = device.device_keys(*ids(alice))
    assert await alice.call("keys.upload", **device_keys) == NONE
    async with another_device(server.url, alice) as laptop:
        other_device = device_id_of(laptop)
    (genuine,) = device.one_time_keys(device_id_of(alice), 1)

    # This device's signature on a key, but naming another device.
    (for_laptop,) = device.one_time_keys(other_device, 1)
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **device_keys, one_time_keys=[genuine, for_laptop])
    # A one-time key's signature does not make it a fallback key, nor the other way round.
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **device_keys, fallback_key=genuine)
    fallback = device.signed_key(device_id_of(alice), "AAAAAAAAAAA", genuine["key"], fallback=True)
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **device_keys, one_time_keys=[fallback])

    assert await count(alice) == NONE
    assert await claim(bob, device_id_of(alice)) == []
    # Signed for what they are, the same keys are taken.
    assert await alice.call(
        "keys.upload", **device_keys, one_time_keys=[genuine], fallback_key=fallback
    ) == {"one_time_key_count": 1, "fallback_key": True}


async def test_changing_the_identity_or_signing_key_later_is_refused(
    alice: Client, bob: Client
) -> None:
    crypto = device_crypto(alice)
    await alice.upload_keys(crypto, one_time_keys=2)
    before = await query(bob, uid(alice))

    impostor = device_crypto(alice)
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, impostor, one_time_keys=impostor.new_one_time_keys(3))
    # Keeping the identity key but swapping the signing key (signed by the new one).
    swapped = RawAccount().device_keys(*ids(alice), identity_key=crypto.identity_key)
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call("keys.upload", **swapped)
    # Keeping the signing key but swapping the identity key needs the old signing key's
    # signature, which only the device has: that is a key change too.
    raw = RawAccount()
    with refused(ErrorCode.KEYS_INVALID):
        await alice.call(
            "keys.upload",
            **raw.device_keys(*ids(alice), signing_key=crypto.signing_key),
        )

    assert await query(bob, uid(alice)) == before
    assert await count(alice) == {"one_time_key_count": 2, "fallback_key": True}


async def test_a_key_id_already_stored_is_refused(alice: Client, bob: Client) -> None:
    crypto = device_crypto(alice)
    first = crypto.new_one_time_keys(3)
    await upload(alice, crypto, one_time_keys=first)

    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(2) + first[:1])
    # The same key id twice in one batch.
    fresh = crypto.new_one_time_keys(2)
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=[fresh[0], fresh[1], fresh[0]])

    assert await count(alice) == {"one_time_key_count": 3, "fallback_key": False}
    claimed = [await claim(bob, device_id_of(alice)) for _ in range(4)]
    assert sorted(k[0]["key_id"] for k in claimed[:3]) == sorted(k["key_id"] for k in first)
    assert claimed[3] == []


async def test_a_refused_first_upload_leaves_no_device_keys_behind(
    alice: Client, bob: Client
) -> None:
    # The signatures all verify; the store refuses the repeated key id after it has seen the
    # device keys, and must take them back too.
    crypto = device_crypto(alice)
    keys = crypto.new_one_time_keys(3)
    with refused(ErrorCode.KEYS_INVALID):
        await upload(
            alice, crypto, one_time_keys=[*keys, keys[0]], fallback_key=crypto.new_fallback_key()
        )
    assert await count(alice) == NONE
    assert await query(bob, uid(alice)) == []
    assert await claim(bob, device_id_of(alice)) == []

    # So the device may still publish other keys than the refused ones.
    other = device_crypto(alice)
    assert await upload(alice, other, one_time_keys=other.new_one_time_keys(1)) == {
        "one_time_key_count": 1,
        "fallback_key": False,
    }
    assert [d["identity_key"] for d in await query(bob, uid(alice))] == [other.identity_key]


async def test_no_more_than_200_one_time_keys_are_stored_per_device(
    alice: Client, bob: Client
) -> None:
    crypto = device_crypto(alice)
    for _ in range(4):
        await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(50))
    assert await count(alice) == {"one_time_key_count": 200, "fallback_key": False}

    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(1))
    assert (await count(alice))["one_time_key_count"] == 200

    # Room made by a claim can be filled again.
    assert len(await claim(bob, device_id_of(alice))) == 1
    with refused(ErrorCode.KEYS_INVALID):
        await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(2))
    assert (await upload(alice, crypto, one_time_keys=crypto.new_one_time_keys(1)))[
        "one_time_key_count"
    ] == 200


async def test_malformed_keys_and_signatures_are_refused(alice: Client, bob: Client) -> None:
    user_id, device_id = ids(alice)
    raw = RawAccount()
    (good,) = raw.one_time_keys(device_id, 1)
    not_base64 = "not base64 at all!"
    too_short = "AAAA"
    too_long = good["key"] + "AAAA"
    # Each is properly signed, so only the malformed part can be the reason for refusal.
    bad_device_keys = [
        raw.device_keys(user_id, device_id, identity_key=bad)
        for bad in (not_base64, too_short, too_long)
    ] + [
        raw.device_keys(user_id, device_id, signing_key=bad)
        for bad in (not_base64, too_short, raw.signing_key + "AAAA")
    ]
    bad_device_keys += [
        {**raw.device_keys(user_id, device_id), "signature": bad}
        for bad in (not_base64, too_short, "A" * 86)
    ]
    for params in bad_device_keys:
        with refused(ErrorCode.KEYS_INVALID):
            await alice.call("keys.upload", **params, one_time_keys=[good])

    device_keys = raw.device_keys(user_id, device_id)
    for fallback in (False, True):
        bad_keys = [
            raw.signed_key(device_id, "AAAAAAAAAAZ", bad, fallback=fallback)
            for bad in (not_base64, too_short, too_long)
        ]
        bad_keys += [
            {
                **raw.signed_key(device_id, "AAAAAAAAAAZ", good["key"], fallback=fallback),
                "signature": bad,
            }
            for bad in (not_base64, too_short)
        ]
        for bad in bad_keys:
            with refused(ErrorCode.KEYS_INVALID):
                if fallback:
                    await alice.call(
                        "keys.upload", **device_keys, one_time_keys=[good], fallback_key=bad
                    )
                else:
                    await alice.call("keys.upload", **device_keys, one_time_keys=[good, bad])

    assert await count(alice) == NONE
    assert await query(bob, uid(alice)) == []
    # The same keys, well formed, are accepted.
    assert await alice.call("keys.upload", **device_keys, one_time_keys=[good]) == {
        "one_time_key_count": 1,
        "fallback_key": False,
    }


async def test_wrong_json_types_and_oversized_lists_are_invalid_params(
    server: ServerProcess, alice: Client
) -> None:
    crypto = device_crypto(alice)
    device_keys = crypto.device_keys_upload(*ids(alice))
    otk = crypto.new_one_time_keys(1)[0]
    bad_uploads: list[dict[str, Any]] = [
        {**device_keys, "identity_key": 5},
        {**device_keys, "signing_key": None},
        {**device_keys, "signature": ["x"]},
        {**device_keys, "one_time_keys": "keys"},
        {**device_keys, "one_time_keys": [otk["key"]]},
        {**device_keys, "one_time_keys": [{**otk, "key": 1}]},
        {**device_keys, "one_time_keys": [{"key_id": otk["key_id"], "key": otk["key"]}]},
        {**device_keys, "fallback_key": "key"},
        {k: v for k, v in device_keys.items() if k != "signature"},
    ]
    for params in bad_uploads:
        with refused(ErrorCode.INVALID_PARAMS):
            await alice.call("keys.upload", **params)
    many = crypto.new_one_time_keys(50) + crypto.new_one_time_keys(50) + [otk]
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.call("keys.upload", **device_keys, one_time_keys=many)

    for method, field in (("keys.query", "user_ids"), ("keys.claim", "device_ids")):
        for value in ("1", [1.5], ["x"], [0], list(range(1, 102)), None):
            with refused(ErrorCode.INVALID_PARAMS):
                await alice.call(method, **{field: value})
    assert await count(alice) == NONE

    async with RawSocket.open(server.url) as anonymous:
        for method, params in (
            ("keys.count", {}),
            ("keys.upload", device_keys),
            ("keys.query", {"user_ids": [uid(alice)]}),
            ("keys.claim", {"device_ids": [device_id_of(alice)]}),
        ):
            assert error_code(await anonymous.call(method, **params)) == "UNAUTHORIZED"


# --- revocation and the SDK -----------------------------------------------------------------


async def test_a_revoked_devices_keys_are_no_longer_queried_or_claimed(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    await alice.upload_keys(DeviceCrypto.create(), one_time_keys=5)
    async with another_device(server.url, alice) as laptop:
        await laptop.upload_keys(DeviceCrypto.create(), one_time_keys=5)
        laptop_device = device_id_of(laptop)
        assert len(await query(bob, uid(alice))) == 2
        assert len(await claim(bob, laptop_device)) == 1

        await alice.revoke_device(laptop_device)

    assert [d["device_id"] for d in await query(bob, uid(alice))] == [device_id_of(alice)]
    assert await claim(bob, laptop_device) == []
    assert [k["device_id"] for k in await claim(bob, laptop_device, device_id_of(alice))] == [
        device_id_of(alice)
    ]


async def test_ensure_one_time_keys_tops_up_after_claims(alice: Client, bob: Client) -> None:
    crypto = DeviceCrypto.create()
    await alice.upload_keys(crypto, one_time_keys=25)
    assert await alice.ensure_one_time_keys(crypto) == 0  # 25 is not below 20
    assert await count(alice) == {"one_time_key_count": 25, "fallback_key": True}

    claimed = [await bob.claim_keys([device_id_of(alice)]) for _ in range(10)]
    assert await count(alice) == {"one_time_key_count": 15, "fallback_key": True}
    assert await alice.ensure_one_time_keys(crypto) == 35
    assert await count(alice) == {"one_time_key_count": 50, "fallback_key": True}
    assert await alice.ensure_one_time_keys(crypto, threshold=60, target=70) == 20
    assert (await count(alice))["one_time_key_count"] == 70

    # The new keys are signed and fresh: nothing handed out before comes back.
    before = {k[0]["key_id"] for k in claimed}
    for _ in range(3):
        (k,) = await bob.claim_keys([device_id_of(alice)])
        assert k["key_id"] not in before
        assert k["fallback"] is False
        assert otk_verifies(crypto.signing_key, k)


async def test_ensure_one_time_keys_replaces_a_fallback_key_that_was_handed_out(
    alice: Client, bob: Client
) -> None:
    crypto = DeviceCrypto.create()
    await alice.upload_keys(crypto, one_time_keys=1)
    (first,) = await bob.claim_keys([device_id_of(alice)])
    (fallback,) = await bob.claim_keys([device_id_of(alice)])
    assert (first["fallback"], fallback["fallback"]) == (False, True)
    assert await count(alice) == {"one_time_key_count": 0, "fallback_key": False}
    saved: list[int] = []

    async def save() -> None:
        saved.append(len(saved))

    assert await alice.ensure_one_time_keys(crypto, before_upload=save) == 50
    assert await count(alice) == {"one_time_key_count": 50, "fallback_key": True}
    assert saved == [0]  # the new private keys were handed to the caller before the upload
    # Only the fallback used: it alone is replaced, the one-time keys are not topped up.
    for _ in range(50):
        await bob.claim_keys([device_id_of(alice)])
    await bob.claim_keys([device_id_of(alice)])
    assert await alice.ensure_one_time_keys(crypto, threshold=0, target=50) == 0
    assert await count(alice) == {"one_time_key_count": 0, "fallback_key": True}
    (again,) = await bob.claim_keys([device_id_of(alice)])
    assert again["fallback"] is True
    assert again["key"] != fallback["key"]
