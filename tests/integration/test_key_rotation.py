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
