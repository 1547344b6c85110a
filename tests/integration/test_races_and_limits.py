"""Races and amplification limits: what concurrency and cheap requests must not get past."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from samizdat.client import Client, MessageEdited, NewMessage, Typing
from samizdat.protocol.errors import ErrorCode, SamizdatError
from tests.harness import TEST_LIMITS, ServerProcess, new_test_phone, signed_in
from tests.inbox import Inbox, private_chat, refused
from tests.raw_socket import RawSocket, error_code


async def test_concurrent_wrong_codes_cannot_exceed_the_attempt_cap(
    server: ServerProcess,
) -> None:
    phone, code = new_test_phone()
    wrong = "9" if code[0] != "9" else "8"
    async with RawSocket.open(server.url) as sock:
        await sock.result("auth.send_code", phone=phone)
        frames = [
            {"id": i, "method": "auth.sign_in", "params": {"phone": phone, "code": wrong * 5}}
            for i in range(1, 21)
        ]
        for frame in frames:  # pipelined: all twenty are in flight together
            await sock.send(frame)
        replies = [await sock.reply() for _ in frames]
        codes = [error_code(r) for r in replies]
        assert codes.count(ErrorCode.CODE_INVALID) <= 5
        assert set(codes) <= {ErrorCode.CODE_INVALID, ErrorCode.CODE_EXPIRED}
        # The right code is now useless: the guesses used up this code.
        assert error_code(await sock.call("auth.sign_in", phone=phone, code=code)) == (
            ErrorCode.CODE_EXPIRED
        )


async def test_a_forward_does_not_swallow_the_next_plain_send(alice: Client, bob: Client) -> None:
    chat_id = await private_chat(alice, bob)
    first = await alice.send_message(chat_id, "one", random_id=100)
    await alice.forward_messages(chat_id, [first.id], chat_id)  # random_id chosen by the SDK
    forwarded = await alice.call(
        "messages.forward",
        from_chat_id=chat_id,
        message_ids=[first.id],
        to_chat_id=chat_id,
        random_id=500,
    )
    after = await alice.send_message(chat_id, "a new text", random_id=501)
    assert after.text == "a new text"
    assert after.id != forwarded["messages"][0]["id"]


async def test_typing_reaches_the_peer_at_most_once_per_interval(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    inbox = Inbox(bob)
    for _ in range(5):
        await alice.typing(chat_id)
    await alice.send_message(chat_id, "done typing")
    assert isinstance(await inbox.next(Typing), Typing)
    assert (await inbox.next(NewMessage)).message.text == "done typing"


async def test_a_read_that_changes_nothing_returns_no_update_number(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "read me")
    first = await bob.call("messages.read", chat_id=chat_id, max_id=sent.id)
    again = await bob.call("messages.read", chat_id=chat_id, max_id=sent.id)
    assert isinstance(first["seq"], int)
    assert again["seq"] is None


async def test_a_huge_backlog_comes_back_in_frames_under_the_size_budget(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    since = (await bob.call("updates.state"))["seq"]
    heavy = "😀" * 4096  # 16 KiB of UTF-8 per message
    for i in range(80):
        await alice.send_message(chat_id, heavy, random_id=10_000 + i)
    page = await bob.call("updates.difference", since=since, limit=1000)
    assert page["more"] is True
    assert 0 < len(page["updates"]) < 80
    assert len(orjson.dumps(page)) < 2 * 1024 * 1024
    seen = [u["seq"] for u in page["updates"]]
    while page["more"]:
        page = await bob.call("updates.difference", since=seen[-1], limit=1000)
        seen += [u["seq"] for u in page["updates"]]
    assert seen == list(range(since + 1, since + 81))


async def test_an_edit_of_a_message_deleted_for_everyone_is_refused(
    alice: Client, bob: Client
) -> None:
    chat_id = await private_chat(alice, bob)
    sent = await alice.send_message(chat_id, "soon gone")
    inbox = Inbox(bob)
    await alice.delete_messages(chat_id, [sent.id], for_everyone=True)
    with refused(ErrorCode.MESSAGE_NOT_FOUND):
        await alice.edit_message(chat_id, sent.id, "back again")
    history = await bob.history(chat_id)
    assert all(m.id != sent.id for m in history)
    assert not [u for u in inbox.taken_now() if isinstance(u, MessageEdited)]


async def test_lookups_by_phone_number_are_limited_per_user(server: ServerProcess) -> None:
    searcher = await signed_in(server.url, "Searcher")
    try:
        codes: list[ErrorCode] = []
        for n in range(40):
            try:
                await searcher.resolve(f"+1650253{n:04d}")
            except SamizdatError as exc:
                codes.append(exc.code)
        assert codes[:30] == [ErrorCode.USER_NOT_FOUND] * 30
        assert set(codes[30:]) == {ErrorCode.FLOOD_WAIT}
    finally:
        await searcher.close()


@pytest.mark.slow
async def test_a_socket_that_never_authorises_is_closed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    server = ServerProcess(
        tmp_path / "srv", extra_config=TEST_LIMITS + "auth_timeout_seconds = 1\n"
    )
    server.start()
    try:
        async with RawSocket.open(server.url) as sock:
            await asyncio.sleep(1.5)
            with pytest.raises(Exception):  # noqa: B017, PT011 - closed by the server
                await sock.call("users.me")
            assert sock.ws.close_code == 4003
    finally:
        server.cleanup()


async def test_a_removed_member_catching_up_learns_nothing_written_after_removal(
    alice: Client, bob: Client
) -> None:
    assert bob.me is not None
    group = await alice.create_group("closing ranks", [bob.me.id])
    since = (await bob.call("updates.state"))["seq"]
    sent = await alice.send_message(group.id, "before")
    await alice.remove_member(group.id, bob.me.id)
    await alice.edit_message(group.id, sent.id, "after removal")
    await alice.call("groups.rename", chat_id=group.id, title="new secret title")
    difference = await bob.call("updates.difference", since=since)
    text = orjson.dumps(difference).decode()
    assert "after removal" not in text
    assert "new secret title" not in text
    kinds = [u["update"]["type"] for u in difference["updates"]]
    assert kinds == ["new_message", "chat_left"]
