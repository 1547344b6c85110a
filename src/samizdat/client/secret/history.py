"""Secret chats' histories in the vault, in sealed segments.

A chat's history is cut into segments of ``SEGMENT`` entries, each its own sealed file, so a
new message rewrites only the last segment instead of the whole history. Changes further
back (a message read, one deleted by its timer) rewrite from the segment they touch. When
self-destructing messages shrink a history, the segments past its end are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import TypeAdapter

from samizdat.client.secret.state import Entry, SecretChat
from samizdat.crypto.vault import Vault

SEGMENT = 64
_ENTRIES = TypeAdapter(list[Entry])


def _section(chat_id: str, index: int) -> str:
    return f"h_{chat_id}_{index}"


class HistoryStore:
    def __init__(self, vault: Vault, *, segment: int = SEGMENT) -> None:
        self.vault = vault
        self.segment = segment
        self._dirty: dict[str, int] = {}  # chat id -> first entry changed

    def load(self, chat: SecretChat) -> None:
        entries: list[Entry] = []
        for index in range(chat.segments):
            raw = self.vault.read(_section(chat.id, index))
            if raw is not None:
                entries.extend(_ENTRIES.validate_json(raw))
        chat.history = entries

    def touch(self, chat: SecretChat, first: int | None = None) -> None:
        """Entries from ``first`` on (default: the last one) changed or were added."""
        index = len(chat.history) - 1 if first is None else first
        index = max(index, 0)
        self._dirty[chat.id] = min(self._dirty.get(chat.id, index), index)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def collect(self, chats: dict[str, SecretChat]) -> HistoryWrites:
        """The changed segments, serialised now; write them (``HistoryWrites.write``) before
        the state that counts them is saved."""
        writes = HistoryWrites()
        for chat_id, first in sorted(self._dirty.items()):
            chat = chats.get(chat_id)
            history = chat.history if chat is not None else []
            size = self.segment
            needed = -(-len(history) // size)
            for index in range(first // size, needed):
                part = history[index * size : (index + 1) * size]
                writes.sections.append((_section(chat_id, index), _ENTRIES.dump_json(part)))
            if chat is None:  # the chat is gone: so is every segment of it
                writes.prefixes.append(f"h_{chat_id}_")
                continue
            writes.removed.extend(
                _section(chat_id, i) for i in range(needed, max(chat.segments, needed) + 1)
            )
            chat.segments = needed
        self._dirty.clear()
        return writes

    def save(self, chats: dict[str, SecretChat]) -> None:
        self.collect(chats).write(self.vault)


@dataclass(slots=True)
class HistoryWrites:
    sections: list[tuple[str, bytes]] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)

    def write(self, vault: Vault) -> None:
        for name, data in self.sections:
            vault.write(name, data)
        for name in self.removed:
            vault.remove(name)
        for prefix in self.prefixes:
            vault.remove_matching(prefix)


__all__ = ["SEGMENT", "HistoryStore", "HistoryWrites"]
