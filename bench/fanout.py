"""Group fan-out: one sender, every member online, several messages in flight.

For each group size (default 100 and 1,000 members, each member one WebSocket connection),
the group's creator sends messages keeping ``--window`` of them *undelivered*: a new one
goes out when some earlier one has reached every member (the load workers report each
message once all of their members have it). After a warm-up we count:

* ``deliveries_per_s``: ``new_message`` pushes received by all members per second;
* ``msgs_per_s``: messages fully delivered per second;
* ``fanout_latency``: send -> the last member's receipt, per message.

The same users serve both sizes: the 100-member group is the first 100 of the 1,000 users,
so during that run the other 900 devices are online but not addressed. Against the relay
the same groups are built through its setup API and it routes to members' sockets.

    python -m bench.fanout --target both --sizes 100 1000 --window 8
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    NS,
    Account,
    BenchError,
    JSONDict,
    Report,
    WorkerPool,
    api,
    bench_phone,
    cli_main,
    http_client,
    latency_summary,
    log,
    measure_window,
    running_server,
    targets_arg,
    tree_rss_bytes,
)
from bench.wsclient import Device

BATCH = 100


async def build_group(base_url: str, creator: Account, members: list[Account]) -> int:
    """groups.create with the first 99 others, then groups.add in batches of 100."""
    async with http_client(base_url, concurrency=4) as client:
        first, rest = members[: BATCH - 1], members[BATCH - 1 :]
        chat = await api(
            client,
            "groups.create",
            {"title": f"bench {len(members) + 1}", "member_ids": [m.user_id for m in first]},
            creator.token,
        )
        for i in range(0, len(rest), BATCH):
            batch = [m.user_id for m in rest[i : i + BATCH]]
            chat = await api(
                client, "groups.add", {"chat_id": chat["id"], "user_ids": batch}, creator.token
            )
    if "member_count" in chat and chat["member_count"] != len(members) + 1:
        raise BenchError(f"group has {chat['member_count']} members, wanted {len(members) + 1}")
    return int(chat["id"])


class FanoutSender:
    """The creator's device: keeps ``window`` messages undelivered, records completions."""

    def __init__(self, device: Device, chat_id: int, workers_needed: int, args: Any) -> None:
        self.device = device
        self.chat_id = chat_id
        self.workers_needed = workers_needed
        self.window = asyncio.Semaphore(args.window)
        self.text_bytes: int = args.text_bytes
        self.message_timeout: float = args.message_timeout
        self.sent_at: dict[str, int] = {}
        self.done_workers: dict[str, int] = {}
        self.done_at: dict[str, int] = {}
        self.lost: set[str] = set()
        self.errors: list[str] = []
        self.random_base = time.time_ns() % 2**40 << 10

    def on_progress(self, _worker: int, event: JSONDict) -> None:
        tag = event["done"]
        if tag not in self.sent_at or tag in self.lost:
            return
        self.done_workers[tag] = self.done_workers.get(tag, 0) + 1
        self.done_at[tag] = max(self.done_at.get(tag, 0), int(event["t"]))
        if self.done_workers[tag] == self.workers_needed:
            self.window.release()

    def outstanding(self) -> list[str]:
        return [
            t
            for t in self.sent_at
            if t not in self.lost and self.done_workers.get(t, 0) < self.workers_needed
        ]

    async def run(self, start_ns: int, send_until_ns: int, drain_until_ns: int) -> None:
        await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / NS))
        k = 0
        while time.monotonic_ns() < send_until_ns:
            try:
                await asyncio.wait_for(self.window.acquire(), 1.0)
            except TimeoutError:
                self.expire()
                continue
            tag = f"f{k}"
            k += 1
            text = tag + " " + "x" * max(0, self.text_bytes - len(tag) - 1)
            self.sent_at[tag] = time.monotonic_ns()
            params = {"chat_id": self.chat_id, "text": text, "random_id": self.random_base + k}
            await self.device.send_request("messages.send", params, self.on_ack)
        while self.outstanding() and time.monotonic_ns() < drain_until_ns:
            await asyncio.sleep(0.05)
        self.lost.update(self.outstanding())

    def on_ack(self, frame: JSONDict, _now: int) -> None:
        if "error" in frame:
            self.errors.append(str(frame["error"]))

    def expire(self) -> None:
        """A message that never reaches everyone frees its slot after message_timeout."""
        limit = time.monotonic_ns() - int(self.message_timeout * NS)
        for tag in self.outstanding():
            if self.sent_at[tag] < limit:
                self.lost.add(tag)
                self.window.release()


