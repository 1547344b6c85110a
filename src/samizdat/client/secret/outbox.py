"""Packing one secret send into as few ``secret.send`` requests as the limits allow.

A send is per-device Olm ciphertexts and, for a group, one Megolm ciphertext addressed to
many devices. Requests are cut at user boundaries, so each can carry ``recipients``: the
users whose every device it addresses, which the server checks against the devices it
knows (``DEVICE_LIST_CHANGED`` when we missed one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from samizdat.client.secret.state import KnownDevice
from samizdat.protocol.methods import MAX_BATCH_IDS, MAX_SECRET_FANOUT

#: Well under the server's default 64 KiB frame, with room for the JSON around it.
MAX_REQUEST_BYTES = 48 * 1024


@dataclass(slots=True)
class Outgoing:
    recipients: list[int]
    olm: list[tuple[KnownDevice, dict[str, Any]]] = field(default_factory=list)
    group_ciphertext: str | None = None
    group_devices: list[KnownDevice] = field(default_factory=list)


@dataclass(slots=True)
class _Request:
    users: list[int] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    device_ids: list[int] = field(default_factory=list)
    size: int = 0

    def fits(self, messages: int, devices: int, size: int) -> bool:
        return (
            len(self.users) < MAX_BATCH_IDS
            and len(self.messages) + messages <= MAX_BATCH_IDS
            and len(self.device_ids) + devices <= MAX_SECRET_FANOUT
            and self.size + size <= MAX_REQUEST_BYTES
        )


def plan(outgoing: Outgoing) -> list[dict[str, Any]]:
    """The ``secret.send`` parameters, request by request. Only ``recipients`` are checked
    for completeness; devices of other users may ride along (a verification goes to one)."""
    wanted = set(outgoing.recipients)
    base = len(outgoing.group_ciphertext or "") + 64
    by_user: dict[int, tuple[list[dict[str, Any]], list[int]]] = {
        u: ([], []) for u in outgoing.recipients
    }
    for device, sealed in outgoing.olm:
        by_user.setdefault(device.user_id, ([], []))[0].append(
            {"device_id": device.device_id, **sealed}
        )
    for device in outgoing.group_devices:
        by_user.setdefault(device.user_id, ([], []))[1].append(device.device_id)
    requests: list[_Request] = []
    current = _Request(size=base)
    deviceless: list[int] = []
    for user, (messages, devices) in by_user.items():
        if not messages and not devices:
            deviceless.append(user)
            continue
        size = sum(len(m["ciphertext"]) + 64 for m in messages) + 24 * len(devices) + 24
        if not current.fits(len(messages), len(devices), size) and current.users:
            requests.append(current)
            current = _Request(size=base)
        if not current.fits(len(messages), len(devices), size):
            raise ValueError(f"user {user} has more devices than one request can address")
        current.users.append(user)
        current.messages.extend(messages)
        current.device_ids.extend(devices)
        current.size += size
    if current.users:
        requests.append(current)
    # Users we know no device of are named too, so the server says if it knows one; they
    # ride in any request with room (a request must address some device to be sent).
    for request in requests:
        while deviceless and len(request.users) < MAX_BATCH_IDS:
            request.users.append(deviceless.pop())
    params = []
    for request in requests:
        checked = [u for u in request.users if u in wanted]
        call: dict[str, Any] = {"recipients": checked} if checked else {}
        if request.messages:
            call["messages"] = request.messages
        if request.device_ids and outgoing.group_ciphertext is not None:
            call["group"] = {
                "ciphertext": outgoing.group_ciphertext,
                "device_ids": request.device_ids,
            }
        params.append(call)
    return params


__all__ = ["MAX_REQUEST_BYTES", "Outgoing", "plan"]
