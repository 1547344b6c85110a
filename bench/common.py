"""Shared benchmark plumbing: server processes, sign-in, load-generator workers, statistics.

Everything talks to 127.0.0.1 only. Every wait is bounded: a benchmark that cannot finish
raises BenchError instead of hanging.

A benchmark run looks like this::

    async with running_server("samizdat") as server:      # or "relay"
        async with WorkerPool(2) as pool:                  # client load in 2 processes
            accounts = await pool.sign_in(server.base_url, phones)
            ...                                            # chats via api()
            await pool.call_all([{"op": "connect", ...}, ...])
            results = await pool.call_all([{"op": "closed_loop", ...}, ...])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import orjson
import uvloop

HOST = "127.0.0.1"
SERVER_KINDS = ("samizdat", "relay")
BENCH_ROOT = Path(__file__).resolve().parent
REPO_ROOT = BENCH_ROOT.parent
RESULTS_DIR = BENCH_ROOT / "results"

JSONDict = dict[str, Any]
NS = 1_000_000_000
T = TypeVar("T")


class BenchError(Exception):
    """A benchmark could not run (server did not start, a request failed, a wait timed out)."""


# --- servers ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def samizdat_bin() -> Path:
    return Path(sys.executable).parent / "samizdat"


# Which source tree ``samizdat serve`` runs from. None: the one installed in this venv (the
# working tree). A directory: that checkout's ``src`` goes first on PYTHONPATH and the server
# runs as ``python -m samizdat``, e.g. a git worktree of an older commit, to compare two
# versions in one run (``bench.custody``). Its dependencies must be installed in this venv.
# ``SAMIZDAT_BENCH_SRC=DIR`` sets it for every benchmark of a run; ``samizdat_source(DIR)``
# for a block of one.
_ENV_SRC = os.environ.get("SAMIZDAT_BENCH_SRC")
SAMIZDAT_SRC: ContextVar[Path | None] = ContextVar(
    "SAMIZDAT_SRC", default=Path(_ENV_SRC).resolve() if _ENV_SRC else None
)


@contextlib.contextmanager
def samizdat_source(src: Path | None) -> Iterator[None]:
    """Start every samizdat server in this block from ``src`` (None: the installed tree)."""
    token = SAMIZDAT_SRC.set(src.resolve() if src is not None else None)
    try:
        yield
    finally:
        SAMIZDAT_SRC.reset(token)


def samizdat_prefix(src: Path | None) -> list[str]:
    """The command that runs ``samizdat`` from ``src`` (see ``samizdat_env``)."""
    return [str(samizdat_bin())] if src is None else [sys.executable, "-m", "samizdat"]


def samizdat_env(src: Path | None) -> dict[str, str]:
    """The environment for ``samizdat_prefix(src)``: ``src/src`` first on PYTHONPATH."""
    if src is None:
        return dict(os.environ)
    paths = [str(src / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


@functools.cache
def samizdat_origin(src: Path | None) -> Path:
    """Where ``import samizdat`` resolves for servers run from ``src``.

    Raises BenchError when ``src`` is given but its package is not the one imported (a typo,
    or a checkout without ``src/samizdat``), so a comparison never measures the wrong tree.
    """
    try:
        found = subprocess.run(
            [sys.executable, "-c", "import samizdat; print(samizdat.__file__)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO_ROOT,
            env=samizdat_env(src),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BenchError(f"cannot import samizdat from {src}: {exc}") from exc
    if found.returncode != 0:
        raise BenchError(f"cannot import samizdat from {src}:\n{found.stderr[-1000:]}")
    origin = Path(found.stdout.strip()).resolve().parent
    if src is not None and origin != (src / "src" / "samizdat").resolve():
        raise BenchError(f"samizdat from {src} imports {origin} instead")
    return origin


@functools.cache
def samizdat_bench_flags(src: Path | None = None) -> tuple[str, ...]:
    """Flags that switch off the server's protections that would throttle a benchmark.

    Detected from ``samizdat serve --help`` so the suite runs on builds with and without them.
    """
    try:
        out = subprocess.run(
            [*samizdat_prefix(src), "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=REPO_ROOT,
            env={**samizdat_env(src), "COLUMNS": "200", "NO_COLOR": "1"},
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    return ("--no-rate-limits",) if "--no-rate-limits" in out else ()


@dataclass
class ServerHandle:
    kind: str
    port: int
    proc: subprocess.Popen[bytes]
    data_dir: Path
    command: list[str]
    src: Path | None = None  # the source tree a samizdat server runs from (None: installed)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/ws"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    def rss_bytes(self) -> int:
        """Resident memory of the server process and its children."""
        return tree_rss_bytes(self.pid)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line[:400] for line in text.splitlines()[-lines:])


def server_command(
    kind: str, port: int, data_dir: Path, extra_args: Sequence[str], src: Path | None = None
) -> list[str]:
    """The server's command line; a samizdat server runs from ``src`` (see SAMIZDAT_SRC),
    so start it with ``samizdat_env(src)``."""
    if kind == "samizdat":
        return [
            *samizdat_prefix(src),
            "serve",
            "--dev",
            "--data",
            str(data_dir / "data"),
            "--host",
            HOST,
            "--port",
            str(port),
            *samizdat_bench_flags(src),
            *extra_args,
        ]
    if kind == "relay":
        return [sys.executable, "-m", "bench.relay", "--host", HOST, "--port", str(port)]
    raise BenchError(f"unknown server kind {kind!r}; expected one of {SERVER_KINDS}")


def spawn(
    command: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a process in its own session from the repository root, stdout and stderr
    appended to ``log_path``."""
    with log_path.open("ab") as out:
        return subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO_ROOT,
            env=env,
            start_new_session=True,
        )


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


