"""`samizdat dc rotate-key`: a new DC key while the DC keeps serving, nothing lost."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from tests.cli_runner import Result, samizdat
from tests.custody_state import custodian_keys, dc_key_envelopes, server_keyring
from tests.harness import ServerProcess, dc_states, dc_status, second_device, signed_in, sql
from tests.raw_socket import user_id_of


def rotate_key(
    server: ServerProcess, tmp_path: Path, *, data_dir: Path | None = None, as_json: bool = True
) -> Result:
    """``samizdat dc rotate-key DC`` for the server's default DC, as the operator runs it: the
    admin token comes from ``data_dir`` (the server's own by default); waits until the
    rotation ends."""
    args = ["dc", "rotate-key", server.default_dc, "--data", str(data_dir or server.data_dir)]
    args += ["--server", server.url, *(["--json"] if as_json else [])]
    return samizdat(tmp_path / "operator", *args)


#: Enough chats that re-wrapping them takes dozens of batches (500 each), long enough for
#: sends to be seen landing between them: with a few dozen it is over within one request.
MANY_CHATS = 20_000
#: Far above the snowflake ids the server makes (milliseconds since 2026 << 12) for years.
FIRST_EXTRA_CHAT = 1 << 50


async def add_chats(server: ServerProcess, count: int) -> None:
    """``count`` empty group chats under the DC's current key, written behind the server's
    back (its key rebuilt from the in-process custodians' keys), as a DC with a long history
    would hold them."""
    ring = await server_keyring(server, custodian_keys(server.data_dir))
    columns = "id, kind, title, creator_id, created_at, member_count, wrapped_key, key_id"
    for first in range(FIRST_EXTRA_CHAT, FIRST_EXTRA_CHAT + count, 500):
        ids = range(first, min(first + 500, FIRST_EXTRA_CHAT + count))
        rows = ", ".join(
            f"(${2 * n + 1}, 'group', 'old', 0, 0.0, 0, ${2 * n + 2}, '{ring.key_id}')"
            for n in range(len(ids))
        )
        wrapped = [value for chat in ids for value in (chat, ring.new_chat_key(chat))]
        await sql(server, f"INSERT INTO chats ({columns}) VALUES {rows}", *wrapped)


async def rotation_state(server: ServerProcess) -> str:
    return str((await asyncio.to_thread(dc_status, server.url))["rotation"]["state"])


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
        await add_chats(server, MANY_CHATS)
        rotation = asyncio.create_task(asyncio.to_thread(rotate_key, server, tmp_path))
        during = []
        sent_while_rewrapping = []
        while not rotation.done():  # the DC keeps serving throughout
            group = groups[len(during) % len(groups)]
            state_before = await rotation_state(server)
            during.append((group, (await bob.send_message(group, f"during {len(during)}")).text))
            if state_before == "re-wrapping" == await rotation_state(server):
                sent_while_rewrapping.append(during[-1])
        result = await rotation
        assert result.code == 0, result.err
        record = result.record
        assert (record["state"], record["new_key"], record["retired"]) == ("done", "k2", ["k1"])
        assert record["rewrapped"] >= len(groups) + MANY_CHATS
        assert sent_while_rewrapping, f"no send landed while re-wrapping ({len(during)} sent)"

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
    result = rotate_key(server, tmp_path, data_dir=tmp_path / "not-the-data-dir", as_json=False)
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

    result = rotate_key(server, tmp_path)
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
    assert dc_states(server.url)["local"] != "unsealed"  # dc.key and no custodians: one DC
    assert "empty" in dc_status(server.url)["last_error"]
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
        health = await http.get("/health")  # the other DCs keep serving
    assert (health.status_code, health.json()["sealed"]) == (200, ["xa"])
    assert dc_states(server.url) == {"xa": "sealed", "xb": "unsealed", "xc": "unsealed"}
    assert dc_status(server.url, "xa")["last_error"]

    server.stop()
    await sql(server, "UPDATE dc_keys SET envelope = $1", original)
    await asyncio.to_thread(server.start)
    bob_again = await second_device(server.url, bob.test_phone)  # type: ignore[attr-defined]
    try:
        history = await bob_again.call("messages.history", chat_id=chat)
        assert sent.text in {m["text"] for m in history["messages"]}
    finally:
        await bob_again.close()
