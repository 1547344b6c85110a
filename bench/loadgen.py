"""Load-generator worker process: ``python -m bench.loadgen``, driven by WorkerPool.

Reads one JSON op per line on stdin and answers on stdout with ``{"type": "result", ...}``
or ``{"type": "error", "error": "..."}``, optionally preceded by ``{"type": "progress"}``
lines. Ops run one at a time; ``{"op": "stop"}`` asks the running op to finish early and
``{"op": "exit"}`` (or end of input) closes every socket and exits.

Ops:
    sign_in       {base_url, phones, concurrency}            -> {accounts}
    connect       {ws_url, tokens, concurrency, timeout}     -> {connected, failed, errors}
    closed_loop   {pairs, window, start_at_ns, warmup, duration, text_bytes}
    open_loop     {pairs, rate, phase, start_at_ns, warmup, duration, drain, text_bytes}
    fanout_receive {chat_id, indices, measure_from_ns, measure_until_ns, end_at_ns}
    close         {}                                          -> {closed}

``pairs`` are ``[sender_index, recipient_index, chat_id]`` with indexes into this worker's
connected devices, in the order of the ``connect`` tokens. Times are ``time.monotonic_ns()``,
which is one clock for every process on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sys
import time
import traceback
from dataclasses import asdict
from typing import Any

import orjson
import uvloop

from bench.common import NS, serve_ops, sign_in_many
from bench.wsclient import Device, DeviceClosed, ReplyHandler, RequestFailed

JSONDict = dict[str, Any]
MAX_SAMPLES = 20_000
MAX_ERRORS = 1_000


def write(message: JSONDict) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


class Sampler:
    """Reservoir sample of latencies (ms), so huge runs send back a bounded list."""

    def __init__(self, size: int = MAX_SAMPLES) -> None:
        self.size = size
        self.seen = 0
        self.values: list[float] = []

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            slot = random.randrange(self.seen)
            if slot < self.size:
                self.values[slot] = value


class Errors:
    def __init__(self) -> None:
        self.count = 0
        self.first: list[str] = []

    def add(self, text: str) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(text)

    def to_json(self) -> JSONDict:
        return {"errors": self.count, "first_errors": self.first}


def describe(exc: BaseException) -> str:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def padded(prefix: str, size: int) -> str:
    return prefix + " " + "x" * max(0, size - len(prefix) - 1)


async def sleep_until(deadline_ns: int) -> None:
    delay = (deadline_ns - time.monotonic_ns()) / NS
    if delay > 0:
        await asyncio.sleep(delay)


class Worker:
    def __init__(self) -> None:
        self.devices: list[Device | None] = []
        self.stop = asyncio.Event()
        self._random_base = secrets.randbits(20) << 32
        self._random_counter = 0

    def random_id(self) -> int:
        self._random_counter += 1
        return self._random_base | self._random_counter

    def device(self, index: int) -> Device:
        device = self.devices[index]
        if device is None:
            raise RuntimeError(f"device {index} is not connected")
        return device

    # --- setup ---------------------------------------------------------------------------
    async def op_sign_in(self, op: JSONDict) -> JSONDict:
        accounts = await sign_in_many(op["base_url"], op["phones"], concurrency=op["concurrency"])
        return {"accounts": [asdict(a) for a in accounts]}

    async def op_connect(self, op: JSONDict) -> JSONDict:
        tokens: list[str] = op["tokens"]
        timeout = float(op.get("timeout", 30.0))
        gate = asyncio.Semaphore(int(op.get("concurrency", 64)))
        errors = Errors()
        start = len(self.devices)
        self.devices.extend([None] * len(tokens))

        async def one(slot: int, token: str) -> None:
            async with gate:
                try:
                    self.devices[start + slot] = await Device.connect(
                        op["ws_url"], token, timeout=timeout
                    )
                except (OSError, TimeoutError, RequestFailed, Exception) as exc:
                    errors.add(f"{type(exc).__name__}: {exc}")

        began = time.monotonic()
        async with asyncio.TaskGroup() as group:
            for slot, token in enumerate(tokens):
                group.create_task(one(slot, token))
        return {
            "connected": len(tokens) - errors.count,
            "failed": errors.count,
            "first_errors": errors.first,
            "seconds": round(time.monotonic() - began, 3),
        }

    async def op_close(self, _op: JSONDict) -> JSONDict:
        live = [d for d in self.devices if d is not None]
        gate = asyncio.Semaphore(256)

        async def one(device: Device) -> None:
            async with gate:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(device.close(), 5)

        await asyncio.gather(*(one(d) for d in live))
        self.devices.clear()
        return {"closed": len(live)}

    # --- 1:1 throughput, closed loop -----------------------------------------------------
    async def op_closed_loop(self, op: JSONDict) -> JSONDict:
        start_ns = int(op["start_at_ns"])
        measure_from = start_ns + int(op["warmup"] * NS)
        measure_until = measure_from + int(op["duration"] * NS)
        text = padded("c", int(op["text_bytes"]))
        window = int(op["window"])
        received = 0
        received_total = 0
        per_second = [0] * (int(op["duration"]) + 1)
        acks = 0
        ack_latency = Sampler()
        errors = Errors()

        def on_push(frame: JSONDict, now: int) -> None:
            nonlocal received, received_total
            update = frame.get("update") or {}
            if update.get("type") != "new_message":
                return
            received_total += 1
            if measure_from <= now < measure_until:
                received += 1
                per_second[(now - measure_from) // NS] += 1

        for _sender, recipient, _chat in op["pairs"]:
            self.device(recipient).on_update = on_push

        async def lane(sender: Device, chat_id: int) -> None:
            nonlocal acks
            await sleep_until(start_ns)
            while not self.stop.is_set():
                sent = time.monotonic_ns()
                if sent >= measure_until:
                    return
                params = {"chat_id": chat_id, "text": text, "random_id": self.random_id()}
                try:
                    await sender.call("messages.send", params, timeout=30)
                except (RequestFailed, TimeoutError, DeviceClosed) as exc:
                    errors.add(f"{type(exc).__name__}: {exc}")
                    if errors.count > MAX_ERRORS or isinstance(exc, DeviceClosed):
                        return
                    await asyncio.sleep(0.01)
                    continue
                done = time.monotonic_ns()
                if measure_from <= sent < measure_until:
                    acks += 1
                    ack_latency.add((done - sent) / 1e6)

        async with asyncio.TaskGroup() as group:
            for sender, _recipient, chat_id in op["pairs"]:
                for _ in range(window):
                    group.create_task(lane(self.device(sender), chat_id))
        # Let pushes that are already on the wire land, then stop counting.
        await asyncio.sleep(0.2)
        for _sender, recipient, _chat in op["pairs"]:
            self.device(recipient).on_update = None
        return {
            "received": received,
            "received_total": received_total,
            "acks": acks,
            "per_second": per_second[: int(op["duration"])],
            "ack_latency_ms": ack_latency.values,
            **errors.to_json(),
        }

    # --- 1:1 latency, open loop ----------------------------------------------------------
    async def op_open_loop(self, op: JSONDict) -> JSONDict:
        start_ns = int(op["start_at_ns"])
        rate = float(op["rate"])
        interval_ns = NS / rate
        phase_ns = int(float(op.get("phase", 0.0)) * NS)
        measure_from = start_ns + int(op["warmup"] * NS)
        measure_until = measure_from + int(op["duration"] * NS)
        pairs: list[list[int]] = op["pairs"]
        text_bytes = int(op["text_bytes"])
        latencies: list[float] = []
        ack_latency = Sampler()
        errors = Errors()
        scheduled_in_window = 0
        max_lag_ns = 0
        all_received = asyncio.Event()
        sending_done = False
        acks_in_window = 0

        def check_done() -> None:
            if sending_done and min(len(latencies), acks_in_window) >= scheduled_in_window:
                all_received.set()

        def on_push(frame: JSONDict, now: int) -> None:
            update = frame.get("update") or {}
            if update.get("type") != "new_message":
                return
            text = (update.get("message") or {}).get("text") or ""
            if not text.startswith("o"):
                return
            scheduled = int(text[1 : text.index(" ")])
            if measure_from <= scheduled < measure_until:
                latencies.append((now - scheduled) / 1e6)
                check_done()

        for _sender, recipient, _chat in pairs:
            self.device(recipient).on_update = on_push

        def on_ack(scheduled: int) -> ReplyHandler:
            def handler(frame: JSONDict, now: int) -> None:
                nonlocal acks_in_window
                in_window = measure_from <= scheduled < measure_until
                if "error" in frame:
                    errors.add(f"messages.send: {frame['error']}")
                elif in_window:
                    ack_latency.add((now - scheduled) / 1e6)
                if in_window:
                    acks_in_window += 1
                    check_done()

            return handler

        k = 0
        while not self.stop.is_set():
            scheduled = start_ns + phase_ns + int(k * interval_ns)
            if scheduled >= measure_until:
                break
            await sleep_until(scheduled)
            max_lag_ns = max(max_lag_ns, time.monotonic_ns() - scheduled)
            sender, _recipient, chat_id = pairs[k % len(pairs)]
            if measure_from <= scheduled:
                scheduled_in_window += 1
            params = {
                "chat_id": chat_id,
                "text": padded(f"o{scheduled}", text_bytes),
                "random_id": self.random_id(),
            }
            try:
                await self.device(sender).send_request("messages.send", params, on_ack(scheduled))
            except DeviceClosed as exc:
                errors.add(f"DeviceClosed: {exc}")
                break
            k += 1
        sending_done = True
        check_done()
        if not all_received.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(all_received.wait(), float(op["drain"]))
        for _sender, recipient, _chat in pairs:
            self.device(recipient).on_update = None
        return {
            "scheduled": scheduled_in_window,
            "received": len(latencies),
            "latency_ms": latencies,
            "ack_latency_ms": ack_latency.values,
            "max_scheduler_lag_ms": round(max_lag_ns / 1e6, 3),
            **errors.to_json(),
        }

    # --- group fan-out, receiving side ---------------------------------------------------
    async def op_fanout_receive(self, op: JSONDict) -> JSONDict:
        """Count pushes of the group's messages; report each message once all here have it."""
        chat_id = int(op["chat_id"])
        measure_from = int(op["measure_from_ns"])
        measure_until = int(op["measure_until_ns"])
        live = [self.device(i) for i in op["indices"]]
        members = len(live)
        counts: dict[str, int] = {}
        in_window = 0
        total = 0

        def on_push(frame: JSONDict, now: int) -> None:
            nonlocal in_window, total
            update = frame.get("update") or {}
            if update.get("type") != "new_message":
                return
            message = update.get("message") or {}
            if message.get("chat_id") != chat_id:
                return
            total += 1
            if measure_from <= now < measure_until:
                in_window += 1
            tag = (message.get("text") or "").split(" ", 1)[0]
            seen = counts.get(tag, 0) + 1
            if seen >= members:
                counts.pop(tag, None)
                write({"type": "progress", "done": tag, "t": now})
            else:
                counts[tag] = seen

        for device in live:
            device.on_update = on_push
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.stop.wait(), (int(op["end_at_ns"]) - time.monotonic_ns()) / NS
            )
        for device in live:
            device.on_update = None
        return {"members": members, "deliveries_in_window": in_window, "deliveries_total": total}

    # --- loop -----------------------------------------------------------------------------
    async def run_op(self, op: JSONDict) -> None:
        handler = getattr(self, f"op_{op['op']}", None)
        self.stop.clear()
        try:
            if handler is None:
                raise ValueError(f"unknown op {op['op']!r}")
            result = await handler(op)
            write({"type": "result", **result})
        except Exception as exc:  # reported to the parent, which raises
            traceback.print_exc(file=sys.stderr)
            write({"type": "error", "error": describe(exc)})


async def main() -> None:
    await serve_ops(Worker())


if __name__ == "__main__":
    uvloop.run(main())