async def wait_ok(
    url: str,
    proc: subprocess.Popen[bytes],
    timeout: float,
    *,
    client: httpx.AsyncClient | None = None,
    interval: float = 0.02,
) -> float:
    """Poll ``url`` every ``interval`` s until it answers 200; the monotonic time it did.

    Raises BenchError when ``proc`` exits first or ``timeout`` passes."""
    if client is None:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as own:
            return await wait_ok(url, proc, timeout, client=own, interval=interval)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise BenchError(f"{url}: the process exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                return time.monotonic()
        if time.monotonic() > deadline:
            raise BenchError(f"{url}: no 200 within {timeout}s")
        await asyncio.sleep(interval)


def launch_server(
    kind: str,
    data_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    src: Path | None = None,
    port: int | None = None,
) -> ServerHandle:
    """Start a server at ``data_dir`` (its log: ``data_dir/server.log``, appended to) on
    ``port`` (a free one if None), from ``src`` for samizdat; do not wait for it."""
    port = free_port() if port is None else port
    command = server_command(kind, port, data_dir, extra_args, src)
    proc = spawn(command, data_dir / "server.log", samizdat_env(src))
    return ServerHandle(kind, port, proc, data_dir, command, src)


async def start_server(
    kind: str, *, extra_args: Sequence[str] = (), startup_timeout: float = 60.0
) -> ServerHandle:
    """Start a server on a free loopback port with a fresh data directory; wait for /health.

    A samizdat server runs from the source tree ``SAMIZDAT_SRC`` names (checked first)."""
    src = SAMIZDAT_SRC.get() if kind == "samizdat" else None
    if src is not None:
        samizdat_origin(src)
    data_dir = Path(tempfile.mkdtemp(prefix=f"samizdat-bench-{kind}-"))
    handle = launch_server(kind, data_dir, extra_args=extra_args, src=src)
    try:
        await wait_ok(f"{handle.base_url}/health", handle.proc, startup_timeout)
    except BenchError as exc:
        tail = handle.log_tail()
        stop_server(handle)
        raise BenchError(f"{kind} server did not start: {exc}\n{tail}") from None
    except BaseException:  # cancelled: leave no server behind
        stop_server(handle)
        raise
    return handle


def stop_server(handle: ServerHandle, *, keep_data: bool = False) -> None:
    """SIGTERM, then SIGKILL after 10 s; remove the data directory unless ``keep_data``."""
    terminate(handle.proc)
    if not keep_data:
        shutil.rmtree(handle.data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def running_server(
    kind: str, *, extra_args: Sequence[str] = ()
) -> AsyncIterator[ServerHandle]:
    handle = await start_server(kind, extra_args=extra_args)
    try:
        yield handle
    except BaseException:
        print(f"--- {kind} server log (tail) ---\n{handle.log_tail()}", file=sys.stderr)
        raise
    finally:
        stop_server(handle)


# --- memory -------------------------------------------------------------------------------
def rss_bytes(pid: int) -> int:
    """VmRSS of one process from /proc, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/children") as f:
                kids.extend(int(k) for k in f.read().split())
    return kids


def tree_rss_bytes(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss_bytes(current)
        todo.extend(_children(current))
    return total


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (0 if it is gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with (
            contextlib.suppress(OSError, IndexError, ValueError),
            open(f"/proc/{current}/stat") as f,
        ):
            fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        todo.extend(_children(current))
    return total


class CpuMeter:
    """CPU use of some processes between two instants, as a percentage of one core."""

    def __init__(self, pids: Sequence[int]) -> None:
        self.pids = list(pids)
        self._start = 0.0
        self._cpu: list[float] = []

    def start(self) -> None:
        self._start = time.monotonic()
        self._cpu = [cpu_seconds(p) for p in self.pids]

    def stop(self) -> float:
        elapsed = time.monotonic() - self._start
        used = sum(cpu_seconds(p) for p in self.pids) - sum(self._cpu)
        return round(100.0 * used / elapsed, 1) if elapsed > 0 else 0.0


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by all cores since boot (everything but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    # guest time is already counted in user/nice
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def measure_window(
    server_pid: int, client_pids: Sequence[int], from_ns: int, until_ns: int
) -> JSONDict:
    """CPU % (of one core) of the server, the load generator and everything else on the machine
    between two ``monotonic_ns`` instants; ``other_cpu_pct`` well above 0 means a noisy box."""
    server, clients = CpuMeter([server_pid]), CpuMeter(client_pids)
    await asyncio.sleep(max(0.0, (from_ns - time.monotonic_ns()) / NS))
    server.start()
    clients.start()
    busy, began = machine_busy_seconds(), time.monotonic()
    await asyncio.sleep(max(0.0, (until_ns - time.monotonic_ns()) / NS))
    machine = 100.0 * (machine_busy_seconds() - busy) / max(time.monotonic() - began, 1e-9)
    server_pct, client_pct = server.stop(), clients.stop()
    return {
        "server_cpu_pct": server_pct,
        "client_cpu_pct": client_pct,
        "other_cpu_pct": round(max(0.0, machine - server_pct - client_pct), 1),
    }


# --- HTTP API and sign-in -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Account:
    user_id: int
    device_id: int
    token: str
    phone: str


SIGN_IN_ATTEMPTS = 3


def bench_phone(index: int, digit: int = 1) -> str:
    """Reserved dev-mode test number ``+99966<digit><index:07>``; its code is ``digit * 5``."""
    if not 0 <= index < 10**7 or not 1 <= digit <= 9:
        raise ValueError(f"test phone index {index} / digit {digit} out of range")
    return f"+99966{digit}{index:07d}"


def bench_code(phone: str) -> str:
    return phone[6] * 5


async def api(
    client: httpx.AsyncClient, method: str, params: JSONDict, token: str | None = None
) -> JSONDict:
    """POST /api/<method>; the body of a 2xx answer is the result, anything else raises."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        f"/api/{method}", content=orjson.dumps(params), headers={**headers, **_JSON}
    )
    if response.status_code // 100 != 2:
        raise BenchError(f"{method} -> HTTP {response.status_code}: {response.text[:300]}")
    result: JSONDict = response.json()
    return result


_JSON = {"Content-Type": "application/json"}


def http_client(
    base_url: str, *, concurrency: int = 32, timeout: float = 60.0
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        trust_env=False,  # never a proxy: loopback only
        timeout=timeout,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


async def sign_in_many(
    base_url: str,
    phones: Sequence[str],
    *,
    concurrency: int = 32,
    device_name: str = "bench",
) -> list[Account]:
    """Sign every phone in (send_code then sign_in); a phone listed k times gets k devices.

    Devices of one phone are signed in one after another, so codes never race.
    """
    by_phone: dict[str, list[int]] = {}
    for index, phone in enumerate(phones):
        by_phone.setdefault(phone, []).append(index)
    accounts: list[Account | None] = [None] * len(phones)
    transport_errors: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    async with http_client(base_url, concurrency=concurrency) as client:

        async def sign_in_once(phone: str) -> JSONDict:
            await api(client, "auth.send_code", {"phone": phone})
            return await api(
                client,
                "auth.sign_in",
                {
                    "phone": phone,
                    "code": bench_code(phone),
                    "device_name": device_name,
                    "display_name": f"b{phone[-7:]}",
                },
            )

        async def one_phone(phone: str, slots: list[int]) -> None:
            async with gate:
                for slot in slots:
                    for attempt in range(SIGN_IN_ATTEMPTS):
                        try:
                            result = await sign_in_once(phone)
                            break
                        except httpx.TransportError as exc:
                            # A dropped keep-alive connection: start over with a new code.
                            transport_errors.append(f"{phone}: {type(exc).__name__}")
                            if attempt == SIGN_IN_ATTEMPTS - 1:
                                raise
                            await asyncio.sleep(0.2 * (attempt + 1))
                    accounts[slot] = Account(
                        int(result["user"]["id"]),
                        int(result["device_id"]),
                        str(result["token"]),
                        phone,
                    )

        async with asyncio.TaskGroup() as group:
            for phone, slots in by_phone.items():
                group.create_task(one_phone(phone, slots))
    if transport_errors:
        log(
            f"sign-in: {len(transport_errors)} retried transport errors, e.g. {transport_errors[0]}"
        )
    return [a for a in accounts if a is not None]


# --- load-generator worker processes ------------------------------------------------------
class WorkerPool:
    """Client load in separate processes (``python -m bench.loadgen``), one JSON line per op.

    A worker answers each op with a line ``{"type": "result", ...}`` (or ``"error"``); it may
    send ``{"type": "progress", ...}`` lines before that, handed to the caller's callback.
    ``module`` picks another worker that speaks the same protocol (``bench.secret_worker``),
    started as ``python -m module *args``.
    """

    def __init__(
        self,
        size: int,
        *,
        op_timeout: float = 300.0,
        module: str = "bench.loadgen",
        args: Sequence[str] = (),
    ) -> None:
        self.size = size
        self.op_timeout = op_timeout
        self.module = module
        self.args = list(args)
        self._procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> WorkerPool:
        for _ in range(self.size):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                *self.args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=REPO_ROOT,
                limit=64 * 1024 * 1024,
            )
            self._procs.append(proc)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self._procs:
            if proc.returncode is None and proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.write(b'{"op": "exit"}\n')
                    proc.stdin.close()
        for proc in self._procs:
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    async def send(self, index: int, op: JSONDict) -> None:
        """Write an op without waiting for an answer (``stop`` while another op runs)."""
        proc = self._procs[index]
        assert proc.stdin is not None
        proc.stdin.write(orjson.dumps(op) + b"\n")
        await proc.stdin.drain()

    async def call(
        self,
        index: int,
        op: JSONDict,
        *,
        on_progress: Callable[[int, JSONDict], None] | None = None,
        timeout: float | None = None,
    ) -> JSONDict:
        proc = self._procs[index]
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(orjson.dumps(op) + b"\n")
        await proc.stdin.drain()
        async with asyncio.timeout(timeout or self.op_timeout):
            while True:
                line = await proc.stdout.readline()
                if not line:
                    raise BenchError(f"load worker {index} exited during {op['op']!r}")
                message: JSONDict = orjson.loads(line)
                kind = message.pop("type")
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(index, message)
                elif kind == "error":
                    raise BenchError(f"load worker {index} failed {op['op']!r}: {message['error']}")
                else:
                    return message

    async def call_all(
        self,
        ops: Sequence[JSONDict],
        *,
        on_progress: Callable[[int, JSONDict], None] | None = None,
        timeout: float | None = None,
    ) -> list[JSONDict]:
        """Run op i on worker i, all at once."""
        return list(
            await asyncio.gather(
                *(
                    self.call(i, op, on_progress=on_progress, timeout=timeout)
                    for i, op in enumerate(ops)
                )
            )
        )

    async def sign_in(
        self, base_url: str, phones: Sequence[str], concurrency: int = 32
    ) -> list[Account]:
        """Spread sign-ins over the workers; accounts come back in the order of ``phones``.

        All devices of one phone go to the same worker, so they never race for a code.
        """
        shards: list[list[str]] = [[] for _ in range(self.size)]
        order: list[list[int]] = [[] for _ in range(self.size)]
        for index, phone in enumerate(phones):
            shard = hash(phone) % self.size
            shards[shard].append(phone)
            order[shard].append(index)
        results = await self.call_all(
            [
                {"op": "sign_in", "base_url": base_url, "phones": s, "concurrency": concurrency}
                for s in shards
            ]
        )
        accounts: list[Account | None] = [None] * len(phones)
        for shard, result in enumerate(results):
            for index, raw in zip(order[shard], result["accounts"], strict=True):
                accounts[index] = Account(**raw)
        return [a for a in accounts if a is not None]


def account_json(account: Account) -> JSONDict:
    return asdict(account)


def split_even(items: Sequence[T], parts: int) -> list[list[T]]:
    """Round-robin split: item i goes to part i % parts."""
    return [list(items[i::parts]) for i in range(parts)]


# --- statistics ---------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of an already sorted sequence."""
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    rank = (len(sorted_values) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return float(sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low))


def latency_summary(values_ms: Sequence[float]) -> JSONDict:
    data = sorted(values_ms)
    if not data:
        return {"count": 0}
    return {
        "count": len(data),
        "p50_ms": round(percentile(data, 50), 3),
        "p90_ms": round(percentile(data, 90), 3),
        "p99_ms": round(percentile(data, 99), 3),
        "max_ms": round(data[-1], 3),
        "mean_ms": round(sum(data) / len(data), 3),
    }


# --- reporting ----------------------------------------------------------------------------
def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def mem_total_gib() -> float:
    with contextlib.suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def machine_info() -> JSONDict:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "mem_total_gib": mem_total_gib(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_1m_at_start": os.getloadavg()[0],
        "samizdat_flags": list(samizdat_bench_flags(SAMIZDAT_SRC.get())),
        "samizdat_src": str(SAMIZDAT_SRC.get() or REPO_ROOT),
    }


@dataclass
class Report:
    """What every benchmark returns: its name, its parameters and one result per target."""

    benchmark: str
    params: JSONDict
    results: dict[str, JSONDict] = field(default_factory=dict)

    def to_json(self) -> JSONDict:
        return asdict(self)


def emit(report: Report | list[Report], as_json: bool) -> None:
    if as_json:
        payload = [r.to_json() for r in report] if isinstance(report, list) else report.to_json()
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for r in report if isinstance(report, list) else [report]:
            print(f"\n== {r.benchmark} {r.params}")
            for target, result in r.results.items():
                print(f"-- {target}: {orjson.dumps(result).decode()}")


def cli_main(
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, Report]],
) -> None:
    """A benchmark module run by itself: its arguments, its run, its report printed."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args()
    emit(uvloop.run(run(args)), args.json)


class OpWorker(Protocol):
    stop: asyncio.Event

    async def run_op(self, op: JSONDict, /) -> Any: ...

    async def op_close(self, op: JSONDict, /) -> Any: ...


async def serve_ops(worker: OpWorker) -> None:
    """A load-generator process's loop: one JSON op per line on stdin, run one at a time
    (``stop`` interrupts the running one; ``exit`` or end of input ends it all)."""
    loop = asyncio.get_running_loop()
    running: asyncio.Task[None] | None = None
    try:
        while True:
            line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
            op = orjson.loads(line) if line.strip() else {"op": "exit"}
            if op["op"] == "stop":
                worker.stop.set()
                continue
            if running is not None:
                await running
                running = None
            if op["op"] == "exit":
                break
            running = loop.create_task(worker.run_op(op))
    finally:
        await worker.op_close({})


def targets_arg(value: str) -> list[str]:
    if value == "both":
        return list(SERVER_KINDS)
    if value not in SERVER_KINDS:
        raise ValueError(value)
    return [value]


def log(message: str) -> None:
    """Progress on stderr, so --json output on stdout stays clean."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
