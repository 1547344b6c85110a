"""What a use-case service needs, wired once in ``create_app`` and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass

from samizdat.bus.events import BusEvent, ChatChanged
from samizdat.bus.ports import Bus
from samizdat.core.ids import ChatId, DeviceId, SnowflakeGenerator, UserId
from samizdat.core.model import Membership
from samizdat.core.rules import require_member
from samizdat.server.clock import Clock
from samizdat.server.directory import ChatDirectory
from samizdat.server.metrics import Metrics
from samizdat.server.placement import DcRouter
from samizdat.server.settings import ServerSettings


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a device after auth.authorize / Bearer token, or nobody yet."""

    user_id: UserId
    device_id: DeviceId
    ip: str
    connection_id: int | None = None  # the WebSocket the request came on; None over HTTP


@dataclass(frozen=True, slots=True)
class Anonymous:
    ip: str


@dataclass(slots=True)
class Deps:
    settings: ServerSettings
    dcs: DcRouter
    bus: Bus
    clock: Clock
    ids: SnowflakeGenerator
    metrics: Metrics
    chats: ChatDirectory

    def new_id(self) -> int:
        return self.ids.next(self.clock.now())

    async def publish(self, event: BusEvent) -> None:
        await self.bus.publish(event)

    async def membership(self, caller: Caller, chat_id: int) -> Membership:
        """The chat and its members, if the caller is one (CHAT_NOT_FOUND otherwise)."""
        return require_member(await self.chats.get(ChatId(chat_id)), caller.user_id)

    async def chat_changed(self, chat_id: int) -> None:
        self.chats.invalidate(chat_id)
        await self.bus.publish(ChatChanged(chat_id))


__all__ = ["Anonymous", "Caller", "Deps"]
