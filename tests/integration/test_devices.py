"""Devices: every sign-in is a device; a device can be logged out from another, at once."""

from __future__ import annotations

import asyncio

import httpx

from samizdat.client import Client
from samizdat.protocol.errors import WS_CLOSE_REVOKED, ErrorCode
from tests.harness import ServerProcess, second_device
from tests.inbox import WAIT, phone_of, raw_device, refused, uid
from tests.raw_socket import RawSocket, error_code


async def http_me(server: ServerProcess, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as http:
        return await http.post("/api/users.me", headers={"Authorization": f"Bearer {token}"})


async def test_each_sign_in_is_a_device_and_the_list_marks_the_current_one(
    server: ServerProcess, alice: Client
) -> None:
    laptop = await second_device(server.url, await phone_of(alice), device_name="laptop")
    try:
        from_phone = await alice.devices()
        from_laptop = await laptop.devices()
    finally:
        await laptop.close()

    assert [d.id for d in from_phone] == [d.id for d in from_laptop]
    assert len(from_phone) == 2
    assert [d.name for d in from_phone] == ["test", "laptop"]
    assert [d.current for d in from_phone] == [True, False]
    assert [d.current for d in from_laptop] == [False, True]


async def test_revoking_a_device_closes_its_socket_at_once(
    server: ServerProcess, alice: Client
) -> None:
    async with raw_device(server.url, await phone_of(alice)) as (laptop, signed):
        await alice.revoke_device(signed["device_id"])

        await asyncio.wait_for(laptop.ws.wait_closed(), WAIT)
        assert laptop.ws.close_code == WS_CLOSE_REVOKED

    assert [d.current for d in await alice.devices()] == [True]
    assert (await alice.get_me()).id == uid(alice)


async def test_a_revoked_sdk_client_is_disconnected_and_its_calls_say_why(
    server: ServerProcess, alice: Client
) -> None:
    laptop = await second_device(server.url, await phone_of(alice))
    try:
        assert laptop.session is not None
        await alice.revoke_device(laptop.session.device_id)

        await asyncio.wait_for(laptop.run_until_disconnected(), WAIT)
        with refused(ErrorCode.TOKEN_REVOKED):
            await laptop.get_me()
    finally:
        await laptop.close()


async def test_a_revoked_token_no_longer_authorizes_a_socket_or_an_http_call(
    server: ServerProcess, alice: Client
) -> None:
    async with raw_device(server.url, await phone_of(alice)) as (_, signed):
        token = signed["token"]
        assert (await http_me(server, token)).status_code == 200  # now cached by the server
        await alice.revoke_device(signed["device_id"])

    async with RawSocket.open(server.url) as again:
        assert error_code(await again.call("auth.authorize", token=token)) == "TOKEN_REVOKED"
        assert error_code(await again.call("users.me")) == "UNAUTHORIZED"
    response = await http_me(server, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "TOKEN_REVOKED"


async def test_a_revoked_saved_session_cannot_reconnect(
    server: ServerProcess, alice: Client
) -> None:
    laptop = await second_device(server.url, await phone_of(alice))
    saved = laptop.session
    assert saved is not None
    await laptop.close()
    await alice.revoke_device(saved.device_id)

    resumed = Client(server.url, session=saved)
    try:
        with refused(ErrorCode.TOKEN_REVOKED):
            await resumed.connect()
    finally:
        await resumed.close()


async def test_revoking_all_other_devices_keeps_the_current_one(
    server: ServerProcess, alice: Client
) -> None:
    phone = await phone_of(alice)
    async with (
        raw_device(server.url, phone) as (laptop, _),
        raw_device(server.url, phone) as (tablet, _),
    ):
        assert len(await alice.devices()) == 3

        assert await alice.revoke_other_devices() == 2

        for other in (laptop, tablet):
            await asyncio.wait_for(other.ws.wait_closed(), WAIT)
            assert other.ws.close_code == WS_CLOSE_REVOKED
    remaining = await alice.devices()
    assert [d.current for d in remaining] == [True]
    assert (await alice.get_me()).id == uid(alice)
    assert await alice.revoke_other_devices() == 0


async def test_someone_elses_device_cannot_be_revoked(alice: Client, bob: Client) -> None:
    assert bob.session is not None
    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await alice.revoke_device(bob.session.device_id)

    assert (await bob.get_me()).id == uid(bob)
    assert [d.current for d in await bob.devices()] == [True]


async def test_a_device_revoked_once_cannot_be_revoked_again(
    server: ServerProcess, alice: Client
) -> None:
    laptop = await second_device(server.url, await phone_of(alice))
    await laptop.close()
    assert laptop.session is not None
    await alice.revoke_device(laptop.session.device_id)

    with refused(ErrorCode.DEVICE_NOT_FOUND):
        await alice.revoke_device(laptop.session.device_id)
