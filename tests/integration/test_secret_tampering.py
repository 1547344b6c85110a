"""A server that alters, drops, reorders or replays secret ciphertexts is caught: the device
shows a loud notice (did not decrypt, missing, arrived late, replayed), never a wrong text.

The tests play the malicious server by editing its queue (``secret_inbox``) directly while
the recipient is offline, then let the recipient fetch as usual.
"""

from __future__ import annotations

from pathlib import Path

from samizdat.client.secret import MessageEntry, NoticeEntry
from tests.harness import ServerProcess
from tests.secret_devices import (
    Device,
    devices,
    inbox_rows,
    new_user,
    queue_row,
    restarted,
    run_sql,
    settle,
)

SENT = [f"dispatch {i}: the presses roll at dawn" for i in range(1, 7)]


def shown(device: Device, chat_id: str) -> list[MessageEntry]:
    return [e for e in device.secret.state.chats[chat_id].history if isinstance(e, MessageEntry)]


def alerts(device: Device, chat_id: str) -> list[str]:
    return [
        e.code
        for e in device.secret.state.chats[chat_id].history
        if isinstance(e, NoticeEntry) and e.level == "alert"
    ]


async def _tamper(server: ServerProcess, rows: list[dict[str, object]]) -> None:
    """Alter the 2nd, drop the 3rd, swap the 4th and 5th, replay the 1st at the end."""
    ids = [int(r["id"]) for r in rows]  # type: ignore[call-overload]
    altered = bytearray(rows[1]["ciphertext"])  # type: ignore[arg-type]
    altered[len(altered) // 2] ^= 0x01
    await run_sql(
        server, "UPDATE secret_inbox SET ciphertext = $1 WHERE id = $2", bytes(altered), ids[1]
    )
    await run_sql(server, "DELETE FROM secret_inbox WHERE id = $1", ids[2])
    await run_sql(server, "UPDATE secret_inbox SET id = $1 WHERE id = $2", -1, ids[3])
    await run_sql(server, "UPDATE secret_inbox SET id = $1 WHERE id = $2", ids[3], ids[4])
    await run_sql(server, "UPDATE secret_inbox SET id = $1 WHERE id = $2", ids[4], -1)
    await queue_row(server, rows[0], id=ids[-1] + 1000)


async def test_tampered_olm_messages_are_notices_never_wrong_text(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    async with devices(alice):
        await bob.close()  # Bob is offline: his ciphertexts wait on the server
        for text in SENT:
            await alice.secret.send(bob.user_id, text)
        rows = await inbox_rows(server, bob.device_id)
        assert len(rows) == len(SENT)
        await _tamper(server, rows)
        again = await restarted(server, bob, tmp_path)
        async with devices(again):
            chat = f"u{alice.user_id}"
            got = shown(again, chat)
            assert [e.text for e in got] == [SENT[0], SENT[4], SENT[3], SENT[5]]
            assert [e.late for e in got] == [False, False, True, False]
            codes = alerts(again, chat)
            assert codes.count("undecryptable") == 2  # the altered one, and the replay
            assert codes.count("gap") == 1
            assert await inbox_rows(server, bob.device_id) == []  # all acknowledged


async def test_a_replayed_pre_key_message_on_the_fallback_key_is_refused_and_breaks_nothing(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    async with devices(alice):
        # Someone drains Bob's one-time keys: Alice's session must start on his fallback
        # key, which (unlike a one-time key) opens the same pre-key message twice.
        while not (await alice.client.claim_keys([bob.device_id]))[0]["fallback"]:
            pass
        await bob.close()
        await alice.secret.send(bob.user_id, SENT[0])
        (row,) = await inbox_rows(server, bob.device_id)
        await queue_row(server, row, id=int(row["id"]) + 1000)
        again = await restarted(server, bob, tmp_path)
        async with devices(again):
            chat = f"u{alice.user_id}"
            assert [e.text for e in shown(again, chat)] == [SENT[0]]
            # It must not start a second session on the reusable fallback key (that would push
            # the real one aside and break the replies).
            assert alerts(again, chat) == ["undecryptable"]
            await again.secret.send(alice.user_id, "got it")
            assert (await alice.next_text()).text == "got it"
            await alice.secret.send(bob.user_id, SENT[1])
            await settle(again)
            assert [e.text for e in shown(again, chat)] == [SENT[0], "got it", SENT[1]]
            assert alerts(again, chat) == ["undecryptable"]


async def test_tampered_group_messages_are_notices_never_wrong_text(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    async with devices(alice):
        group = await alice.secret.create_group("cell", [bob.user_id])
        await alice.secret.send(group.id, "opening")
        await bob.secret.sync()
        await bob.close()
        for text in SENT:
            await alice.secret.send(group.id, text)
        rows = [r for r in await inbox_rows(server, bob.device_id) if r["olm_type"] == 2]
        assert len(rows) == len(SENT)
        await _tamper(server, rows)
        again = await restarted(server, bob, tmp_path)
        async with devices(again):
            got = shown(again, group.id)
            assert [e.text for e in got] == ["opening", SENT[0], SENT[4], SENT[3], SENT[5]]
            assert [e.late for e in got] == [False, False, False, True, False]
            codes = alerts(again, group.id)
            assert codes.count("undecryptable") == 1
            assert codes.count("gap") == 1
            assert codes.count("replay") == 1  # Megolm opens a replay; the index gives it away


async def test_a_ciphertext_relayed_as_from_someone_else_is_refused(
    server: ServerProcess, tmp_path: Path
) -> None:
    alice = await new_user(server, tmp_path, "Alice")
    bob = await new_user(server, tmp_path, "Bob")
    carol = await new_user(server, tmp_path, "Carol")
    async with devices(alice, carol):
        await carol.secret.send(bob.user_id, "hello from carol")
        await bob.close()
        await alice.secret.send(bob.user_id, "from alice, to be passed off as carol's")
        rows = await inbox_rows(server, bob.device_id)
        last = rows[-1]
        await run_sql(
            server,
            "UPDATE secret_inbox SET sender_user_id = $1, sender_device_id = $2 WHERE id = $3",
            carol.user_id,
            carol.device_id,
            last["id"],
        )
        again = await restarted(server, bob, tmp_path)
        async with devices(again):
            assert [e.text for e in shown(again, f"u{carol.user_id}")] == ["hello from carol"]
            assert "from alice, to be passed off as carol's" not in str(again.secret.state.chats)
            assert alerts(again, f"u{carol.user_id}") == ["undecryptable"]
