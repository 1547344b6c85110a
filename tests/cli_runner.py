"""Running the ``samizdat`` command as real processes in tests: one-shot commands, a
background ``listen``, and people signed in through the SDK straight into a profile."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from samizdat.client import Client

_SCRIPT = Path(sys.executable).with_name("samizdat")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "samizdat"]
# Wide, colourless output so human text is not wrapped or styled in assertions.
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
ENV.pop("SAMIZDAT_PROFILE", None)
ENV.pop("SAMIZDAT_PASSPHRASE", None)
PASSPHRASE = "correct horse battery staple"
#: For secret-chat commands: the vault's passphrase comes from the environment.
SECRET_ENV = {**ENV, "SAMIZDAT_PASSPHRASE": PASSPHRASE}
CALL_TIMEOUT = 30.0


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]

    @property
    def record(self) -> dict[str, Any]:
        records = self.records
        assert len(records) == 1, self.out
        return records[0]


def samizdat(
    profile: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    done = subprocess.run(
        [*COMMAND, "--profile", str(profile), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT,
        env=ENV if env is None else env,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def ok(
    profile: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> Result:
    result = samizdat(profile, *args, stdin=stdin, env=env)
    assert result.code == 0, f"samizdat {' '.join(args)} failed:\n{result.out}\n{result.err}"
    return result


@dataclass
class Person:
    profile: Path
    phone: str
    user_id: int
    name: str
    username: str | None


async def sign_in_profile(
    url: str, profile: Path, phone: str, name: str, username: str | None
) -> int:
    client = Client(url, profile=profile, device_name=f"{name}'s test device")
    try:
        await client.connect()
        await client.send_code(phone)
        user = await client.sign_in(phone, phone[6] * 5, display_name=name)
        if username is not None:
            await client.set_username(username)
        return user.id
    finally:
        await client.close()


class Listener:
    """``samizdat listen --json`` in the background, its stdout lines read with a timeout."""

    def __init__(self, profile: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*COMMAND, "--profile", str(profile), "listen", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV if env is None else env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def next_of(self, kind: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next printed record of type ``kind``, skipping others."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                exited = self.proc.poll() is not None
                stderr = self.proc.stderr.read() if exited and self.proc.stderr else ""
                raise AssertionError(f"no {kind} within {timeout}s; stderr: {stderr}") from None
            record: dict[str, Any] = json.loads(line)
            if record.get("type") == kind:
                return record

    def next_message_text(self, timeout: float = 10.0) -> str:
        """The text of the next new_message update, skipping other update types."""
        return str(self.next_of("new_message", timeout)["message"]["text"])

    def stop(self, signum: int = signal.SIGINT) -> int:
        """Signal the listener and return its exit code."""
        self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=10)
        finally:
            self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
