"""The secret-group phase of ``bench.secret``: one group, its senders here, members in workers.

The group's creator (and any other senders) are SDK engines in this process; the receiving
members are engines in the ``bench.secret_worker`` processes. Each sender keeps at most
``--group-window`` messages that some member has not decrypted yet: a worker reports a
message once all of its members have it, and a message is done when every worker (and every
other sender) has reported it. The round is primed with one message per sender (its Megolm
key goes to every device over Olm) before the measured window.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import (
    NS,
    BenchError,
    JSONDict,
    WorkerPool,
    latency_summary,
    log,
    measure_window,
)
from bench.loadgen import Errors, describe, padded, sleep_until
from bench.secret_worker import Engine, open_engines
from samizdat.protocol.errors import SamizdatError

MAX_GROUP_MESSAGES_PER_SENDER = 100_000


async def own_cpu_pct(from_ns: int, until_ns: int) -> float:
    """This process's CPU use (not its children's) between two instants, % of one core."""
    await sleep_until(from_ns)
    cpu, began = time.process_time(), time.monotonic()
    await sleep_until(until_ns)
    return round(100.0 * (time.process_time() - cpu) / max(time.monotonic() - began, 1e-9), 1)


@dataclass
class GroupTracker:
    """Messages of the group's senders until every receiving member has decrypted them.

    A message is done when every worker holding members, and every other sender (they live
    in this process), has reported it; then its sender may send another.
    """

    needed: int
    window: int
    senders: int
    workers: int
    ready: int = 0
    all_ready: asyncio.Event = field(default_factory=asyncio.Event)
    sent_at: dict[str, int] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    done_at: dict[str, int] = field(default_factory=dict)
    lost: set[str] = field(default_factory=set)
    slots: list[asyncio.Semaphore] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.slots = [asyncio.Semaphore(self.window) for _ in range(self.senders)]

    @staticmethod
    def sender_of(tag: str) -> int:
        return int(tag[1 : tag.index(".")])

    def report(self, tag: str, at: int) -> None:
        if tag not in self.sent_at or tag in self.lost or tag in self.done_at:
            return
        self.reports[tag] = self.reports.get(tag, 0) + 1
        if self.reports[tag] >= self.needed:
            self.done_at[tag] = at
            self.slots[self.sender_of(tag)].release()

    def on_progress(self, _worker: int, event: JSONDict) -> None:
        if event.get("ready"):
            self.ready += 1
            if self.ready == self.workers:
                self.all_ready.set()
            return
        self.report(str(event["done"]), int(event["t"]))

    def outstanding(self) -> list[str]:
        return [t for t in self.sent_at if t not in self.done_at and t not in self.lost]

    def expire(self, timeout_ns: int) -> None:
        limit = time.monotonic_ns() - timeout_ns
        for tag in self.outstanding():
            if self.sent_at[tag] < limit:
                self.lost.add(tag)
                self.slots[self.sender_of(tag)].release()

    def forget(self, tag: str) -> None:
        """A send that failed: it frees its slot and is not counted."""
        self.sent_at.pop(tag, None)
        self.slots[self.sender_of(tag)].release()


@dataclass
class GroupRound:
    """One run of the group's senders: the priming message, or the measured window."""

    chat_id: str
    senders: list[Engine]
    tracker: GroupTracker
    measure_from: int
    measure_until: int
    text_bytes: int
    message_timeout: float
    errors: Errors = field(default_factory=Errors)
    send_latency: list[float] = field(default_factory=list)
    key_shares: int = 0
    parent_decryptions: int = 0

    def listen(self) -> None:
        """The senders receive each other's messages; each counts as one report."""
        for engine in self.senders:

            def handler(event: Any, now: int) -> None:
                if event.chat_id != self.chat_id:
                    return
                if self.measure_from <= now < self.measure_until:
                    self.parent_decryptions += 1
                self.tracker.report(event.entry.text.split(" ", 1)[0], now)

            engine.on_message = handler

    def unlisten(self) -> None:
        for engine in self.senders:
            engine.on_message = None

    async def send(self, index: int, start_ns: int, until_ns: int, limit: int) -> None:
        engine = self.senders[index]
        group_id = self.chat_id[1:]

        def session_id() -> str | None:
            outbound = engine.secret.keys.outbound(group_id)
            return outbound.session_id if outbound is not None else None

        session = session_id()  # a change after a send: a new key went to every device
        await sleep_until(start_ns)
        for k in range(1, limit + 1):
            if time.monotonic_ns() >= until_ns:
                return
            try:
                await asyncio.wait_for(self.tracker.slots[index].acquire(), 1.0)
            except TimeoutError:
                self.tracker.expire(int(self.message_timeout * NS))
                continue
            tag = f"g{index}.{k}"
            sent = time.monotonic_ns()
            self.tracker.sent_at[tag] = sent
            try:
                await engine.secret.send(self.chat_id, padded(tag, self.text_bytes))
            except SamizdatError as exc:
                self.tracker.forget(tag)
                self.errors.add(describe(exc))
                await asyncio.sleep(0.01)
                continue
            if self.measure_from <= sent < self.measure_until:
                self.send_latency.append((time.monotonic_ns() - sent) / 1e6)
            if (current := session_id()) != session:
                session = current
                if self.measure_from <= sent < self.measure_until:
                    self.key_shares += 1

    async def drain(self, until_ns: int) -> None:
        while self.tracker.outstanding() and time.monotonic_ns() < until_ns:
            await asyncio.sleep(0.02)
            self.tracker.expire(int(self.message_timeout * NS))


