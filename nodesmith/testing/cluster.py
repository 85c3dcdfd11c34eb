"""A real local control plane for tests: start it once, always stop it.

Fed by `nodesmith.dev.cluster` (which does the work); consumed by ``tests/conftest.py``'s session
fixture ``control_plane`` and by anything else that needs a throwaway cluster in-process (the demo,
benchmarks). `start_local_cluster` is a context manager so the stop sits in a ``finally``; on top of
that, three belts for interrupted runs:

* the components get a parent-death signal (SIGKILL when this process dies, even by SIGKILL);
* SIGTERM to this process is turned into `KeyboardInterrupt` while the cluster runs, so pytest stops
  the session the way it does on Ctrl-C and the ``finally`` below runs;
* ``atexit`` stops the cluster if the interpreter exits some other way.

Set ``NODESMITH_TEST_KUBECONFIG`` to a kubeconfig to run against a cluster you already have (say,
``nodesmith dev up``) instead of starting one per test session.
"""

from __future__ import annotations

import atexit
import collections.abc
import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import threading
import types

from nodesmith.dev import binaries, cluster

#: How many stopped ``pytest-*`` cluster directories (with their logs) to keep for debugging.
KEEP_STOPPED = 3


@dataclasses.dataclass(frozen=True)
class ControlPlane:
    """What a test needs to reach the cluster; `cluster` is None when it was not started by us."""

    kubeconfig: pathlib.Path
    cluster: cluster.LocalCluster | None = None


@contextlib.contextmanager
def _sigterm_raises() -> collections.abc.Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: types.FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


def prune_stopped(prefix: str = "pytest-", keep: int = KEEP_STOPPED) -> None:
    """Delete the directories of stopped ``<prefix>*`` clusters, newest `keep` excepted."""
    root = binaries.cache_dir() / "clusters"
    if not root.is_dir():
        return
    stopped = [
        d
        for d in root.iterdir()
        if d.is_dir()
        and d.name.startswith(prefix)
        and not cluster.LocalCluster(d.name, directory=d).is_running()
    ]
    stopped.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for directory in stopped[keep:]:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def start_local_cluster(
    name: str | None = None, *, timeout: float = 180.0, progress: binaries.Progress | None = None
) -> collections.abc.Iterator[ControlPlane]:
    """Yield a running control plane; stop it on exit, whatever the exit.

    Uses ``$NODESMITH_TEST_KUBECONFIG`` instead if set. `progress` receives start/stop/build lines
    (default: stderr). Raises what `LocalCluster.up` raises.
    """
    if existing := os.environ.get("NODESMITH_TEST_KUBECONFIG"):
        yield ControlPlane(pathlib.Path(existing))
        return
    local = cluster.LocalCluster(
        name or f"pytest-{os.getpid()}",
        progress=progress or binaries.stderr_progress("nodesmith test cluster"),
        die_with_parent=True,
    )
    atexit.register(local.down)
    try:
        with _sigterm_raises():
            local.up(timeout=timeout)
            yield ControlPlane(local.kubeconfig, local)
    finally:
        local.down()
        atexit.unregister(local.down)
        # etcd's data is the bulk of a cluster directory; logs stay for debugging.
        shutil.rmtree(local.directory / "etcd", ignore_errors=True)
        prune_stopped()
