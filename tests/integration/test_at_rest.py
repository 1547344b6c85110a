"""What an operator's disk holds: no message text, no phone number, no token, in any form.

After a real conversation, every byte the server wrote (SQLite files and WAL, the log, the
config, the in-process custodians' state; PostgreSQL rows) is searched for the plaintexts.
Nothing is left out: there is no DC key file (the key lives in a threshold envelope and in
memory; ``test_seizure.py`` searches for its bytes). A sealed text moved to another message
fails to open, and the server log never holds message text, numbers, login codes or tokens.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from samizdat.client import Client
from samizdat.protocol.errors import ErrorCode
from tests.harness import ServerProcess, new_test_phone, signed_in
from tests.raw_socket import RawSocket, error_code, token_of, user_id_of
from tests.seized import everything_stored, occurrences

PG_URL = "postgresql://postgres@127.0.0.1:5432/{database}"


async def one_call(server: ServerProcess, method: str, **params: Any) -> dict[str, Any]:
    async with RawSocket.open(server.url) as sock:
        return await sock.call(method, **params)


def canary(label: str) -> str:
    return f"canary-{label}-{secrets.token_hex(6)}"


def phone_forms(phone: str) -> list[bytes]:
    return [phone.encode(), phone.lstrip("+").encode()]


def assert_absent(stored: dict[str, bytes], needles: dict[str, bytes]) -> None:
    found = occurrences(stored, needles)
    assert not found, f"plaintext on disk: {found}"


async def test_no_message_text_phone_number_or_token_is_stored_in_plaintext(
    server: ServerProcess,
) -> None:
    name = canary("display-name")  # not secret: stored as is, which proves the search works
    alice = await signed_in(server.url, name)
    bob = await signed_in(server.url, "Bob")
    carol = await signed_in(server.url, "Carol")
    clients = [alice, bob, carol]
    try:
        texts = {label: canary(label) for label in ["private", "group", "edited", "deleted"]}
        texts["unicode"] = f"секрет-сообщение-{secrets.token_hex(4)} 🦀"
        private = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        group = (
            await alice.call(
                "groups.create", title="at rest", member_ids=[user_id_of(bob), user_id_of(carol)]
            )
        )["id"]
        first = await alice.send_message(private, texts["private"])
        await bob.send_message(group, texts["group"])
        await bob.send_message(group, texts["unicode"])
        draft = await carol.send_message(group, "draft")
        await carol.edit_message(group, draft.id, texts["edited"])
        doomed = await alice.send_message(group, texts["deleted"])
        await alice.delete_messages(group, [doomed.id], for_everyone=True)
        await alice.forward_messages(private, [first.id], group)
        # Phone numbers go through lookup and display as well as sign-up.
        await alice.update_profile(phone_visibility="everybody")
        assert (await bob.resolve(alice.test_phone)).phone == alice.test_phone  # type: ignore[attr-defined]
        lonely_phone, _ = new_test_phone()
        await alice.call("auth.send_code", phone=lonely_phone)
        wrong = await one_call(server, "auth.sign_in", phone=lonely_phone, code="0000000")
        assert error_code(wrong) == ErrorCode.CODE_INVALID
        # The texts really are there to be found, through the server.
        history = await bob.call("messages.history", chat_id=group)
        assert texts["edited"] in {m["text"] for m in history["messages"]}

        needles: dict[str, bytes] = {label: text.encode() for label, text in texts.items()}
        phones = [c.test_phone for c in clients] + [lonely_phone]  # type: ignore[attr-defined]
        for n, phone in enumerate(phones):
            for form_index, form in enumerate(phone_forms(phone)):
                needles[f"phone {n} form {form_index}"] = form
        for n, client in enumerate(clients):
            needles[f"token {n}"] = token_of(client).encode()

        stored = await everything_stored(server)
        assert any(name.encode() in blob for blob in stored.values()), "the search sees no data"
        assert not [where for where in stored if where.rsplit("/", 1)[-1] == "dc.key"]
        assert_absent(stored, needles)
    finally:
        for client in clients:
            await client.close()


# --- tampering --------------------------------------------------------------------------------


async def read_column(
    server: ServerProcess, table: str, column: str, ids: list[int]
) -> dict[int, bytes]:
    query = f"SELECT id, {column} FROM {table} WHERE id IN ({', '.join(map(str, ids))})"
    if server.backend == "sqlite":
        with sqlite3.connect(server.sqlite_path, timeout=10) as db:
            return {row[0]: bytes(row[1]) for row in db.execute(query)}
    assert server.pg_database is not None
    conn = await asyncpg.connect(PG_URL.format(database=server.pg_database), timeout=10)
    try:
        return {row[0]: bytes(row[1]) for row in await conn.fetch(query)}
    finally:
        await conn.close()


async def write_column(
    server: ServerProcess, table: str, column: str, values: dict[int, bytes]
) -> None:
    """Overwrite stored values behind the server's back, as someone with the disk could."""
    if server.backend == "sqlite":
        db = sqlite3.connect(server.sqlite_path, timeout=10)
        try:
            with db:
                db.executemany(
                    f"UPDATE {table} SET {column} = ? WHERE id = ?",
                    [(value, row_id) for row_id, value in values.items()],
                )
        finally:
            db.close()
        return
    assert server.pg_database is not None
    conn = await asyncpg.connect(PG_URL.format(database=server.pg_database), timeout=10)
    try:
        await conn.executemany(
            f"UPDATE {table} SET {column} = $1 WHERE id = $2",
            [(value, row_id) for row_id, value in values.items()],
        )
    finally:
        await conn.close()


