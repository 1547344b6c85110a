"""What threshold custody costs (issue #4), measured in one run against the code before it.

Three parts, reported together:

* **micro**: per-operation cost in microseconds (mean, p50, p99 over ``--iterations``, after
  a warm-up), in this process with no network, on the real classes: ``Keyring.seal_text`` and
  ``open_text`` of a ``--text-bytes`` message (the at-rest sealing every message gets);
  ``IdentityRecords.note_ip`` for a new (device, address) pair (a threshold envelope to 3
  custodians, k=2, queued for the once-a-second flush) and for a pair already seen today (one
  keyed HMAC, what nearly every request costs); the threshold seal of a phone number (each
  sign-up); ``CustodianKeys.open_share`` (a custodian's work per share) and ``open_envelope``
  with 2 shares. Also the sizes of the sealed records.
* **unseal**: time to unseal a DC. ``samizdat serve`` starts on a fresh data directory (the
  first start makes the DC key and seals it to the custodians), then restarts ``--restarts``
  times on the same directory; each start reports the server's own ``unseal_seconds`` (from
  ``GET /status``) and the wall time from process start to ``/health`` 200. Once with the
  embedded default (three custodians in the server process), once with three
  ``samizdat custodian serve`` processes on loopback, and once for the pre-custody server
  (its start-up with a local key file, the figure the wall times compare with).
* **compare**: sustained 1:1 throughput (``bench.throughput``'s set-up and closed loop with
  its default load: 50 pairs, window 8, 2 s warm-up, ``--duration`` measured seconds; not its
  open loop) and connects+authorize/s (``connect_run``: ``bench.idle``'s sign-in and connect
  phases for ``--devices`` devices; they sign in from 127.0.0.1, which logs that address,
  then connect and authorize from 127.0.0.2, so on the current tree every authorize seals a
  new IP record, and the run fails unless the DC's ``ip_log`` grew by the devices connected)
  for the pre-custody commit (``--base-commit``, checked out in a temporary git worktree, or
  ``--base-src``) and the current tree, alternating base, current, base, current
  (``--rounds`` for throughput, ``--idle-rounds`` for connects) so drift hits both. The
  base's servers run from its own source (``samizdat_source``); the load generator is the
  same. Reports each run, the means, current/base overall and per round,
  and the throughput loss against the issue's limit (at most 10%) with a 95% interval from
  the per-round ratios: on a shared 2-core machine one run varies by several percent, so a
  verdict whose interval spans the limit is marked not conclusive.

    python -m bench.custody                       # about 8 minutes on 2 cores
    python -m bench.custody --base-src /tmp/base  # an existing checkout of the base commit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson
import uvloop
from websockets.asyncio.client import connect as websockets_connect

from bench import loadgen, throughput, wsclient
from bench.common import (
    HOST,
    REPO_ROOT,
    BenchError,
    JSONDict,
    Report,
    WorkerPool,
    bench_phone,
    free_port,
    launch_server,
    log,
    machine_info,
    percentile,
    running_server,
    samizdat_bin,
    samizdat_env,
    samizdat_origin,
    samizdat_source,
    serve_ops,
    spawn,
    stop_server,
    terminate,
    tree_rss_bytes,
    wait_ok,
)
from bench.secret_crypto import timed, timed_pairs
from samizdat.crypto import DcKey, Keyring
from samizdat.crypto.custody_keys import CustodianKeys
from samizdat.crypto.threshold import Envelope, open_envelope
from samizdat.store.database import Database
from samizdat.store.engine import open_engines, sqlite_url
from samizdat.store.identity import Custody, IdentityRecords
from samizdat.store.migrate import migrate

TARGETS = ("samizdat",)
PARTS = ("micro", "unseal", "compare")
BASE_COMMIT = "9a4c5db"  # the last commit before threshold custody (a local dc.key, no IP log)
LIMIT_PCT = 10.0  # issue #4: sealing must not lower 1:1 throughput by more than this
DC_ID = "eu"
CUSTODIAN_JURISDICTIONS = ("XB", "XC", "XD")  # none in the DC's own (XA)
THRESHOLD = 2
CLI_TIMEOUT = 120.0
# compare's connect phase: sign-ins come from 127.0.0.1, connects from another loopback address
# (any 127/8 address reaches the server), so every authorize is a (device, address) pair the
# server has not logged today and seals a new IP record
CONNECT_FROM = "127.0.0.2"
IP_LOG_WAIT_S = 15.0  # bound for the server's once-a-second flush to write queued IP records


# --- micro costs --------------------------------------------------------------------------
async def micro_costs(iterations: int, text_bytes: int) -> JSONDict:
    warmup = max(50, iterations // 20)
    root = Path(tempfile.mkdtemp(prefix="samizdat-bench-custody-micro-"))
    engines = open_engines(sqlite_url(root / "dc.sqlite3"))
    try:
        await migrate(engines)
        db = Database(engines)
        try:
            return await _micro_costs(db, iterations, warmup, text_bytes)
        finally:
            await db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _micro_costs(db: Database, iterations: int, warmup: int, text_bytes: int) -> JSONDict:
    ring = Keyring("xa")
    ring.install([DcKey.generate("k1")], "k1")
    custodians = {
        f"custodian-{j.lower()}": CustodianKeys.generate() for j in CUSTODIAN_JURISDICTIONS
    }
    custody = Custody(
        "xa", tuple(k.public.recipient(c) for c, k in custodians.items()), threshold=THRESHOLD
    )
    records = IdentityRecords(db, ring, custody)
    result: JSONDict = {"iterations": iterations, "warmup": warmup}

    chat_id, text, message_ids = 1, "x" * text_bytes, iter(range(1, 10**9))
    ring.new_chat_key(chat_id)

    def seal_message() -> tuple[int, bytes]:
        message_id = next(message_ids)
        return message_id, ring.seal_text(chat_id, message_id, text)

    def open_message(sealed: tuple[int, bytes]) -> str:
        return ring.open_text(chat_id, *sealed)

    result["seal_text"], result["open_text"] = timed_pairs(
        seal_message, open_message, iterations, warmup
    )

    # One day throughout. Each new pair is a new device with a new address, so no per-device
    # daily cap (if the store has one) can turn a "new" call into a skipped one.
    now = time.time()
    new_ips = iterations + warmup
    pairs = iter(
        [(1000 + i, f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}") for i in range(new_ips)]
    )
    result["note_ip_new"] = timed(lambda: records.note_ip(7, *next(pairs), now), iterations, warmup)
    result["note_ip_seen"] = timed(
        lambda: records.note_ip(7, 1000, "10.0.0.0", now), iterations, warmup
    )
    flushed = await records.flush()
    if flushed != new_ips:
        raise BenchError(f"note_ip queued {flushed} records, expected {new_ips}")
    result["ip_records_flushed"] = flushed

    users = iter(range(1, 10**9))
    result["seal_phone"] = timed(
        lambda: records.seal_phone(next(users), "+999661234567"), iterations, warmup
    )
    sealed = records.seal_phone(42, "+999661234567")
    envelope = Envelope.from_bytes(sealed)
    (first_id, first), (second_id, second) = list(custodians.items())[:THRESHOLD]
    result["open_share"] = timed(lambda: first.open_share(envelope, first_id), iterations, warmup)
    shares = [first.open_share(envelope, first_id), second.open_share(envelope, second_id)]
    result["open_envelope"] = timed(lambda: open_envelope(envelope, shares), iterations, warmup)
    if open_envelope(envelope, shares) != b"+999661234567":
        raise BenchError("the phone envelope did not open to its number")
    ip_payload = orjson.dumps({"ip": "203.0.113.7", "at": round(now, 3), "device": 70})
    result["bytes"] = {
        "message_plain": text_bytes,
        "message_sealed": len(ring.seal_text(chat_id, 0, text)),
        "phone_envelope": len(sealed),
        "ip_envelope": len(custody.seal(7, "ip", ip_payload)),
    }
    return result


# --- processes ----------------------------------------------------------------------------
async def run_cli(*args: str) -> JSONDict:
    """One ``samizdat ... --json`` command of the current tree; its JSON answer."""
    proc = await asyncio.create_subprocess_exec(
        str(samizdat_bin()),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BenchError(f"samizdat {' '.join(args[:2])} took over {CLI_TIMEOUT}s") from None
    if proc.returncode != 0:
        raise BenchError(
            f"samizdat {' '.join(args[:2])} exited {proc.returncode}: "
            f"{(out + err).decode(errors='replace')[-600:]}"
        )
    answer: JSONDict = orjson.loads(out.splitlines()[-1])
    return answer


# --- time to unseal -----------------------------------------------------------------------
def seconds_summary(values: list[float]) -> JSONDict:
    if not values:
        return {"count": 0}
    data = sorted(values)
    return {
        "count": len(data),
        "p50": round(percentile(data, 50), 3),
        "max": round(data[-1], 3),
        "min": round(data[0], 3),
        "mean": round(sum(data) / len(data), 3),
    }


async def start_and_stop(
    root: Path, extra_args: list[str], src: Path | None, timeout: float
) -> JSONDict:
    """Start ``samizdat serve`` on ``root/data``, time it to /health 200, read /status, stop."""
    began = time.monotonic()
    handle = launch_server("samizdat", root, extra_args=extra_args, src=src)
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            try:
                healthy = await wait_ok(
                    f"{handle.base_url}/health", handle.proc, timeout, client=client
                )
            except BenchError as exc:
                raise BenchError(f"{exc}\n{handle.log_tail()}") from None
            status = await client.get(f"{handle.base_url}/status")
        dc = status.json()["dcs"][0] if status.status_code == 200 else {}
        return {
            "wall_s": round(healthy - began, 3),
            "unseal_s": dc.get("unseal_seconds"),  # None: the base has no /status
            "state": dc.get("state"),
            "custodians_reachable": sum(bool(c.get("reachable")) for c in dc.get("custodians", [])),
        }
    finally:
        stop_server(handle, keep_data=True)


async def restarts(
    root: Path, extra_args: list[str], src: Path | None, args: argparse.Namespace
) -> JSONDict:
    """The first start on ``root`` and ``args.restarts`` restarts; p50/max of the restarts."""
    runs = []
    for _ in range(1 + args.restarts):
        runs.append(await start_and_stop(root, extra_args, src, args.startup_timeout))
    again = runs[1:]
    unseal = [float(r["unseal_s"]) for r in again if r["unseal_s"] is not None]
    return {
        "first_start": runs[0],
        "restarts": again,
        "unseal_s": seconds_summary(unseal),
        "wall_s": seconds_summary([float(r["wall_s"]) for r in again]),
    }


@contextlib.asynccontextmanager
async def http_custodians(root: Path, data_dir: Path) -> AsyncIterator[Path]:
    """Three ``samizdat custodian serve`` processes, with the node of ``data_dir`` enrolled
    for DC ``DC_ID``; yields the server configuration that names them."""
    ids = [f"custodian-{j.lower()}" for j in CUSTODIAN_JURISDICTIONS]
    dirs = [root / cid for cid in ids]
    *infos, node = await asyncio.gather(
        *(
            run_cli(
                "custodian", "init", "--dir", str(d), "--id", cid, "--jurisdiction", j, "--json"
            )
            for d, cid, j in zip(dirs, ids, CUSTODIAN_JURISDICTIONS, strict=True)
        ),
        run_cli("dc", "node-key", "--data", str(data_dir), "--json"),
    )
    await asyncio.gather(
        *(
            run_cli(
                "custodian",
                "enroll-node",
                "--dir",
                str(d),
                node["node_key"],
                "--dc",
                DC_ID,
                "--json",
            )
            for d in dirs
        )
    )
    ports = [free_port() for _ in ids]
    procs = [
        spawn(
            [str(samizdat_bin()), "custodian", "serve", "--dir", str(d), "--port", str(port)],
            root / f"{d.name}.log",
        )
        for d, port in zip(dirs, ports, strict=True)
    ]
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            for proc, port in zip(procs, ports, strict=True):
                await wait_ok(f"http://{HOST}:{port}/v1/info", proc, 60.0, client=client)
        quoted = ", ".join(f'"{cid}"' for cid in ids)
        lines = [
            "[[dcs]]",
            f'id = "{DC_ID}"',
            'jurisdiction = "XA"',
            f"custodians = [{quoted}]",
            f"threshold = {THRESHOLD}",
        ]
        for info, port in zip(infos, ports, strict=True):
            lines += [
                "",
                "[[custodians]]",
                f'id = "{info["id"]}"',
                f'jurisdiction = "{info["jurisdiction"]}"',
                f'url = "http://{HOST}:{port}"',
                f'public_key = "{info["public_key"]}"',
            ]
        config = root / "config.toml"
        config.write_text("\n".join(lines) + "\n")
        yield config
    finally:
        for proc in procs:
            terminate(proc)


async def unseal_times(args: argparse.Namespace, base_src: Path | None) -> JSONDict:
    result: JSONDict = {}
    cases: list[tuple[str, Callable[[Path], Any]]] = [
        ("embedded", lambda root: restarts(root, list(args.server_arg), None, args)),
        ("http", lambda root: unseal_over_http(root, args)),
    ]
    if base_src is not None:
        cases.append(("base", lambda root: restarts(root, list(args.server_arg), base_src, args)))
    for name, measure in cases:
        log(f"custody: unseal, {name}: first start + {args.restarts} restarts")
        root = Path(tempfile.mkdtemp(prefix=f"samizdat-bench-custody-{name}-"))
        try:
            result[name] = await measure(root)
        except Exception as exc:
            result[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
            log(f"custody: unseal, {name} failed: {exc}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return result


async def unseal_over_http(root: Path, args: argparse.Namespace) -> JSONDict:
    async with http_custodians(root, root / "data") as config:
        return await restarts(root, [*args.server_arg, "--config", str(config)], None, args)


# --- base against current -----------------------------------------------------------------
def git(*args: str, cwd: Path = REPO_ROOT) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


@contextlib.contextmanager
def base_tree(args: argparse.Namespace) -> Iterator[Path]:
    """``--base-src`` as given, or ``--base-commit`` in a temporary git worktree (removed
    afterwards; the working tree and its index are not touched)."""
    if args.base_src is not None:
        yield args.base_src.resolve()
        return
    parent = Path(tempfile.mkdtemp(prefix="samizdat-bench-base-"))
    tree = parent / "tree"
    git("worktree", "add", "--detach", str(tree), args.base_commit)
    try:
        yield tree
    finally:
        with contextlib.suppress(BenchError):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)


def describe_tree(src: Path | None) -> JSONDict:
    """Which code a side runs: the imported package, its commit, local changes under src/."""
    tree = src or REPO_ROOT
    info: JSONDict = {"samizdat": str(samizdat_origin(src))}
    try:
        info["commit"] = git("rev-parse", "--short", "HEAD", cwd=tree)
        info["src_changed"] = bool(git("status", "--porcelain", "--", "src", cwd=tree))
    except BenchError as exc:
        info["commit"] = f"unknown ({exc})"
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; print(bool(u.find_spec('samizdat.custody')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO_ROOT,
        env=samizdat_env(src),
    )
    info["has_custody"] = probe.stdout.strip() == "True"
    return info


def module_args(module: ModuleType, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"bench.{module.__name__}")
    module.add_arguments(parser)
    return parser.parse_args(argv)


def mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def ratio(current: float | None, base: float | None) -> float | None:
    return round(current / base, 4) if current is not None and base else None


def cpu_us_per_msg(sustained: JSONDict) -> float | None:
    rate = sustained.get("msgs_per_s") or 0
    return round(sustained["server_cpu_pct"] / 100 * 1e6 / rate, 1) if rate else None


# Two-sided 95% Student t quantiles by degrees of freedom (rounds - 1).
T95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26}


def ratio_interval(ratios: list[float]) -> tuple[float, float] | None:
    """95% confidence interval of the mean of per-round current/base ratios (paired rounds)."""
    n = len(ratios)
    if n < 2:
        return None
    centre = sum(ratios) / n
    spread = statistics.stdev(ratios) / math.sqrt(n) * T95.get(n - 1, 2.0)
    return centre - spread, centre + spread


async def sustained_run(args: argparse.Namespace) -> JSONDict:
    """``bench.throughput``'s set-up and closed loop (its sustained figure), no open loop."""
    pairs = args.pairs
    async with (
        running_server("samizdat", extra_args=args.server_arg) as server,
        WorkerPool(args.workers) as pool,
    ):
        accounts = await pool.sign_in(server.base_url, [bench_phone(i) for i in range(2 * pairs)])
        senders, recipients = accounts[:pairs], accounts[pairs:]
        chats = await throughput.open_chats(server.base_url, senders, recipients)
        tokens: list[list[str]] = [[] for _ in range(args.workers)]
        worker_pairs: list[list[list[int]]] = [[] for _ in range(args.workers)]
        for i in range(pairs):  # as throughput.run_target lays them out
            w = i % args.workers
            local = len(tokens[w])
            tokens[w] += [senders[i].token, recipients[i].token]
            worker_pairs[w].append([local, local + 1, chats[i]])
        connected = await pool.call_all(
            [{"op": "connect", "ws_url": server.ws_url, "tokens": t} for t in tokens]
        )
        if failed := sum(c["failed"] for c in connected):
            raise BenchError(f"{failed} devices failed to connect: {connected}")
        sustained = await throughput.closed_loop(pool, server.pid, worker_pairs, args)
        await pool.call_all([{"op": "close"}] * args.workers)
        return {"sustained": sustained}