async def members_listening(tracker: GroupTracker, receiving: asyncio.Task[Any]) -> None:
    """Wait until every worker's members listen (nothing is sent before); raise the workers'
    error if they failed instead."""
    ready = asyncio.create_task(tracker.all_ready.wait())
    done, _ = await asyncio.wait({ready, receiving}, timeout=30, return_when="FIRST_COMPLETED")
    if ready not in done:
        ready.cancel()
        if receiving in done:
            receiving.result()
        raise BenchError("the group's members did not start listening within 30 s")


async def group_round(
    pool: WorkerPool,
    members: list[list[int]],
    round_: GroupRound,
    *,
    start_ns: int,
    send_until: int,
    end_at: int,
    limit: int,
    profile: str | None = None,
) -> list[JSONDict]:
    """Members listen in the workers while the senders send here; returns the workers'
    reports once every message is done (or lost) or ``end_at`` passes."""
    ops = [
        {
            "op": "group_receive",
            "chat_id": round_.chat_id,
            "indices": indices,
            "measure_from_ns": round_.measure_from,
            "measure_until_ns": round_.measure_until,
            "end_at_ns": end_at + NS,
            "profile": profile and profile.replace(".pstats", f"-worker{w}.pstats"),
        }
        for w, indices in enumerate(members)
    ]
    receiving = asyncio.create_task(
        pool.call_all(
            ops, on_progress=round_.tracker.on_progress, timeout=(end_at - start_ns) / NS + 120
        )
    )
    round_.listen()
    profiler = cProfile.Profile() if profile else None
    try:
        await members_listening(round_.tracker, receiving)
        if profiler is not None:
            profiler.enable()
        async with asyncio.TaskGroup() as group:
            for index in range(len(round_.senders)):
                group.create_task(round_.send(index, start_ns, send_until, limit))
        await round_.drain(end_at)
    except BaseException:
        receiving.cancel()
        raise
    finally:
        if profiler is not None and profile is not None:
            profiler.disable()
            profiler.dump_stats(profile.replace(".pstats", "-sender.pstats"))
        round_.unlisten()
        for w in range(pool.size):
            await pool.send(w, {"op": "stop"})
    return await receiving


