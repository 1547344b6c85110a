"""The ``samizdat`` client commands, run as real processes against a real server.

Each test signs people in with fresh test numbers. Set-up that is not under test (a second
person's session) is done through the SDK straight into a profile directory, which is faster
than a CLI process; everything the test is about goes through the console script.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli_runner import Listener, Person, ok, samizdat
from tests.harness import ServerProcess, new_test_phone

pytestmark = pytest.mark.slow


# --- login and account --------------------------------------------------------------------
def test_login_with_a_code_saves_the_session_and_whoami_shows_the_account(
    server: ServerProcess, tmp_path: Path
) -> None:
    phone, code = new_test_phone()
    profile = tmp_path / "alice"
    login = ok(
        profile, "login", "--server", server.url, "--phone", phone, "--code", code,
        "--name", "Alice", "--device-name", "cli test", "--json",
    )  # fmt: skip
    user = login.record["user"]
    assert user["display_name"] == "Alice"
    assert user["phone"] == phone
    session = json.loads((profile / "session.json").read_text())
    assert session["token"] not in login.out + login.err, "tokens are never printed"
    assert (profile / "session.json").stat().st_mode & 0o077 == 0

    whoami = ok(profile, "whoami", "--json").record
    assert whoami["user"]["id"] == user["id"]
    assert whoami["server"] == server.url
    assert whoami["device_id"] == login.record["device_id"]

    human = ok(profile, "whoami")
    assert "Alice" in human.out
    assert session["token"] not in human.out + human.err


def test_login_without_a_code_prompts_for_it_and_lets_a_wrong_one_be_retyped(
    server: ServerProcess, tmp_path: Path
) -> None:
    phone, code = new_test_phone(3)
    profile = tmp_path / "prompted"
    wrong = "1" * len(code)
    result = ok(
        profile, "login", "--server", server.url, "--phone", phone, "--json",
        stdin=f"{wrong}\n{code}\n",
    )  # fmt: skip
    assert result.record["user"]["phone"] == phone, "only JSON on stdout; prompts go to stderr"
    assert result.err.count("Code:") == 2
    assert (profile / "session.json").exists()


def test_username_set_makes_the_user_reachable_by_it(
    person: Callable[..., Person], tmp_path: Path
) -> None:
    bob = person("Bob")
    alice = person("Alice")
    handle = f"bob_{bob.phone[-8:]}"
    assert ok(bob.profile, "username", "set", handle, "--json").record["username"] == handle
    sent = ok(alice.profile, "send", f"@{handle}", "found you", "--json").record
    assert sent["text"] == "found you"


# --- messages -----------------------------------------------------------------------------
def test_send_reaches_the_same_chat_by_username_phone_and_chat_id_and_history_returns_it(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    bob = person("Bob", username=True)
    first = ok(alice.profile, "send", f"@{bob.username}", "by username", "--json").record
    chat_id = str(first["chat_id"])
    second = ok(alice.profile, "send", bob.phone, "by phone", "--json").record
    third = ok(
        alice.profile, "send", chat_id, "by chat id", "--reply-to", str(first["id"]), "--json"
    ).record
    assert second["chat_id"] == third["chat_id"] == first["chat_id"]
    assert third["reply_to_id"] == first["id"]

    history = ok(bob.profile, "history", chat_id, "--json").records
    assert [m["text"] for m in history] == ["by username", "by phone", "by chat id"]
    assert {m["sender_id"] for m in history} == {alice.user_id}
    older = ok(bob.profile, "history", chat_id, "--before", str(third["id"]), "--limit", "1")
    assert "by phone" in older.out
    assert "by chat id" not in older.out


def test_edit_react_and_delete_for_everyone_show_in_the_other_persons_history(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    bob = person("Bob", username=True)
    sent = ok(alice.profile, "send", f"@{bob.username}", "draft", "--json").record
    chat, message = str(sent["chat_id"]), str(sent["id"])
    ok(alice.profile, "edit", chat, message, "final")
    ok(bob.profile, "react", chat, message, "👍")
    (seen,) = ok(bob.profile, "history", chat, "--json").records
    assert seen["text"] == "final"
    assert seen["edit_date"] is not None
    assert seen["reactions"] == {"👍": 1}

    ok(alice.profile, "delete", chat, message, "--for-everyone")
    assert ok(bob.profile, "history", chat, "--json").records == []


def test_groups_are_created_grown_and_messaged_and_chats_show_unread_counts(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    bob = person("Bob", username=True)
    carol = person("Carol")
    group = ok(alice.profile, "group", "create", "Book club", f"@{bob.username}", "--json")
    chat = group.record
    assert chat["member_count"] == 2
    grown = ok(alice.profile, "group", "add", str(chat["id"]), carol.phone, "--json").record
    assert grown["member_count"] == 3
    ok(alice.profile, "send", str(chat["id"]), "welcome, all")
    ok(alice.profile, "send", f"@{bob.username}", "just you")

    dialogs = {d["chat"]["id"]: d for d in ok(bob.profile, "chats", "--json").records}
    assert dialogs[chat["id"]]["title"] == "Book club"
    assert dialogs[chat["id"]]["unread_count"] == 1
    assert dialogs[chat["id"]]["last_message"]["text"] == "welcome, all"
    (private,) = [d for d in dialogs.values() if d["chat"]["kind"] == "private"]
    assert private["title"] == "Alice", "a 1:1 chat is titled with the other person's name"
    assert private["unread_count"] == 1

    ok(bob.profile, "read", str(chat["id"]))
    table = ok(bob.profile, "chats").out
    assert re.search(r"Book club \(group\)\s+0\s+Alice: welcome, all", table), table
    assert re.search(r"Alice\s+1\s+Alice: just you", table), table

    carols = {d["chat"]["id"]: d for d in ok(carol.profile, "chats", "--json").records}
    assert carols[chat["id"]]["unread_count"] == 1


# --- listen -------------------------------------------------------------------------------
def test_listen_prints_what_was_missed_then_live_messages_and_resumes_where_it_stopped(
    person: Callable[..., Person], listen: Callable[[Path], Listener]
) -> None:
    alice = person("Alice")
    bob = person("Bob", username=True)
    peer = f"@{bob.username}"
    ok(alice.profile, "send", peer, "while you were away")

    listener = listen(bob.profile)
    assert listener.next_message_text() == "while you were away"
    ok(alice.profile, "send", peer, "live")
    assert listener.next_message_text() == "live"
    assert listener.stop(signal.SIGINT) == 0

    ok(alice.profile, "send", peer, "after the restart")
    again = listen(bob.profile)
    assert again.next_message_text() == "after the restart", "nothing seen is printed twice"
    assert again.stop(signal.SIGTERM) == 0


# --- devices ------------------------------------------------------------------------------
def test_revoke_others_logs_the_other_profile_out_with_a_clear_error(
    person: Callable[..., Person],
) -> None:
    laptop = person("Alice")
    desktop = person("Alice", phone=laptop.phone)
    devices = ok(laptop.profile, "devices", "--json").records
    assert len(devices) == 2
    assert [d["current"] for d in devices].count(True) == 1

    assert ok(laptop.profile, "devices", "revoke-others", "--json").record == {"revoked": 1}

    refused = samizdat(desktop.profile, "chats", "--json")
    assert refused.code == 1
    assert refused.record["error"]["code"] == "TOKEN_REVOKED"
    human = samizdat(desktop.profile, "chats")
    assert human.code == 1
    assert "logged out" in human.err
    assert "login --server" in human.err

    (left,) = ok(laptop.profile, "devices", "--json").records
    assert left["current"]


def test_logout_revokes_the_device_and_clears_the_profile(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    other = person("Alice", phone=alice.phone)
    assert ok(alice.profile, "logout", "--json").record == {"ok": True, "revoked": True}
    assert not (alice.profile / "session.json").exists()
    (remaining,) = ok(other.profile, "devices", "--json").records
    assert remaining["current"]


# --- errors -------------------------------------------------------------------------------
def test_an_unknown_username_is_a_typed_error_with_exit_code_1(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    as_json = samizdat(alice.profile, "send", "@nobody_has_this_name", "hello?", "--json")
    assert as_json.code == 1
    assert as_json.record["error"]["code"] == "USER_NOT_FOUND"
    human = samizdat(alice.profile, "send", "@nobody_has_this_name", "hello?")
    assert human.code == 1
    assert human.out == ""
    assert human.err.startswith("error:")
    assert len(human.err.strip().splitlines()) == 1


def test_commands_without_a_session_say_how_to_log_in(tmp_path: Path) -> None:
    empty = tmp_path / "nobody"
    human = samizdat(empty, "chats")
    assert human.code == 1
    assert "not logged in" in human.err
    assert f"samizdat --profile {empty} login --server URL --phone NUMBER" in human.err
    as_json = samizdat(empty, "history", "@someone", "--json")
    assert as_json.code == 1
    assert as_json.record["error"]["code"] == "UNAUTHORIZED"
    assert "not logged in" in as_json.record["error"]["message"]


def test_group_admins_rename_and_remove_and_members_can_leave(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice")
    bob = person("Bob", username=True)
    carol = person("Carol")
    chat = ok(
        alice.profile, "group", "create", "Draft", f"@{bob.username}", str(carol.user_id), "--json"
    ).record
    group = str(chat["id"])
    assert ok(alice.profile, "group", "rename", group, "Final", "--json").record["title"] == "Final"
    removed = ok(alice.profile, "group", "remove", group, carol.phone, "--json").record
    assert removed["member_count"] == 2
    assert ok(bob.profile, "group", "leave", group, "--json").record["ok"] is True
    refused = samizdat(bob.profile, "group", "rename", group, "Mine now", "--json")
    assert refused.code == 1
    assert refused.record["error"]["code"] in {"CHAT_NOT_FOUND", "NOT_MEMBER"}


def test_profile_and_username_changes_and_revoking_one_named_device(
    person: Callable[..., Person],
) -> None:
    alice = person("Alice", username=True)
    tablet = person("Alice", phone=alice.phone)
    me = ok(
        alice.profile, "profile", "set", "--name", "Alice W", "--phone-visibility", "everybody",
        "--json",
    ).record  # fmt: skip
    assert me["display_name"] == "Alice W"
    assert me["phone_visibility"] == "everybody"
    assert ok(alice.profile, "username", "clear", "--json").record["username"] is None

    tablet_id = json.loads((tablet.profile / "session.json").read_text())["device_id"]
    ok(alice.profile, "devices", "revoke", str(tablet_id))
    assert samizdat(tablet.profile, "whoami").code == 1
