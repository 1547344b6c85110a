"""`samizdat dc rotate-key`: a new DC key while the DC keeps serving, nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.cli_runner import samizdat
from tests.custody_state import dc_key_envelopes
from tests.harness import ServerProcess, second_device, signed_in, sql
from tests.raw_socket import user_id_of


async def test_rotation_rewraps_every_chat_key_while_messages_keep_flowing(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    server = await asyncio.to_thread(fresh_server.start)
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        groups = [
            (await alice.call("groups.create", title=f"g{n}", member_ids=[user_id_of(bob)]))["id"]
            for n in range(25)
        ]
        before = {g: (await alice.send_message(g, f"before rotation {g}")).text for g in groups}
        rotation = asyncio.create_task(
            asyncio.to_thread(
                samizdat,
                tmp_path / "operator",
                "dc",
                "rotate-key",
                "local",
                "--data",
                str(server.data_dir),
                "--server",
                server.url,
                "--json",
            )
        )
        during = []
        while not rotation.done():  # the DC keeps serving throughout
            group = groups[len(during) % len(groups)]
            during.append((group, (await bob.send_message(group, f"during {len(during)}")).text))
            await asyncio.sleep(0.05)
        result = await rotation
        assert result.code == 0, result.err
        record = result.record
        assert (record["state"], record["new_key"], record["retired"]) == ("done", "k2", ["k1"])
        assert record["rewrapped"] >= len(groups)
        assert len(during) > 10

        rows = await sql(server, "SELECT DISTINCT key_id FROM chats")
        assert {r["key_id"] for r in rows} == {"k2"}
        assert set(await dc_key_envelopes(server)) == {"k2"}
    finally:
        await alice.close()
        await bob.close()

    server.stop()
    await asyncio.to_thread(server.start)  # unseals with the new key only; everything still opens
    bob_again = await second_device(server.url, bob.test_phone)  # type: ignore[attr-defined]
    try:
        for group, text in [*before.items(), *during]:
            history = await bob_again.call("messages.history", chat_id=group, limit=100)
            assert text in {m["text"] for m in history["messages"]}
    finally:
        await bob_again.close()


async def test_rotation_needs_the_operators_admin_token(
    server: ServerProcess, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        reply = await http.post("/admin/rotate-key", headers={"authorization": "Bearer forged"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "UNAUTHORIZED"
    result = samizdat(
        tmp_path / "operator",
        "dc",
        "rotate-key",
        "local",
        "--data",
        str(tmp_path / "not-the-data-dir"),
        "--server",
        server.url,
    )
    assert result.code == 1
    assert "admin token" in result.err
    assert set(await dc_key_envelopes(server)) == {"k1"}


async def test_a_pre_custody_key_file_is_sealed_to_the_custodians_erased_and_rotated_away(
    fresh_server: ServerProcess, tmp_path: Path
) -> None:
    # An install from before custody: a database with accounts, no envelope, and dc.key.
    server = await asyncio.to_thread(fresh_server.start)
    await (await signed_in(server.url, "Before custody")).close()
    server.stop()
    await sql(server, "DELETE FROM dc_keys")
    key_file = server.data_dir / "dc.key"
    key_file.write_bytes(bytes(range(32)))

    await asyncio.to_thread(server.start)
    assert not key_file.exists()
    assert set(await dc_key_envelopes(server)) == {"file:1"}
    assert "destroy every other copy" in server.log_path.read_text()

    result = samizdat(
        tmp_path / "operator",
        "dc",
        "rotate-key",
        "local",
        "--data",
        str(server.data_dir),
        "--server",
        server.url,
        "--json",
    )
    assert result.code == 0, result.err
    assert (result.record["new_key"], result.record["retired"]) == ("k1", ["file:1"])
    assert set(await dc_key_envelopes(server)) == {"k1"}


async def test_a_key_file_is_never_imported_into_an_empty_database(
    fresh_server: ServerProcess,
) -> None:
    """An upgrade that points at a new, empty database must not swallow the old key."""
    fresh_server.data_dir.mkdir(parents=True)
    key_file = fresh_server.data_dir / "dc.key"
    key_file.write_bytes(bytes(range(32)))
    server = await asyncio.to_thread(fresh_server.start, wait_unsealed=False)
    async with httpx.AsyncClient(base_url=server.url) as http:
        status = (await http.get("/status")).json()["dcs"][0]
    assert status["state"] != "unsealed"
    assert "empty" in status["last_error"]
    assert key_file.read_bytes() == bytes(range(32))


async def test_a_corrupted_dc_key_envelope_keeps_the_dc_sealed_and_loses_nothing(
    fresh_server: ServerProcess,
) -> None:
    server = await asyncio.to_thread(fresh_server.start)
    alice = await signed_in(server.url, "Alice")
    bob = await signed_in(server.url, "Bob")
    try:
        chat = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        sent = await alice.send_message(chat, "kept through a corrupted envelope")
    finally:
        await alice.close()
        await bob.close()
    (original,) = (await dc_key_envelopes(server)).values()
    server.stop()
    damaged = bytearray(original)
    damaged[-1] ^= 0x40  # the sealed DC key itself (one bad share alone would not matter)
    await sql(server, "UPDATE dc_keys SET envelope = $1", bytes(damaged))
    await asyncio.to_thread(server.start, wait_unsealed=False)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await http.get("/health")).status_code == 503
        status = (await http.get("/status")).json()["dcs"][0]
    assert status["state"] == "sealed"
    assert status["last_error"]

    server.stop()
    await sql(server, "UPDATE dc_keys SET envelope = $1", original)
    await asyncio.to_thread(server.start)
    bob_again = await second_device(server.url, bob.test_phone)  # type: ignore[attr-defined]
    try:
        history = await bob_again.call("messages.history", chat_id=chat)
        assert sent.text in {m["text"] for m in history["messages"]}
    finally:
        await bob_again.close()