def side_figures(name: str, results: list[JSONDict]) -> JSONDict:
    ok = [r for r in results if "error" not in r]
    if name == "throughput":
        figures: dict[str, Callable[[JSONDict], Any]] = {
            "msgs_per_s": lambda r: r["sustained"]["msgs_per_s"],
            "server_cpu_pct": lambda r: r["sustained"]["server_cpu_pct"],
            "server_cpu_us_per_msg": lambda r: cpu_us_per_msg(r["sustained"]),
            "other_cpu_pct": lambda r: r["sustained"]["other_cpu_pct"],
            "ack_p50_ms": lambda r: r["sustained"]["ack_latency"].get("p50_ms"),
            "ack_p99_ms": lambda r: r["sustained"]["ack_latency"].get("p99_ms"),
        }
    else:
        figures = {
            "connect_per_s": lambda r: r["connect_per_s"],
            "sign_in_per_s": lambda r: r["sign_in_per_s"],
            "kib_per_connection": lambda r: r["kib_per_connection"],
        }
    out: JSONDict = {"runs": len(ok), "errors": len(results) - len(ok)}
    for key, get in figures.items():
        values = [v for v in (get(r) for r in ok) if v is not None]
        out[key] = mean([float(v) for v in values])
        out[f"{key}_each"] = values
    return out


