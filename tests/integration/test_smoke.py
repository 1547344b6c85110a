"""The shortest path through the product: two users, one message, both backends."""

from __future__ import annotations

import asyncio
import re

from samizdat.client import Client, NewMessage
from tests.harness import ServerProcess


async def test_message_reaches_the_recipient_in_real_time(
    server: ServerProcess, alice: Client, bob: Client
) -> None:
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
    # The embedded default (custodians in this process) says at start-up what that means.
    # The console wraps lines to its width, so compare with whitespace and colours collapsed.
    log = re.sub(r"\x1b\[[0-9;]*m", "", server.log_path.read_text())
    started = " ".join(log.split())
    assert "key custodians run in this process" in started
    assert "a seizure of this machine takes data and keys together" in started
