"""The shortest path through the product: two users, one message, both backends."""

from __future__ import annotations

import asyncio

from samizdat.client import Client, NewMessage


async def test_message_reaches_the_recipient_in_real_time(alice: Client, bob: Client) -> None:
    received: asyncio.Queue[NewMessage] = asyncio.Queue()
    bob.on(NewMessage)(received.put)
    assert alice.me is not None
    assert bob.me is not None
    sent = await alice.send_message(
        str((await alice.call("chats.open_private", user_id=bob.me.id))["id"]), "hello"
    )
    update = await asyncio.wait_for(received.get(), 5)
    assert update.message.id == sent.id
    assert update.message.text == "hello"
    assert update.message.sender_id == alice.me.id
