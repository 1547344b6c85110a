"""Secret-chat histories in the vault: cut into sealed segments, so a new message rewrites only
the last one, a change further back rewrites from its segment on, and a history shrunk by
self-destructing messages leaves no segment file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from samizdat.client.secret.history import HistoryStore
from samizdat.client.secret.state import MessageEntry, NoticeEntry, NoticeLevel, SecretChat
from samizdat.crypto.vault import KdfCost, Vault

SEGMENT = 256  # these tests cut histories in segments of this size
FAST = KdfCost(time_cost=1, memory_kib=8 * 1024, parallelism=1)  # tests only
PASSPHRASE = "history passphrase"
CHAT = "u2"


class Recorder:
    """Wraps a vault's write and remove to list the sections they touch."""

    def __init__(self, vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
        self.written: list[str] = []
        self.removed: list[str] = []
        write, remove = vault.write, vault.remove

        def recording_write(name: str, data: bytes) -> None:
            self.written.append(name)
            write(name, data)

        def recording_remove(name: str) -> None:
            self.removed.append(name)
            remove(name)

        monkeypatch.setattr(vault, "write", recording_write)
        monkeypatch.setattr(vault, "remove", recording_remove)


def entry(i: int, *, ttl: int = 0, expires_at: float | None = None) -> MessageEntry:
    return MessageEntry(
        id=f"{i:032x}",
        sender_user=2,
        sender_device=1,
        text=f"message number {i}",
        sent_at=float(i),
        received_at=float(i),
        ttl=ttl,
        expires_at=expires_at,
    )


def new_chat(chat_id: str = CHAT, segments: int = 0) -> SecretChat:
    return SecretChat(id=chat_id, peer=2, created_at=0.0, segments=segments)


def append(store: HistoryStore, chat: SecretChat, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        chat.history.append(entry(i))
        store.touch(chat)


def segment_files(directory: Path, chat_id: str = CHAT) -> list[str]:
    return sorted(p.name for p in directory.glob(f"h_{chat_id}_*.sealed"))


def reopened(directory: Path, chat: SecretChat) -> SecretChat:
    """The chat as a restarted client sees it: the state's JSON, then its history segments."""
    loaded = SecretChat.model_validate_json(chat.model_dump_json())
    HistoryStore(Vault.open(directory, PASSPHRASE), segment=SEGMENT).load(loaded)
    return loaded


@pytest.fixture
def vault(tmp_path: Path) -> Vault:
    return Vault.open(tmp_path, PASSPHRASE, cost=FAST)


def test_600_entries_are_written_as_3_segments(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    assert store.dirty
    store.save({chat.id: chat})
    assert not store.dirty
    assert chat.segments == 3
    assert segment_files(tmp_path) == ["h_u2_0.sealed", "h_u2_1.sealed", "h_u2_2.sealed"]


def test_a_reloaded_history_is_equal(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    chat.notice(1.0, NoticeLevel.ALERT, "keys_changed", "the keys changed")
    store.touch(chat)
    store.save({chat.id: chat})
    restored = reopened(tmp_path, chat)
    assert restored.history == chat.history
    assert isinstance(restored.history[-1], NoticeEntry)


def test_segments_hold_no_plaintext(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 10)
    store.save({chat.id: chat})
    for path in tmp_path.iterdir():
        assert b"message number" not in path.read_bytes()


def test_appending_one_more_entry_rewrites_only_the_last_segment(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    store.save({chat.id: chat})
    recorder = Recorder(vault, monkeypatch)

    append(store, chat, 1, start=600)
    store.save({chat.id: chat})

    assert recorder.written == ["h_u2_2"]
    assert chat.segments == 3
    assert reopened(tmp_path, chat).history == chat.history


def test_appending_across_a_segment_boundary_writes_the_new_segment(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, SEGMENT)
    store.save({chat.id: chat})
    assert chat.segments == 1
    recorder = Recorder(vault, monkeypatch)

    append(store, chat, 1, start=SEGMENT)
    store.save({chat.id: chat})

    assert recorder.written == ["h_u2_1"]
    assert chat.segments == 2
    assert reopened(tmp_path, chat).history == chat.history


def test_a_change_further_back_rewrites_from_its_segment_on(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    store.save({chat.id: chat})
    recorder = Recorder(vault, monkeypatch)

    changed = chat.history[SEGMENT + 3]
    assert isinstance(changed, MessageEntry)
    changed.read_at = 5.0  # one entry in the second segment changed
    store.touch(chat, SEGMENT + 3)
    store.save({chat.id: chat})
    assert recorder.written == ["h_u2_1", "h_u2_2"]

    read, first = chat.read_unread(now=1000.0)  # the rest were unread: from index 0 on
    assert (len(read), first) == (599, 0)
    store.touch(chat, first)
    store.save({chat.id: chat})
    assert recorder.written[2:] == ["h_u2_0", "h_u2_1", "h_u2_2"]
    assert reopened(tmp_path, chat).history == chat.history


def test_saving_with_nothing_touched_writes_nothing(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 3)
    store.save({chat.id: chat})
    recorder = Recorder(vault, monkeypatch)
    store.save({chat.id: chat})
    assert (recorder.written, recorder.removed) == ([], [])


def test_purging_shrinks_the_history_and_removes_unused_segment_files(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    chat.history = [entry(i, ttl=5, expires_at=50.0) if i >= 300 else entry(i) for i in range(600)]
    store.touch(chat, 0)
    store.save({chat.id: chat})
    assert segment_files(tmp_path) == ["h_u2_0.sealed", "h_u2_1.sealed", "h_u2_2.sealed"]
    recorder = Recorder(vault, monkeypatch)

    first = chat.purge_expired(now=60.0)
    assert first == 300
    store.touch(chat, first)
    store.save({chat.id: chat})

    assert len(chat.history) == 300
    assert chat.segments == 2
    assert recorder.written == ["h_u2_1"]  # segment 0 was untouched
    assert segment_files(tmp_path) == ["h_u2_0.sealed", "h_u2_1.sealed"]
    assert reopened(tmp_path, chat).history == chat.history


def test_purging_everything_leaves_no_segment(
    tmp_path: Path, vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    chat.history = [entry(i, ttl=5, expires_at=10.0) for i in range(300)]
    store.touch(chat, 0)
    store.save({chat.id: chat})
    assert chat.segments == 2

    first = chat.purge_expired(now=10.0)
    assert first == 0
    store.touch(chat, first)
    store.save({chat.id: chat})

    assert chat.segments == 0
    assert segment_files(tmp_path) == []
    assert reopened(tmp_path, chat).history == []


def test_chats_are_stored_apart(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    one, other = new_chat("u2"), new_chat("g" + "ab" * 16)
    append(store, one, 3)
    append(store, other, 300)
    store.save({one.id: one, other.id: other})
    assert (one.segments, other.segments) == (1, 2)
    assert reopened(tmp_path, one).history == one.history
    assert reopened(tmp_path, other).history == other.history


def test_a_missing_segment_file_is_skipped_on_load(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    store.save({chat.id: chat})
    (tmp_path / "h_u2_1.sealed").unlink()
    restored = reopened(tmp_path, chat)
    assert restored.history == chat.history[:SEGMENT] + chat.history[2 * SEGMENT :]


def test_a_chat_dropped_from_the_state_loses_every_segment(tmp_path: Path, vault: Vault) -> None:
    store = HistoryStore(vault, segment=SEGMENT)
    chat = new_chat()
    append(store, chat, 600)
    store.save({chat.id: chat})
    store.touch(chat, 0)
    store.save({})
    assert segment_files(tmp_path) == []
