"""Private chats: one chat per pair of users, and everything that can happen to a message."""

from __future__ import annotations

import asyncio
import secrets

import orjson

from samizdat.client import (
    Client,
    MessageEdited,
    MessagesDeleted,
    NewMessage,
    ReactionChanged,
    ReadInbox,
    ReadOutbox,
    Typing,
)
from samizdat.protocol.errors import ErrorCode
from tests.harness import ServerProcess
from tests.inbox import Inbox, another_device, private_chat, refused, uid


async def test_opening_a_private_chat_is_idempotent_and_symmetric(
    alice: Client, bob: Client
) -> None:
    first = await alice.call("chats.open_private", user_id=uid(bob))
    again = await alice.call("chats.open_private", user_id=uid(bob))
    theirs = await bob.call("chats.open_private", user_id=uid(alice))

    assert first["id"] == again["id"] == theirs["id"]
    assert first["kind"] == "private"
    assert first["member_count"] == 2
    assert first["peer_id"] == uid(bob)
    assert theirs["peer_id"] == uid(alice)


async def test_both_users_opening_their_chat_at_once_get_the_same_chat(
    alice: Client, bob: Client
) -> None:
    mine, theirs = await asyncio.gather(
        alice.call("chats.open_private", user_id=uid(bob)),
        bob.call("chats.open_private", user_id=uid(alice)),
    )

    assert mine["id"] == theirs["id"]


async def test_a_private_chat_needs_another_existing_user(alice: Client) -> None:
    with refused(ErrorCode.CHAT_INVALID):
        await alice.call("chats.open_private", user_id=uid(alice))
    with refused(ErrorCode.USER_NOT_FOUND):
        await alice.call("chats.open_private", user_id=12345)


async def test_a_message_reaches_the_peer_and_both_histories(alice: Client, bob: Client) -> None:
    inbox = Inbox(bob)
    chat_id = await private_chat(alice, bob)

    sent = await alice.send_message(chat_id, "hello")

    pushed = await inbox.next(NewMessage)
    assert pushed.message == sent
    assert sent.sender_id == uid(alice)
    assert sent.chat_id == chat_id
    assert [m.text for m in await alice.history(chat_id)] == ["hello"]
    assert [m.text for m in await bob.history(chat_id)] == ["hello"]


async def test_someone_outside_a_private_chat_can_neither_read_nor_write_it(
    alice: Client, bob: Client, carol: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    await alice.send_message(chat_id, "just between us")

    with refused(ErrorCode.CHAT_NOT_FOUND):
        await carol.history(chat_id)
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await carol.call("messages.send", chat_id=chat_id, text="hi", random_id=1)
    with refused(ErrorCode.CHAT_NOT_FOUND):
        await carol.call("chats.get", chat_id=chat_id)


async def test_a_reply_points_at_the_message_it_answers(alice: Client, bob: Client) -> None:
    inbox = Inbox(alice)
    chat_id = await private_chat(alice, bob)
    question = await alice.send_message(chat_id, "tea?")

    answer = await bob.send_message(chat_id, "yes please", reply_to=question.id)

    assert answer.reply_to_id == question.id
    assert (await inbox.next(NewMessage)).message.reply_to_id == question.id
    assert (await alice.history(chat_id))[0].reply_to_id == question.id


async def test_a_reply_to_a_message_that_is_not_in_the_chat_is_refused(
    alice: Client, bob: Client, carol: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    elsewhere = await alice.send_message(await private_chat(alice, carol), "other chat")

    for missing in (elsewhere.id, 424242):
        with refused(ErrorCode.MESSAGE_NOT_FOUND):
            await alice.send_message(chat_id, "re", reply_to=missing)
    assert await alice.history(chat_id) == []


async def test_a_forwarded_message_keeps_its_original_sender(
    alice: Client, bob: Client, carol: Client
) -> None:
    carols = Inbox(carol)
    bobs = Inbox(bob)
    with_bob = await private_chat(alice, bob)
    with_carol = await private_chat(alice, carol)
    original = await bob.send_message(with_bob, "the recipe: flour, water, salt")

    (forwarded,) = await alice.forward_messages(with_bob, [original.id], with_carol)

    pushed = (await carols.next(NewMessage)).message
    assert pushed == forwarded
    assert pushed.sender_id == uid(alice)
    assert pushed.text == original.text
    assert pushed.forward is not None
    assert (pushed.forward.sender_id, pushed.forward.chat_id, pushed.forward.message_id) == (
        uid(bob),
        with_bob,
        original.id,
    )

    # Forwarding a forward still credits the first author.
    carol_and_bob = await private_chat(carol, bob)
    (to_bob,) = await carol.forward_messages(with_carol, [forwarded.id], carol_and_bob)
    assert (await bobs.next(NewMessage)).message == to_bob
    assert to_bob.forward == pushed.forward


async def test_forwarding_from_a_chat_you_are_not_in_is_refused(
    alice: Client, bob: Client, carol: Client
) -> None:
    theirs = await private_chat(alice, bob)
    message = await alice.send_message(theirs, "not for carol")

    with refused(ErrorCode.CHAT_NOT_FOUND):
        await carol.forward_messages(theirs, [message.id], await private_chat(carol, alice))


async def test_an_edit_reaches_the_peer_and_replaces_the_text(alice: Client, bob: Client) -> None:
    inbox = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "helo")
    await inbox.next(NewMessage)

    edited = await alice.edit_message(chat_id, sent.id, "hello")

    assert edited.id == sent.id
    assert edited.text == "hello"
    assert edited.edit_date is not None
    assert (await inbox.next(MessageEdited)).message == edited
    assert [m.text for m in await bob.history(chat_id)] == ["hello"]


async def test_editing_someone_elses_message_is_refused(alice: Client, bob: Client) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "mine")

    with refused(ErrorCode.NOT_AUTHOR):
        await bob.edit_message(chat_id, sent.id, "now mine")
    assert [m.text for m in await alice.history(chat_id)] == ["mine"]


