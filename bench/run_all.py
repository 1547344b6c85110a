"""Run every benchmark against Samizdat and the raw relay; save JSON, print a Markdown table.

    python -m bench.run_all                 # about 8 minutes on 2 cores
    python -m bench.run_all --target relay  # the upper bound alone
    python -m bench.run_all --only throughput secret

Each benchmark starts its own server with a fresh data directory. A failure in one
benchmark/target is recorded as an error and the rest still run. Results go to
``bench/results/<UTC date and time>.json`` (git-ignored). ``secret`` runs right after
``throughput`` and against Samizdat only (the relay has no keys); the report sets the two
1:1 figures (and the secret group against the cloud group of the same size) side by side.
``custody`` (Samizdat only) compares the current tree with the commit before threshold
custody in its own runs, and the report says whether the throughput loss is within 10%.
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

from bench import custody, fanout, idle, secret, throughput
from bench.common import RESULTS_DIR, SERVER_KINDS, JSONDict, log, machine_info, targets_arg

BENCHMARKS: dict[str, ModuleType] = {
    "throughput": throughput,
    "secret": secret,  # right after throughput: both 1:1 figures come from the same run
    "fanout": fanout,
    "idle": idle,
    "custody": custody,  # runs throughput and idle again, before custody and now, alternating
}
RunTarget = Callable[[str, argparse.Namespace], Awaitable[JSONDict]]
NOISY_CPU_PCT = 10.0  # other processes' CPU % in a window above which a comparison is suspect


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
        for kind in [k for k in args.target if k in getattr(module, "TARGETS", SERVER_KINDS)]:
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
    report["comparison"] = comparison(report)
    return report


def comparison(report: JSONDict) -> JSONDict:
    """Secret against cloud figures of the same run, on Samizdat (what is present of them)."""
    found: JSONDict = {}
    cloud = _get(report, "benchmarks.throughput.results.samizdat.sustained.msgs_per_s")
    secret_1to1 = _get(report, "benchmarks.secret.results.samizdat.one_to_one.msgs_per_s")
    if cloud and secret_1to1 is not None:
        found["one_to_one"] = {
            "cloud_msgs_per_s": cloud,
            "secret_msgs_per_s": secret_1to1,
            "secret_over_cloud": round(secret_1to1 / cloud, 4),
        }
    size = _get(report, "benchmarks.secret.params.group_size")
    cloud_group = _get(report, f"benchmarks.fanout.results.samizdat.{size}.deliveries_per_s")
    secret_group = _get(report, "benchmarks.secret.results.samizdat.group.decryptions_per_s")
    if cloud_group and secret_group is not None:
        found["group"] = {
            "members": size,
            "cloud_deliveries_per_s": cloud_group,
            "secret_decryptions_per_s": secret_group,
            "secret_over_cloud": round(secret_group / cloud_group, 4),
        }
    sealing = _get(report, "benchmarks.custody.results.samizdat.compare.throughput")
    if sealing and sealing.get("loss_pct") is not None:
        found["custody"] = {
            "base_commit": _get(report, "benchmarks.custody.results.samizdat.trees.base.commit"),
            "base_msgs_per_s": sealing["base"]["msgs_per_s"],
            "current_msgs_per_s": sealing["current"]["msgs_per_s"],
            "current_over_base": sealing["current_over_base"],
            "loss_pct": sealing["loss_pct"],
            "limit_pct": sealing["limit_pct"],
            "within_limit": sealing["within_limit"],
            "verdict": sealing["verdict"],
            "loss_ci95_pct": sealing.get("loss_ci95_pct"),
            "other_cpu_pct_max": max(
                [*sealing["base"]["other_cpu_pct_each"], *sealing["current"]["other_cpu_pct_each"]],
                default=None,
            ),
        }
    return found


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
    if name == "secret":
        return secret_rows(p)
    if name == "custody":
        return custody_rows(p)
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


def secret_rows(p: JSONDict) -> list[tuple[str, str, list[str]]]:
    cpu = "CPU % server / load gen / other"
    rows: list[tuple[str, str, list[str]]] = []
    if "one_to_one" in p["phases"]:
        label = f"secret 1:1, SDK both ends ({p['pairs']} pairs, window {p['window']})"
        rows += [
            (label, "messages/s decrypted", ["one_to_one.msgs_per_s"]),
            (
                label,
                "send→decrypted p50 / p99 ms",
                ["one_to_one.latency.p50_ms", "one_to_one.latency.p99_ms"],
            ),
            (label, cpu, [f"one_to_one.{k}_cpu_pct" for k in ("server", "client", "other")]),
        ]
    if "group" in p["phases"]:
        label = f"secret group, {p['group_size']:,} members ({p['group_senders']} sender)"
        rows += [
            (label, "messages/s decrypted by all", ["group.msgs_per_s"]),
            (label, "decryptions/s", ["group.decryptions_per_s"]),
            (
                label,
                "send→last member p50 / p99 ms",
                ["group.fanout_latency.p50_ms", "group.fanout_latency.p99_ms"],
            ),
            (label, cpu, [f"group.{k}_cpu_pct" for k in ("server", "client", "other")]),
        ]
    if "crypto" in p["phases"]:
        label = "secret crypto per message, µs (no network)"
        for metric, path in (
            ("Olm encrypt mean / p50", "olm.olm_encrypt"),
            ("Olm decrypt mean / p50", "olm.olm_decrypt"),
            ("Megolm encrypt mean / p50", "megolm.megolm_encrypt"),
            ("Megolm decrypt mean / p50", "megolm.megolm_decrypt"),
            ("engine 1:1 send (models+JSON+Olm) mean / p50", "engine.engine_send_1to1"),
            ("engine 1:1 receive mean / p50", "engine.engine_receive_1to1"),
            ("engine group send mean / p50", "engine.engine_send_group"),
            ("engine group receive mean / p50", "engine.engine_receive_group"),
            ("vault save (fsync) mean / p50", "vault.vault_save"),
        ):
            rows.append((label, metric, [f"crypto.{path}.mean_us", f"crypto.{path}.p50_us"]))
    return rows


def custody_rows(p: JSONDict) -> list[tuple[str, str, list[str]]]:
    rows: list[tuple[str, str, list[str]]] = []
    if "micro" in p["parts"]:
        label = f"custody: cost per operation, µs (no network; k={p['threshold']})"
        for metric, key in (
            (f"seal_text, {p['text_bytes']} B message (every message) mean / p50", "seal_text"),
            ("open_text mean / p50", "open_text"),
            ("note_ip, new device+address (threshold seal) mean / p50", "note_ip_new"),
            ("note_ip, already seen today (HMAC) mean / p50", "note_ip_seen"),
            ("threshold seal of a phone number mean / p50", "seal_phone"),
            ("CustodianKeys.open_share mean / p50", "open_share"),
            ("open_envelope, 2 shares mean / p50", "open_envelope"),
        ):
            rows.append((label, metric, [f"micro.{key}.mean_us", f"micro.{key}.p50_us"]))
        rows.append(
            (
                label,
                "bytes: sealed message / phone envelope / IP envelope",
                [f"micro.bytes.{k}" for k in ("message_sealed", "phone_envelope", "ip_envelope")],
            )
        )
    if "unseal" in p["parts"]:
        label = f"custody: start to serving, {p['restarts']} restarts, s"
        for metric, case in (
            ("embedded custodians: unseal p50 / max", "embedded.unseal_s"),
            ("embedded custodians: start→/health p50 / max", "embedded.wall_s"),
            ("3 custodians over HTTP: unseal p50 / max", "http.unseal_s"),
            ("3 custodians over HTTP: start→/health p50 / max", "http.wall_s"),
            (f"before custody ({p['base_commit']}): start→/health p50 / max", "base.wall_s"),
        ):
            rows.append((label, metric, [f"unseal.{case}.p50", f"unseal.{case}.max"]))
        rows.append(
            (
                label,
                "first start (new DC key): unseal embedded / HTTP",
                ["unseal.embedded.first_start.unseal_s", "unseal.http.first_start.unseal_s"],
            )
        )
    if "compare" in p["parts"]:
        label = f"custody: {p['base_commit']} vs now, same run, alternating"
        tp, conn = "compare.throughput", "compare.idle"
        rows += [
            (
                label,
                f"1:1 sustained messages/s, before / now (mean of {p['rounds']} each)",
                [f"{tp}.base.msgs_per_s", f"{tp}.current.msgs_per_s"],
            ),
            (
                label,
                "now / before (each round)",
                [f"{tp}.current_over_base", f"{tp}.current_over_base_each_round"],
            ),
            (label, "1:1 throughput loss % (limit 10)", [f"{tp}.loss_pct", f"{tp}.verdict"]),
            (label, "loss 95% interval from the rounds, %", [f"{tp}.loss_ci95_pct"]),
            (
                label,
                "server CPU µs per message, before / now",
                [f"{tp}.base.server_cpu_us_per_msg", f"{tp}.current.server_cpu_us_per_msg"],
            ),
            (
                label,
                "other processes' CPU % (noise) each round, before / now",
                [f"{tp}.base.other_cpu_pct_each", f"{tp}.current.other_cpu_pct_each"],
            ),
            (
                label,
                f"connects+authorize/s, each from a new address: one IP seal "
                f"({p['devices']:,} devices, {p['idle_rounds']} rounds), before / now",
                [f"{conn}.base.connect_per_s", f"{conn}.current.connect_per_s"],
            ),
            (label, "connects now / before", [f"{conn}.current_over_base"]),
            (
                label,
                "sign-ins/s, before / now",
                [f"{conn}.base.sign_in_per_s", f"{conn}.current.sign_in_per_s"],
            ),
        ]
    return rows


def comparison_lines(found: JSONDict) -> list[str]:
    lines = []
    if one := found.get("one_to_one"):
        lines.append(
            f"Secret 1:1 against cloud 1:1 in this run: {_fmt(one['secret_msgs_per_s'])} vs "
            f"{_fmt(one['cloud_msgs_per_s'])} messages/s ({one['secret_over_cloud']:.1%}); the "
            "cloud figure keeps 8 sends in flight per sender from lean clients, the secret one "
            "sends one at a time per sender through the SDK."
        )
    if group := found.get("group"):
        lines.append(
            f"Secret group of {group['members']} against the cloud group of the same size: "
            f"{_fmt(group['secret_decryptions_per_s'])} decryptions/s vs "
            f"{_fmt(group['cloud_deliveries_per_s'])} deliveries/s "
            f"({group['secret_over_cloud']:.1%})."
        )
    if sealing := found.get("custody"):
        interval = sealing.get("loss_ci95_pct")
        lines.append(
            f"Threshold custody against {sealing['base_commit']} (before it), same run: 1:1 "
            f"{_fmt(sealing['current_msgs_per_s'])} vs {_fmt(sealing['base_msgs_per_s'])} "
            f"messages/s ({sealing['current_over_base']:.1%}), a loss of {sealing['loss_pct']}% "
            + (f"(95% interval {interval[0]}% to {interval[1]}%) " if interval else "")
            + f"against a limit of {sealing['limit_pct']:g}%: {sealing['verdict']}."
        )
        if (sealing["other_cpu_pct_max"] or 0) > NOISY_CPU_PCT:
            lines[-1] += (
                f" Noisy: other processes used up to {sealing['other_cpu_pct_max']:g}% of a core "
                "during a measured window; read the rounds apart and run it again on a quiet "
                "machine."
            )
    return lines


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
        if not entry["results"]:
            continue  # no target it runs against was asked for (secret against the relay)
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
    if compared := comparison_lines(report.get("comparison") or {}):
        lines += ["", *compared]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines)


def write_report(report: JSONDict, out: Path | None, suffix: str = "") -> Path:
    """Save the JSON report to ``out`` or ``bench/results/<UTC date-time><suffix>.json``."""
    if out is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
        out = RESULTS_DIR / f"{stamp}{suffix}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return out


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
    out = write_report(report, args.out)
    log(f"results written to {out} ({report['wall_s']} s)")
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(markdown(report))


if __name__ == "__main__":
    main()
