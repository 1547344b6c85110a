"""What a device signs when it publishes end-to-end keys (shared by client and server).

Each signed message is a domain-separated, NUL-joined byte string, so a signature made for one
purpose (or one device) can never be replayed as another: the device-keys message names the
user and device, a one-time key's message names its device and says whether it is a fallback.
"""

from __future__ import annotations


def device_keys_message(user_id: int, device_id: int, identity_key: str, signing_key: str) -> bytes:
    return b"\x00".join(
        [
            b"samizdat-device-keys-v1",
            b"%d" % user_id,
            b"%d" % device_id,
            identity_key.encode(),
            signing_key.encode(),
        ]
    )


def one_time_key_message(device_id: int, key_id: str, key: str, *, fallback: bool) -> bytes:
    label = b"samizdat-fallback-key-v1" if fallback else b"samizdat-one-time-key-v1"
    return b"\x00".join([label, b"%d" % device_id, key_id.encode(), key.encode()])


__all__ = ["device_keys_message", "one_time_key_message"]
