"""Secret chats between real clients through a real server: every device of both users gets
each message, devices that come later see only what follows, revoked ones nothing more, and
what the server holds it cannot read."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from samizdat.client.secret import MessageEntry, SecretChat, Trust, UnverifiedDevices
from samizdat.protocol.errors import ErrorCode, SamizdatError
from tests.harness import ServerProcess
from tests.secret_devices import (
    Clock,
    Device,
    People,
    inbox_rows,
    inject,
    settle,
)


async def test_a_message_reaches_every_device_of_the_peer_and_my_other_devices(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    alice_laptop = await people.device_of(alice)
    bob = await people.user("Bob")
    bob_laptop = await people.device_of(bob)
    chat = await alice.secret.start(bob.user_id)
    sent = await alice.secret.send(chat, "meet at the printing press", ttl=0)
    for device in (bob, bob_laptop, alice_laptop):
        got = await device.next_text()
        assert (got.id, got.text) == (sent.id, "meet at the printing press")
    assert (await alice_laptop.secret.resolve(bob.user_id)).history[-1].outgoing  # type: ignore[union-attr]
    # Bob answers from his laptop; Alice's both devices and Bob's phone see it.
    await bob_laptop.secret.send(alice.user_id, "bring the ink")
    for device in (alice, alice_laptop, bob):
        assert (await device.next_text()).text == "bring the ink"
    assert alice.texts(f"u{bob.user_id}") == ["meet at the printing press", "bring the ink"]
    assert bob.texts(f"u{alice.user_id}") == ["meet at the printing press", "bring the ink"]
    assert not any(n.level == "alert" for d in (alice, bob) for n in d.notices)


async def test_a_device_added_later_reads_only_what_follows(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "before the tablet")
    await bob.next_text()
    earlier = bob.raw[-1]
    tablet = await people.device_of(bob)
    await alice.secret.send(bob.user_id, "after the tablet")
    assert (await tablet.next_text()).text == "after the tablet"
    assert tablet.texts(f"u{alice.user_id}") == ["after the tablet"]
    # Even handed the earlier ciphertext, the new device cannot open it.
    await inject(server, tablet, earlier)
    assert tablet.texts(f"u{alice.user_id}") == ["after the tablet"]
    assert "undecryptable" in tablet.notice_codes(f"u{alice.user_id}")


async def test_a_revoked_device_stops_receiving_at_once(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    bob_laptop = await people.device_of(bob)
    await alice.secret.send(bob.user_id, "to both")
    await bob.next_text()
    await bob_laptop.next_text()
    await bob.client.revoke_device(bob_laptop.device_id)
    await alice.secret.send(bob.user_id, "to the phone only")
    assert (await bob.next_text()).text == "to the phone only"
    assert await inbox_rows(server, bob_laptop.device_id) == []
    assert bob_laptop.texts(f"u{alice.user_id}") == ["to both"]


async def test_replies_flow_both_ways_after_a_restart_from_the_vault(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "one")
    await bob.next_text()
    await bob.secret.close()
    from tests.secret_devices import open_device

    reopened = await open_device(bob.client, tmp_path, vault_dir=bob.vault_dir)
    assert reopened.texts(f"u{alice.user_id}") == ["one"]
    await alice.secret.send(bob.user_id, "two")
    assert (await reopened.next_text()).text == "two"
    await reopened.secret.send(alice.user_id, "three")
    assert (await alice.next_text()).text == "three"


async def test_a_group_reaches_every_member_and_a_removed_member_reads_nothing_after(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    carol = await people.user("Carol")
    group = await alice.secret.create_group("cell", [bob.user_id, carol.user_id])
    await settle(bob, carol)
    await alice.secret.send(group.id, "first")
    assert (await bob.next_text()).text == "first"
    assert (await carol.next_text()).text == "first"
    await bob.secret.send(group.id, "from bob")
    assert (await alice.next_text()).text == "from bob"
    assert (await carol.next_text()).text == "from bob"
    session_before = alice.secret.state.outbound[group.id[1:]].session_id
    await alice.secret.remove_member(group.id, carol.user_id)
    await settle(bob, carol)
    assert carol.secret.state.chats[group.id].left
    await alice.secret.send(group.id, "after carol")
    await bob.secret.send(group.id, "bob after carol")
    assert (await bob.next_text()).text == "after carol"
    assert (await alice.next_text()).text == "bob after carol"
    assert alice.secret.state.outbound[group.id[1:]].session_id != session_before
    # A server that still hands Carol the group ciphertexts gets her nothing.
    for update in [u for u in bob.raw if u.olm_type == 2][-1:] + [
        u for u in alice.raw if u.olm_type == 2
    ][-1:]:
        await inject(server, carol, update)
    assert carol.texts(group.id) == ["first", "from bob"]
    assert [n.code for n in carol.notices].count("undecryptable") == 2
    # And she cannot send into it any more.
    with pytest.raises(SamizdatError):
        await carol.secret.send(group.id, "let me back in")


async def test_a_removed_members_own_messages_are_refused_by_the_others(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    mallory = await people.user("Mallory")
    group = await alice.secret.create_group("cell", [bob.user_id, mallory.user_id])
    await settle(bob, mallory)
    await alice.secret.remove_member(group.id, mallory.user_id)
    await settle(bob, mallory)
    # Mallory's client ignores the removal and keeps sending to the old members.
    chat = mallory.secret.state.chats[group.id]
    chat.left = False
    assert chat.group is not None
    chat.group.members = sorted({alice.user_id, bob.user_id, mallory.user_id})
    await mallory.secret.send(group.id, "still here")
    await settle(alice, bob)
    assert "still here" not in bob.texts(group.id)
    assert "not_member" in bob.notice_codes(group.id) or "bad_key" in bob.notice_codes(group.id)


async def test_group_sessions_rotate_after_100_messages_and_after_a_week(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    clock = Clock()
    alice = await people.user("Alice", clock=clock)
    bob = await people.user("Bob")
    group = await alice.secret.create_group("rotating", [bob.user_id])
    group_id = group.id[1:]
    sessions = []
    for i in range(101):
        await alice.secret.send(group.id, f"m{i}")
        sessions.append(alice.secret.state.outbound[group_id].session_id)
    assert len(set(sessions[:100])) == 1
    assert sessions[100] != sessions[99]
    clock.advance(7 * 24 * 3600 + 1)
    await alice.secret.send(group.id, "a week later")
    assert alice.secret.state.outbound[group_id].session_id != sessions[100]
    await settle(bob)
    assert bob.texts(group.id)[-1] == "a week later"
    assert len(bob.texts(group.id)) == 102
    assert not [n for n in bob.notices if n.level == "alert"]


async def test_self_destructing_messages_go_from_both_ends_after_they_are_read(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice_clock, bob_clock = Clock(), Clock()
    alice = await people.user("Alice", clock=alice_clock)
    bob = await people.user("Bob", clock=bob_clock)
    sent = await alice.secret.send(bob.user_id, "burn after reading", ttl=30)
    await alice.secret.send(bob.user_id, "keep this", ttl=0)
    await bob.next_text()
    await bob.next_text()
    bob_clock.advance(3600)  # unread messages do not expire
    await bob.secret.purge_expired()
    assert bob.texts(f"u{alice.user_id}") == ["burn after reading", "keep this"]
    await bob.secret.mark_read(alice.user_id)  # Bob reads: timers start on both ends
    await settle(alice)
    mine = alice.secret.state.chats[f"u{bob.user_id}"].message(sent.id)
    assert mine is not None
    assert mine.expires_at is not None
    bob_clock.advance(31)
    alice_clock.advance(31)
    await bob.secret.purge_expired()
    await alice.secret.purge_expired()
    assert bob.texts(f"u{alice.user_id}") == ["keep this"]
    assert alice.texts(f"u{bob.user_id}") == ["keep this"]
    vault_bytes = b"".join(p.read_bytes() for p in bob.vault_dir.iterdir())
    assert b"burn after reading" not in vault_bytes


async def test_the_chat_timer_applies_on_every_end(people: People) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.set_ttl(bob.user_id, 60)
    await settle(bob)
    assert bob.secret.state.chats[f"u{alice.user_id}"].ttl == 60
    await bob.secret.send(alice.user_id, "timed by default")
    assert (await alice.next_text()).ttl == 60
    with pytest.raises(SamizdatError) as refused:
        await alice.secret.set_ttl(bob.user_id, 3)
    assert refused.value.code is ErrorCode.INVALID_PARAMS


async def test_a_verified_peers_new_device_needs_consent(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "hello")
    await bob.next_text()
    known = alice.secret.state.devices[bob.user_id][bob.device_id]
    alice.secret.state.mark_verified(known)  # as after `secret verify` (tested elsewhere)
    stranger = await people.device_of(bob)
    with pytest.raises(UnverifiedDevices) as refused:
        await alice.secret.send(bob.user_id, "who is this?")
    assert [d.device_id for d in refused.value.devices] == [stranger.device_id]
    assert "device_new" in alice.notice_codes(f"u{bob.user_id}")
    # Nothing went out: Bob's phone got nothing new.
    await alice.secret.send(bob.user_id, "allowed once", allow_unverified=True)
    assert (await bob.next_text()).text == "allowed once"
    assert (await stranger.next_text()).text == "allowed once"
    # What the new device sends shows as from an unverified device.
    await stranger.secret.send(alice.user_id, "it is me, honest")
    heard = await alice.next_text()
    assert (heard.text, heard.unverified) == ("it is me, honest", True)
    alice.secret.confirm_new_devices = _always(True)
    new_trust = alice.secret.state.devices[bob.user_id][stranger.device_id].trust
    assert new_trust is Trust.NEW
    await alice.secret.send(bob.user_id, "accepted now")
    assert alice.secret.state.devices[bob.user_id][stranger.device_id].trust is Trust.ACCEPTED


def _always(answer: bool):  # type: ignore[no-untyped-def]
    async def confirm(_: object) -> bool:
        return answer

    return confirm


async def test_a_changed_key_for_a_known_device_is_shown_loudly(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from samizdat.crypto.secret_keys import SecretKeys
    from tests.secret_devices import run_sql

    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "hello")
    await bob.next_text()
    alice.secret.state.mark_verified(alice.secret.state.devices[bob.user_id][bob.device_id])
    # A compromised server swaps in keys of its own for Bob's device (validly signed by
    # those keys: only the person can tell).
    impostor = SecretKeys.create(bob.device_id)
    signed = impostor.device.device_keys_upload(bob.user_id, bob.device_id)
    await run_sql(
        server,
        "UPDATE device_keys SET identity_key = $1, signing_key = $2, signature = $3 "
        "WHERE device_id = $4",
        signed["identity_key"],
        signed["signing_key"],
        signed["signature"],
        bob.device_id,
    )
    alice.secret.directory._fetched.clear()  # as in a new process: lists are fetched anew
    with pytest.raises(UnverifiedDevices) as refused:
        await alice.secret.send(bob.user_id, "are you still you?")
    assert refused.value.devices[0].identity_key == signed["identity_key"]
    chat = alice.secret.state.chats[f"u{bob.user_id}"]
    (alert,) = [e for e in chat.history if getattr(e, "code", "") == "device_keys_changed"]
    assert alert.level == "alert"
    assert "CHANGED" in alert.text


def _history_texts(chat: SecretChat) -> list[str]:
    return [e.text for e in chat.history if isinstance(e, MessageEntry)]


async def test_sending_to_a_user_without_secret_chat_devices_says_so(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from tests.harness import signed_in

    alice = await people.user("Alice")
    plain = await signed_in(server.url, "Plain")  # never published keys
    try:
        with pytest.raises(SamizdatError) as refused:
            await alice.secret.send(plain.me.id, "hello?")  # type: ignore[union-attr]
        assert refused.value.code is ErrorCode.DEVICE_NOT_FOUND
    finally:
        await plain.close()


async def test_concurrent_first_messages_from_both_sides_converge(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await asyncio.gather(
        alice.secret.send(bob.user_id, "hi bob"), bob.secret.send(alice.user_id, "hi alice")
    )
    assert (await alice.next_text()).text == "hi alice"
    assert (await bob.next_text()).text == "hi bob"
    for i in range(3):
        await alice.secret.send(bob.user_id, f"a{i}")
        await bob.secret.send(alice.user_id, f"b{i}")
    await settle(alice, bob)
    assert alice.texts(f"u{bob.user_id}")[-6:] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert bob.texts(f"u{alice.user_id}")[-6:] == ["a0", "b0", "a1", "b1", "a2", "b2"]
    assert not [n for d in (alice, bob) for n in d.notices if n.level == "alert"]


__all__ = ["Device"]


async def test_device_keys_the_device_did_not_sign_are_refused_loudly(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from samizdat.client.secret.devices import ForgedKeys
    from samizdat.crypto.secret_keys import SecretKeys
    from tests.secret_devices import run_sql

    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "hello")
    await bob.next_text()
    # The server swaps in its own identity key but cannot sign it with Bob's key.
    await run_sql(
        server,
        "UPDATE device_keys SET identity_key = $1 WHERE device_id = $2",
        SecretKeys.create(bob.device_id).identity_key,
        bob.device_id,
    )
    alice.secret.directory._fetched.clear()  # as in a new process
    with pytest.raises(ForgedKeys):
        await alice.secret.send(bob.user_id, "still you?", allow_unverified=True)
    assert "forged_keys" in alice.notice_codes(f"u{bob.user_id}")
    assert bob.texts(f"u{alice.user_id}") == ["hello"]


async def test_a_one_time_key_the_device_did_not_sign_is_refused(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from samizdat.client.secret.devices import ForgedKeys
    from tests.secret_devices import run_sql

    alice = await people.user("Alice")
    bob = await people.user("Bob")
    await run_sql(
        server,
        "UPDATE one_time_keys SET signature = $1 WHERE device_id = $2",
        "A" * 86,
        bob.device_id,
    )
    with pytest.raises(ForgedKeys):
        await alice.secret.send(bob.user_id, "hello")
    assert await inbox_rows(server, bob.device_id) == []


async def test_a_new_device_on_my_own_account_is_announced_and_needs_consent_once_i_verify(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from samizdat.client.secret import verify

    alice = await people.user("Alice")
    laptop = await people.device_of(alice)
    bob = await people.user("Bob")
    await alice.secret.send(bob.user_id, "hello")
    await bob.next_text()

    async def yes(*_: object) -> bool:
        return True

    # Alice verifies her laptop from her phone (both run verify with her own user id).
    mine, theirs = await asyncio.gather(
        verify(alice.secret, alice.user_id, yes), verify(laptop.secret, alice.user_id, yes)
    )
    assert (mine.device_id, theirs.device_id) == (laptop.device_id, alice.device_id)
    intruder = await people.device_of(alice)  # a device she did not add
    with pytest.raises(UnverifiedDevices) as refused:
        await alice.secret.send(bob.user_id, "who else reads this?")
    assert [d.device_id for d in refused.value.devices] == [intruder.device_id]
    chat = alice.secret.state.chats[f"u{bob.user_id}"]
    (warning,) = [e for e in chat.history if getattr(e, "code", "") == "device_new"]
    assert warning.level == "warning"
    assert f"devices revoke {intruder.device_id}" in warning.text


async def test_a_member_who_missed_a_removal_stops_sending_when_the_group_moves_on(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    from tests.secret_devices import run_sql

    alice = await people.user("Alice")
    bob = await people.user("Bob")
    carol = await people.user("Carol")
    group = await alice.secret.create_group("cell", [bob.user_id, carol.user_id])
    await settle(bob, carol)
    await bob.close()  # Bob is offline when Carol is removed
    await alice.secret.remove_member(group.id, carol.user_id)
    # The server withholds the removal from Bob...
    await run_sql(server, "DELETE FROM secret_inbox WHERE device_id = $1", bob.device_id)
    # ...but Alice's next message is made for the new member list, and says so.
    await alice.secret.send(group.id, "without carol")
    again = await people.restarted(bob)
    assert "group_behind" in again.notice_codes(group.id)
    with pytest.raises(SamizdatError) as refused:
        await again.secret.send(group.id, "is carol still here?")
    assert refused.value.code is ErrorCode.CHAT_INVALID
    assert "is carol still here?" not in str(await inbox_rows(server, carol.device_id))


async def test_a_member_cannot_take_over_another_members_group_session(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    import orjson

    from samizdat.client.secret.payloads import DeviceEnvelope, RoomKey

    alice = await people.user("Alice")
    bob = await people.user("Bob")
    mallory = await people.user("Mallory")
    group = await alice.secret.create_group("cell", [bob.user_id, mallory.user_id])
    await settle(bob, mallory)
    await alice.secret.send(group.id, "one")
    assert (await bob.next_text()).text == "one"
    alices = alice.secret.state.outbound[group.id[1:]].session_id
    await mallory.secret.send(group.id, "hi all")  # Mallory has a session with Bob now
    assert (await bob.next_text()).text == "hi all"
    # Mallory hands Bob a junk key under the id of Alice's session.
    bob_device = mallory.secret.state.devices[bob.user_id][bob.device_id]
    payload = DeviceEnvelope(
        sender_user=mallory.user_id,
        sender_device=mallory.device_id,
        recipient_user=bob.user_id,
        recipient_device=bob.device_id,
        recipient_key=bob_device.identity_key,
        n=mallory.secret.state.next_count(bob_device.identity_key),
        body=RoomKey(group=group.id[1:], session_id=alices, epoch=1),
    ).model_dump(mode="json")
    payload |= {"group_session_id": alices, "session_key": "A" * 300}
    sealed = mallory.secret.keys.olm.encrypt(bob_device.identity_key, None, orjson.dumps(payload))
    await mallory.client.call("secret.send", messages=[{"device_id": bob.device_id, **sealed}])
    await settle(bob)
    assert "bad_key" in bob.notice_codes(group.id)
    await alice.secret.send(group.id, "two")
    assert (await bob.next_text()).text == "two"


async def test_a_non_member_cannot_change_a_groups_timer(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    mallory = await people.user("Mallory")
    group = await alice.secret.create_group("cell", [bob.user_id, mallory.user_id])
    await alice.secret.set_ttl(group.id, 60)
    await settle(bob, mallory)
    await alice.secret.remove_member(group.id, mallory.user_id)
    await settle(bob, mallory)
    chat = mallory.secret.state.chats[group.id]
    chat.left = False  # Mallory's client ignores her removal
    assert chat.group is not None
    chat.group.members = sorted({alice.user_id, bob.user_id, mallory.user_id})
    await mallory.secret.set_ttl(group.id, 0)
    await settle(bob)
    assert bob.secret.state.chats[group.id].ttl == 60
    assert "not_member" in bob.notice_codes(group.id)


async def test_a_member_added_back_can_read_and_write_again(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    group = await alice.secret.create_group("cell", [bob.user_id])
    await alice.secret.remove_member(group.id, bob.user_id)
    await settle(bob)
    assert bob.secret.state.chats[group.id].left
    await alice.secret.add_members(group.id, [bob.user_id])
    await settle(bob)
    assert not bob.secret.state.chats[group.id].left
    await alice.secret.send(group.id, "welcome back")
    assert (await bob.next_text()).text == "welcome back"
    await bob.secret.send(group.id, "glad to be")
    assert (await alice.next_text()).text == "glad to be"


async def test_two_groups_with_one_title_are_told_apart_by_id(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    alice = await people.user("Alice")
    bob = await people.user("Bob")
    first = await alice.secret.create_group("Cell 9", [bob.user_id])
    await alice.secret.create_group("Cell 9", [bob.user_id])
    with pytest.raises(SamizdatError) as refused:
        await alice.secret.send("Cell 9", "which one?")
    assert refused.value.code is ErrorCode.CHAT_INVALID
    await alice.secret.send(first.id, "this one")
    assert (await bob.next_text()).text == "this one"


async def test_a_group_larger_than_one_request_reaches_every_members_device(
    server: ServerProcess, tmp_path: Path, people: People
) -> None:
    """150 members: the group state, the keys and the message are split over several
    requests (at most 100 recipients each), and every member's device gets each once."""
    from samizdat.crypto.e2ee import DeviceCrypto
    from tests.harness import signed_in

    alice = await people.user("Alice")
    members = []
    try:
        for i in range(150):
            member = await signed_in(server.url, f"member {i}")
            await member.upload_keys(DeviceCrypto.create(), one_time_keys=2)
            members.append(member)
        ids = [m.me.id for m in members]  # type: ignore[union-attr]
        group = await alice.secret.create_group("assembly", ids)
        await alice.secret.send(group.id, "to all 150")
        for member in members:
            assert member.session is not None
            rows = await inbox_rows(server, member.session.device_id)
            assert [r["olm_type"] for r in rows].count(2) == 1  # the group message, once
            assert len(rows) == 3  # the group state, the group key, the message
    finally:
        for member in members:
            await member.close()
