"""What travels between nodes: pushes to users' devices and cache invalidations.

Events are small frozen dataclasses with a bytes codec, so the NATS adapter and the
in-process bus carry exactly the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson


@dataclass(frozen=True, slots=True)
class Push:
    """Deliver one serialised update body to users; ``seq`` is None for ephemeral updates.

    ``skip_connection`` is the socket whose request caused the update: it learns the number
    from its result instead. The device's other sockets still get the push.
    """

    body: bytes
    targets: tuple[tuple[int, int | None], ...]
    skip_connection: int | None = None


@dataclass(frozen=True, slots=True)
class DevicePush:
    """Deliver one ephemeral update body to specific devices (secret-message ciphertexts)."""

    body: bytes
    device_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class DevicesRevoked:
    device_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class ChatChanged:
    chat_id: int


BusEvent = Push | DevicePush | DevicesRevoked | ChatChanged


def encode(event: BusEvent) -> bytes:
    match event:
        case Push(body, targets, skip):
            return orjson.dumps({"t": "push", "b": body.decode(), "to": targets, "skip": skip})
        case DevicePush(body, device_ids):
            return orjson.dumps({"t": "device_push", "b": body.decode(), "ids": device_ids})
        case DevicesRevoked(ids):
            return orjson.dumps({"t": "revoked", "ids": ids})
        case ChatChanged(chat_id):
            return orjson.dumps({"t": "chat", "id": chat_id})


def decode(data: bytes) -> BusEvent:
    obj = orjson.loads(data)
    match obj.get("t"):
        case "push":
            targets = tuple((int(u), None if s is None else int(s)) for u, s in obj["to"])
            return Push(obj["b"].encode(), targets, obj["skip"])
        case "device_push":
            return DevicePush(obj["b"].encode(), tuple(int(i) for i in obj["ids"]))
        case "revoked":
            return DevicesRevoked(tuple(int(i) for i in obj["ids"]))
        case "chat":
            return ChatChanged(int(obj["id"]))
    raise ValueError(f"unknown bus event type {obj.get('t')!r}")


__all__ = ["BusEvent", "ChatChanged", "DevicePush", "DevicesRevoked", "Push", "decode", "encode"]
