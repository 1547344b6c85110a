"""Per-message cryptographic cost of secret chats, in-process, with no network.

Each figure is ``time.perf_counter_ns`` around one operation, repeated ``iterations`` times
after ``warmup`` untimed ones, and reported in microseconds (mean, p50, p99):

* ``olm_encrypt`` / ``olm_decrypt``: ``SecretKeys.encrypt_to_device`` / ``decrypt_from_device``
  (JSON in and out included) of a ~``text_bytes`` payload over an established session, one
  direction (a symmetric ratchet step per message).
* ``olm_turn_encrypt`` / ``olm_turn_decrypt``: the same when the two devices take turns, so
  every message starts a new Diffie-Hellman ratchet step (a conversation's worst case).
* ``olm_session_outbound`` / ``olm_session_inbound``: the first message to a new device
  (a claimed one-time key: three X25519 agreements each side).
* ``megolm_encrypt`` / ``megolm_decrypt``: ``encrypt_group`` / ``decrypt_group`` with a shared
  session key.
* ``engine_send_1to1`` / ``engine_receive_1to1``: what ``SecretChats`` does per device on top
  of Olm: build the ``Text`` and ``DeviceEnvelope`` models, dump them to JSON, encrypt; and
  parse the pushed update, decrypt, validate the envelope, build the history entry.
* ``engine_send_group`` / ``engine_receive_group``: the same for one Megolm group message.
* ``keys_to_bytes`` and ``vault_save``: the state a device writes after every send and every
  receipt (``Vault.save_device``: pickles of all keys, AES-GCM, an fsynced atomic write);
  ``vault_save`` also reports the CPU part (``cpu_mean_us``), the rest being the disk.
"""

from __future__ import annotations

import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from bench.common import JSONDict, percentile
from samizdat.client.secret.engine import new_message_id
from samizdat.client.secret.payloads import (
    DEVICE_ENVELOPE,
    GROUP_ENVELOPE,
    DeviceEnvelope,
    GroupEnvelope,
    Text,
)
from samizdat.client.secret.state import MessageEntry, SecretState
from samizdat.crypto.secret_keys import SecretKeys
from samizdat.crypto.vault import KdfCost, Vault
from samizdat.protocol.models import SecretMessageUpdate

#: A cheap argon2id cost for the benchmark's throw-away vaults (the default is 64 MiB, t=3).
BENCH_KDF = KdfCost(time_cost=1, memory_kib=8 * 1024, parallelism=1)
PASSPHRASE = "bench passphrase"
ALICE, BOB = (1, 11), (2, 22)  # (user id, device id)
GROUP_ID = "0" * 31 + "1"


def summary_us(samples_ns: list[int]) -> JSONDict:
    data = sorted(samples_ns)
    return {
        "n": len(data),
        "mean_us": round(sum(data) / len(data) / 1000, 2),
        "p50_us": round(percentile(data, 50) / 1000, 2),
        "p99_us": round(percentile(data, 99) / 1000, 2),
    }


def timed(step: Callable[[], Any], iterations: int, warmup: int) -> JSONDict:
    """Time ``step`` one call at a time (warm-up calls untimed)."""
    for _ in range(warmup):
        step()
    samples = []
    for _ in range(iterations):
        began = time.perf_counter_ns()
        step()
        samples.append(time.perf_counter_ns() - began)
    return summary_us(samples)


def timed_pairs(
    produce: Callable[[], Any], consume: Callable[[Any], Any], iterations: int, warmup: int
) -> tuple[JSONDict, JSONDict]:
    """Time ``produce`` ``iterations`` times, then ``consume`` on each result in order
    (ratchets must be fed in order)."""
    for _ in range(warmup):
        consume(produce())
    made, produced = [], []
    for _ in range(iterations):
        began = time.perf_counter_ns()
        made.append(produce())
        produced.append(time.perf_counter_ns() - began)
    consumed = []
    for item in made:
        began = time.perf_counter_ns()
        consume(item)
        consumed.append(time.perf_counter_ns() - began)
    return summary_us(produced), summary_us(consumed)


def device_pair() -> tuple[SecretKeys, SecretKeys]:
    """Two devices with an established Olm session (a pre-key message and a reply)."""
    alice, bob = SecretKeys.create(ALICE[1]), SecretKeys.create(BOB[1])
    alice.device.device_keys_upload(*ALICE)
    bob.device.device_keys_upload(*BOB)
    otk = bob.device.new_one_time_keys(1)[0]["key"]
    first = alice.encrypt_to_device(bob.identity_key, otk, {"hello": 1})
    bob.decrypt_from_device(alice.identity_key, first["olm_type"], first["ciphertext"])
    reply = bob.encrypt_to_device(alice.identity_key, None, {"hello": 2})
    alice.decrypt_from_device(bob.identity_key, reply["olm_type"], reply["ciphertext"])
    return alice, bob


