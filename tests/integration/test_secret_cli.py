"""``samizdat secret ...`` as real processes: a secret conversation from start to history,
groups, timers, verification by emoji on both sides at once, consent for new devices, the
vault's passphrase, and ``listen`` showing decrypted messages. After it all, nothing the
server holds (database, files, logs) contains a plaintext or a group session key."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from collections.abc import Callable

import asyncpg
import pytest

from samizdat.cli.secret_session import vault_dir
from samizdat.crypto.vault import Vault
from tests.cli_runner import COMMAND, ENV, PASSPHRASE, SECRET_ENV, Listener, Person, ok, samizdat
from tests.harness import ServerProcess

pytestmark = pytest.mark.slow


def secret(person: Person, *args: str, stdin: str | None = None) -> dict[str, object]:
    """One secret command with --json; its single record."""
    return ok(person.profile, "secret", *args, "--json", env=SECRET_ENV, stdin=stdin).record


def secret_records(person: Person, *args: str) -> list[dict[str, object]]:
    return ok(person.profile, "secret", *args, "--json", env=SECRET_ENV).records


def ready(person: Person) -> Person:
    """Publish the person's keys (what `login` does when the passphrase is at hand)."""
    ok(person.profile, "secret", "chats", env=SECRET_ENV)
    return person


def texts(records: list[dict[str, object]]) -> list[object]:
    return [r["text"] for r in records if r["kind"] == "message"]


async def server_dump(server: ServerProcess) -> bytes:
    """Everything the server holds: every file of its data directory (database, WAL, logs,
    configuration) and, on PostgreSQL, every row of every table."""
    blobs = [p.read_bytes() for p in server.data_dir.rglob("*") if p.is_file()]
    if server.backend == "postgres":
        conn = await asyncpg.connect(
            f"postgresql://postgres@127.0.0.1:5432/{server.pg_database}", timeout=5
        )
        try:
            tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for table in tables:
                for row in await conn.fetch(f'SELECT * FROM "{table["tablename"]}"'):
                    for value in row.values():
                        blobs.append(value if isinstance(value, bytes) else str(value).encode())
        finally:
            await conn.close()
    return b"\n".join(blobs)


def group_session_keys(person: Person) -> list[bytes]:
    """The Megolm ratchet bytes this person's device holds for every group session (the
    secret that opens group messages), as the device itself sees them."""
    stored = Vault.open(vault_dir(person.profile), PASSPHRASE).load_device()
    assert stored is not None
    keys, _ = stored
    found = []
    for session_id in list(keys.inbound._sessions):
        index = keys.inbound.first_index(session_id)
        exported = keys.inbound._sessions[session_id].export_at(index)
        assert exported is not None
        raw = base64.b64decode(exported.to_base64() + "==")
        found.append(raw[5:133])  # version, index, then the 128-byte ratchet
    return found


