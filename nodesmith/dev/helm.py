"""Find, cache or build the ``helm`` binary the chart tests run (`tests/integration/test_chart.py`).

Same rules as `nodesmith.dev.binaries` for the control plane, kept separate because helm is a test tool,
not part of the local cluster: ``NODESMITH_HELM`` (an explicit path) wins; then the cache,
``<cache>/bin/helm-<HELM_VERSION>/helm``; then ``go install helm.sh/helm/v3/cmd/helm@<version>`` through
the module proxy (about 3 minutes on 2 cores), written to a temporary directory and renamed into the
cache under a file lock. A helm on ``PATH`` is not used: its version would not be the pinned one.

A ``go install``-built helm reports its version without the patch number and defaults ``--kube-version``
to v1.20 (both are link-time flags of helm's Makefile), so callers pass ``--kube-version`` explicitly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Final

from nodesmith import errors
from nodesmith.dev import binaries

__all__ = ["HELM_VERSION", "HelmUnavailableError", "ensure_helm"]

HELM_VERSION: Final = "v3.19.0"
MODULE: Final = "helm.sh/helm/v3/cmd/helm"


class HelmUnavailableError(errors.NodesmithError):
    """Raised when helm is neither cached nor buildable (no ``go``, or the build failed)."""


def ensure_helm(progress: binaries.Progress | None = None) -> pathlib.Path:
    """The path of a runnable helm ``HELM_VERSION``, building it on first use (progress to stderr)."""
    progress = progress or binaries.stderr_progress("nodesmith helm")
    if explicit := os.environ.get("NODESMITH_HELM"):
        return pathlib.Path(explicit)
    target = binaries.cached_path("helm", HELM_VERSION)
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = binaries.go_binary()
    if go is None:
        raise HelmUnavailableError(f"helm {HELM_VERSION} is not cached at {target} and no `go` is on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = binaries.cache_dir() / "build" / f"helm-{HELM_VERSION}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        progress(f"building helm {HELM_VERSION} with go (first run only)")
        with tempfile.TemporaryDirectory(dir=lock_path.parent) as tmp:
            env = {**os.environ, "GOBIN": tmp, "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
            result = subprocess.run(
                [str(go), "install", f"{MODULE}@{HELM_VERSION}"],
                env=env,
                cwd=tmp,
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise HelmUnavailableError(
                    f"go install {MODULE}@{HELM_VERSION} failed:\n{result.stderr[-4000:]}"
                )
            built = pathlib.Path(tmp) / "helm"
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
            shutil.move(str(built), target)
        progress(f"helm {HELM_VERSION} cached at {target}")
    return target