def _push(sender: tuple[int, int], sealed: dict[str, Any], envelope_id: int) -> JSONDict:
    """The update the server pushes for one ciphertext (``envelope_json``'s shape)."""
    return {
        "type": "secret_message",
        "id": envelope_id,
        "sender_user_id": sender[0],
        "sender_device_id": sender[1],
        "olm_type": sealed["olm_type"],
        "ciphertext": sealed["ciphertext"],
        "sent_at": time.time(),
    }


def olm_costs(text: str, iterations: int, warmup: int) -> JSONDict:
    alice, bob = device_pair()
    payload = {"text": text}
    out: JSONDict = {"payload_bytes": len(orjson.dumps(payload))}
    out["olm_encrypt"], out["olm_decrypt"] = timed_pairs(
        lambda: alice.encrypt_to_device(bob.identity_key, None, payload),
        lambda s: bob.decrypt_from_device(alice.identity_key, s["olm_type"], s["ciphertext"]),
        iterations,
        warmup,
    )
    sealed_types = {alice.encrypt_to_device(bob.identity_key, None, payload)["olm_type"]}
    out["olm_message_type"] = sorted(sealed_types)  # 1: a normal (not pre-key) message

    turn_encrypt: list[int] = []
    turn_decrypt: list[int] = []
    for index in range(warmup + iterations):
        sender, receiver = (alice, bob) if index % 2 == 0 else (bob, alice)
        began = time.perf_counter_ns()
        sealed = sender.encrypt_to_device(receiver.identity_key, None, payload)
        middle = time.perf_counter_ns()
        receiver.decrypt_from_device(sender.identity_key, sealed["olm_type"], sealed["ciphertext"])
        if index >= warmup:
            turn_encrypt.append(middle - began)
            turn_decrypt.append(time.perf_counter_ns() - middle)
    out["olm_turn_encrypt"], out["olm_turn_decrypt"] = (
        summary_us(turn_encrypt),
        summary_us(turn_decrypt),
    )

    sessions = max(10, iterations // 10)
    receivers = [SecretKeys.create(100 + i) for i in range(sessions)]
    keys = []
    for i, receiver in enumerate(receivers):
        receiver.device.device_keys_upload(100 + i, 100 + i)
        keys.append(receiver.device.new_one_time_keys(1)[0]["key"])
    sender = SecretKeys.create(ALICE[1])
    sender.device.device_keys_upload(*ALICE)
    made: Iterator[tuple[SecretKeys, str]] = iter(zip(receivers, keys, strict=True))
    firsts: list[tuple[SecretKeys, dict[str, Any]]] = []

    def outbound() -> None:
        receiver, otk = next(made)
        firsts.append((receiver, sender.encrypt_to_device(receiver.identity_key, otk, payload)))

    out["olm_session_outbound"] = timed(outbound, sessions, 0)
    opened = iter(firsts)

    def inbound() -> None:
        receiver, sealed = next(opened)
        receiver.decrypt_from_device(sender.identity_key, sealed["olm_type"], sealed["ciphertext"])

    out["olm_session_inbound"] = timed(inbound, sessions, 0)
    return out


def megolm_costs(text: str, iterations: int, warmup: int) -> JSONDict:
    alice, bob = device_pair()
    alice.new_outbound(GROUP_ID, time.time())
    sealed = alice.encrypt_to_device(bob.identity_key, None, {"k": 1}, group_key_of=GROUP_ID)
    opened = bob.decrypt_from_device(alice.identity_key, sealed["olm_type"], sealed["ciphertext"])
    assert opened.group_key is not None
    bob.accept(opened.group_key)
    payload = {"text": text}
    out: JSONDict = {"payload_bytes": len(orjson.dumps(payload))}
    out["megolm_encrypt"], out["megolm_decrypt"] = timed_pairs(
        lambda: alice.encrypt_group(GROUP_ID, payload),
        bob.decrypt_group,
        iterations,
        warmup,
    )
    return out


def engine_costs(text: str, iterations: int, warmup: int) -> JSONDict:
    """The engine's per-message work around the ciphers (see ``SecretChats._seal``,
    ``_process`` and ``_process_group``), with no network and no vault."""
    alice, bob = device_pair()
    counter = iter(range(1, 10**9))
    state = SecretState()

    def send_1to1() -> JSONDict:
        body = Text(chat=f"u{BOB[0]}", id=new_message_id(), text=text, sent_at=time.time())
        envelope = DeviceEnvelope(
            sender_user=ALICE[0],
            sender_device=ALICE[1],
            recipient_user=BOB[0],
            recipient_device=BOB[1],
            recipient_key=bob.identity_key,
            n=state.next_count(bob.identity_key),
            body=body,
        )
        sealed = alice.encrypt_to_device(bob.identity_key, None, envelope.model_dump(mode="json"))
        _own_entry(body)
        return _push(ALICE, sealed, next(counter))

    def receive_1to1(raw: JSONDict) -> None:
        update = SecretMessageUpdate.model_validate(raw)
        opened = bob.decrypt_from_device(alice.identity_key, update.olm_type, update.ciphertext)
        envelope = DEVICE_ENVELOPE.validate_python(opened.payload)
        assert isinstance(envelope.body, Text)
        _entry(envelope.body, ALICE)

    out: JSONDict = {}
    out["engine_send_1to1"], out["engine_receive_1to1"] = timed_pairs(
        send_1to1, receive_1to1, iterations, warmup
    )
    sample = DeviceEnvelope(
        sender_user=ALICE[0],
        sender_device=ALICE[1],
        recipient_user=BOB[0],
        recipient_device=BOB[1],
        recipient_key=bob.identity_key,
        n=1,
        body=Text(chat=f"u{BOB[0]}", id=new_message_id(), text=text, sent_at=time.time()),
    )
    out["envelope_bytes_1to1"] = len(orjson.dumps(sample.model_dump(mode="json")))

    alice.new_outbound(GROUP_ID, time.time())
    sealed = alice.encrypt_to_device(bob.identity_key, None, {"k": 1}, group_key_of=GROUP_ID)
    opened = bob.decrypt_from_device(alice.identity_key, sealed["olm_type"], sealed["ciphertext"])
    assert opened.group_key is not None
    bob.accept(opened.group_key)

    def send_group() -> JSONDict:
        body = Text(chat=f"g{GROUP_ID}", id=new_message_id(), text=text, sent_at=time.time())
        envelope = GroupEnvelope(
            group=GROUP_ID, epoch=1, sender_user=ALICE[0], sender_device=ALICE[1], body=body
        )
        ciphertext = alice.encrypt_group(GROUP_ID, envelope.model_dump(mode="json"))
        _own_entry(body)
        return _push(ALICE, {"olm_type": 2, "ciphertext": ciphertext}, next(counter))

    def receive_group(raw: JSONDict) -> None:
        update = SecretMessageUpdate.model_validate(raw)
        _opened, payload = bob.decrypt_group(update.ciphertext)
        envelope = GROUP_ENVELOPE.validate_python(payload)
        _entry(envelope.body, ALICE)

    out["engine_send_group"], out["engine_receive_group"] = timed_pairs(
        send_group, receive_group, iterations, warmup
    )
    return out


def _own_entry(body: Text) -> MessageEntry:
    return MessageEntry(
        id=body.id,
        sender_user=ALICE[0],
        sender_device=ALICE[1],
        text=body.text,
        sent_at=body.sent_at,
        received_at=body.sent_at,
        outgoing=True,
    )


def _entry(body: Text, sender: tuple[int, int]) -> MessageEntry:
    return MessageEntry(
        id=body.id,
        sender_user=sender[0],
        sender_device=sender[1],
        text=body.text,
        sent_at=body.sent_at,
        received_at=time.time(),
        ttl=body.ttl,
    )


def vault_costs(root: Path, saves: int) -> JSONDict:
    """``Vault.save_device`` of a device with one Olm session and one group session each way:
    wall time (with the fsync) and the CPU part."""
    alice, bob = device_pair()
    alice.new_outbound(GROUP_ID, time.time())
    state = SecretState(device_id=ALICE[1]).model_dump_json().encode()
    with tempfile.TemporaryDirectory(prefix="samizdat-bench-vault-", dir=root) as directory:
        vault = Vault.open(Path(directory), PASSPHRASE, cost=BENCH_KDF)
        out: JSONDict = {"keys_to_bytes": timed(alice.to_bytes, saves * 10, 10)}
        out["keys_bytes"] = len(alice.to_bytes())
        wall: list[int] = []
        cpu: list[int] = []
        for index in range(saves + 3):
            began, began_cpu = time.perf_counter_ns(), time.process_time_ns()
            vault.save_device(alice, state)
            if index >= 3:
                wall.append(time.perf_counter_ns() - began)
                cpu.append(time.process_time_ns() - began_cpu)
        out["vault_save"] = {
            **summary_us(wall),
            "cpu_mean_us": round(sum(cpu) / len(cpu) / 1000, 2),
        }
    del bob
    return out


def crypto_costs(
    *, iterations: int = 2000, warmup: int = 200, text_bytes: int = 100, vault_root: Path
) -> JSONDict:
    """Every figure above, in microseconds; runs in this process in a few seconds."""
    text = "m" * text_bytes
    began = time.monotonic()
    gc.collect()
    result: JSONDict = {"iterations": iterations, "text_bytes": text_bytes}
    result["olm"] = olm_costs(text, iterations, warmup)
    result["megolm"] = megolm_costs(text, iterations, warmup)
    result["engine"] = engine_costs(text, iterations, warmup)
    result["vault"] = vault_costs(vault_root, max(20, iterations // 40))
    result["seconds"] = round(time.monotonic() - began, 2)
    return result


__all__ = ["BENCH_KDF", "PASSPHRASE", "crypto_costs", "summary_us"]
