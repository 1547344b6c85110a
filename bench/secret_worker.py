"""Secret-chat load-generator worker: ``python -m bench.secret_worker``, driven by WorkerPool.

Unlike ``bench.loadgen`` it runs the real SDK: each *engine* is a ``samizdat.client.Client``
(its own WebSocket) with a ``SecretChats`` on a vault of its own, so every message is
encrypted, relayed, decrypted, checked and saved exactly as a user's device does it.

Same line protocol as ``bench.loadgen`` (one JSON op per line on stdin; ``result``, ``error``
or ``progress`` lines on stdout; ``stop`` ends the running op early; ``exit`` closes all).

Ops:
    open          {base_url, phones, root, concurrency}     -> {engines: [{user_id, device_id}]}
    prime_pairs   {pairs, timeout}                          -> {seconds}
    pair_loop     {pairs, window, start_at_ns, warmup, duration, drain, text_bytes,
                   message_timeout}                         -> counts and latencies
    wait_chat     {indices, chat_id, timeout}               -> {ready, missing}
    group_receive {chat_id, indices, measure_from_ns, measure_until_ns, end_at_ns}
    close         {}                                        -> {closed, alerts}

``pairs`` are ``[sender_index, recipient_index]`` into this worker's engines (in the order
of ``open``). Any op may carry ``"profile": "<path>"``: the op then runs under cProfile and
its stats are written there (``python -m pstats <path>``).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import uvloop

from bench.common import NS, JSONDict, bench_code, serve_ops
from bench.loadgen import Errors, Sampler, describe, padded, sleep_until, write
from bench.secret_crypto import BENCH_KDF, PASSPHRASE
from samizdat.client import Client
from samizdat.client.secret import NoticeLevel, SecretChats, SecretMessage, SecretNotice
from samizdat.crypto.vault import Vault
from samizdat.protocol.errors import SamizdatError

MAX_ERRORS = 1_000
#: Whatever the duration, no lane sends more than this many messages.
MAX_MESSAGES_PER_LANE = 100_000
OnMessage = Callable[[SecretMessage, int], None]


@dataclass
class Engine:
    """One device: a signed-in client and its secret chats, with a swappable handler."""

    client: Client
    secret: SecretChats
    on_message: OnMessage | None = None
    alerts: Counter[str] = field(default_factory=Counter)

    @property
    def user_id(self) -> int:
        return self.secret.user_id

    def deliver(self, event: SecretMessage) -> None:
        if self.on_message is not None:
            self.on_message(event, time.monotonic_ns())

    def notice(self, event: SecretNotice) -> None:
        if event.entry.level is not NoticeLevel.INFO:
            self.alerts[event.entry.code] += 1

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.secret.close(), 10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.client.close(), 5)


async def open_engine(base_url: str, phone: str, root: Path, name: str = "bench") -> Engine:
    """Sign a device in over the SDK, open its vault (cheap KDF) and its secret chats (which
    publishes its keys). Closes the client if any step fails."""
    client = Client(base_url, device_name=name, request_timeout=30.0)
    try:
        await client.connect()
        await client.send_code(phone)
        await client.sign_in(phone, bench_code(phone), display_name=f"s{phone[-7:]}")
        vault = Vault.open(root / f"vault-{phone.lstrip('+')}", PASSPHRASE, cost=BENCH_KDF)
        secret = SecretChats(client, vault)
        engine = Engine(client, secret)
        secret.on(SecretMessage)(engine.deliver)
        secret.on(SecretNotice)(engine.notice)
        await secret.open()
    except BaseException:
        with contextlib.suppress(Exception):
            await client.close()
        raise
    return engine


async def open_engines(
    base_url: str, phones: list[str], root: Path, concurrency: int
) -> list[Engine]:
    """Open every phone's engine, ``concurrency`` at a time; all or none (closed on error)."""
    gate = asyncio.Semaphore(concurrency)
    engines: list[Engine | None] = [None] * len(phones)

    async def one(slot: int, phone: str) -> None:
        async with gate:
            engines[slot] = await open_engine(base_url, phone, root)

    try:
        async with asyncio.TaskGroup() as group:
            for slot, phone in enumerate(phones):
                group.create_task(one(slot, phone))
    except BaseException:
        await asyncio.gather(*(e.close() for e in engines if e is not None))
        raise
    return [e for e in engines if e is not None]