def test_a_secret_conversation_leaves_no_plaintext_and_no_session_key_on_the_server(
    server: ServerProcess, person: Callable[..., Person]
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob", username=True))
    carol = ready(person("Carol"))
    plaintexts = [
        "the printing press is in the cellar",
        "bring the ink on thursday",
        "the cell meets at nine",
    ]
    started = secret(alice, "start", f"@{bob.username}")
    assert started["chat"] == f"u{bob.user_id}"
    sent = secret(alice, "send", f"@{bob.username}", plaintexts[0], "--ttl", "3600")
    assert sent["ttl"] == 3600
    assert texts(secret_records(bob, "history", str(alice.user_id))) == [plaintexts[0]]
    secret(bob, "send", alice.phone, plaintexts[1])
    assert texts(secret_records(alice, "history", f"@{bob.username}")) == plaintexts[:2]

    group = secret(alice, "group", "create", "Cell 9", f"@{bob.username}", str(carol.user_id))
    assert group["title"] == "Cell 9"
    assert sorted(group["members"]) == sorted([alice.user_id, bob.user_id, carol.user_id])  # type: ignore[arg-type]
    secret(alice, "send", "Cell 9", plaintexts[2])
    assert texts(secret_records(carol, "history", "Cell 9")) == [plaintexts[2]]
    assert texts(secret_records(bob, "history", str(group["id"]))) == [plaintexts[2]]

    dump = asyncio.run(server_dump(server))
    for text in plaintexts:
        assert text.encode() not in dump, f"plaintext {text!r} found on the server"
    session_keys = group_session_keys(carol) + group_session_keys(bob)
    assert session_keys
    for key in session_keys:
        assert key not in dump
        assert base64.b64encode(key)[:40] not in dump
    # The vaults hold no plaintext either (they are sealed).
    for who in (alice, bob, carol):
        sealed = b"".join(p.read_bytes() for p in vault_dir(who.profile).iterdir())
        assert not any(t.encode() in sealed for t in plaintexts)


def test_groups_are_grown_shrunk_and_left_from_the_cli(person: Callable[..., Person]) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    carol = ready(person("Carol"))
    group = secret(alice, "group", "create", "Book club", str(bob.user_id))
    grown = secret(alice, "group", "add", "Book club", str(carol.user_id))
    assert len(grown["members"]) == 3  # type: ignore[arg-type]
    secret(alice, "send", "Book club", "chapter one")
    assert texts(secret_records(carol, "history", str(group["id"]))) == ["chapter one"]
    secret(alice, "group", "remove", "Book club", str(carol.user_id))
    secret(alice, "send", "Book club", "chapter two, without carol")
    carol_sees = secret_records(carol, "history", str(group["id"]))
    assert texts(carol_sees) == ["chapter one"]
    assert any("removed" in str(r["text"]) for r in carol_sees if r["kind"] == "notice")
    assert texts(secret_records(bob, "history", str(group["id"])))[-1] == (
        "chapter two, without carol"
    )
    refused = samizdat(
        bob.profile,
        "secret",
        "group",
        "remove",
        "Book club",
        str(alice.user_id),
        "--json",
        env=SECRET_ENV,
    )
    assert refused.code == 1
    assert refused.record["error"]["code"] == "NOT_ADMIN"
    assert secret(bob, "group", "leave", "Book club") == {"left": "Book club"}


def test_the_chat_timer_and_per_message_timers_show_on_both_ends(
    person: Callable[..., Person],
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    assert secret(alice, "ttl", str(bob.user_id), "60") == {"chat": f"u{bob.user_id}", "ttl": 60}
    assert secret(alice, "send", str(bob.user_id), "gone in a minute")["ttl"] == 60
    (message,) = [
        r for r in secret_records(bob, "history", str(alice.user_id)) if r["kind"] == "message"
    ]
    assert message["ttl"] == 60
    assert message["expires_at"] is not None  # shown, so read: the timer runs
    human = ok(bob.profile, "secret", "history", str(alice.user_id), env=SECRET_ENV).out
    assert "gone in a minute" in human
    assert "⏱ 1 min" in human
    bad = samizdat(
        alice.profile,
        "secret",
        "send",
        str(bob.user_id),
        "x",
        "--ttl",
        "3",
        "--json",
        env=SECRET_ENV,
    )
    assert bad.code == 1
    assert bad.record["error"]["code"] == "INVALID_PARAMS"


def _popen(person: Person, peer: str, answer: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*COMMAND, "--profile", str(person.profile), "secret", "verify", peer, "--timeout", "60"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=SECRET_ENV,
    )
    assert proc.stdin is not None
    proc.stdin.write(answer + "\n")
    proc.stdin.flush()
    return proc


def _emoji_line(output: str) -> str:
    lines = output.splitlines()
    index = next(i for i, line in enumerate(lines) if "They must see exactly these" in line)
    return "\n".join(lines[index + 1 : index + 4]).strip()


def test_both_people_see_the_same_emoji_and_each_device_becomes_verified(
    person: Callable[..., Person],
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    secret(alice, "send", str(bob.user_id), "hello")
    first = _popen(alice, str(bob.user_id), "y")
    second = _popen(bob, str(alice.user_id), "y")
    out_a, err_a = first.communicate(timeout=90)
    out_b, err_b = second.communicate(timeout=90)
    assert first.returncode == 0, out_a + err_a
    assert second.returncode == 0, out_b + err_b
    emoji = _emoji_line(out_a)
    assert emoji == _emoji_line(out_b)
    assert re.search(r"or the numbers \d{4} \d{4} \d{4}", emoji)
    assert "Verified" in out_a
    assert "Verified" in out_b
    mine = secret_records(alice, "fingerprint", str(bob.user_id))
    theirs = secret_records(bob, "fingerprint", str(alice.user_id))
    assert [r["trust"] for r in mine] == ["verified"]
    assert [r["trust"] for r in theirs] == ["verified"]
    assert mine[0]["safety_number"] == theirs[0]["safety_number"]
    assert re.fullmatch(r"(\d{5} ){11}\d{5}", str(mine[0]["safety_number"]))


def test_a_no_on_either_side_fails_the_verification_on_both(
    person: Callable[..., Person],
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    first = _popen(alice, str(bob.user_id), "n")
    second = _popen(bob, str(alice.user_id), "y")
    _out_a, err_a = first.communicate(timeout=90)
    _out_b, err_b = second.communicate(timeout=90)
    assert first.returncode == 1
    assert second.returncode == 1
    assert "do not match" in err_a
    assert "cancelled" in err_b
    assert [r["trust"] for r in secret_records(bob, "fingerprint", str(alice.user_id))] == ["new"]


def test_a_verified_contacts_new_device_is_refused_with_strict_and_allowed_with_yes(
    person: Callable[..., Person], server: ServerProcess
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    first = _popen(alice, str(bob.user_id), "y")
    second = _popen(bob, str(alice.user_id), "y")
    for proc in (first, second):
        out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, out + err
    ready(person("Bob", phone=bob.phone))  # Bob (or someone) adds a device
    strict = samizdat(
        alice.profile,
        "secret",
        "send",
        str(bob.user_id),
        "hi",
        "--strict",
        "--json",
        env=SECRET_ENV,
    )
    assert strict.code == 1
    assert strict.record["error"]["code"] == "DEVICE_UNVERIFIED"
    asked = samizdat(alice.profile, "secret", "send", str(bob.user_id), "hi", env=SECRET_ENV)
    assert asked.code == 1  # no terminal to ask at: refused, with what to do
    assert "verify" in asked.err
    assert secret(alice, "send", str(bob.user_id), "hi anyway", "--yes")["text"] == "hi anyway"
    history = secret_records(alice, "history", str(bob.user_id))
    assert any(r["kind"] == "notice" and "new device" in str(r["text"]) for r in history)


def test_listen_prints_decrypted_secret_messages(
    person: Callable[..., Person], listen: Callable[..., Listener]
) -> None:
    alice = ready(person("Alice"))
    bob = ready(person("Bob"))
    secret(alice, "send", str(bob.user_id), "while you were away")
    listener = listen(bob.profile, SECRET_ENV)
    assert listener.next_of("secret_message")["text"] == "while you were away"
    secret(alice, "send", str(bob.user_id), "live and secret", "--ttl", "30")
    live = listener.next_of("secret_message")
    assert live["text"] == "live and secret"
    assert live["ttl"] == 30


def test_the_vault_opens_only_with_its_passphrase(person: Callable[..., Person]) -> None:
    alice = ready(person("Alice"))
    wrong = samizdat(
        alice.profile,
        "secret",
        "chats",
        "--json",
        env={**ENV, "SAMIZDAT_PASSPHRASE": "not it at all"},
    )
    assert wrong.code == 1
    assert wrong.record["error"]["code"] == "UNAUTHORIZED"
    assert "wrong passphrase" in wrong.record["error"]["message"]
    missing = samizdat(alice.profile, "secret", "chats", env=ENV)
    assert missing.code == 1
    assert "SAMIZDAT_PASSPHRASE" in missing.err
    fresh = person("Bob")
    keyring = samizdat(fresh.profile, "secret", "--keyring", "chats", env=ENV)
    assert keyring.code == 1
    assert "keyring" in keyring.err
