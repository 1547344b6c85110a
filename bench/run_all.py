"""Run every benchmark against Samizdat and the raw relay; save JSON, print a Markdown table.

    python -m bench.run_all                 # about 5 minutes on 2 cores
    python -m bench.run_all --target relay  # the upper bound alone
    python -m bench.run_all --only throughput fanout

Each benchmark starts its own server with a fresh data directory. A failure in one
benchmark/target is recorded as an error and the rest still run. Results go to
``bench/results/<UTC date and time>.json`` (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import uvloop

from bench import fanout, idle, throughput
from bench.common import RESULTS_DIR, JSONDict, log, machine_info, targets_arg

BENCHMARKS: dict[str, ModuleType] = {"throughput": throughput, "fanout": fanout, "idle": idle}
RunTarget = Callable[[str, argparse.Namespace], Awaitable[JSONDict]]


def module_args(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench.{module.__name__}")
    module.add_arguments(parser)
    return parser.parse_args(argv)


async def run_all(args: argparse.Namespace) -> JSONDict:
    report: JSONDict = {"machine": machine_info(), "benchmarks": {}}
    passthrough = [f"--server-arg={a}" for a in args.server_arg]
    for name in args.only:
        module = BENCHMARKS[name]
        extra = ["--duration", str(args.duration)] if args.duration and name != "idle" else []
        if name == "idle" and args.devices:
            extra = ["--devices", str(args.devices)]
        margs = module_args(module, [*passthrough, *extra])
        entry: JSONDict = {"params": module.params_of(margs), "results": {}}
        report["benchmarks"][name] = entry
        for kind in args.target:
            began = time.monotonic()
            log(f"== {name} / {kind}")
            run_target: RunTarget = module.run_target
            try:
                result = await run_target(kind, margs)
            except Exception as exc:
                traceback.print_exc()
                result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            result["wall_s"] = round(time.monotonic() - began, 1)
            entry["results"][kind] = result
    return report


# --- Markdown -----------------------------------------------------------------------------
def _get(data: JSONDict, path: str) -> Any:
    value: Any = data
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value >= 1000:
            return f"{value:,.0f}"
        return f"{value:.1f}" if value >= 100 else f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _cell(result: JSONDict | None, paths: list[str], sep: str = " / ") -> str:
    if result is None:
        return "-"
    if "error" in result:
        return "error"
    return sep.join(_fmt(_get(result, p)) for p in paths)


def rows_for(name: str, entry: JSONDict) -> list[tuple[str, str, list[str]]]:
    """(benchmark label, metric label, result paths) for one benchmark."""
    p = entry["params"]
    if name == "throughput":
        sus = f"1:1 sustained ({p['pairs']} pairs, window {p['window']})"
        lat = f"1:1 open loop at {p['rate']:,.0f} msg/s"
        return [
            (sus, "messages/s received", ["sustained.msgs_per_s"]),
            (
                sus,
                "send→ack p50 / p99 ms",
                ["sustained.ack_latency.p50_ms", "sustained.ack_latency.p99_ms"],
            ),
            (
                sus,
                "CPU % server / load gen / other",
                [f"sustained.{k}_cpu_pct" for k in ("server", "client", "other")],
            ),
            (
                lat,
                "send→receive p50 / p90 / p99 / max ms",
                [f"latency.delivery.{k}_ms" for k in ("p50", "p90", "p99", "max")],
            ),
            (lat, "lost or late / scheduled", ["latency.lost_or_late", "latency.scheduled"]),
            (
                lat,
                "CPU % server / load gen / other",
                [f"latency.{k}_cpu_pct" for k in ("server", "client", "other")],
            ),
        ]
    if name == "fanout":
        rows = []
        for size in p["sizes"]:
            label = f"group fan-out, {size:,} members (window {p['window']})"
            rows += [
                (label, "deliveries/s", [f"{size}.deliveries_per_s"]),
                (label, "messages/s fully delivered", [f"{size}.msgs_per_s"]),
                (
                    label,
                    "send→last member p50 / p99 ms",
                    [f"{size}.fanout_latency.p50_ms", f"{size}.fanout_latency.p99_ms"],
                ),
                (
                    label,
                    "CPU % server / load gen / other",
                    [f"{size}.{k}_cpu_pct" for k in ("server", "client", "other")],
                ),
            ]
        return rows
    if name == "idle":
        label = f"{p['devices']:,} idle connections"
        return [
            (label, "connected", ["connected"]),
            (
                label,
                "server RSS MB before → connected",
                ["server_rss_mb_before_connect", "server_rss_mb_connected"],
            ),
            (label, "KiB per connection", ["kib_per_connection"]),
            (label, "idle server CPU %", ["idle_server_cpu_pct"]),
            (label, "connects+authorize/s", ["connect_per_s"]),
            (label, "sign-ins/s (setup)", ["sign_in_per_s"]),
        ]
    return []


def markdown(report: JSONDict) -> str:
    m = report["machine"]
    targets = sorted(
        {k for e in report["benchmarks"].values() for k in e["results"]},
        key=lambda k: ("samizdat", "relay").index(k) if k in ("samizdat", "relay") else 9,
    )
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['mem_total_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}; {m['date']}; load average at start "
        f"{m['loadavg_1m_at_start']:.2f}. Server and load generator share the machine "
        "(127.0.0.1); CPU % is of one core.",
        "",
        "| benchmark | metric | " + " | ".join(targets) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in targets) + " |",
    ]
    for name, entry in report["benchmarks"].items():
        last = None
        for label, metric, paths in rows_for(name, entry):
            sep = " → " if "→ connected" in metric else " / "
            cells = [_cell(entry["results"].get(t), paths, sep) for t in targets]
            lines.append(
                f"| {label if label != last else ''} | {metric} | " + " | ".join(cells) + " |"
            )
            last = label
    errors = [
        f"- {name} / {t}: {r['error'].splitlines()[0][:200]}"
        for name, e in report["benchmarks"].items()
        for t, r in e["results"].items()
        if "error" in r
    ]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", type=targets_arg, default="both", help="samizdat|relay|both")
    parser.add_argument(
        "--only", nargs="+", choices=list(BENCHMARKS), default=list(BENCHMARKS), help="subset"
    )
    parser.add_argument("--duration", type=int, default=0, help="override measured seconds")
    parser.add_argument("--devices", type=int, default=0, help="override idle connections")
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--out", type=Path, default=None, help="results file (bench/results/…)")
    parser.add_argument("--json", action="store_true", help="print the JSON report, not Markdown")
    args = parser.parse_args()
    began = time.monotonic()
    report = uvloop.run(run_all(args))
    report["wall_s"] = round(time.monotonic() - began, 1)
    out = args.out
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
        out = RESULTS_DIR / f"{stamp}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    log(f"results written to {out} ({report['wall_s']} s)")
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(markdown(report))


if __name__ == "__main__":
    main()