def summarise(name: str, runs: dict[str, list[JSONDict]]) -> JSONDict:
    """Means per side, current/base overall and per round, and for throughput the loss with
    a 95% interval from the rounds' spread (a verdict is conclusive only if the whole
    interval is on one side of the limit)."""
    base, current = side_figures(name, runs["base"]), side_figures(name, runs["current"])
    key = "msgs_per_s" if name == "throughput" else "connect_per_s"
    each = [
        r
        for b, c in zip(runs["base"], runs["current"], strict=True)
        if "error" not in b
        and "error" not in c
        and (r := ratio(_figure(name, c), _figure(name, b))) is not None
    ]
    summary: JSONDict = {
        "base": base,
        "current": current,
        "current_over_base": ratio(current[key], base[key]),
        "current_over_base_each_round": each,
    }
    if name == "throughput" and summary["current_over_base"] is not None:
        loss = round(100.0 * (1.0 - summary["current_over_base"]), 1)
        interval = ratio_interval(each)
        within = loss <= LIMIT_PCT
        verdict = "within the limit" if within else "over the limit"
        if interval is not None:
            low, high = (round(100.0 * (1.0 - r), 1) for r in (interval[1], interval[0]))
            summary["loss_ci95_pct"] = [low, high]
            if low <= LIMIT_PCT < high:
                verdict += " (not conclusive: the interval spans the limit)"
        summary.update(loss_pct=loss, limit_pct=LIMIT_PCT, within_limit=within, verdict=verdict)
    if name == "idle":
        summary["sign_in_current_over_base"] = ratio(
            current["sign_in_per_s"], base["sign_in_per_s"]
        )
    return summary