async def test_deleting_for_me_hides_the_message_only_from_me(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    alices = Inbox(alice)
    chat_id = await private_chat(alice, bob)
    async with another_device(server.url, bob) as bob_laptop:
        laptop = Inbox(bob_laptop)
        sent = await alice.send_message(chat_id, "awkward")
        assert (await laptop.next(NewMessage)).message.id == sent.id

        await bob.delete_messages(chat_id, [sent.id])

        hidden = await laptop.next(MessagesDeleted)
        assert (hidden.message_ids, hidden.for_everyone) == ([sent.id], False)
        assert await bob.history(chat_id) == []
        assert await bob_laptop.history(chat_id) == []
        assert [m.id for m in await alice.history(chat_id)] == [sent.id]
        # Alice is not told: the next thing she hears of is Bob's next message.
        later = await bob.send_message(chat_id, "anyway")
        assert (await alices.next(NewMessage)).message.id == later.id


async def test_deleting_for_everyone_erases_the_text_from_histories_and_resync(
    alice: Client, bob: Client
) -> None:
    inbox = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    bob_since = (await bob.call("updates.state"))["seq"]
    alice_since = (await alice.call("updates.state"))["seq"]
    secret = f"the password is {secrets.token_hex(8)}"
    sent = await alice.send_message(chat_id, secret)
    await inbox.next(NewMessage)

    await alice.delete_messages(chat_id, [sent.id], for_everyone=True)

    deleted = await inbox.next(MessagesDeleted)
    assert (deleted.message_ids, deleted.for_everyone) == ([sent.id], True)
    assert await alice.history(chat_id) == []
    assert await bob.history(chat_id) == []
    for client, since in ((alice, alice_since), (bob, bob_since)):
        difference = await client.call("updates.difference", since=since)
        assert secret.encode() not in orjson.dumps(difference)
        updates = [u["update"] for u in difference["updates"]]
        (created,) = [u for u in updates if u["type"] == "new_message"]
        assert created["message"]["id"] == sent.id
        assert created["message"]["text"] is None
        assert created["message"]["deleted"] is True


async def test_a_message_deleted_for_everyone_can_no_longer_be_touched(
    alice: Client, bob: Client, carol: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    gone = await alice.send_message(chat_id, "gone")
    await alice.delete_messages(chat_id, [gone.id], for_everyone=True)

    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await alice.edit_message(chat_id, gone.id, "back?")
    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await bob.react(chat_id, gone.id, "👍")
    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await bob.send_message(chat_id, "what was that?", reply_to=gone.id)
    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await alice.forward_messages(chat_id, [gone.id], await private_chat(alice, carol))
    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await alice.delete_messages(chat_id, [gone.id], for_everyone=True)


async def test_only_the_author_can_delete_a_private_message_for_everyone(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "keep this")

    with refused(ErrorCode.NOT_AUTHOR):
        await bob.delete_messages(chat_id, [sent.id], for_everyone=True)
    assert [m.id for m in await bob.history(chat_id)] == [sent.id]


async def test_reactions_are_counted_changed_and_removed(alice: Client, bob: Client) -> None:
    alices, bobs = Inbox(alice), Inbox(bob)
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "good news")
    await bobs.next(NewMessage)

    await bob.react(chat_id, sent.id, "👍")
    seen = await alices.next(ReactionChanged)
    assert (seen.message_id, seen.user_id, seen.emoji) == (sent.id, uid(bob), "👍")
    assert seen.reactions == {"👍": 1}

    await alice.react(chat_id, sent.id, "👍")
    assert (await bobs.next(ReactionChanged)).reactions == {"👍": 2}

    await bob.react(chat_id, sent.id, "❤️")
    changed = await alices.next(ReactionChanged)
    assert (changed.emoji, changed.reactions) == ("❤️", {"👍": 1, "❤️": 1})

    await bob.react(chat_id, sent.id, None)
    removed = await alices.next(ReactionChanged)
    assert (removed.emoji, removed.reactions) == (None, {"👍": 1})
    assert (await bob.history(chat_id))[0].reactions == {"👍": 1}


async def test_setting_the_same_reaction_twice_changes_nothing(alice: Client, bob: Client) -> None:
    alices = Inbox(alice)
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "news")
    await bob.react(chat_id, sent.id, "🔥")
    await alices.next(ReactionChanged)

    await bob.react(chat_id, sent.id, "🔥")

    later = await bob.send_message(chat_id, "barrier")
    assert (await alices.next(NewMessage)).message.id == later.id
    assert (await alice.history(chat_id))[1].reactions == {"🔥": 1}


