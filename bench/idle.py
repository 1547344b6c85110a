"""Idle connections: hold N connected, authorized devices in one server process.

Signs in ``--devices`` devices (``--devices-per-user`` per phone), notes the server's RSS,
connects and authorizes all of them from ``--workers`` client processes, lets the server
settle, then notes the RSS again and holds the connections idle for ``--hold`` seconds
while measuring the server's CPU use (keep-alive pings and timers). Memory per connection
is the RSS growth divided by the connections held. The relay accepts any token, so against
it the sign-in step is skipped.

    python -m bench.idle --target both --devices 10000
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.common import (
    BenchError,
    CpuMeter,
    JSONDict,
    Report,
    WorkerPool,
    bench_phone,
    cli_main,
    log,
    running_server,
    targets_arg,
    tree_rss_bytes,
)

MB = 2**20


async def run_target(kind: str, args: argparse.Namespace) -> JSONDict:
    users = -(-args.devices // args.devices_per_user)
    phones = [bench_phone(i // args.devices_per_user) for i in range(args.devices)]
    async with (
        running_server(kind, extra_args=args.server_arg) as server,
        WorkerPool(args.workers, op_timeout=args.timeout) as pool,
    ):
        rss_start = tree_rss_bytes(server.pid)
        began = time.monotonic()
        if kind == "relay":
            # The relay takes any token as a fresh user: skip the (unmeasured) HTTP setup.
            tokens = [f"idle-{i}" for i in range(args.devices)]
        else:
            log(f"{kind}: signing in {args.devices} devices of {users} users")
            accounts = await pool.sign_in(server.base_url, phones)
            if len(accounts) != args.devices:
                raise BenchError(f"signed in {len(accounts)} of {args.devices} devices")
            tokens = [a.token for a in accounts]
        sign_in_s = time.monotonic() - began
        await asyncio.sleep(args.settle)
        rss_before = tree_rss_bytes(server.pid)
        log(f"{kind}: connecting {args.devices} devices")
        shards = [tokens[w :: args.workers] for w in range(args.workers)]
        began = time.monotonic()
        connected = await pool.call_all(
            [
                {
                    "op": "connect",
                    "ws_url": server.ws_url,
                    "tokens": shard,
                    "concurrency": args.concurrency,
                    "timeout": 60,
                }
                for shard in shards
            ],
            timeout=args.timeout,
        )
        connect_s = time.monotonic() - began
        held = sum(c["connected"] for c in connected)
        await asyncio.sleep(args.settle)
        rss_after = tree_rss_bytes(server.pid)
        log(f"{kind}: holding {held} connections for {args.hold:g}s")
        meter = CpuMeter([server.pid])
        meter.start()
        await asyncio.sleep(args.hold)
        idle_cpu = meter.stop()
        rss_held = tree_rss_bytes(server.pid)
        client_rss = sum(tree_rss_bytes(p) for p in pool.pids)
        await pool.call_all([{"op": "close"}] * args.workers, timeout=120)
        per_conn = (max(rss_after, rss_held) - rss_before) / held if held else 0.0
        return {
            "devices": args.devices,
            "connected": held,
            "failed": sum(c["failed"] for c in connected),
            "first_errors": [e for c in connected for e in c["first_errors"]][:5],
            "sign_in_per_s": round(args.devices / sign_in_s, 1) if kind != "relay" else None,
            "connect_per_s": round(held / connect_s, 1) if connect_s else 0.0,
            "server_rss_mb_start": round(rss_start / MB, 1),
            "server_rss_mb_before_connect": round(rss_before / MB, 1),
            "server_rss_mb_connected": round(rss_after / MB, 1),
            "server_rss_mb_after_hold": round(rss_held / MB, 1),
            "kib_per_connection": round(per_conn / 1024, 1),
            "idle_server_cpu_pct": idle_cpu,
            "client_rss_mb": round(client_rss / MB, 1),
        }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", type=targets_arg, default="both", help="samizdat|relay|both")
    parser.add_argument("--devices", type=int, default=10_000, help="connections (10000)")
    parser.add_argument("--devices-per-user", type=int, default=1, help="devices per phone (1)")
    parser.add_argument("--concurrency", type=int, default=64, help="per-worker handshakes (64)")
    parser.add_argument("--settle", type=float, default=2.0, help="pause before RSS samples (2)")
    parser.add_argument("--hold", type=float, default=5.0, help="seconds held idle (5)")
    parser.add_argument("--timeout", type=float, default=300.0, help="bound for each phase (300)")
    parser.add_argument("--workers", type=int, default=2, help="client processes (2)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("devices", "devices_per_user", "hold", "workers")
    return {k: getattr(args, k) for k in keys}


async def run(args: argparse.Namespace) -> Report:
    report = Report("idle", params_of(args))
    for kind in args.target:
        report.results[kind] = await run_target(kind, args)
    return report


def main() -> None:
    cli_main(__doc__, add_arguments, run)


if __name__ == "__main__":
    main()