def _figure(name: str, result: JSONDict) -> float:
    if name == "throughput":
        return float(result["sustained"]["msgs_per_s"])
    return float(result["connect_per_s"])


class IpLogMismatch(BenchError):
    """The connect phase did not log the IP records it exists to cost, so its figure would
    measure the cheap path: the comparison stops rather than report it."""


def connect_worker(source: str) -> None:
    """``bench.loadgen``'s worker with every WebSocket connection bound to ``source``;
    run as ``python -m bench.custody --connect-worker ADDRESS`` (its HTTP sign-ins still
    come from 127.0.0.1)."""

    class ConnectFrom(websockets_connect):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, local_addr=(source, 0), **kwargs)

    # bench.wsclient's Device.connect looks ``connect`` up in its module on every call
    setattr(wsclient, "connect", ConnectFrom)  # noqa: B010 (not in wsclient's __all__)
    uvloop.run(serve_ops(loadgen.Worker()))


def ip_log_rows(data_dir: Path) -> int | None:
    """Rows in the ip_log tables of a samizdat server's SQLite files (one per DC) under
    ``data_dir``; None when there is no such table (the base commit has no IP log)."""
    total: int | None = None
    for path in sorted((data_dir / "data").glob("*.sqlite3")):
        with contextlib.closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            found = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ip_log'"
            if db.execute(found).fetchone():
                total = (total or 0) + int(db.execute("SELECT count(*) FROM ip_log").fetchone()[0])
    return total