@pytest.fixture
async def alice_socket(server: ServerProcess, alice: Client) -> AsyncIterator[RawSocket]:
    async with RawSocket.open(server.url) as sock:
        await sock.authorize(token_of(alice))
        yield sock


async def test_a_sealed_text_moved_to_another_message_or_chat_fails_to_open(
    server: ServerProcess, alice_socket: RawSocket
) -> None:
    sock = alice_socket
    chats = {name: (await sock.result("groups.create", title=name))["id"] for name in "ABCD"}
    texts = {name: canary(name) for name in ["a1", "a2", "b1", "c1", "d1"]}
    sent = {
        label: (
            await sock.result(
                "messages.send",
                chat_id=chats[label[0].upper()],
                text=text,
                random_id=secrets.randbits(62),
            )
        )["message"]["id"]
        for label, text in texts.items()
    }
    sealed = await read_column(server, "messages", "text_sealed", list(sent.values()))

    # Swap two texts within chat A; copy chat C's text over chat B's.
    await write_column(
        server,
        "messages",
        "text_sealed",
        {
            sent["a1"]: sealed[sent["a2"]],
            sent["a2"]: sealed[sent["a1"]],
            sent["b1"]: sealed[sent["c1"]],
        },
    )

    log_before = server.log_path.stat().st_size
    for chat in ["A", "B"]:
        reply = await sock.call("messages.history", chat_id=chats[chat])
        # Not the other message's text: an error, with no detail for the client.
        assert error_code(reply) == ErrorCode.INTERNAL
        assert reply["error"]["message"] == "internal server error"
    # Untouched chats, including the one whose text was copied, still read fine.
    for label in ["c1", "d1"]:
        history = await sock.result("messages.history", chat_id=chats[label[0].upper()])
        assert [m["text"] for m in history["messages"]] == [texts[label]]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert (await http.get("/health")).status_code == 200
    # The operator hears about it.
    with server.log_path.open("rb") as log:
        log.seek(log_before)
        new_lines = log.read().decode()
    assert new_lines.count("SealError") >= 2, new_lines[-2000:]
    assert not any(text in new_lines for text in texts.values())


async def test_a_shown_phone_number_moved_to_another_user_fails_to_open(
    server: ServerProcess, alice: Client, bob: Client, alice_socket: RawSocket
) -> None:
    for client in (alice, bob):
        await client.update_profile(phone_visibility="everybody")
    ids = [user_id_of(alice), user_id_of(bob)]
    users = await read_column(server, "users", "phone_shown", ids)
    await write_column(server, "users", "phone_shown", {ids[0]: users[ids[1]]})

    reply = await alice_socket.call("users.me")

    assert error_code(reply) == ErrorCode.INTERNAL
    assert bob.test_phone not in str(reply)  # type: ignore[attr-defined]
    assert (await bob.get_me()).phone == bob.test_phone  # type: ignore[attr-defined]