async def group_phase(
    pool: WorkerPool,
    server_pid: int,
    base_url: str,
    members: list[list[int]],
    member_ids: list[int],
    sender_phones: list[str],
    root: Path,
    args: argparse.Namespace,
    profile: str | None,
) -> JSONDict:
    """Create the group, prime it, measure it; ``members`` are the engine indexes of the
    receiving members in each worker, ``sender_phones`` sign in here."""
    senders = await open_engines(base_url, sender_phones, root, 4)
    try:
        began = time.monotonic()
        others = member_ids + [s.user_id for s in senders[1:]]
        chat = await senders[0].secret.create_group("bench", others)
        ready = await pool.call_all(
            [{"op": "wait_chat", "indices": m, "chat_id": chat.id} for m in members]
        )
        missing = sum(r["missing"] for r in ready)
        deadline = time.monotonic() + 60
        while any(chat.id not in s.secret.state.chats for s in senders):
            if time.monotonic() > deadline:
                missing += 1
                break
            await asyncio.sleep(0.05)
        if missing:
            raise BenchError(f"{missing} members never got the secret group invitation")
        created_s = round(time.monotonic() - began, 2)
        needed = sum(1 for m in members if m) + len(senders) - 1

        def new_round(measure_from: int, measure_until: int) -> GroupRound:
            tracker = GroupTracker(needed, args.group_window, len(senders), pool.size)
            return GroupRound(
                chat.id,
                senders,
                tracker,
                measure_from,
                measure_until,
                args.text_bytes,
                args.message_timeout,
            )

        log(f"secret: group of {args.group_size}, priming (a key share per sender)")
        began = time.monotonic()
        prime = new_round(0, 0)
        now = time.monotonic_ns()
        primed = await group_round(
            pool,
            members,
            prime,
            start_ns=now,
            send_until=now + 60 * NS,
            end_at=now + 60 * NS,
            limit=1,
        )
        if prime.tracker.outstanding() or prime.tracker.lost or prime.errors.count:
            raise BenchError(
                f"group priming failed: {len(prime.tracker.lost)} lost, "
                f"errors {prime.errors.first}, members: {primed}"
            )
        primed_s = round(time.monotonic() - began, 2)

        log(f"secret: group of {args.group_size}, {len(senders)} sender(s), {args.duration} s")
        start_ns = time.monotonic_ns() + NS // 2
        measure_from = start_ns + int(args.warmup * NS)
        measure_until = measure_from + int(args.duration * NS)
        measured = new_round(measure_from, measure_until)
        cpu = asyncio.create_task(
            measure_window(server_pid, pool.pids, measure_from, measure_until)
        )
        sender_cpu = asyncio.create_task(own_cpu_pct(measure_from, measure_until))
        try:
            results = await group_round(
                pool,
                members,
                measured,
                start_ns=start_ns,
                send_until=measure_until,
                end_at=measure_until + int(args.drain * NS),
                limit=MAX_GROUP_MESSAGES_PER_SENDER,
                profile=profile,
            )
        except BaseException:
            cpu.cancel()
            sender_cpu.cancel()
            raise
    finally:
        await asyncio.gather(*(s.close() for s in senders))
    tracker = measured.tracker
    in_window = [t for t, s in tracker.sent_at.items() if measure_from <= s < measure_until]
    latencies = [
        (tracker.done_at[t] - tracker.sent_at[t]) / 1e6 for t in in_window if t in tracker.done_at
    ]
    completed = [t for t, at in tracker.done_at.items() if measure_from <= at < measure_until]
    decryptions = sum(r["decryptions_in_window"] for r in results) + measured.parent_decryptions
    window_cpu = await cpu
    own = await sender_cpu
    return {
        "members": args.group_size,
        "senders": len(senders),
        "receiving_devices": args.group_size - 1,
        "msgs_per_s": round(len(completed) / args.duration, 2),
        "decryptions_per_s": round(decryptions / args.duration, 1),
        "fanout_latency": latency_summary(latencies),
        "send_latency": latency_summary(measured.send_latency),
        "messages_sent": len(in_window),
        "key_shares": measured.key_shares,
        "lost": len(tracker.lost),
        "alerts": sum(sum(r["alerts"].values()) for r in results),
        "errors": measured.errors.count,
        "first_errors": measured.errors.first,
        "create_s": created_s,
        "prime_s": primed_s,
        "server_cpu_pct": window_cpu["server_cpu_pct"],
        "client_cpu_pct": round(window_cpu["client_cpu_pct"] + own, 1),
        "sender_cpu_pct": own,
        "other_cpu_pct": round(max(0.0, window_cpu["other_cpu_pct"] - own), 1),
    }


__all__ = ["GroupRound", "GroupTracker", "group_phase"]