async def ip_log_reaching(data_dir: Path, rows: int) -> int | None:
    """ip_log's row count once it reaches ``rows`` (the server writes queued records once a
    second), or after IP_LOG_WAIT_S whatever it is then; None without an IP log."""
    deadline = time.monotonic() + IP_LOG_WAIT_S
    while True:
        count = ip_log_rows(data_dir)
        if count is None or count >= rows or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.2)


async def connect_run(args: argparse.Namespace) -> JSONDict:
    """Connects+authorize/s where every authorize seals a new IP record.

    ``bench.idle``'s sign-in and connect phases (no idle hold): ``args.devices`` devices, one
    per user, sign in over HTTP from 127.0.0.1, which logs each one's address; once those
    records are written, all connect and authorize over WebSocket from ``CONNECT_FROM``, in
    ``args.workers`` load generators, so on the current tree each authorize seals one new IP
    record to the custodians (queued, written by the once-a-second flush) instead of the
    one-HMAC already-seen path. ``connect_per_s`` = devices connected / the wall time of that
    phase. On a tree with an IP log, raises IpLogMismatch unless ip_log then grew by the
    devices connected (the base commit logs nothing: ``ip_log_new_on_connect`` is None)."""
    phones = [bench_phone(i) for i in range(args.devices)]
    async with (
        running_server("samizdat", extra_args=args.server_arg) as server,
        WorkerPool(
            args.workers,
            op_timeout=args.timeout,
            module="bench.custody",
            args=["--connect-worker", CONNECT_FROM],
        ) as pool,
    ):
        log(f"custody: signing in {args.devices} devices from {HOST}")
        began = time.monotonic()
        accounts = await pool.sign_in(server.base_url, phones)
        sign_in_s = time.monotonic() - began
        if len(accounts) != args.devices:
            raise BenchError(f"signed in {len(accounts)} of {args.devices} devices")
        await asyncio.sleep(args.settle)
        logged_before = await ip_log_reaching(server.data_dir, args.devices)
        rss_before = tree_rss_bytes(server.pid)
        log(f"custody: connecting {args.devices} devices from {CONNECT_FROM}")
        tokens = [a.token for a in accounts]
        connect_op = {"op": "connect", "ws_url": server.ws_url, "timeout": 60}
        began = time.monotonic()
        connected = await pool.call_all(
            [
                {**connect_op, "tokens": tokens[w :: args.workers], "concurrency": args.concurrency}
                for w in range(args.workers)
            ],
            timeout=args.timeout,
        )
        connect_s = time.monotonic() - began
        held = sum(c["connected"] for c in connected)
        await asyncio.sleep(args.settle)
        rss_after = tree_rss_bytes(server.pid)
        logged_after = None
        if logged_before is not None:
            logged_after = await ip_log_reaching(server.data_dir, logged_before + held)
        await pool.call_all([{"op": "close"}] * args.workers, timeout=120)
    new_records = (
        logged_after - logged_before
        if logged_before is not None and logged_after is not None
        else None
    )
    result: JSONDict = {
        "devices": args.devices,
        "connected": held,
        "failed": sum(c["failed"] for c in connected),
        "first_errors": [e for c in connected for e in c["first_errors"]][:5],
        "sign_in_per_s": round(args.devices / sign_in_s, 1),
        "connect_per_s": round(held / connect_s, 1) if connect_s else 0.0,
        "kib_per_connection": round((rss_after - rss_before) / held / 1024, 1) if held else 0.0,
        "ip_log_after_sign_in": logged_before,
        "ip_log_new_on_connect": new_records,
    }
    if new_records is not None and abs(new_records - held) > args.devices // 100:
        raise IpLogMismatch(
            f"{held} devices connected from {CONNECT_FROM} but ip_log grew by {new_records} "
            f"(after sign-in: {logged_before}), so the connects did not each seal a new IP "
            f"record: {result}"
        )
    return result


