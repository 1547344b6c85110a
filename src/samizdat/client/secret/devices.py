"""Which devices a secret message goes to, and the keys to start Olm sessions with them.

The server hands out device keys and one-time keys, but a client trusts none of them
blindly: every device's keys must carry its own valid signature over its user and device
id, and every claimed one-time key the device's signature too. A device whose keys changed
under the same id is treated as a new, untrusted device and reported loudly.

Each user's device list is fetched once per process and then trusted until the server says
otherwise (``DEVICE_LIST_CHANGED`` or ``DEVICE_NOT_FOUND`` on a send), when it is fetched again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from samizdat.client.client import Client
from samizdat.client.secret.state import DeviceChange, KnownDevice, SecretState
from samizdat.crypto.e2ee import signature_valid
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.protocol.errors import Conflict, ErrorCode
from samizdat.protocol.keys import device_keys_message, one_time_key_message
from samizdat.protocol.methods import MAX_BATCH_IDS

Change = tuple[DeviceChange, KnownDevice]


class ForgedKeys(Conflict):
    """The server handed out a key without its device's valid signature."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=ErrorCode.KEYS_INVALID)


def _chunks(items: Sequence[int], size: int = MAX_BATCH_IDS) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class DeviceDirectory:
    def __init__(
        self,
        client: Client,
        keys: SecretKeys,
        state: SecretState,
        *,
        user_id: int,
        device_id: int,
        clock: Callable[[], float],
    ) -> None:
        self.client, self.keys, self.state = client, keys, state
        self.user_id, self.device_id, self.clock = user_id, device_id, clock
        self._fetched: set[int] = set()
        #: (user, device) pairs whose keys the server handed out without a valid signature.
        self.forged: set[tuple[int, int]] = set()

    async def refresh(self, users: Sequence[int]) -> list[Change]:
        """Fetch the users' device lists from the server, check every signature, and update
        what this device knows; returns the changes."""
        fetched: dict[int, list[KnownDevice]] = {u: [] for u in users}
        now = self.clock()
        for chunk in _chunks(sorted(set(users))):
            for raw in await self.client.query_keys(chunk):
                user, device = int(raw["user_id"]), int(raw["device_id"])
                if user not in fetched or device == self.device_id:
                    continue
                message = device_keys_message(user, device, raw["identity_key"], raw["signing_key"])
                if not signature_valid(raw["signing_key"], message, raw["signature"]):
                    self.forged.add((user, device))
                    continue
                self.forged.discard((user, device))
                fetched[user].append(
                    KnownDevice(
                        user_id=user,
                        device_id=device,
                        identity_key=raw["identity_key"],
                        signing_key=raw["signing_key"],
                        first_seen=now,
                    )
                )
        changes: list[Change] = []
        for user, devices in fetched.items():
            changes.extend(self.state.reconcile(user, devices, now))
            self._fetched.add(user)
        return changes

    async def devices_of(
        self, users: Sequence[int], *, refresh: bool = False
    ) -> tuple[list[KnownDevice], list[Change]]:
        """The live devices of ``users`` (never this one), fetching lists not yet seen in
        this process (or all of them with ``refresh``)."""
        wanted = sorted(set(users))
        stale = wanted if refresh else [u for u in wanted if u not in self._fetched]
        changes = await self.refresh(stale) if stale else []
        devices = [d for u in wanted for d in self.state.live_devices(u)]
        return devices, changes

    async def device(self, user_id: int, device_id: int) -> tuple[KnownDevice | None, list[Change]]:
        """A sender's device; an unknown one makes us fetch its user's list once."""
        found = self.state.devices.get(user_id, {}).get(device_id)
        changes: list[Change] = []
        if found is None or found.gone:
            changes = await self.refresh([user_id])
            found = self.state.devices.get(user_id, {}).get(device_id)
        return found, changes

    async def one_time_keys(self, devices: Sequence[KnownDevice]) -> dict[int, str]:
        """Claim a key for each device this device has no Olm session with yet; ForgedKeys
        if one's signature does not verify."""
        needed = {d.device_id: d for d in devices if not self.keys.olm.has_session(d.identity_key)}
        found: dict[int, str] = {}
        for chunk in _chunks(sorted(needed)):
            for claimed in await self.client.claim_keys(chunk):
                device = needed.get(int(claimed["device_id"]))
                if device is None:
                    continue
                message = one_time_key_message(
                    device.device_id,
                    claimed["key_id"],
                    claimed["key"],
                    fallback=bool(claimed["fallback"]),
                )
                if not signature_valid(device.signing_key, message, claimed["signature"]):
                    raise ForgedKeys(
                        f"device {device.device_id}'s one-time key is not signed by the device: "
                        "the server may be tampering with keys"
                    )
                found[device.device_id] = claimed["key"]
        missing = set(needed) - set(found)
        if missing:
            raise Conflict(
                f"device(s) {sorted(missing)} have no keys left to start a secret chat with; "
                "they must come online and publish new ones",
                code=ErrorCode.KEYS_INVALID,
            )
        return found


__all__ = ["Change", "DeviceDirectory", "ForgedKeys"]
