"""Secret chats end to end: encryption, relay, decryption, checks and vault saves on both ends.

Three phases (``--phases``), reported together (issue #3's performance requirement):

* **crypto**: per-message cryptographic cost in microseconds, in this process with no
  network (``bench.secret_crypto``): Olm and Megolm encrypt/decrypt of a ~100-byte payload,
  the engine's whole per-device work around them, and a vault save.
* **one_to_one** (closed loop): P pairs (default 20) of real SDK devices (``Client`` +
  ``SecretChats`` + a vault each) spread over ``--workers`` load-generator processes, a pair
  in one process. Each sender sends one message after another (``SecretChats.send``: encrypt
  for each device, one round trip, save the vault), at most ``--window`` undelivered. After
  the warm-up, count messages *decrypted by recipients* (``SecretMessage`` events) per
  second, and send -> decrypted latency.
* **group**: a secret group of ``--group-size`` members (default 100). The receiving members
  live in the load-generator processes (the first engines of the 1:1 phase among them), the
  sender(s) in this process, each keeping at most ``--group-window`` messages not yet
  decrypted by every member. Reports group messages/s (decrypted by all), decryptions/s
  (messages x receiving devices), send -> last member's decryption latency, and how often the
  sender shared a new Megolm session key (after 100 messages, over Olm, to every device).

Before 1:1 and group measurements each pair exchanges a message both ways and each group
sender has one message fully delivered, so sessions are set up outside the window.

The server is ``samizdat serve --dev --no-rate-limits`` with a fresh data directory; vaults go
in a temporary directory under ``--vault-root`` (default: the system's temporary directory;
``/dev/shm`` takes the disk out). Only the ``samizdat`` target exists: the relay has no keys.

    python -m bench.secret --duration 8 --pairs 20 --group-size 100
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    NS,
    BenchError,
    JSONDict,
    Report,
    WorkerPool,
    bench_phone,
    cli_main,
    latency_summary,
    log,
    measure_window,
    running_server,
    tree_rss_bytes,
)
from bench.secret_crypto import crypto_costs
from bench.secret_group import group_phase
from samizdat.client.secret.payloads import MAX_SECRET_GROUP_MEMBERS

TARGETS = ("samizdat",)
PHASES = ("crypto", "one_to_one", "group")
WORKER = "bench.secret_worker"


@dataclass
class Layout:
    """Which engines each worker opens, and which of them pair up or join the group."""

    phones: list[list[str]]
    pairs: list[list[list[int]]]  # per worker: [sender index, recipient index]
    members: list[list[int]]  # per worker: indexes of group members
    sender_phones: list[str]

    @classmethod
    def plan(cls, args: argparse.Namespace) -> Layout:
        workers = args.workers
        pairs = args.pairs if "one_to_one" in args.phases else 0
        members = args.group_size - args.group_senders if "group" in args.phases else 0
        phones: list[list[str]] = []
        pair_lists: list[list[list[int]]] = []
        member_lists: list[list[int]] = []
        next_phone = 0
        for w in range(workers):
            n_pairs, n_members = len(range(w, pairs, workers)), len(range(w, members, workers))
            count = max(2 * n_pairs, n_members)
            phones.append([bench_phone(next_phone + i) for i in range(count)])
            next_phone += count
            pair_lists.append([[2 * j, 2 * j + 1] for j in range(n_pairs)])
            member_lists.append(list(range(n_members)))
        senders = [bench_phone(next_phone + i) for i in range(args.group_senders)]
        return cls(phones, pair_lists, member_lists, senders)


def profile_path(args: argparse.Namespace, name: str) -> str | None:
    if args.profile is None:
        return None
    args.profile.mkdir(parents=True, exist_ok=True)
    return str(args.profile / f"{name}.pstats")


# --- 1:1 ----------------------------------------------------------------------------------
async def one_to_one(
    pool: WorkerPool, server_pid: int, layout: Layout, args: argparse.Namespace
) -> JSONDict:
    began = time.monotonic()
    await pool.call_all([{"op": "prime_pairs", "pairs": p, "timeout": 60} for p in layout.pairs])
    primed_s = round(time.monotonic() - began, 2)
    log(f"secret: 1:1 closed loop, {args.pairs} pairs, {args.duration} s")
    start_ns = time.monotonic_ns() + NS // 2
    measure_from = start_ns + int(args.warmup * NS)
    measure_until = measure_from + int(args.duration * NS)
    ops = [
        {
            "op": "pair_loop",
            "pairs": p,
            "window": args.window,
            "start_at_ns": start_ns,
            "warmup": args.warmup,
            "duration": args.duration,
            "drain": args.drain,
            "text_bytes": args.text_bytes,
            "message_timeout": args.message_timeout,
            "profile": profile_path(args, f"one_to_one-worker{w}"),
        }
        for w, p in enumerate(layout.pairs)
    ]
    cpu = asyncio.create_task(measure_window(server_pid, pool.pids, measure_from, measure_until))
    try:
        results = await pool.call_all(ops, timeout=args.warmup + args.duration + args.drain + 120)
    except BaseException:
        cpu.cancel()
        raise
    received = sum(r["received"] for r in results)
    return {
        "pairs": args.pairs,
        "msgs_per_s": round(received / args.duration, 1),
        "sends_per_s": round(sum(r["sends"] for r in results) / args.duration, 1),
        "per_second": [sum(c) for c in zip(*(r["per_second"] for r in results), strict=True)],
        "latency": latency_summary([v for r in results for v in r["latency_ms"]]),
        "send_latency": latency_summary([v for r in results for v in r["send_latency_ms"]]),
        "lost": sum(r["lost"] for r in results),
        "alerts": sum(r["alerts"] for r in results),
        "errors": sum(r["errors"] for r in results),
        "first_errors": [e for r in results for e in r["first_errors"]][:5],
        "prime_s": primed_s,
        **(await cpu),
    }


# --- the benchmark ------------------------------------------------------------------------
async def run_chats(root: Path, args: argparse.Namespace) -> JSONDict:
    layout = Layout.plan(args)
    result: JSONDict = {}
    async with (
        running_server("samizdat", extra_args=args.server_arg) as server,
        WorkerPool(args.workers, module=WORKER) as pool,
    ):
        engines = sum(len(p) for p in layout.phones)
        log(f"secret: opening {engines} devices (sign-in, vault, keys) in {args.workers} workers")
        began = time.monotonic()
        opened = await pool.call_all(
            [
                {"op": "open", "base_url": server.base_url, "phones": p, "root": str(root)}
                for p in layout.phones
            ],
            timeout=600,
        )
        result["setup"] = {
            "devices": engines + len(layout.sender_phones) * ("group" in args.phases),
            "open_s": round(time.monotonic() - began, 2),
            "server_rss_mb": round(tree_rss_bytes(server.pid) / 2**20, 1),
        }
        if "one_to_one" in args.phases:
            result["one_to_one"] = await one_to_one(pool, server.pid, layout, args)
        if "group" in args.phases:
            member_ids = [
                opened[w]["engines"][i]["user_id"]
                for w, members in enumerate(layout.members)
                for i in members
            ]
            result["group"] = await group_phase(
                pool,
                server.pid,
                server.base_url,
                layout.members,
                member_ids,
                layout.sender_phones,
                root,
                args,
                profile_path(args, "group"),
            )
        result["setup"]["server_rss_mb_end"] = round(tree_rss_bytes(server.pid) / 2**20, 1)
        closed = await pool.call_all([{"op": "close"}] * args.workers)
        alerts: dict[str, int] = {}
        for c in closed:
            for code, count in c["alerts"].items():
                alerts[code] = alerts.get(code, 0) + count
        result["alerts_by_code"] = alerts
    return result


async def run_target(kind: str, args: argparse.Namespace) -> JSONDict:
    if kind not in TARGETS:
        raise BenchError(f"secret chats need the samizdat server, not {kind!r}")
    check_args(args)
    root = Path(tempfile.mkdtemp(prefix="samizdat-bench-secret-", dir=args.vault_root))
    result: JSONDict = {"vault_root": str(root.parent)}
    try:
        if "crypto" in args.phases:
            log(f"secret: per-message crypto cost ({args.crypto_iterations} iterations)")
            result["crypto"] = crypto_costs(
                iterations=args.crypto_iterations, text_bytes=args.text_bytes, vault_root=root
            )
        if {"one_to_one", "group"} & set(args.phases):
            result.update(await run_chats(root, args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def check_args(args: argparse.Namespace) -> None:
    if not 1 <= args.group_senders < args.group_size <= MAX_SECRET_GROUP_MEMBERS:
        raise BenchError(f"need 1 <= --group-senders < --group-size <= {MAX_SECRET_GROUP_MEMBERS}")
    if args.pairs < 1 or args.workers < 1 or args.window < 1 or args.group_window < 1:
        raise BenchError("--pairs, --workers, --window and --group-window must be >= 1")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pairs", type=int, default=20, help="1:1 sender/recipient pairs (20)")
    parser.add_argument("--window", type=int, default=4, help="1:1 undelivered per pair (4)")
    parser.add_argument("--group-size", type=int, default=100, help="secret group members (100)")
    parser.add_argument("--group-senders", type=int, default=1, help="members who send (1)")
    parser.add_argument(
        "--group-window", type=int, default=4, help="group messages not yet everywhere (4)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring (2)")
    parser.add_argument("--duration", type=int, default=8, help="measured seconds per phase (8)")
    parser.add_argument("--drain", type=float, default=5.0, help="wait for stragglers (5)")
    parser.add_argument(
        "--message-timeout", type=float, default=10.0, help="count a message lost after (10 s)"
    )
    parser.add_argument("--text-bytes", type=int, default=100, help="message text size (100)")
    parser.add_argument("--workers", type=int, default=2, help="load-generator processes (2)")
    parser.add_argument(
        "--crypto-iterations", type=int, default=2000, help="per crypto figure (2000)"
    )
    parser.add_argument(
        "--phases", nargs="+", choices=PHASES, default=list(PHASES), help="subset of phases"
    )
    parser.add_argument(
        "--vault-root", type=Path, default=None, help="where vaults go (system temp dir)"
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="write cProfile stats of the clients here"
    )
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "pairs",
        "window",
        "group_size",
        "group_senders",
        "group_window",
        "warmup",
        "duration",
        "text_bytes",
        "workers",
        "crypto_iterations",
        "phases",
    )
    return {k: getattr(args, k) for k in keys}


async def run(args: argparse.Namespace) -> Report:
    report = Report("secret", params_of(args))
    report.results["samizdat"] = await run_target("samizdat", args)
    return report


def main() -> None:
    cli_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
