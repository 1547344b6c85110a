"""Groups: members, admins, removal and leaving, paging, and a group of 10,000 members."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import insert

from samizdat.client import ChatLeft, ChatUpdated, Client, NewMessage, Typing
from samizdat.core.ids import MAX_NODE, SnowflakeGenerator
from samizdat.protocol.errors import ErrorCode
from samizdat.protocol.methods import MAX_BATCH_IDS, MAX_GROUP_MEMBERS
from samizdat.protocol.models import PhoneVisibility
from samizdat.store.engine import open_engines
from samizdat.store.tables import update_seqs, users
from tests.custody_state import custodian_keys, server_keyring
from tests.harness import ServerProcess, new_test_phone, signed_in
from tests.inbox import Inbox, another_device, private_chat, refused, uid


async def test_a_new_group_makes_its_creator_admin_and_tells_every_member(
    alice: Client, bob: Client, carol: Client
) -> None:
    bobs, carols = Inbox(bob), Inbox(carol)

    chat = await alice.create_group("Book club", [uid(bob), uid(carol)])

    assert (chat.kind, chat.title, chat.member_count) == ("group", "Book club", 3)
    assert (chat.creator_id, chat.admin_ids) == (uid(alice), [uid(alice)])
    for inbox in (bobs, carols):
        assert (await inbox.next(ChatUpdated)).chat == chat
    assert [d.chat.id for d in await bob.dialogs()] == [chat.id]


async def test_a_member_listed_twice_or_the_creator_listed_is_counted_once(
    alice: Client, bob: Client
) -> None:
    chat = await alice.create_group("Pair", [uid(bob), uid(bob), uid(alice)])

    assert chat.member_count == 2
    members = await alice.call("chats.members", chat_id=chat.id)
    assert sorted(members["user_ids"]) == sorted([uid(alice), uid(bob)])


async def test_a_group_cannot_include_users_who_do_not_exist(alice: Client, bob: Client) -> None:
    with refused(ErrorCode.USER_NOT_FOUND):
        await alice.create_group("Ghosts", [uid(bob), 424242])
    assert await alice.dialogs() == []


async def test_a_message_to_a_group_reaches_every_member(
    alice: Client, bob: Client, carol: Client
) -> None:
    alices, carols = Inbox(alice), Inbox(carol)
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])

    sent = await bob.send_message(chat.id, "hello all")

    assert (await alices.next_of(NewMessage)).message == sent
    assert (await carols.next_of(NewMessage)).message == sent
    assert [m.id for m in await carol.history(chat.id)] == [sent.id]


async def test_a_member_who_is_not_admin_cannot_add_remove_rename_or_promote(
    server: ServerProcess, alice: Client, bob: Client, carol: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])
    dave = await signed_in(server.url, "Dave")
    try:
        with refused(ErrorCode.NOT_ADMIN):
            await bob.add_members(chat.id, [uid(dave)])
        with refused(ErrorCode.NOT_ADMIN):
            await bob.remove_member(chat.id, uid(carol))
        with refused(ErrorCode.NOT_ADMIN):
            await bob.rename_group(chat.id, "Bob's club")
        with refused(ErrorCode.NOT_ADMIN):
            await bob.call("groups.set_admin", chat_id=chat.id, user_id=uid(bob), admin=True)
    finally:
        await dave.close()

    unchanged = await alice.chat(chat.id)
    assert (unchanged.title, unchanged.member_count, unchanged.admin_ids) == (
        "Club",
        3,
        [uid(alice)],
    )


async def test_an_admin_can_add_remove_and_rename(
    alice: Client, bob: Client, carol: Client
) -> None:
    carols = Inbox(carol)
    chat = await alice.create_group("Club", [uid(bob)])

    added = await alice.add_members(chat.id, [uid(carol)])
    assert added.member_count == 3
    assert (await carols.next(ChatUpdated)).chat.member_count == 3
    renamed = await alice.rename_group(chat.id, "Reading club")
    assert renamed.title == "Reading club"
    assert (await carols.next(ChatUpdated)).chat.title == "Reading club"
    after_removal = await alice.remove_member(chat.id, uid(bob))
    assert after_removal.member_count == 2
    assert (await carols.next(ChatUpdated)).chat.member_count == 2
    assert sorted((await alice.call("chats.members", chat_id=chat.id))["user_ids"]) == sorted(
        [uid(alice), uid(carol)]
    )


async def test_a_member_made_admin_can_add_members_until_demoted(
    server: ServerProcess, alice: Client, bob: Client, carol: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob)])

    promoted = await alice.call("groups.set_admin", chat_id=chat.id, user_id=uid(bob), admin=True)
    assert sorted(promoted["admin_ids"]) == sorted([uid(alice), uid(bob)])
    assert (await bob.add_members(chat.id, [uid(carol)])).member_count == 3

    await alice.call("groups.set_admin", chat_id=chat.id, user_id=uid(bob), admin=False)
    dave = await signed_in(server.url, "Dave")
    try:
        with refused(ErrorCode.NOT_ADMIN):
            await bob.add_members(chat.id, [uid(dave)])
    finally:
        await dave.close()


async def test_the_creator_cannot_be_removed_or_demoted_even_by_another_admin(
    alice: Client, bob: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob)])
    await alice.call("groups.set_admin", chat_id=chat.id, user_id=uid(bob), admin=True)

    with refused(ErrorCode.NOT_ADMIN):
        await bob.remove_member(chat.id, uid(alice))
    with refused(ErrorCode.NOT_ADMIN):
        await bob.call("groups.set_admin", chat_id=chat.id, user_id=uid(alice), admin=False)
    assert (await bob.chat(chat.id)).member_count == 2


async def test_a_removed_member_is_told_and_can_no_longer_send_or_read(
    alice: Client, bob: Client, carol: Client
) -> None:
    bobs = Inbox(bob)
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])
    await bobs.next(ChatUpdated)
    before = await alice.send_message(chat.id, "while Bob was here")
    await bobs.next(NewMessage)

    await alice.remove_member(chat.id, uid(bob))

    assert (await bobs.next(ChatLeft)).chat_id == chat.id
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.send_message(chat.id, "can I still talk?")
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.history(chat.id)
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.call("chats.members", chat_id=chat.id)
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.react(chat.id, before.id, "👍")
    # Nothing more from the group reaches him: the next thing he hears is a private message.
    await alice.send_message(chat.id, "after Bob left")
    direct = await alice.send_message(await private_chat(alice, bob), "sorry Bob")
    assert (await bobs.next(NewMessage)).message.id == direct.id
    assert chat.id not in [d.chat.id for d in await bob.dialogs()]


async def test_a_removed_member_added_back_can_read_and_write_again(
    alice: Client, bob: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob)])
    earlier = await alice.send_message(chat.id, "before")
    await alice.remove_member(chat.id, uid(bob))

    await alice.add_members(chat.id, [uid(bob)])

    assert [m.id for m in await bob.history(chat.id)] == [earlier.id]
    back = await bob.send_message(chat.id, "I'm back")
    assert [m.id for m in await alice.history(chat.id)] == [back.id, earlier.id]


async def test_typing_in_a_group_reaches_every_other_member(
    alice: Client, bob: Client, carol: Client
) -> None:
    bobs, carols = Inbox(bob), Inbox(carol)
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])

    await alice.typing(chat.id)

    for inbox in (bobs, carols):
        typing = await inbox.next_of(Typing)
        assert (typing.chat_id, typing.user_id) == (chat.id, uid(alice))


async def test_a_member_can_leave_and_the_others_see_the_new_count(
    alice: Client, bob: Client, carol: Client
) -> None:
    bobs, carols = Inbox(bob), Inbox(carol)
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])
    await carols.next(ChatUpdated)
    await bobs.next(ChatUpdated)

    await bob.leave(chat.id)

    assert (await bobs.next(ChatLeft)).chat_id == chat.id
    assert (await carols.next(ChatUpdated)).chat.member_count == 2
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.send_message(chat.id, "wait")
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await bob.leave(chat.id)


async def test_group_actions_in_a_private_chat_are_refused(
    alice: Client, bob: Client, carol: Client
) -> None:
    chat_id = await private_chat(alice, bob)

    with refused(ErrorCode.CHAT_INVALID):
        await alice.leave(chat_id)
    with refused(ErrorCode.CHAT_INVALID):
        await alice.add_members(chat_id, [uid(carol)])
    with refused(ErrorCode.CHAT_INVALID):
        await alice.rename_group(chat_id, "Not a group")


async def test_an_admin_can_delete_anyones_group_message_for_everyone(
    alice: Client, bob: Client, carol: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob), uid(carol)])
    spam = await bob.send_message(chat.id, "buy my stuff")

    with refused(ErrorCode.NOT_AUTHOR):
        await carol.delete_messages(chat.id, [spam.id], for_everyone=True)
    await alice.delete_messages(chat.id, [spam.id], for_everyone=True)

    assert await carol.history(chat.id) == []


async def test_members_are_paged_with_offset_and_limit(
    server: ServerProcess, alice: Client
) -> None:
    others = await asyncio.gather(*(signed_in(server.url, f"Member {i}") for i in range(6)))
    try:
        chat = await alice.create_group("Club", [uid(c) for c in others])

        pages = [
            await alice.call("chats.members", chat_id=chat.id, offset=offset, limit=3)
            for offset in (0, 3, 6)
        ]
    finally:
        await asyncio.gather(*(c.close() for c in others))

    assert [p["total"] for p in pages] == [7, 7, 7]
    assert [len(p["user_ids"]) for p in pages] == [3, 3, 1]
    everyone = [u for p in pages for u in p["user_ids"]]
    assert sorted(everyone) == sorted([uid(alice), *(uid(c) for c in others)])


async def seed_accounts(server: ServerProcess, count: int) -> dict[int, str]:
    """Write ``count`` accounts straight into the server's database, as sign-up would.

    Returns each new user's id and test number (so a test can sign in as one later).
    Signing up over the API costs two requests and two serialised write transactions per
    user (6-12 ms each here), so 10,000 sign-ups alone would take minutes. Everything the
    test checks about the group itself still goes through the API.
    """
    keyring = await server_keyring(server, custodian_keys(server.data_dir))
    ids = SnowflakeGenerator(node=MAX_NODE)  # the server is node 0, so no id can collide
    now = time.time()
    phones = {ids.next(now): new_test_phone()[0] for _ in range(count)}
    accounts = [
        {
            "id": user_id,
            "display_name": "Seeded",
            "username": None,
            "username_key": None,
            "phone_lookup": keyring.phone_lookup(phone),
            "phone_envelope": None,
            "phone_shown": None,
            "phone_visibility": PhoneVisibility.NOBODY.value,
            "created_at": now,
        }
        for user_id, phone in phones.items()
    ]
    if server.pg_database is not None:
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{server.pg_database}"
    else:
        url = f"sqlite+aiosqlite:///{server.sqlite_path.resolve()}"
    engines = open_engines(url)
    try:
        async with engines.writer.begin() as conn:
            await conn.execute(insert(users), accounts)
            await conn.execute(insert(update_seqs), [{"user_id": u, "seq": 0} for u in phones])
    finally:
        await engines.dispose()
    return phones


@pytest.mark.slow
async def test_a_group_of_ten_thousand_members_stores_a_message_for_all_and_pushes_it_live(
    server: ServerProcess, alice: Client
) -> None:
    online = await asyncio.gather(*(signed_in(server.url, f"Online {i}") for i in range(3)))
    try:
        inboxes = [Inbox(c) for c in online]
        phones = await seed_accounts(server, MAX_GROUP_MEMBERS - len(online))
        *seeded, one_too_many = phones
        members = [*(uid(c) for c in online), *seeded]
        chat = await alice.call(
            "groups.create", title="Everyone", member_ids=members[:MAX_BATCH_IDS]
        )
        for start in range(MAX_BATCH_IDS, len(members), MAX_BATCH_IDS):
            batch = members[start : start + MAX_BATCH_IDS]
            chat = await alice.call("groups.add", chat_id=chat["id"], user_ids=batch)
        assert chat["member_count"] == MAX_GROUP_MEMBERS
        with refused(ErrorCode.CHAT_INVALID):
            await alice.call("groups.add", chat_id=chat["id"], user_ids=[one_too_many])

        sent = await alice.send_message(chat["id"], "hello, ten thousand")

        for inbox in inboxes:
            assert (await inbox.next_of(NewMessage, timeout=30)).message.id == sent.id
        assert [m.id for m in await online[0].history(chat["id"])] == [sent.id]
        last_page = await online[1].call(
            "chats.members", chat_id=chat["id"], offset=MAX_GROUP_MEMBERS - 100, limit=200
        )
        assert (last_page["total"], len(last_page["user_ids"])) == (MAX_GROUP_MEMBERS, 100)
        # A member who was offline all along finds the message in their update log.
        async with another_device(server.url, phones[seeded[-1]]) as latecomer:
            log = await latecomer.call("updates.difference", since=0)
        assert [u["update"]["type"] for u in log["updates"]] == ["chat_updated", "new_message"]
        assert log["updates"][-1]["update"]["message"]["text"] == "hello, ten thousand"
    finally:
        await asyncio.gather(*(c.close() for c in online))
