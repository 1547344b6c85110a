"""Sync: a device that was away gets exactly what it missed; a retried send is stored once."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets

import httpx

from samizdat.client import Client, NewMessage, Session
from samizdat.protocol.models import (
    ChatLeftUpdate,
    MessageEditedUpdate,
    MessagesDeletedUpdate,
    NewMessageUpdate,
    ReactionUpdate,
    ReadInboxUpdate,
    Wire,
)
from tests.harness import ServerProcess
from tests.inbox import Inbox, another_device, phone_of, private_chat, uid


def describe(update: Wire) -> tuple[str, int | None, str | None]:
    """(type, message or chat id, text or emoji) of an update, to compare whole sequences."""
    match update:
        case NewMessageUpdate(message=m) | MessageEditedUpdate(message=m):
            return (update.type, m.id, m.text)
        case MessagesDeletedUpdate(message_ids=[one]):
            return (update.type, one, None)
        case ReactionUpdate(message_id=one, emoji=emoji):
            return (update.type, one, emoji)
        case ReadInboxUpdate(max_id=max_id):
            return (update.type, max_id, None)
        case ChatLeftUpdate(chat_id=chat_id):
            return (update.type, chat_id, None)
    raise AssertionError(f"unexpected update {update!r}")


async def seen_everything_then_closed(device: Client, sender: Client, chat_id: int) -> Session:
    """Have ``device`` receive one message live, then disconnect; return its saved session."""
    inbox = Inbox(device)
    sent = await sender.send_message(chat_id, "seen live")
    assert (await inbox.next_of(NewMessage)).message.id == sent.id
    assert device.session is not None
    assert device.session.seq == (await device.call("updates.state"))["seq"]
    saved = dataclasses.replace(device.session)
    await device.close()
    return saved


async def test_a_device_that_reconnects_receives_exactly_what_it_missed_in_order(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    bob_phone = await phone_of(bob)
    saved = await seen_everything_then_closed(bob, alice, chat_id)

    missed = [await alice.send_message(chat_id, f"missed {i}") for i in range(5)]
    await alice.edit_message(chat_id, missed[1].id, "missed 1, edited")
    await alice.delete_messages(chat_id, [missed[2].id], for_everyone=True)
    await alice.react(chat_id, missed[3].id, "👍")
    async with another_device(server.url, bob_phone) as bob_laptop:
        from_laptop = await bob_laptop.send_message(chat_id, "sent from my laptop")
        await bob_laptop.mark_read(chat_id, missed[4].id)

    resumed = Client(server.url, session=saved)
    inbox = Inbox(resumed)
    await resumed.connect()  # catches up before it returns
    try:
        assert [describe(u) for u in inbox.taken_now()] == [
            ("new_message", missed[0].id, "missed 0"),
            ("new_message", missed[1].id, "missed 1, edited"),  # messages as they are now
            ("new_message", missed[2].id, None),  # deleted for everyone: the text is gone
            ("new_message", missed[3].id, "missed 3"),
            ("new_message", missed[4].id, "missed 4"),
            ("message_edited", missed[1].id, "missed 1, edited"),
            ("messages_deleted", missed[2].id, None),
            ("reaction", missed[3].id, "👍"),
            ("new_message", from_laptop.id, "sent from my laptop"),
            ("read_inbox", missed[4].id, None),
        ]
        assert resumed.session is not None
        assert resumed.session.seq == (await resumed.call("updates.state"))["seq"]

        live = await alice.send_message(chat_id, "live again")
        assert (await inbox.next(NewMessage)).message.id == live.id
        assert inbox.taken_now() == []
    finally:
        await resumed.close()


async def test_a_device_that_missed_nothing_receives_nothing_on_reconnect(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    saved = await seen_everything_then_closed(bob, alice, chat_id)

    resumed = Client(server.url, session=saved)
    inbox = Inbox(resumed)
    await resumed.connect()
    try:
        assert inbox.taken_now() == []
    finally:
        await resumed.close()


async def test_a_device_away_for_more_than_a_page_of_updates_catches_up_on_all_of_them(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    saved = await seen_everything_then_closed(bob, alice, chat_id)
    missed = 1001  # the SDK asks for 500 at a time: two full pages and one more

    await asyncio.gather(
        *(
            alice.call("messages.send", chat_id=chat_id, text=f"#{i}", random_id=i + 1)
            for i in range(missed)
        )
    )

    since = saved.seq
    resumed = Client(server.url, session=saved)
    inbox = Inbox(resumed)
    await resumed.connect()
    try:
        delivered = [describe(u)[1] for u in inbox.taken_now()]
        logged: list[int] = []
        while len(logged) < missed:
            page = await resumed.call("updates.difference", since=since, limit=1000)
            logged += [u["update"]["message"]["id"] for u in page["updates"]]
            since = page["updates"][-1]["seq"]
        assert len(delivered) == missed
        assert delivered == logged
        assert len(set(delivered)) == missed
    finally:
        await resumed.close()


async def test_a_member_removed_while_offline_learns_it_on_reconnect(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat = await alice.create_group("Club", [uid(bob)])
    saved = await seen_everything_then_closed(bob, alice, chat.id)

    last = await alice.send_message(chat.id, "last words")
    await alice.remove_member(chat.id, uid(bob))
    await alice.send_message(chat.id, "after Bob")

    resumed = Client(server.url, session=saved)
    inbox = Inbox(resumed)
    await resumed.connect()
    try:
        assert [describe(u) for u in inbox.taken_now()] == [
            ("new_message", last.id, "last words"),
            ("chat_left", chat.id, None),
        ]
    finally:
        await resumed.close()


async def test_the_difference_comes_in_pages_flagged_more_until_the_last(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    since = (await bob.call("updates.state"))["seq"]
    sent = [await alice.send_message(chat_id, f"#{i}") for i in range(6)]

    pages: list[list[int]] = []
    message_ids: list[int] = []
    cursor = since
    while True:
        difference = await bob.call("updates.difference", since=cursor, limit=4)
        assert difference["seq"] == since + 6
        pages.append([u["seq"] for u in difference["updates"]])
        message_ids += [u["update"]["message"]["id"] for u in difference["updates"]]
        if not difference["more"]:
            break
        cursor = difference["updates"][-1]["seq"]

    first = since + 1
    assert pages == [list(range(first, first + 4)), list(range(first + 4, first + 6))]
    assert message_ids == [m.id for m in sent]
    exact = await bob.call("updates.difference", since=since, limit=6)
    assert (len(exact["updates"]), exact["more"]) == (6, False)
    nothing_new = await bob.call("updates.difference", since=since + 6)
    assert (nothing_new["updates"], nothing_new["more"]) == ([], False)


async def test_a_send_retried_with_the_same_random_id_is_stored_once(
    alice: Client, bob: Client
) -> None:
    bobs = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    random_id = secrets.randbits(63)
    params = {"chat_id": chat_id, "random_id": random_id}

    first = await alice.call("messages.send", text="only once", **params)
    retry = await alice.call("messages.send", text="only once", **params)
    changed = await alice.call("messages.send", text="a retry cannot change it", **params)

    assert retry == first
    assert changed == first
    assert [m.text for m in await alice.history(chat_id)] == ["only once"]
    assert (await bobs.next(NewMessage)).message.id == first["message"]["id"]
    later = await alice.send_message(chat_id, "next")
    assert (await bobs.next(NewMessage)).message.id == later.id


async def test_two_concurrent_sends_with_the_same_random_id_are_stored_once(
    alice: Client, bob: Client
) -> None:
    bobs = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    params = {"chat_id": chat_id, "text": "racing", "random_id": secrets.randbits(63)}

    results = await asyncio.gather(*(alice.call("messages.send", **params) for _ in range(2)))

    assert results[0] == results[1]
    assert [m.text for m in await bob.history(chat_id)] == ["racing"]
    assert (await bobs.next(NewMessage)).message.id == results[0]["message"]["id"]
    later = await alice.send_message(chat_id, "next")
    assert (await bobs.next(NewMessage)).message.id == later.id


async def test_a_send_retried_over_http_while_the_socket_send_is_in_flight_is_stored_once(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    params = {"chat_id": chat_id, "text": "belt and braces", "random_id": secrets.randbits(63)}
    assert alice.session is not None
    headers = {"Authorization": f"Bearer {alice.session.token}"}

    async with httpx.AsyncClient(base_url=server.url) as http:
        over_socket, over_http = await asyncio.gather(
            alice.call("messages.send", **params),
            http.post("/api/messages.send", json=params, headers=headers),
        )

    assert over_http.status_code == 200
    assert over_http.json()["message"]["id"] == over_socket["message"]["id"]
    assert [m.text for m in await bob.history(chat_id)] == ["belt and braces"]


async def test_a_forward_retried_with_the_same_random_id_is_stored_once(
    alice: Client, bob: Client, carol: Client
) -> None:
    source = await private_chat(alice, bob)
    target = await private_chat(alice, carol)
    originals = [await bob.send_message(source, text) for text in ("one", "two")]
    params = {
        "from_chat_id": source,
        "message_ids": [m.id for m in originals],
        "to_chat_id": target,
        "random_id": secrets.randbits(63),
    }

    first = await alice.call("messages.forward", **params)
    retry = await alice.call("messages.forward", **params)

    assert [m["id"] for m in retry["messages"]] == [m["id"] for m in first["messages"]]
    assert [m.text for m in await carol.history(target)] == ["two", "one"]


async def test_the_same_random_id_from_two_users_makes_two_messages(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    random_id = secrets.randbits(63)

    mine = await alice.send_message(chat_id, "from alice", random_id=random_id)
    theirs = await bob.send_message(chat_id, "from bob", random_id=random_id)

    assert mine.id != theirs.id
    assert [m.sender_id for m in await alice.history(chat_id)] == [uid(bob), uid(alice)]
