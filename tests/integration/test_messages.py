"""Messages across devices and chats: delivery to every device, the dialog list, history."""

from __future__ import annotations

import pytest

from samizdat.client import Client, NewMessage
from samizdat.protocol.errors import ErrorCode
from samizdat.protocol.methods import MAX_TEXT_LENGTH
from tests.harness import ServerProcess, new_test_phone
from tests.inbox import Inbox, another_device, next_push, private_chat, raw_device, refused, uid


async def test_a_message_reaches_every_other_device_and_only_the_ack_goes_to_its_sender(
    server: ServerProcess, bob: Client
) -> None:
    phone, _ = new_test_phone()
    async with (
        raw_device(server.url, phone, display_name="Alice") as (alice_a, _),
        another_device(server.url, phone) as alice_b,
        another_device(server.url, bob) as bob_laptop,
    ):
        devices = {"alice B": Inbox(alice_b), "bob": Inbox(bob), "bob laptop": Inbox(bob_laptop)}
        chat = await alice_a.result("chats.open_private", user_id=uid(bob))

        ack = await alice_a.result(
            "messages.send", chat_id=chat["id"], text="to every device", random_id=7
        )

        for name, inbox in devices.items():
            pushed = (await inbox.next(NewMessage)).message
            assert (pushed.id, pushed.text) == (ack["message"]["id"], "to every device"), name
        # Device A got the ack, not a push: the next push it sees is Bob's answer.
        answer = await bob.send_message(chat["id"], "got it")
        push = await next_push(alice_a)
        assert push["update"]["message"]["id"] == answer.id
        assert push["seq"] == ack["seq"] + 1
        assert (await devices["alice B"].next(NewMessage)).message.id == answer.id


async def test_the_dialog_list_is_ordered_by_newest_message_with_its_text(
    alice: Client, bob: Client, carol: Client
) -> None:
    with_bob = await private_chat(alice, bob)
    with_carol = await private_chat(alice, carol)
    club = (await alice.create_group("Club", [uid(bob), uid(carol)])).id
    await alice.send_message(with_bob, "one")
    await carol.send_message(with_carol, "two")
    await bob.send_message(club, "three")

    dialogs = await alice.dialogs()
    assert [d.chat.id for d in dialogs] == [club, with_carol, with_bob]
    assert [d.last_message.text if d.last_message else None for d in dialogs] == [
        "three",
        "two",
        "one",
    ]

    await bob.send_message(with_bob, "four")
    dialogs = await alice.dialogs()
    assert [d.chat.id for d in dialogs] == [with_bob, club, with_carol]
    assert dialogs[0].last_message is not None
    assert dialogs[0].last_message.text == "four"
    assert [d.chat.id for d in await alice.dialogs(limit=2)] == [with_bob, club]


async def test_unread_counts_only_others_messages_until_they_are_read(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    received = [await bob.send_message(chat_id, f"from bob {i}") for i in range(3)]
    await alice.send_message(chat_id, "from alice")

    async def unread() -> int:
        (dialog,) = await alice.dialogs()
        return dialog.unread_count

    assert await unread() == 3
    await alice.mark_read(chat_id, received[1].id)
    assert await unread() == 1
    await alice.mark_read(chat_id, received[0].id)  # reading backwards changes nothing
    assert await unread() == 1
    await alice.mark_read(chat_id, received[2].id)
    assert await unread() == 0

    unwanted = await bob.send_message(chat_id, "oops")
    await bob.send_message(chat_id, "hello again")
    await bob.delete_messages(chat_id, [unwanted.id], for_everyone=True)
    assert await unread() == 1


async def test_a_message_deleted_for_me_leaves_my_dialog_preview_and_unread_count(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    first = await alice.send_message(chat_id, "first")
    second = await alice.send_message(chat_id, "second, which Bob would rather not see")

    await bob.delete_messages(chat_id, [second.id])

    (mine,) = await bob.dialogs()
    assert mine.last_message is not None
    assert (mine.last_message.id, mine.last_message.text) == (first.id, "first")
    assert mine.unread_count == 1
    (theirs,) = await alice.dialogs()
    assert theirs.last_message is not None
    assert theirs.last_message.id == second.id


async def test_a_message_deleted_for_everyone_leaves_every_dialog_preview(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    first = await alice.send_message(chat_id, "first")
    second = await alice.send_message(chat_id, "sent by mistake")

    await alice.delete_messages(chat_id, [second.id], for_everyone=True)

    for client in (alice, bob):
        (dialog,) = await client.dialogs()
        assert dialog.last_message is not None
        assert (dialog.last_message.id, dialog.last_message.text) == (first.id, "first")
    (bobs,) = await bob.dialogs()
    assert bobs.unread_count == 1


async def test_history_pages_backwards_newest_first(alice: Client, bob: Client) -> None:
    chat_id = await private_chat(alice, bob)
    for i in range(10):
        await (alice if i % 2 else bob).send_message(chat_id, str(i))

    pages: list[list[str]] = []
    before: int | None = None
    while True:
        page = await alice.history(chat_id, limit=4, before_id=before)
        if not page:
            break
        pages.append([m.text or "" for m in page])
        before = page[-1].id

    assert pages == [["9", "8", "7", "6"], ["5", "4", "3", "2"], ["1", "0"]]
    assert [m.text for m in await bob.history(chat_id)] == [str(i) for i in range(9, -1, -1)]


@pytest.mark.parametrize("limit", [0, 201])
async def test_history_limit_must_be_1_to_200(alice: Client, bob: Client, limit: int) -> None:
    chat_id = await private_chat(alice, bob)
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.history(chat_id, limit=limit)


async def test_a_text_of_4096_characters_arrives_whole(alice: Client, bob: Client) -> None:
    inbox = Inbox(bob)
    chat_id = await private_chat(alice, bob)
    longest = "ж" * (MAX_TEXT_LENGTH - 1) + "!"

    sent = await alice.send_message(chat_id, longest)

    assert (await inbox.next(NewMessage)).message.text == longest
    assert sent.text == longest
    assert (await bob.history(chat_id))[0].text == longest


async def test_a_text_of_4097_characters_is_refused(alice: Client, bob: Client) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "short")

    with refused(ErrorCode.INVALID_PARAMS):
        await alice.send_message(chat_id, "x" * (MAX_TEXT_LENGTH + 1))
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.edit_message(chat_id, sent.id, "x" * (MAX_TEXT_LENGTH + 1))
    assert [m.text for m in await alice.history(chat_id)] == ["short"]


@pytest.mark.parametrize("blank", [" ", "\n\t  \n", "\u3000"])
async def test_a_blank_text_is_refused(alice: Client, bob: Client, blank: str) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "not blank")

    with refused(ErrorCode.TEXT_INVALID):
        await alice.send_message(chat_id, blank)
    with refused(ErrorCode.TEXT_INVALID):
        await alice.edit_message(chat_id, sent.id, blank)
    assert [m.text for m in await alice.history(chat_id)] == ["not blank"]


async def test_an_empty_text_is_refused(alice: Client, bob: Client) -> None:
    chat_id = await private_chat(alice, bob)
    with refused(ErrorCode.INVALID_PARAMS):
        await alice.send_message(chat_id, "")