async def run_size(
    pool: WorkerPool,
    server_pid: int,
    ws_url: str,
    creator: Account,
    chat_id: int,
    indices: list[list[int]],
    args: argparse.Namespace,
) -> JSONDict:
    device = await Device.connect(ws_url, creator.token)
    try:
        start_ns = time.monotonic_ns() + NS // 2
        measure_from = start_ns + int(args.warmup * NS)
        measure_until = measure_from + int(args.duration * NS)
        drain_until = measure_until + int(args.drain * NS)
        needed = sum(1 for i in indices if i)
        sender = FanoutSender(device, chat_id, needed, args)
        ops = [
            {
                "op": "fanout_receive",
                "chat_id": chat_id,
                "indices": idx,
                "measure_from_ns": measure_from,
                "measure_until_ns": measure_until,
                "end_at_ns": drain_until + NS,
            }
            for idx in indices
        ]
        cpu = asyncio.create_task(
            measure_window(server_pid, pool.pids, measure_from, measure_until)
        )
        receiving = asyncio.create_task(
            pool.call_all(ops, on_progress=sender.on_progress, timeout=args.warmup + 120)
        )
        await sender.run(start_ns, measure_until, drain_until)
        await asyncio.sleep(0.2)  # pushes already on the wire
        for w in range(pool.size):
            await pool.send(w, {"op": "stop"})
        results = await receiving
    finally:
        await device.close()
    deliveries = sum(r["deliveries_in_window"] for r in results)
    in_window = [
        t
        for t, sent in sender.sent_at.items()
        if measure_from <= sent < measure_until and t in sender.done_at and t not in sender.lost
    ]
    completed = [t for t in sender.done_at if measure_from <= sender.done_at[t] < measure_until]
    latencies = [(sender.done_at[t] - sender.sent_at[t]) / 1e6 for t in in_window]
    return {
        "members": sum(len(i) for i in indices) + 1,
        "deliveries_per_s": round(deliveries / args.duration, 1),
        "msgs_per_s": round(len(completed) / args.duration, 2),
        "fanout_latency": latency_summary(latencies),
        "messages_sent": len(sender.sent_at),
        "lost": len(sender.lost),
        "errors": len(sender.errors),
        "first_errors": sender.errors[:5],
        **(await cpu),
    }


async def run_target(kind: str, args: argparse.Namespace) -> JSONDict:
    users = max(args.sizes)
    async with (
        running_server(kind, extra_args=args.server_arg) as server,
        WorkerPool(args.workers) as pool,
    ):
        log(f"{kind}: signing in {users} users")
        accounts = await pool.sign_in(server.base_url, [bench_phone(i) for i in range(users)])
        creator, others = accounts[0], accounts[1:]
        # Member j (of ``others``) is device j // workers of worker j % workers.
        tokens = [[a.token for a in others[w :: args.workers]] for w in range(args.workers)]
        log(f"{kind}: connecting {len(others)} member devices")
        connected = await pool.call_all(
            [{"op": "connect", "ws_url": server.ws_url, "tokens": t} for t in tokens]
        )
        if failed := sum(c["failed"] for c in connected):
            raise BenchError(f"{failed} devices failed to connect: {connected}")
        result: JSONDict = {"server_rss_mb_connected": round(tree_rss_bytes(server.pid) / 2**20, 1)}
        for size in sorted(args.sizes):
            chat_id = await build_group(server.base_url, creator, others[: size - 1])
            indices: list[list[int]] = [[] for _ in range(args.workers)]
            for j in range(size - 1):
                indices[j % args.workers].append(j // args.workers)
            log(f"{kind}: fan-out to {size} members, window {args.window}")
            result[str(size)] = await run_size(
                pool, server.pid, server.ws_url, creator, chat_id, indices, args
            )
        result["server_rss_mb_end"] = round(tree_rss_bytes(server.pid) / 2**20, 1)
        await pool.call_all([{"op": "close"}] * args.workers)
        return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=targets_arg, default="both", help="samizdat|relay|both")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100, 1000], help="group sizes (100 1000)"
    )
    parser.add_argument("--window", type=int, default=8, help="undelivered messages (8)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring (1)")
    parser.add_argument("--duration", type=int, default=5, help="measured seconds per size (5)")
    parser.add_argument("--drain", type=float, default=5.0, help="wait for stragglers (5)")
    parser.add_argument(
        "--message-timeout", type=float, default=10.0, help="count a message lost after (10 s)"
    )
    parser.add_argument("--text-bytes", type=int, default=64, help="message text size (64)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("sizes", "window", "warmup", "duration", "text_bytes", "workers")
    return {k: getattr(args, k) for k in keys}


async def run(args: argparse.Namespace) -> Report:
    if min(args.sizes) < 2:
        raise SystemExit("a group needs at least 2 members")
    report = Report("fanout", params_of(args))
    for kind in args.target:
        report.results[kind] = await run_target(kind, args)
    return report


def main() -> None:
    cli_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