async def compare(args: argparse.Namespace, base_src: Path) -> JSONDict:
    """Alternate base and current: ``--rounds`` sustained 1:1 runs, then ``--idle-rounds``
    connect runs; a run that fails is recorded and left out of the figures."""
    passthrough = [f"--server-arg={a}" for a in args.server_arg]
    tp_args = module_args(
        throughput, ["--target", "samizdat", "--duration", str(args.duration), *passthrough]
    )
    # bench.idle's defaults, its settle pause cut to 1 s (it measures memory, not connects)
    connect_args = argparse.Namespace(
        devices=args.devices,
        workers=2,
        concurrency=64,
        settle=1.0,
        timeout=300.0,
        server_arg=list(args.server_arg),
    )
    plans: list[tuple[str, int, Callable[[], Awaitable[JSONDict]]]] = [
        ("throughput", args.rounds, lambda: sustained_run(tp_args)),
        ("idle", args.idle_rounds, lambda: connect_run(connect_args)),
    ]
    runs: dict[str, dict[str, list[JSONDict]]] = {}
    for name, rounds, measure in plans:
        runs[name] = {"base": [], "current": []}
        for round_no in range(1, rounds + 1):
            for side, src in (("base", base_src), ("current", None)):
                log(f"custody: compare {name}, round {round_no}/{rounds}, {side}")
                began = time.monotonic()
                try:
                    with samizdat_source(src):
                        result = await measure()
                except IpLogMismatch:
                    raise  # the connect figure would be wrong for every round
                except Exception as exc:
                    log(f"custody: {name} / {side} failed: {exc}")
                    result = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                result["wall_s"] = round(time.monotonic() - began, 1)
                runs[name][side].append(result)
    return {
        "params": {
            "throughput": {**throughput.params_of(tp_args), "phase": "sustained only"},
            "idle": {
                **{k: getattr(connect_args, k) for k in ("devices", "workers", "concurrency")},
                "sign_in_from": HOST,
                "connect_from": CONNECT_FROM,
                "measured": "connects+authorize/s, each a new (device, address): one IP seal",
            },
            "rounds": args.rounds,
            "idle_rounds": args.idle_rounds,
            "order": "base, current in every round; all throughput rounds, then idle",
        },
        **{name: summarise(name, runs[name]) for name, _, _ in plans},
        "runs": runs,
    }


