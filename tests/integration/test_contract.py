"""Every RPC result matches the result model its method declares (the fast path builds plain
dicts; this keeps them honest against `samizdat.protocol`), and every method is exercised."""

from __future__ import annotations

from typing import Any

from samizdat.client import Client
from samizdat.crypto.e2ee import DeviceCrypto
from samizdat.protocol.methods import METHODS
from tests.harness import ServerProcess, new_test_phone, second_device, signed_in
from tests.raw_socket import RawSocket, device_id_of, token_of


async def test_every_method_returns_what_its_result_model_declares(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    checked: set[str] = set()

    async def check(client: Client | RawSocket, method: str, **params: Any) -> Any:
        if isinstance(client, RawSocket):
            result = await client.result(method, **params)
        else:
            result = await client.call(method, **params)
        METHODS[method].result.model_validate(result)
        checked.add(method)
        return result

    assert alice.me is not None
    assert bob.me is not None
    phone, code = new_test_phone()
    async with RawSocket.open(server.url) as anonymous:
        await check(anonymous, "auth.send_code", phone=phone)
        signed = await check(anonymous, "auth.sign_in", phone=phone, code=code)
    async with RawSocket.open(server.url) as sock:
        await check(sock, "auth.authorize", token=signed["token"])
    carol = await signed_in(server.url, "Carol")
    extra_device = await second_device(server.url, alice.test_phone)  # type: ignore[attr-defined]
    try:
        assert carol.me is not None
        await check(alice, "users.me")
        await check(alice, "users.get", user_id=bob.me.id)
        await check(bob, "profile.set_username", username=f"bob_{bob.me.id % 10**8}")
        await check(alice, "users.resolve", peer=f"@bob_{bob.me.id % 10**8}")
        await check(
            alice,
            "profile.update",
            display_name="Alice A.",
            phone_visibility="contacts",
            phone=alice.test_phone,  # type: ignore[attr-defined]
        )
        await check(alice, "contacts.add", user_id=bob.me.id)
        await check(alice, "contacts.list")
        await check(alice, "contacts.remove", user_id=bob.me.id)
        await check(alice, "devices.list")
        private = await check(alice, "chats.open_private", user_id=bob.me.id)
        await check(alice, "chats.get", chat_id=private["id"])
        group = await check(alice, "groups.create", title="contract", member_ids=[bob.me.id])
        await check(alice, "groups.add", chat_id=group["id"], user_ids=[carol.me.id])
        await check(alice, "chats.members", chat_id=group["id"])
        await check(alice, "groups.rename", chat_id=group["id"], title="contract 2")
        await check(alice, "groups.set_admin", chat_id=group["id"], user_id=bob.me.id, admin=True)
        await check(alice, "groups.remove", chat_id=group["id"], user_id=carol.me.id)
        sent = await check(alice, "messages.send", chat_id=private["id"], text="hi", random_id=1)
        message_id = sent["message"]["id"]
        await check(
            alice,
            "messages.forward",
            from_chat_id=private["id"],
            message_ids=[message_id],
            to_chat_id=group["id"],
            random_id=2,
        )
        await check(alice, "messages.edit", chat_id=private["id"], message_id=message_id, text="yo")
        await check(bob, "messages.react", chat_id=private["id"], message_id=message_id, emoji="👍")
        await check(bob, "messages.read", chat_id=private["id"], max_id=message_id)
        await check(bob, "messages.typing", chat_id=private["id"])
        await check(bob, "messages.history", chat_id=private["id"], limit=10)
        await check(bob, "dialogs.list")
        await check(bob, "updates.state")
        await check(bob, "updates.difference", since=0)
        await check(
            alice,
            "messages.delete",
            chat_id=private["id"],
            message_ids=[message_id],
            for_everyone=True,
        )
        await check(bob, "groups.leave", chat_id=group["id"])
        crypto = DeviceCrypto.create()
        upload = crypto.device_keys_upload(bob.me.id, device_id_of(bob))
        upload["one_time_keys"] = crypto.new_one_time_keys(1)
        upload["fallback_key"] = crypto.new_fallback_key()
        await check(bob, "keys.upload", **upload)
        await check(bob, "keys.count")
        await check(alice, "keys.query", user_ids=[bob.me.id])
        await check(alice, "keys.claim", device_ids=[device_id_of(bob)])
        relayed = await check(
            alice,
            "secret.send",
            messages=[{"device_id": device_id_of(bob), "olm_type": 0, "ciphertext": "AAAA"}],
        )
        fanned_out = await check(
            alice,
            "secret.send",
            group={"ciphertext": "AAAA", "device_ids": [device_id_of(bob)]},
            recipients=[bob.me.id],
        )
        await check(bob, "secret.pending")
        await check(bob, "secret.ack", ids=relayed["ids"] + fanned_out["ids"])
        await check(alice, "devices.revoke_others")
        assert token_of(extra_device)
        other = await signed_in(server.url, "Dave")
        try:
            devices = (await other.call("devices.list"))["devices"]
            await check(other, "devices.revoke", device_id=devices[0]["id"])
        finally:
            await other.close()
    finally:
        await carol.close()
        await extra_device.close()
    assert checked == set(METHODS), f"not exercised: {sorted(set(METHODS) - checked)}"
