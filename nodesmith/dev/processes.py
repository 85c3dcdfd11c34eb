"""Start, recognise, wait for and stop the control plane's processes.

Fed by `nodesmith.dev.cluster`, which decides argv, log paths and readiness URLs; consumed by it alone.
The rules it enforces:

* every process gets its own session (hence its own process group), its own log file, and -- when the
  caller asks for it (the pytest fixture does) -- a parent-death signal, so a SIGKILLed test run does not
  leave a control plane behind;
* a recorded PID is only signalled after ``/proc/<pid>/cmdline`` proves it is still the process we started
  (PIDs are recycled), and never is anything looked up or stopped by name;
* stopping is SIGTERM to the process group, then SIGKILL after a timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import pathlib
import signal
import subprocess
import time
import typing

import httpx

from nodesmith import errors

_PR_SET_PDEATHSIG = 1


class ComponentFailedError(errors.NodesmithError):
    """Raised when a component exits or does not become ready in time; the message quotes its log."""


@dataclasses.dataclass
class Process:
    """One running component as recorded in the cluster's state file."""

    name: str
    pid: int
    argv: list[str]
    log: pathlib.Path
    popen: subprocess.Popen[bytes] | None = dataclasses.field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, typing.Any]:
        return {"name": self.name, "pid": self.pid, "argv": self.argv, "log": str(self.log)}

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> Process:
        return cls(data["name"], int(data["pid"]), list(data["argv"]), pathlib.Path(data["log"]))


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def spawn(
    name: str,
    argv: list[str],
    log: pathlib.Path,
    *,
    die_with_parent: bool = False,
    env: dict[str, str] | None = None,
) -> Process:
    """Start `argv` in a new session with stdout and stderr appended to `log` (and `env`, if given)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if die_with_parent else None,
            close_fds=True,
            env=env,
        )
    return Process(name, popen.pid, argv, log, popen)


def is_alive(proc: Process) -> bool:
    """True while `proc` runs and its PID still belongs to the very command we started."""
    if proc.popen is not None:
        return proc.popen.poll() is None
    try:
        cmdline = pathlib.Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        stat = pathlib.Path(f"/proc/{proc.pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in {"Z", "X"} and cmdline.split(b"\0")[:-1] == [a.encode() for a in proc.argv]


def stop(proc: Process, timeout: float) -> None:
    """SIGTERM `proc`'s process group, wait up to `timeout` seconds, then SIGKILL it."""
    if not is_alive(proc):
        _reap(proc)
        return
    _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(proc):
            _reap(proc)
            return
        time.sleep(0.05)
    _signal_group(proc, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while is_alive(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    _reap(proc)


def _signal_group(proc: Process, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # We started it with start_new_session, so its process group id is its pid.
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)


def _reap(proc: Process) -> None:
    if proc.popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.popen.wait(timeout=1.0)


def log_tail(proc: Process, lines: int = 20) -> str:
    try:
        text = proc.log.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    proc: Process,
    urls: list[str],
    client: httpx.Client,
    deadline: float,
) -> str:
    """Poll `urls` (first answering one wins) until one returns 200; return it.

    A 404 moves on to the next URL (some components only serve ``/healthz``). Raises
    `ComponentFailedError` with the log tail if the process dies or the deadline passes.
    """
    last = "no answer yet"
    while True:
        if not is_alive(proc):
            raise ComponentFailedError(
                f"{proc.name} exited before it was ready (log {proc.log}):\n{log_tail(proc)}"
            )
        for url in urls:
            try:
                response = client.get(url, timeout=2.0)
            except httpx.HTTPError as err:
                last = f"{url}: {type(err).__name__}"
                break
            if response.status_code == 200:
                return url
            last = f"{url}: HTTP {response.status_code} {response.text[:200]!r}"
            if response.status_code != 404:
                break
        if time.monotonic() > deadline:
            raise ComponentFailedError(
                f"{proc.name} not ready in time ({last}); log {proc.log}:\n{log_tail(proc)}"
            )
        time.sleep(0.2)


def rss_mib(pid: int) -> float | None:
    """Resident set size of `pid` in MiB, from /proc."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