# --- the benchmark ------------------------------------------------------------------------
async def run_target(kind: str, args: argparse.Namespace) -> JSONDict:
    if kind not in TARGETS:
        raise BenchError(f"custody needs the samizdat server, not {kind!r}")
    result: JSONDict = {}
    if "micro" in args.parts:
        log(f"custody: per-operation costs ({args.iterations} iterations)")
        try:
            result["micro"] = await micro_costs(args.iterations, args.text_bytes)
        except Exception as exc:  # the other parts still run
            log(f"custody: micro costs failed: {exc}")
            result["micro"] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
    with contextlib.ExitStack() as stack:
        base_src: Path | None = None
        trees: JSONDict
        if {"unseal", "compare"} & set(args.parts):
            try:
                base_src = stack.enter_context(base_tree(args))
                trees = {"base": describe_tree(base_src), "current": describe_tree(None)}
            except BenchError as exc:  # unseal times of the current tree still mean something
                log(f"custody: no base tree: {exc}")
                trees, base_src = {"error": str(exc)[:2000]}, None
            result["trees"] = trees
            if base_src is not None and trees["base"]["has_custody"]:
                log(f"custody: warning, the base tree {base_src} already has samizdat.custody")
        if "unseal" in args.parts:
            result["unseal"] = await unseal_times(args, base_src)
        if "compare" in args.parts and base_src is not None:
            result["compare"] = await compare(args, base_src)
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="subset of the parts"
    )
    parser.add_argument("--iterations", type=int, default=2000, help="per micro figure (2000)")
    parser.add_argument("--text-bytes", type=int, default=100, help="micro: message size (100)")
    parser.add_argument("--restarts", type=int, default=5, help="restarts per unseal case (5)")
    parser.add_argument(
        "--startup-timeout", type=float, default=60.0, help="bound for one start (60 s)"
    )
    parser.add_argument(
        "--duration", type=int, default=10, help="throughput: measured seconds per phase (10)"
    )
    parser.add_argument("--devices", type=int, default=2000, help="idle: devices (2000)")
    parser.add_argument(
        "--rounds", type=int, default=4, help="throughput rounds, base then current (4)"
    )
    parser.add_argument(
        "--idle-rounds", type=int, default=2, help="connect rounds, base then current (2)"
    )
    parser.add_argument(
        "--base-commit", default=BASE_COMMIT, help=f"the pre-custody commit ({BASE_COMMIT})"
    )
    parser.add_argument(
        "--base-src", type=Path, default=None, help="a checkout of it (instead of a worktree)"
    )
    parser.add_argument("--server-arg", action="append", default=[], help="extra serve argument")
    parser.add_argument("--out", type=Path, default=None, help="results file (bench/results/…)")
    parser.add_argument("--json", action="store_true", help="print the JSON report, not Markdown")


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    keys = (
        "parts",
        "iterations",
        "text_bytes",
        "restarts",
        "duration",
        "devices",
        "rounds",
        "idle_rounds",
        "base_commit",
    )
    params = {k: getattr(args, k) for k in keys}
    params["base_src"] = str(args.base_src) if args.base_src else None
    params["threshold"] = f"{THRESHOLD} of {len(CUSTODIAN_JURISDICTIONS)}"
    return params


async def run(args: argparse.Namespace) -> Report:
    report = Report("custody", params_of(args))
    report.results["samizdat"] = await run_target("samizdat", args)
    return report


def main() -> None:
    """Run, save the JSON report under bench/results/ and print ``run_all``'s Markdown table."""
    from bench import run_all  # run_all imports this module

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    parser.add_argument("--connect-worker", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.connect_worker:  # a load generator of connect_run, not a benchmark run
        connect_worker(args.connect_worker)
        return
    began = time.monotonic()
    report: JSONDict = {"machine": machine_info(), "benchmarks": {}}
    entry = uvloop.run(run(args)).to_json()
    report["benchmarks"]["custody"] = {"params": entry["params"], "results": entry["results"]}
    report["comparison"] = run_all.comparison(report)
    report["wall_s"] = round(time.monotonic() - began, 1)
    out = run_all.write_report(report, args.out, suffix="-custody")
    log(f"results written to {out} ({report['wall_s']} s)")
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(run_all.markdown(report))


if __name__ == "__main__":
    main()
