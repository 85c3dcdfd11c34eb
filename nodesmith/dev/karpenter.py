"""Build Karpenter's own kwok controller on demand, so a benchmark can run real Karpenter beside nodesmith.

Fed by the Go module proxy (module ``sigs.k8s.io/karpenter`` at `VERSION`, the package
``sigs.k8s.io/karpenter/kwok``) and the same cache and Go lookup as `nodesmith.dev.binaries`; consumed
only by ``tests/bench`` (the provisioning benchmark's ``--autoscaler karpenter``). Nothing on CI's path
calls it: the control plane never needs Karpenter, and a test must not need a Go toolchain.

The binary is cached at ``<cache>/bin/karpenter-kwok-<version>/karpenter-kwok`` and built, like the
control plane's binaries, in a throwaway module under ``<cache>/build/`` with a file lock against a
concurrent build. Karpenter's CRDs come from the module's own source in the Go module cache (the build
has just downloaded it), never from a copy in this repository.
"""

from __future__ import annotations

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import typing

from nodesmith.dev import binaries

#: The newest Karpenter release whose ``go`` directive the installed Go (1.26.8) satisfies: v1.15.0 asks
#: for go >= 1.26.9 and v1.14.3 for 1.26.10, and builds never download another toolchain.
VERSION = "v1.14.1"
MODULE = "sigs.k8s.io/karpenter"
PACKAGE = "sigs.k8s.io/karpenter/kwok"
COMPONENT = "karpenter-kwok"

#: Where in the module the CRDs live: karpenter.sh's NodePool/NodeClaim/NodeOverlay (and the
#: CapacityBuffer its controllers may watch), and the kwok provider's KWOKNodeClass.
CRD_DIRS = ("pkg/apis/crds", "kwok/apis/crds")

#: Karpenter's own ``go`` directive at `VERSION`: the build module may not ask for less.
GO_DIRECTIVE = "1.26.6"


def cached_binary(version: str = VERSION) -> pathlib.Path:
    return binaries.cached_path(COMPONENT, version)


def build_dir(version: str = VERSION) -> pathlib.Path:
    return binaries.cache_dir() / "build" / f"{COMPONENT}-{version}"


def ensure(progress: binaries.Progress | None = None) -> pathlib.Path:
    """The cached binary, built first if missing; raises `binaries.BinariesUnavailableError` on failure."""
    progress = progress or binaries.stderr_progress("karpenter-kwok")
    target = cached_binary()
    if target.is_file() and os.access(target, os.X_OK):
        return target
    go = binaries.go_binary()
    if go is None:
        raise binaries.BinariesUnavailableError("no `go` found to build Karpenter's kwok controller")
    workdir = build_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    lock = workdir.parent / f"{COMPONENT}.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if target.is_file():
            return target
        _write_module(workdir)
        log = workdir / "build.log"
        progress(f"building {PACKAGE}@{VERSION} (a few minutes; log: {log})")
        out = pathlib.Path(tempfile.mkdtemp(prefix=f".{COMPONENT}-", dir=target.parent.parent))
        try:
            with log.open("w") as log_file:
                _go(go, ["mod", "tidy"], workdir, log_file)
                _go(
                    go,
                    ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / COMPONENT), PACKAGE],
                    workdir,
                    log_file,
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(out / COMPONENT, target)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        progress(f"installed {target}")
    return target


def build_module_files() -> dict[str, str]:
    """The throwaway module that requires Karpenter at `VERSION` and imports its kwok controller."""
    go_mod = f"module nodesmith.local/build/{COMPONENT}\n\ngo {GO_DIRECTIVE}\n\nrequire {MODULE} {VERSION}\n"
    tools = f'//go:build tools\n\npackage tools\n\nimport _ "{PACKAGE}"\n'
    return {"go.mod": go_mod, "tools.go": tools}


def _write_module(workdir: pathlib.Path) -> None:
    for name, text in build_module_files().items():
        path = workdir / name
        if not path.exists():
            path.write_text(text)


def _go(go: pathlib.Path, args: list[str], workdir: pathlib.Path, log_file: typing.TextIO) -> None:
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    proc = subprocess.run([str(go), *args], cwd=workdir, env=env, capture_output=True, text=True, check=False)
    log_file.write(f"$ go {' '.join(args)}\n{proc.stdout}{proc.stderr}")
    if proc.returncode != 0:
        tail = "\n      ".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise binaries.BinariesUnavailableError(
            f"`go {args[0]}` failed with rc={proc.returncode}:\n      {tail}"
        )


def module_dir() -> pathlib.Path:
    """Karpenter's source in the Go module cache, as the build module resolved it."""
    go = binaries.go_binary()
    if go is None:
        raise binaries.BinariesUnavailableError("no `go` found to locate Karpenter's module")
    proc = subprocess.run(
        [str(go), "list", "-m", "-json", MODULE],
        cwd=build_dir(),
        env={**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"},
        capture_output=True,
        text=True,
        check=True,
    )
    return pathlib.Path(json.loads(proc.stdout)["Dir"])


def crd_files() -> list[pathlib.Path]:
    """Karpenter's CRD manifests (YAML, one CRD each) from its module source."""
    root = module_dir()
    return sorted(path for directory in CRD_DIRS for path in (root / directory).glob("*.yaml"))
