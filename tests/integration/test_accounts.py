"""Accounts: signing up and in with a phone and a code, profiles, usernames, phone privacy."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from samizdat.client import Client
from samizdat.protocol.errors import ErrorCode, SamizdatError
from tests.harness import ServerProcess, new_test_phone, second_device, signed_in, sql
from tests.inbox import phone_of, refused, uid

WRONG_CODE = "99999"


async def sign_in(client: Client, phone: str, code: str, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = await client.call("auth.sign_in", phone=phone, code=code, **extra)
    return result


async def test_signing_up_creates_a_user_with_the_chosen_name(server: ServerProcess) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as client:
        await client.send_code(phone)
        result = await sign_in(client, phone, code, display_name="Zoya")

        assert result["new_user"] is True
        assert result["user"]["display_name"] == "Zoya"
        assert result["user"]["phone"] == phone
        assert result["token"]


async def test_signing_in_again_with_the_same_number_gives_the_same_user_on_a_new_device(
    server: ServerProcess,
) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as first, Client(server.url) as again:
        await first.send_code(phone)
        signed_up = await sign_in(first, phone, code, display_name="Zoya")
        await again.send_code(phone)
        signed_in_again = await sign_in(again, phone, code, display_name="Ignored")

    assert signed_in_again["new_user"] is False
    assert signed_in_again["user"]["id"] == signed_up["user"]["id"]
    assert signed_in_again["user"]["display_name"] == "Zoya"
    assert signed_in_again["device_id"] != signed_up["device_id"]
    assert signed_in_again["token"] != signed_up["token"]


async def test_the_same_number_written_with_spaces_is_the_same_account(
    server: ServerProcess,
) -> None:
    phone, code = new_test_phone()
    spaced = f"{phone[:4]} {phone[4:7]} {phone[7:10]}-{phone[10:]}"
    async with Client(server.url) as first, Client(server.url) as again:
        await first.send_code(phone)
        user_id = (await sign_in(first, phone, code))["user"]["id"]
        await again.send_code(spaced)
        assert (await sign_in(again, spaced, code))["user"]["id"] == user_id


async def test_a_wrong_code_is_refused_and_the_right_one_still_works(
    server: ServerProcess,
) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as client:
        await client.send_code(phone)
        with refused(ErrorCode.CODE_INVALID):
            await sign_in(client, phone, WRONG_CODE)
        assert (await sign_in(client, phone, code))["new_user"] is True


async def test_a_code_cannot_be_used_twice(server: ServerProcess) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as client:
        await client.send_code(phone)
        await sign_in(client, phone, code)
        with refused(ErrorCode.CODE_EXPIRED):
            await sign_in(client, phone, code)


async def test_two_sign_ins_racing_with_one_code_make_one_device(server: ServerProcess) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as first, Client(server.url) as second:
        await first.send_code(phone)
        outcomes = await asyncio.gather(
            sign_in(first, phone, code), sign_in(second, phone, code), return_exceptions=True
        )

    succeeded = [o for o in outcomes if isinstance(o, dict)]
    failed = [o for o in outcomes if isinstance(o, SamizdatError)]
    assert len(succeeded) == 1
    assert [e.code for e in failed] == [ErrorCode.CODE_EXPIRED]


async def test_a_code_only_works_for_the_number_it_was_sent_to(server: ServerProcess) -> None:
    phone, code = new_test_phone()
    other_phone, _ = new_test_phone()
    async with Client(server.url) as client:
        await client.send_code(phone)
        with refused(ErrorCode.CODE_EXPIRED):
            await sign_in(client, other_phone, code)


async def test_too_many_wrong_codes_kill_the_code_until_a_new_one_is_sent(
    server: ServerProcess,
) -> None:
    phone, code = new_test_phone()
    async with Client(server.url) as client:
        await client.send_code(phone)
        for _ in range(5):
            with refused(ErrorCode.CODE_INVALID):
                await sign_in(client, phone, WRONG_CODE)
        with refused(ErrorCode.CODE_EXPIRED):
            await sign_in(client, phone, code)
        with refused(ErrorCode.CODE_EXPIRED):
            await sign_in(client, phone, code)

        await client.send_code(phone)
        assert (await sign_in(client, phone, code))["new_user"] is True


@pytest.fixture
def production_server(fresh_server: ServerProcess) -> ServerProcess:
    """A server started without --dev, as it runs in production."""
    fresh_server.dev = False
    return fresh_server.start()


async def test_test_numbers_are_refused_outside_dev_mode(
    production_server: ServerProcess,
) -> None:
    phone, _ = new_test_phone()
    async with Client(production_server.url) as client:
        with refused(ErrorCode.PHONE_NUMBER_REFUSED):
            await client.send_code(phone)
    async with httpx.AsyncClient(base_url=production_server.url) as http:
        response = await http.post("/api/auth.send_code", json={"phone": phone})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "PHONE_NUMBER_REFUSED"


@pytest.mark.parametrize(
    "phone",
    ["12345678", "+12", "+1 000 000", "+999 12345", "+44 20 7946 0958 ext. 12", "hello, world"],
)
async def test_an_invalid_phone_number_is_refused(server: ServerProcess, phone: str) -> None:
    async with Client(server.url) as client:
        with refused(ErrorCode.PHONE_INVALID):
            await client.send_code(phone)


async def test_a_new_display_name_is_seen_by_everyone(alice: Client, bob: Client) -> None:
    changed = await alice.update_profile(display_name="Alice Liddell")

    assert changed.display_name == "Alice Liddell"
    assert (await alice.get_me()).display_name == "Alice Liddell"
    seen = await bob.call("users.get", user_id=uid(alice))
    assert seen["display_name"] == "Alice Liddell"


@pytest.mark.parametrize("username", ["abcde", "A" * 32, "under_score_9", "_____", "12345"])
async def test_a_username_of_5_to_32_letters_digits_or_underscores_is_accepted(
    alice: Client, username: str
) -> None:
    assert (await alice.set_username(username)).username == username


@pytest.mark.parametrize(
    "username", ["abcd", "A" * 33, "with space", "dash-ed", "dot.ted", "жёлудь", "ab😀de"]
)
async def test_any_other_username_is_invalid(alice: Client, username: str) -> None:
    with refused(ErrorCode.USERNAME_INVALID):
        await alice.set_username(username)


async def test_a_username_is_unique_whatever_its_case(alice: Client, bob: Client) -> None:
    name = f"alice_{uid(alice) % 10**9}"
    await alice.set_username(name)

    with refused(ErrorCode.USERNAME_TAKEN):
        await bob.set_username(name.upper())
    assert (await bob.get_me()).username is None


async def test_two_users_racing_for_one_username_cannot_both_get_it(
    alice: Client, bob: Client
) -> None:
    name = f"race_{uid(alice) % 10**9}"

    outcomes = await asyncio.gather(
        alice.set_username(name), bob.set_username(name.upper()), return_exceptions=True
    )

    winners = [o for o in outcomes if not isinstance(o, BaseException)]
    losers = [o for o in outcomes if isinstance(o, SamizdatError)]
    assert len(winners) == 1
    assert [e.code for e in losers] == [ErrorCode.USERNAME_TAKEN]


async def test_a_user_is_found_by_username_in_any_case(alice: Client, bob: Client) -> None:
    name = f"Alice_{uid(alice) % 10**9}"
    await alice.set_username(name)

    for spelling in (name, f"@{name}", name.lower(), f"@{name.upper()}"):
        found = await bob.resolve(spelling)
        assert found.id == uid(alice)
        assert found.username == name
    with refused(ErrorCode.USER_NOT_FOUND):
        await bob.resolve(f"@nobody_{uid(alice) % 10**9}")


async def test_a_cleared_username_can_be_taken_by_someone_else(alice: Client, bob: Client) -> None:
    name = f"alice_{uid(alice) % 10**9}"
    await alice.set_username(name)
    assert (await alice.set_username(None)).username is None

    assert (await bob.set_username(name)).username == name
    assert (await alice.resolve(name)).id == uid(bob)


async def test_a_phone_number_is_hidden_from_others_by_default(alice: Client, bob: Client) -> None:
    me = await alice.get_me()
    assert me.phone is not None
    assert me.phone_visibility == "nobody"

    seen = await bob.call("users.get", user_id=uid(alice))
    assert seen["phone"] is None
    assert "phone_visibility" not in seen or seen["phone_visibility"] is None


async def test_a_user_can_be_found_by_number_without_revealing_a_hidden_number(
    alice: Client, bob: Client
) -> None:
    found = await bob.resolve(await phone_of(alice))

    assert found.id == uid(alice)
    assert found.phone is None


async def test_a_number_visible_to_everybody_is_shown_to_anyone(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    await alice.update_profile(phone_visibility="everybody")

    seen = await bob.call("users.get", user_id=uid(alice))
    assert seen["phone"] == await phone_of(alice)


async def test_the_server_keeps_a_readable_number_only_while_its_owner_shows_it(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    async def shown_copy() -> bytes | None:
        rows = await sql(server, "SELECT phone_shown FROM users WHERE id = $1", uid(alice))
        return rows[0]["phone_shown"]

    assert await shown_copy() is None  # by default only the custodians' envelope exists
    await alice.update_profile(phone_visibility="everybody")
    assert await shown_copy() is not None
    await alice.update_profile(phone_visibility="nobody")
    assert await shown_copy() is None
    assert (await bob.call("users.get", user_id=uid(alice)))["phone"] is None
    assert (await alice.get_me()).phone == await phone_of(alice)  # from her own session


async def test_showing_a_number_needs_the_number_of_that_very_account(
    alice: Client, bob: Client
) -> None:
    bobs_number = await phone_of(bob)
    with refused(ErrorCode.PHONE_INVALID):
        await alice.call("profile.update", phone_visibility="everybody", phone=bobs_number)
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.call("profile.update", phone_visibility="everybody")
    assert (await bob.call("users.get", user_id=uid(alice)))["phone"] is None


async def test_a_number_visible_to_contacts_is_shown_only_to_the_owners_contacts(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    carol = await signed_in(server.url, "Carol")
    try:
        await alice.update_profile(phone_visibility="contacts")
        assert (await bob.call("users.get", user_id=uid(alice)))["phone"] is None

        await alice.call("contacts.add", user_id=uid(bob))
        # Bob adding Alice does not matter: it is Alice's contacts that decide.
        await carol.call("contacts.add", user_id=uid(alice))

        shown = (await bob.call("users.get", user_id=uid(alice)))["phone"]
        assert shown == await phone_of(alice)
        assert (await carol.call("users.get", user_id=uid(alice)))["phone"] is None
        assert [u["id"] for u in (await alice.call("contacts.list"))["users"]] == [uid(bob)]

        await alice.call("contacts.remove", user_id=uid(bob))
        assert (await bob.call("users.get", user_id=uid(alice)))["phone"] is None
    finally:
        await carol.close()


async def test_a_second_device_signs_into_the_same_account(
    server: ServerProcess, alice: Client
) -> None:
    laptop = await second_device(server.url, await phone_of(alice))
    try:
        assert uid(laptop) == uid(alice)
        assert (await laptop.get_me()).display_name == "Alice"
    finally:
        await laptop.close()