# --- the log ----------------------------------------------------------------------------------

LOG_DIGIT = 7  # test numbers +999667... sign in with 77777


async def sign_in_with_digit(server: ServerProcess, name: str) -> Client:
    phone, code = new_test_phone(LOG_DIGIT)
    client = Client(server.url, device_name="log test")
    await client.connect()
    await client.send_code(phone)
    await client.sign_in(phone, code, display_name=name)
    client.test_phone = phone  # type: ignore[attr-defined]
    return client


async def test_the_server_log_holds_no_text_number_code_or_token(server: ServerProcess) -> None:
    log_before = server.log_path.stat().st_size
    alice = await sign_in_with_digit(server, "Alice")
    bob = await sign_in_with_digit(server, "Bob")
    texts = [canary(f"log{n}") for n in range(8)]
    lonely_phone, _ = new_test_phone(LOG_DIGIT)
    real_phone = "+442079460958"  # a valid number; no SMS gateway is configured
    wrong_code = "8642097531"
    forged = "forged-" + secrets.token_hex(16)
    try:
        chat_id = (await alice.call("chats.open_private", user_id=user_id_of(bob)))["id"]
        sent = await alice.send_message(chat_id, texts[0])
        await alice.edit_message(chat_id, sent.id, texts[1])
        await bob.send_message(chat_id, texts[2])
        async with RawSocket.open(server.url) as sock:
            # Failed logins of every kind.
            await sock.result("auth.send_code", phone=lonely_phone)
            for _ in range(6):
                reply = await sock.call("auth.sign_in", phone=lonely_phone, code=wrong_code)
                assert "error" in reply
            assert error_code(await sock.call("auth.send_code", phone=real_phone)) == (
                ErrorCode.UNAVAILABLE
            )
            assert error_code(await sock.call("auth.send_code", phone="+1 555 0100")) == (
                ErrorCode.PHONE_INVALID
            )
            assert error_code(await sock.call("auth.authorize", token=forged)) == (
                ErrorCode.UNAUTHORIZED
            )
            # Errors carrying message text.
            await sock.authorize(token_of(bob))
            stranger_chat = (await sock.result("groups.create", title="bob alone"))["id"]
            await sock.call("messages.send", chat_id=stranger_chat + 1, text=texts[3], random_id=1)
            await sock.call("messages.send", chat_id=chat_id, text=texts[4], random_id="x")
            await sock.call("messages.edit", chat_id=chat_id, message_id=sent.id, text=texts[5])
            await sock.exchange(f"not json {texts[6]}")
            await sock.exchange(
                '{"id": 1, "method": "messages.send", "params": {"text": "'
                + texts[7]
                + "x" * 70_000
                + '"}}'
            )
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            headers = {"Authorization": f"Bearer {token_of(alice)}"}
            await http.post(
                "/api/messages.send",
                headers=headers,
                json={"chat_id": chat_id, "text": texts[0], "random_id": 5},
            )
            await http.post("/api/users.me", headers={"Authorization": f"Bearer {forged}"})
    finally:
        await alice.close()
        await bob.close()

    with server.log_path.open("rb") as log:
        log.seek(log_before)
        written = log.read().decode()
    assert written.strip(), "the session should have left some log lines"
    needles = {f"text {n}": text for n, text in enumerate(texts)}
    for n, phone in enumerate([alice.test_phone, bob.test_phone, lonely_phone, real_phone]):  # type: ignore[attr-defined]
        needles[f"phone {n}"] = phone
        needles[f"phone {n} digits"] = phone.lstrip("+")
    needles["token alice"] = token_of(alice)
    needles["token bob"] = token_of(bob)
    needles["forged token"] = forged
    needles["wrong code"] = wrong_code
    leaked = [what for what, needle in needles.items() if needle in written]
    assert not leaked, f"the log holds {leaked}"
    code = str(LOG_DIGIT) * 5
    assert not re.search(rf"(?<![0-9]){code}(?![0-9])", written), "the log holds a login code"
    # Client addresses: uvicorn's per-connection lines ("127.0.0.1:54321 - ...") are not kept.
    assert not re.search(r"127\.0\.0\.1:\d+ - ", written), "the log holds a client address"
