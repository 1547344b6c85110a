"""1:1 cloud messages end to end: send -> durable commit -> push to the recipient's socket.

Two measurements per target, both with P sender/recipient pairs (each user one device):

* **sustained** (closed loop): every sender keeps W sends in flight (a new send when an ack
  comes back); after a warm-up, count the ``new_message`` pushes recipients receive per
  second. Also reports send->ack latency under that load.
* **latency** (open loop): senders send at a fixed offered rate (default 1,000 msg/s in
  total) on a schedule fixed in advance; latency is the recipient's receive time minus the
  *scheduled* send time, so a stalled server is charged for the messages it delayed
  (no coordinated omission). Reports p50/p90/p99/max and how many messages never arrived.

The client load runs in ``--workers`` separate processes; a pair's sender and recipient live
in the same process. Server and load generator share the machine, so on a small box the
numbers are a floor: see ``server_cpu_pct`` and ``client_cpu_pct`` in the output.

    python -m bench.throughput --target both --pairs 50 --window 8
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


async def open_chats(base_url: str, senders: list[Account], recipients: list[Account]) -> list[int]:
    async with http_client(base_url, concurrency=16) as client:
        chats = await asyncio.gather(
            *(
                api(client, "chats.open_private", {"user_id": r.user_id}, s.token)
                for s, r in zip(senders, recipients, strict=True)
            )
        )
    return [int(chat["id"]) for chat in chats]


async def run_target(kind: str, args: argparse.Namespace) -> JSONDict:
    pairs = args.pairs
    async with (
        running_server(kind, extra_args=args.server_arg) as server,
        WorkerPool(args.workers) as pool,
    ):
        log(f"{kind}: signing in {2 * pairs} users")
        accounts = await pool.sign_in(server.base_url, [bench_phone(i) for i in range(2 * pairs)])
        senders, recipients = accounts[:pairs], accounts[pairs:]
        chats = await open_chats(server.base_url, senders, recipients)
        # Pair i lives in worker i % workers, as devices 2j (sender) and 2j+1 (recipient).
        tokens: list[list[str]] = [[] for _ in range(args.workers)]
        worker_pairs: list[list[list[int]]] = [[] for _ in range(args.workers)]
        for i in range(pairs):
            w = i % args.workers
            local = len(tokens[w])
            tokens[w] += [senders[i].token, recipients[i].token]
            worker_pairs[w].append([local, local + 1, chats[i]])
        connected = await pool.call_all(
            [{"op": "connect", "ws_url": server.ws_url, "tokens": t} for t in tokens]
        )
        failed = sum(c["failed"] for c in connected)
        if failed:
            raise BenchError(f"{failed} devices failed to connect: {connected}")
        result: JSONDict = {"server_rss_mb_start": round(tree_rss_bytes(server.pid) / 2**20, 1)}
        log(f"{kind}: closed loop, {pairs} pairs x window {args.window}")
        result["sustained"] = await closed_loop(pool, server.pid, worker_pairs, args)
        log(f"{kind}: open loop at {args.rate:g} msg/s")
        result["latency"] = await open_loop(pool, server.pid, worker_pairs, args)
        result["server_rss_mb_end"] = round(tree_rss_bytes(server.pid) / 2**20, 1)
        await pool.call_all([{"op": "close"}] * args.workers)
        return result


async def closed_loop(
    pool: WorkerPool, server_pid: int, worker_pairs: list[list[list[int]]], args: argparse.Namespace
) -> JSONDict:
    start_ns = time.monotonic_ns() + NS // 2
    measure_from = start_ns + int(args.warmup * NS)
    measure_until = measure_from + int(args.duration * NS)
    ops = [
        {
            "op": "closed_loop",
            "pairs": p,
            "window": args.window,
            "start_at_ns": start_ns,
            "warmup": args.warmup,
            "duration": args.duration,
            "text_bytes": args.text_bytes,
        }
        for p in worker_pairs
    ]
    cpu = asyncio.create_task(measure_window(server_pid, pool.pids, measure_from, measure_until))
    results = await pool.call_all(ops, timeout=args.warmup + args.duration + 120)
    received = sum(r["received"] for r in results)
    per_second = [sum(col) for col in zip(*(r["per_second"] for r in results), strict=True)]
    acks = sum(r["acks"] for r in results)
    ack_latency = [v for r in results for v in r["ack_latency_ms"]]
    return {
        "msgs_per_s": round(received / args.duration, 1),
        "acks_per_s": round(acks / args.duration, 1),
        "per_second": per_second,
        "ack_latency": latency_summary(ack_latency),
        "errors": sum(r["errors"] for r in results),
        "first_errors": [e for r in results for e in r["first_errors"]][:5],
        **(await cpu),
    }


async def open_loop(
    pool: WorkerPool, server_pid: int, worker_pairs: list[list[list[int]]], args: argparse.Namespace
) -> JSONDict:
    start_ns = time.monotonic_ns() + NS // 2
    measure_from = start_ns + int(args.warmup * NS)
    measure_until = measure_from + int(args.duration * NS)
    per_worker = args.rate / args.workers
    ops = [
        {
            "op": "open_loop",
            "pairs": p,
            "rate": per_worker,
            "phase": w / args.rate,
            "start_at_ns": start_ns,
            "warmup": args.warmup,
            "duration": args.duration,
            "drain": args.drain,
            "text_bytes": args.text_bytes,
        }
        for w, p in enumerate(worker_pairs)
    ]
    cpu = asyncio.create_task(measure_window(server_pid, pool.pids, measure_from, measure_until))
    results = await pool.call_all(ops, timeout=args.warmup + args.duration + args.drain + 120)
    scheduled = sum(r["scheduled"] for r in results)
    latencies = [v for r in results for v in r["latency_ms"]]
    ack_latency = [v for r in results for v in r["ack_latency_ms"]]
    return {
        "offered_msgs_per_s": args.rate,
        "scheduled": scheduled,
        "received": len(latencies),
        "lost_or_late": scheduled - len(latencies),
        "delivery": latency_summary(latencies),
        "ack": latency_summary(ack_latency),
        "max_scheduler_lag_ms": max(r["max_scheduler_lag_ms"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "first_errors": [e for r in results for e in r["first_errors"]][:5],
        **(await cpu),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", type=targets_arg, default="both", help="samizdat, relay or both"
    )
    parser.add_argument("--pairs", type=int, default=50, help="sender/recipient pairs (default 50)")
    parser.add_argument(
        "--window", type=int, default=8, help="sends in flight per sender (default 8)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="open-loop offered msg/s (1000)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (2)")
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per phase (8)")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="open loop: wait for stragglers (5)"
    )
    parser.add_argument("--text-bytes", type=int, default=64, help="message text size (64)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument(
        "--server-arg", action="append", default=[], help="extra argument for samizdat serve"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("pairs", "window", "rate", "warmup", "duration", "text_bytes", "workers")
    return {k: getattr(args, k) for k in keys}


async def run(args: argparse.Namespace) -> Report:
    report = Report("throughput", params_of(args))
    for kind in args.target:
        report.results[kind] = await run_target(kind, args)
    return report


def main() -> None:
    cli_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