async def test_reading_a_chat_tells_the_readers_other_devices_and_the_sender(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
    alices = Inbox(alice)
    chat_id = await private_chat(alice, bob)
    async with another_device(server.url, bob) as bob_laptop:
        laptop = Inbox(bob_laptop)
        sent = [await alice.send_message(chat_id, f"message {i}") for i in range(3)]
        for message in sent:
            assert (await laptop.next(NewMessage)).message.id == message.id
        (dialog,) = [d for d in await bob.dialogs() if d.chat.id == chat_id]
        assert dialog.unread_count == 3

        await bob.mark_read(chat_id, sent[-1].id)

        inbox_read = await laptop.next(ReadInbox)
        assert (inbox_read.chat_id, inbox_read.max_id) == (chat_id, sent[-1].id)
        outbox_read = await alices.next(ReadOutbox)
        assert (outbox_read.chat_id, outbox_read.user_id, outbox_read.max_id) == (
            chat_id,
            uid(bob),
            sent[-1].id,
        )
        (dialog,) = [d for d in await bob_laptop.dialogs() if d.chat.id == chat_id]
        assert (dialog.unread_count, dialog.read_inbox_max_id) == (0, sent[-1].id)
        (theirs,) = [d for d in await alice.dialogs() if d.chat.id == chat_id]
        assert theirs.read_outbox_max_id == sent[-1].id


async def test_reading_past_the_newest_message_does_not_mark_later_messages_read(
    alice: Client, bob: Client
) -> None:
    alices = Inbox(alice)
    chat_id = await private_chat(alice, bob)
    first = await alice.send_message(chat_id, "first")

    await bob.mark_read(chat_id, 2**53 - 1)

    receipt = await alices.next(ReadOutbox)
    assert receipt.max_id == first.id
    await alice.send_message(chat_id, "second")
    (dialog,) = await bob.dialogs()
    assert (dialog.unread_count, dialog.read_inbox_max_id) == (1, first.id)
    (theirs,) = await alice.dialogs()
    assert theirs.read_outbox_max_id == first.id


async def test_typing_reaches_the_peer_without_being_numbered(alice: Client, bob: Client) -> None:
    inbox = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    before = (await bob.call("updates.state"))["seq"]

    await alice.typing(chat_id)

    typing = await inbox.next(Typing)
    assert (typing.chat_id, typing.user_id) == (chat_id, uid(alice))
    assert (await bob.call("updates.state"))["seq"] == before
