"""Nothing lost, no key used twice: a device that dies at the worst moment of a send or a
receipt comes back from its vault and goes on without losing or repeating anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from samizdat.client import Client
from samizdat.protocol.errors import Unavailable
from tests.harness import ServerProcess
from tests.secret_devices import (
    devices,
    inbox_rows,
    new_user,
    open_device,
    restarted,
    settle,
)


async def test_a_sender_that_dies_after_the_server_stored_its_message_never_reuses_a_key(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    async with devices(bob):
        await alice.secret.send(bob.user_id, "one")
        assert (await bob.next_text()).text == "one"
        real_send = alice.client.send_secret

        async def stored_then_died(*args: Any, **kwargs: Any) -> list[int]:
            await real_send(*args, **kwargs)  # the server has it...

            async def dead() -> None:
                return None  # ...and the process is gone: nothing more reaches the disk

            alice.secret._save = dead  # type: ignore[method-assign]
            raise Unavailable("connection to the server was lost")

        alice.client.send_secret = stored_then_died  # type: ignore[method-assign]
        with pytest.raises(Unavailable):
            await alice.secret.send(bob.user_id, "two")
        await alice.client.close()
        again = await restarted(server, alice, tmp_path)
        async with devices(again):
            # The vault holds the sessions as they were when "two" left (written ahead), so
            # "three" uses the next message key and the next number: no reuse, no replay.
            await again.secret.send(bob.user_id, "three")
            await settle(bob)
            assert bob.texts(f"u{alice.user_id}") == ["one", "two", "three"]
            assert not [n for n in bob.notices if n.level == "alert"]


async def test_a_receiver_that_dies_before_acknowledging_shows_each_message_once(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    async with devices(alice):
        await bob.close()
        await alice.secret.send(bob.user_id, "while you were away")
        client = Client(server.url, session=bob.client.session)
        await client.connect()

        async def ack_lost(ids: list[int]) -> int:
            return 0  # the process dies after saving, before the server hears the ack

        client.ack_secret = ack_lost  # type: ignore[method-assign]
        first = await open_device(client, tmp_path, vault_dir=bob.vault_dir)
        assert first.texts(f"u{alice.user_id}") == ["while you were away"]
        assert len(await inbox_rows(server, bob.device_id)) == 1  # still queued
        await client.close()
        again = await restarted(server, bob, tmp_path)
        async with devices(again):
            assert again.texts(f"u{alice.user_id}") == ["while you were away"]
            assert not [n for n in again.notices if n.level == "alert"]
            assert await inbox_rows(server, bob.device_id) == []  # recognised, then acknowledged