@dataclass
class Lane:
    """One sender -> recipient pair in the closed loop, with its undelivered messages."""

    sender: Engine
    recipient: Engine
    slots: asyncio.Semaphore
    outstanding: dict[int, int] = field(default_factory=dict)  # message number -> sent ns
    lost: int = 0

    def expire(self, timeout_ns: int) -> None:
        """Messages undelivered after ``timeout_ns`` free their slots and count as lost."""
        limit = time.monotonic_ns() - timeout_ns
        for k, sent in list(self.outstanding.items()):
            if sent < limit:
                del self.outstanding[k]
                self.lost += 1
                self.slots.release()


class Worker:
    def __init__(self) -> None:
        self.engines: list[Engine] = []
        self.stop = asyncio.Event()

    # --- setup ---------------------------------------------------------------------------
    async def op_open(self, op: JSONDict) -> JSONDict:
        began = time.monotonic()
        opened = await open_engines(
            op["base_url"], op["phones"], Path(op["root"]), int(op.get("concurrency", 8))
        )
        self.engines.extend(opened)
        return {
            "engines": [{"user_id": e.user_id, "device_id": e.secret.device_id} for e in opened],
            "seconds": round(time.monotonic() - began, 3),
        }

    async def op_prime_pairs(self, op: JSONDict) -> JSONDict:
        """One message each way per pair: Olm sessions exist and both sides have confirmed
        them (steady-state messages are normal, not pre-key, messages)."""
        began = time.monotonic()

        async def exchange(sender: Engine, recipient: Engine) -> None:
            for a, b in ((sender, recipient), (recipient, sender)):
                arrived = asyncio.get_running_loop().create_future()
                b.on_message = lambda _e, _t, f=arrived: f.done() or f.set_result(None)
                await a.secret.send(b.user_id, "hello")
                await arrived
                b.on_message = None

        async with asyncio.timeout(float(op.get("timeout", 60))):
            await asyncio.gather(
                *(exchange(self.engines[s], self.engines[r]) for s, r in op["pairs"])
            )
        return {"seconds": round(time.monotonic() - began, 3)}

    async def op_wait_chat(self, op: JSONDict) -> JSONDict:
        """Wait until every listed engine knows the chat (a group invitation arrived)."""
        engines = [self.engines[i] for i in op["indices"]]
        deadline = time.monotonic() + float(op.get("timeout", 60))
        missing = engines
        while time.monotonic() < deadline and not self.stop.is_set():
            missing = [e for e in engines if op["chat_id"] not in e.secret.state.chats]
            if not missing:
                break
            await asyncio.sleep(0.05)
        return {"ready": len(engines) - len(missing), "missing": len(missing)}

    async def op_close(self, _op: JSONDict) -> JSONDict:
        alerts: Counter[str] = Counter()
        for engine in self.engines:
            alerts.update(engine.alerts)
        await asyncio.gather(*(e.close() for e in self.engines))
        closed = len(self.engines)
        self.engines.clear()
        return {"closed": closed, "alerts": dict(alerts)}

    # --- 1:1, closed loop ----------------------------------------------------------------
    async def op_pair_loop(self, op: JSONDict) -> JSONDict:
        """Each sender sends one message after another (``SecretChats.send``: encrypt, relay,
        save), never more than ``window`` undelivered; recipients count what they decrypt."""
        start_ns = int(op["start_at_ns"])
        measure_from = start_ns + int(op["warmup"] * NS)
        measure_until = measure_from + int(op["duration"] * NS)
        drain_until = measure_until + int(op["drain"] * NS)
        timeout_ns = int(float(op["message_timeout"]) * NS)
        text_bytes = int(op["text_bytes"])
        received = 0
        per_second = [0] * (int(op["duration"]) + 1)
        sends = 0
        latency, send_latency = Sampler(), Sampler()
        errors = Errors()
        alerts_before = sum(sum(e.alerts.values()) for e in self.engines)

        def on_message(lane: Lane) -> OnMessage:
            def handler(event: SecretMessage, now: int) -> None:
                nonlocal received
                text = event.entry.text
                if not text.startswith("p"):
                    return
                sent = lane.outstanding.pop(int(text[1 : text.index(" ")]), None)
                if sent is None:
                    return  # already counted lost
                lane.slots.release()
                if measure_from <= now < measure_until:
                    received += 1
                    per_second[(now - measure_from) // NS] += 1
                if measure_from <= sent < measure_until:
                    latency.add((now - sent) / 1e6)

            return handler

        lanes = [
            Lane(self.engines[s], self.engines[r], asyncio.Semaphore(int(op["window"])))
            for s, r in op["pairs"]
        ]
        for lane in lanes:
            lane.recipient.on_message = on_message(lane)

        async def run(lane: Lane) -> None:
            nonlocal sends
            await sleep_until(start_ns)
            for k in range(1, MAX_MESSAGES_PER_LANE + 1):
                if self.stop.is_set() or time.monotonic_ns() >= measure_until:
                    return
                try:
                    await asyncio.wait_for(lane.slots.acquire(), 1.0)
                except TimeoutError:
                    lane.expire(timeout_ns)
                    continue
                sent = time.monotonic_ns()
                lane.outstanding[k] = sent
                try:
                    await lane.sender.secret.send(
                        lane.recipient.user_id, padded(f"p{k}", text_bytes)
                    )
                except SamizdatError as exc:
                    if lane.outstanding.pop(k, None) is not None:
                        lane.slots.release()
                    errors.add(describe(exc))
                    if errors.count > MAX_ERRORS:
                        return
                    await asyncio.sleep(0.01)
                    continue
                if measure_from <= sent < measure_until:
                    sends += 1
                    send_latency.add((time.monotonic_ns() - sent) / 1e6)

        async with asyncio.TaskGroup() as group:
            for lane in lanes:
                group.create_task(run(lane))
        while any(lane.outstanding for lane in lanes) and time.monotonic_ns() < drain_until:
            await asyncio.sleep(0.05)
        for lane in lanes:
            lane.recipient.on_message = None
        return {
            "received": received,
            "sends": sends,
            "per_second": per_second[: int(op["duration"])],
            "latency_ms": latency.values,
            "send_latency_ms": send_latency.values,
            "lost": sum(lane.lost + len(lane.outstanding) for lane in lanes),
            "alerts": sum(sum(e.alerts.values()) for e in self.engines) - alerts_before,
            **errors.to_json(),
        }

    # --- secret group, receiving side ----------------------------------------------------
    async def op_group_receive(self, op: JSONDict) -> JSONDict:
        """Count group messages decrypted; report each once every engine here has it (a
        ``ready`` progress line first, once the handlers are in place)."""
        chat_id = op["chat_id"]
        measure_from = int(op["measure_from_ns"])
        measure_until = int(op["measure_until_ns"])
        engines = [self.engines[i] for i in op["indices"]]
        counts: dict[str, int] = {}
        in_window = 0
        total = 0
        alerts_before: Counter[str] = Counter()
        for engine in engines:
            alerts_before.update(engine.alerts)

        def on_message(event: SecretMessage, now: int) -> None:
            nonlocal in_window, total
            if event.chat_id != chat_id:
                return
            total += 1
            if measure_from <= now < measure_until:
                in_window += 1
            tag = event.entry.text.split(" ", 1)[0]
            seen = counts.get(tag, 0) + 1
            if seen >= len(engines):
                counts.pop(tag, None)
                write({"type": "progress", "done": tag, "t": now})
            else:
                counts[tag] = seen

        for engine in engines:
            engine.on_message = on_message
        write({"type": "progress", "ready": True})  # the senders wait for every worker's
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.stop.wait(), (int(op["end_at_ns"]) - time.monotonic_ns()) / NS
            )
        for engine in engines:
            engine.on_message = None
        alerts: Counter[str] = Counter()
        for engine in engines:
            alerts.update(engine.alerts)
        alerts.subtract(alerts_before)
        return {
            "members": len(engines),
            "decryptions_in_window": in_window,
            "decryptions_total": total,
            "incomplete": dict(sorted(counts.items())[:10]),
            "alerts": {code: n for code, n in alerts.items() if n},
        }

    # --- loop -----------------------------------------------------------------------------
    async def run_op(self, op: JSONDict) -> None:
        handler = getattr(self, f"op_{op['op']}", None)
        self.stop.clear()
        profiler = cProfile.Profile() if op.get("profile") else None
        try:
            if handler is None:
                raise ValueError(f"unknown op {op['op']!r}")
            if profiler is not None:
                profiler.enable()
            try:
                result = await handler(op)
            finally:
                if profiler is not None:
                    profiler.disable()
                    profiler.dump_stats(op["profile"])
            write({"type": "result", **result})
        except Exception as exc:  # reported to the parent, which raises
            traceback.print_exc(file=sys.stderr)
            write({"type": "error", "error": describe(exc)})


async def main() -> None:
    await serve_ops(Worker())


if __name__ == "__main__":
    uvloop.run(main())
