"""Secret-chat state without I/O: what an arriving count means, which devices are new, changed
or gone, when messages self-destruct, and a state that survives its JSON form."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from samizdat.client.secret.state import (
    MAX_MISSING,
    MAX_PROCESSED,
    Arrival,
    DeviceChange,
    Entry,
    GroupInfo,
    GroupSessionInfo,
    KnownDevice,
    MessageEntry,
    NoticeEntry,
    NoticeLevel,
    OutboundInfo,
    SecretChat,
    SecretState,
    Stream,
    Trust,
    VerificationRequest,
)

ME, PEER = 1, 2


def device(user_id: int, device_id: int, key: str = "k", *, first_seen: float = 0.0) -> KnownDevice:
    return KnownDevice(
        user_id=user_id,
        device_id=device_id,
        identity_key=f"identity-{key}-{device_id}",
        signing_key=f"signing-{key}-{device_id}",
        first_seen=first_seen,
    )


def message(
    message_id: str, *, ttl: int = 0, outgoing: bool = False, expires_at: float | None = None
) -> MessageEntry:
    return MessageEntry(
        id=message_id,
        sender_user=ME if outgoing else PEER,
        sender_device=1,
        text=f"text of {message_id}",
        sent_at=1.0,
        received_at=2.0,
        ttl=ttl,
        outgoing=outgoing,
        expires_at=expires_at,
    )


def found(chat: SecretChat, message_id: str) -> MessageEntry:
    entry = chat.message(message_id)
    assert entry is not None, message_id
    return entry


def chat_with(*entries: Entry) -> SecretChat:
    chat = SecretChat(id=f"u{PEER}", peer=PEER, created_at=0.0)
    chat.history = list(entries)
    return chat


# Stream


def test_numbers_in_order_are_in_order() -> None:
    stream = Stream()
    assert [stream.observe(n) for n in (1, 2, 3)] == [(Arrival.IN_ORDER, 0)] * 3
    assert (stream.last, stream.missing) == (3, [])


def test_a_jump_is_a_gap_that_says_how_many_are_missing() -> None:
    stream = Stream()
    stream.observe(1)
    assert stream.observe(5) == (Arrival.GAP, 3)
    assert (stream.last, stream.missing) == (5, [2, 3, 4])


def test_a_gap_at_the_very_start_counts_from_one() -> None:
    stream = Stream()
    assert stream.observe(3) == (Arrival.GAP, 2)
    assert stream.missing == [1, 2]


def test_a_late_arrival_fills_its_gap_once() -> None:
    stream = Stream()
    stream.observe(1)
    stream.observe(5)
    assert stream.observe(3) == (Arrival.LATE, 0)
    assert stream.missing == [2, 4]
    assert stream.observe(3) == (Arrival.REPLAY, 0)
    assert stream.observe(2) == (Arrival.LATE, 0)
    assert stream.observe(4) == (Arrival.LATE, 0)
    assert stream.missing == []
    assert stream.observe(6) == (Arrival.IN_ORDER, 0)


def test_the_same_number_twice_is_a_replay() -> None:
    stream = Stream()
    stream.observe(1)
    stream.observe(2)
    assert stream.observe(2) == (Arrival.REPLAY, 0)
    assert stream.observe(1) == (Arrival.REPLAY, 0)  # old, and never missing
    assert stream.observe(0) == (Arrival.REPLAY, 0)
    assert (stream.last, stream.missing) == (2, [])


def test_a_stream_remembers_at_most_max_missing_numbers() -> None:
    stream = Stream()
    stream.observe(1)
    far = MAX_MISSING * 5
    assert stream.observe(far) == (Arrival.GAP, far - 2)
    assert len(stream.missing) == MAX_MISSING
    assert stream.missing == list(range(far - MAX_MISSING, far))
    assert stream.observe(far - MAX_MISSING - 1) == (Arrival.REPLAY, 0)  # too old to tell
    assert stream.observe(far - MAX_MISSING) == (Arrival.LATE, 0)


def test_gaps_pile_up_to_max_missing_keeping_the_newest() -> None:
    stream = Stream()
    for n in range(2, 2 * (MAX_MISSING + 10), 2):  # every other number skipped
        stream.observe(n)
    assert len(stream.missing) == MAX_MISSING
    assert stream.missing[-1] == stream.last - 1
    assert stream.observe(1) == (Arrival.REPLAY, 0)  # the oldest gap was forgotten
    assert stream.observe(stream.last - 1) == (Arrival.LATE, 0)


def test_a_stream_started_at_an_index_takes_the_next_one_in_order() -> None:
    # A Megolm key shared at index k: the engine starts the stream at last=k, observes k+1.
    stream = Stream(last=7)
    assert stream.observe(8) == (Arrival.IN_ORDER, 0)
    assert stream.observe(7) == (Arrival.REPLAY, 0)


# Devices


def test_the_first_look_at_a_user_records_devices_without_changes() -> None:
    state = SecretState()
    assert state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0) == []
    assert set(state.devices[PEER]) == {1, 2}
    assert [d.device_id for d in state.live_devices(PEER)] == [1, 2]


def test_an_unchanged_list_is_no_change() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    assert state.reconcile(PEER, [device(PEER, 1)], now=2.0) == []


def test_a_new_device_is_reported_new() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    added = device(PEER, 2)
    assert state.reconcile(PEER, [device(PEER, 1), added], now=2.0) == [(DeviceChange.NEW, added)]
    assert state.devices[PEER][2] == added


def test_a_device_whose_keys_changed_is_reported_and_loses_its_trust() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    state.mark_verified(state.devices[PEER][1])
    replaced = device(PEER, 1, key="other")
    changes = state.reconcile(PEER, [replaced], now=2.0)
    assert changes == [(DeviceChange.KEYS_CHANGED, replaced)]
    now_known = state.devices[PEER][1]
    assert now_known.identity_key == "identity-other-1"
    assert now_known.trust is Trust.NEW
    assert state.user_verified(PEER)  # the person stays verified: a change needs consent


def test_a_changed_signing_key_alone_is_a_key_change() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    changed = device(PEER, 1).model_copy(update={"signing_key": "another signing key"})
    assert state.reconcile(PEER, [changed], now=2.0) == [(DeviceChange.KEYS_CHANGED, changed)]


def test_a_vanished_device_is_reported_gone_once() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0)
    changes = state.reconcile(PEER, [device(PEER, 1)], now=2.0)
    assert [(change, d.device_id) for change, d in changes] == [(DeviceChange.GONE, 2)]
    assert state.devices[PEER][2].gone
    assert [d.device_id for d in state.live_devices(PEER)] == [1]
    assert state.reconcile(PEER, [device(PEER, 1)], now=3.0) == []


def test_a_device_that_comes_back_with_its_keys_is_no_longer_gone() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0)
    state.devices[PEER][2].trust = Trust.ACCEPTED
    state.reconcile(PEER, [device(PEER, 1)], now=2.0)
    assert state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=3.0) == []
    back = state.devices[PEER][2]
    assert not back.gone
    assert back.trust is Trust.ACCEPTED  # same keys: what the person decided still holds


def test_a_device_that_comes_back_with_other_keys_is_a_key_change() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0)
    state.reconcile(PEER, [device(PEER, 1)], now=2.0)
    returned = device(PEER, 2, key="new")
    assert state.reconcile(PEER, [device(PEER, 1), returned], now=3.0) == [
        (DeviceChange.KEYS_CHANGED, returned)
    ]
    assert not state.devices[PEER][2].gone


def test_all_devices_gone_then_a_new_one() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    assert [c for c, _ in state.reconcile(PEER, [], now=2.0)] == [DeviceChange.GONE]
    assert state.live_devices(PEER) == []
    assert [c for c, _ in state.reconcile(PEER, [device(PEER, 3)], now=3.0)] == [DeviceChange.NEW]


def test_devices_of_different_users_are_kept_apart() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1)], now=1.0)
    state.reconcile(3, [device(3, 1)], now=1.0)
    assert state.live_devices(PEER)[0].user_id == PEER
    assert state.live_devices(3)[0].user_id == 3
    assert state.live_devices(99) == []


def test_a_user_is_verified_once_one_of_their_devices_is() -> None:
    state = SecretState()
    state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0)
    assert not state.user_verified(PEER)
    state.mark_verified(state.devices[PEER][1])
    state.mark_verified(state.devices[PEER][2])
    assert state.user_verified(PEER)
    assert state.verified_users == [PEER]
    assert state.devices[PEER][1].trust is Trust.VERIFIED
    assert not state.user_verified(3)


# Counts and processed envelopes


def test_next_count_increments_per_identity_key() -> None:
    state = SecretState()
    assert [state.next_count("a"), state.next_count("a"), state.next_count("b")] == [1, 2, 1]
    assert state.next_count("a") == 3
    assert state.sent == {"a": 3, "b": 1}


def test_processed_envelopes_are_remembered_up_to_max_processed() -> None:
    state = SecretState()
    for envelope_id in range(MAX_PROCESSED + 5):
        state.mark_processed(envelope_id)
    assert len(state.processed) == MAX_PROCESSED
    assert not state.was_processed(4)
    assert state.was_processed(5)
    assert state.was_processed(MAX_PROCESSED + 4)
    assert not state.was_processed(MAX_PROCESSED + 5)


# Chats and timers


def test_member_ids_of_a_1_1_chat_are_the_peer_and_me() -> None:
    assert chat_with().member_ids(ME) == [ME, PEER]


def test_member_ids_of_a_group_include_me_once() -> None:
    group = SecretChat(
        id="g" + "a" * 32,
        group=GroupInfo(title="t", admin=ME, members=[5, ME, 3]),
        created_at=0.0,
    )
    assert group.member_ids(ME) == [ME, 3, 5]
    assert group.member_ids(9) == [ME, 3, 5, 9]


def test_a_message_is_found_by_id_and_notices_are_appended() -> None:
    chat = chat_with(message("a"), message("b"))
    assert chat.message("b") is chat.history[1]
    assert chat.message("zzz") is None
    notice = chat.notice(3.0, NoticeLevel.ALERT, "keys_changed", "careful")
    assert chat.history[-1] is notice
    assert (notice.level, notice.code, notice.at) == (NoticeLevel.ALERT, "keys_changed", 3.0)


def test_reading_starts_timers_only_for_incoming_messages_with_a_ttl() -> None:
    chat = chat_with(
        message("mine", ttl=30, outgoing=True),
        message("plain"),
        message("timed", ttl=60),
        NoticeEntry(at=0.0, level=NoticeLevel.INFO, code="c", text="t"),
    )
    read, first = chat.read_unread(now=100.0)
    assert [m.id for m in read] == ["plain", "timed"]
    assert first == 1
    mine, plain, timed = (found(chat, i) for i in ("mine", "plain", "timed"))
    assert (plain.read_at, plain.expires_at) == (100.0, None)
    assert (timed.read_at, timed.expires_at) == (100.0, 160.0)
    assert (mine.read_at, mine.expires_at) == (None, None)


def test_reading_twice_changes_nothing_the_second_time() -> None:
    chat = chat_with(message("a", ttl=10))
    chat.read_unread(now=1.0)
    assert chat.read_unread(now=5.0) == ([], None)
    assert found(chat, "a").expires_at == 11.0  # the timer did not restart


def test_reading_returns_the_first_unread_index() -> None:
    chat = chat_with(message("a"), message("b"), message("c"))
    chat.read_unread(now=1.0)
    chat.history.append(message("d", ttl=5))
    read, first = chat.read_unread(now=2.0)
    assert ([m.id for m in read], first) == (["d"], 3)


def test_start_timers_for_outgoing_messages_the_peer_read() -> None:
    chat = chat_with(
        message("incoming", ttl=30),
        message("out-plain", outgoing=True),
        message("out-timed", ttl=20, outgoing=True),
        message("out-other", ttl=20, outgoing=True),
    )
    first = chat.start_timers({"incoming", "out-timed", "out-plain"}, now=50.0, outgoing=True)
    assert first == 1
    incoming, plain, timed, other = (
        found(chat, i) for i in ("incoming", "out-plain", "out-timed", "out-other")
    )
    assert (timed.read_at, timed.expires_at) == (50.0, 70.0)
    assert plain.read_at == 50.0
    assert plain.expires_at is None
    assert incoming.read_at is None  # not outgoing: untouched
    assert other.read_at is None  # not in the ids: untouched


def test_start_timers_twice_reports_no_change() -> None:
    chat = chat_with(message("a", ttl=20, outgoing=True))
    assert chat.start_timers({"a"}, now=1.0, outgoing=True) == 0
    assert chat.start_timers({"a"}, now=2.0, outgoing=True) is None
    assert found(chat, "a").expires_at == 21.0


def test_start_timers_for_unknown_ids_changes_nothing() -> None:
    chat = chat_with(message("a", ttl=20, outgoing=True))
    assert chat.start_timers({"b"}, now=1.0, outgoing=True) is None


def test_purge_removes_only_expired_messages_and_returns_the_first_index() -> None:
    notice = NoticeEntry(at=0.0, level=NoticeLevel.INFO, code="c", text="t")
    chat = chat_with(
        message("keep"),
        message("expired", expires_at=10.0),
        notice,
        message("later", expires_at=20.0),
        message("exactly-now", expires_at=15.0),
    )
    assert chat.purge_expired(now=15.0) == 1
    assert [getattr(e, "id", "notice") for e in chat.history] == ["keep", "notice", "later"]


def test_purge_with_nothing_expired_returns_none() -> None:
    chat = chat_with(message("keep"), message("later", expires_at=20.0))
    assert chat.purge_expired(now=19.9) is None
    assert len(chat.history) == 2
    assert chat_with().purge_expired(now=1e12) is None


# The JSON form


def full_state() -> SecretState:
    state = SecretState(device_id=4)
    chat = chat_with(message("a" * 32, ttl=5), message("b" * 32, outgoing=True))
    chat.notice(1.0, NoticeLevel.WARNING, "new_device", "a new device")
    chat.segments = 1
    group = SecretChat(
        id="g" + "0" * 32,
        group=GroupInfo(title="Plotters", admin=ME, members=[ME, PEER, 3], epoch=4),
        ttl=3600,
        created_at=5.0,
        left=True,
    )
    state.chats = {chat.id: chat, group.id: group}
    state.reconcile(PEER, [device(PEER, 1), device(PEER, 2)], now=1.0)
    state.reconcile(3, [device(3, 7)], now=1.0)
    state.mark_verified(state.devices[PEER][2])
    state.next_count("identity-k-1")
    state.received["identity-k-1"] = Stream(last=9, missing=[4, 7])
    state.group_sessions["session"] = GroupSessionInfo(
        group="0" * 32, sender_user=PEER, sender_device=1, sender_key="key", seen=Stream(last=3)
    )
    state.outbound["0" * 32] = OutboundInfo(
        session_id="mine", shared_with=["identity-k-1"], members=[ME, PEER]
    )
    state.mark_processed(77)
    state.verification_requests["f" * 32] = VerificationRequest(user_id=PEER, device_id=1, at=2.0)
    return state


def test_a_state_round_trips_through_json() -> None:
    state = full_state()
    restored = SecretState.model_validate_json(state.model_dump_json())
    assert restored.model_dump() == state.model_dump()
    assert restored.devices[PEER][2].trust is Trust.VERIFIED
    assert restored.received["identity-k-1"].observe(4) == (Arrival.LATE, 0)
    group = restored.chats["g" + "0" * 32].group
    assert group is not None
    assert group.members == [ME, PEER, 3]


def test_history_is_not_in_the_state_json() -> None:
    state = full_state()
    dumped = state.model_dump_json()
    assert "text of" not in dumped
    assert "a new device" not in dumped
    restored = SecretState.model_validate_json(dumped)
    assert restored.chats[f"u{PEER}"].history == []
    assert restored.chats[f"u{PEER}"].segments == 1


def test_a_state_with_unknown_fields_is_refused() -> None:
    dumped = SecretState().model_dump(mode="json")
    with pytest.raises(ValidationError, match="extra"):
        SecretState.model_validate({**dumped, "surprise": 1})
    with pytest.raises(ValidationError, match="version"):
        SecretState.model_validate({**dumped, "version": 2})
