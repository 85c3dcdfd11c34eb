"""Find, cache or build the control-plane binaries the local cluster runs.

Fed by `nodesmith.dev.versions` (what to look for, how to build it) and the environment; consumed by
`nodesmith.dev.cluster` (paths to exec), `nodesmith dev build` and `.ci/run` (which call
`ensure_binaries` first so a cold machine shows its build progress before any test starts).

Each component is resolved on its own, first match wins:

1. directories named by ``NODESMITH_BINARIES_DIR`` (colon-separated), then ``KUBEBUILDER_ASSETS``
   (the envtest convention). What you point at is what runs: a version other than the pinned one is
   used with a warning.
2. ``PATH`` -- only if ``<binary> --version`` reports the pinned version, so a stray old binary on the
   machine is never picked up silently; a mismatch is reported and skipped.
3. the cache, ``${NODESMITH_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/nodesmith}/bin/<component>-<version>/``.
4. a build with ``go`` through the module proxy in a throwaway module under ``<cache>/build/``, output
   first to a temporary directory and then renamed into the cache, so an interrupted build never
   leaves a half-written binary behind. A file lock keeps two builds of one recipe from racing.

If nothing works, `BinariesUnavailableError` says what was tried for every missing component.
"""

from __future__ import annotations

import collections.abc
import contextlib
import fcntl
import os
import pathlib
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import typing

from nodesmith import errors
from nodesmith.dev import versions

Progress = collections.abc.Callable[[str], None]

HEARTBEAT_SECONDS = 15.0


class BinariesUnavailableError(errors.NodesmithError):
    """Raised when some component could be neither found nor built; the message lists every attempt."""


def stderr_progress(prefix: str = "nodesmith dev") -> Progress:
    """A progress sink that prints ``[prefix +12.3s] message`` lines to stderr."""
    started = time.monotonic()

    def emit(message: str) -> None:
        print(f"[{prefix} +{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    return emit


def _quiet(message: str) -> None:
    del message


def cache_dir() -> pathlib.Path:
    """Root of nodesmith's cache: binaries, build modules and local clusters live below it."""
    if explicit := os.environ.get("NODESMITH_CACHE_DIR"):
        return pathlib.Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(pathlib.Path.home() / ".cache")
    return pathlib.Path(xdg).expanduser() / "nodesmith"


def cached_path(component: str, version: str) -> pathlib.Path:
    return cache_dir() / "bin" / f"{component}-{version}" / component


def binary_version(path: pathlib.Path) -> str | None:
    """The x.y.z version ``path --version`` reports, or None if it cannot tell."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"v?(\d+\.\d+\.\d+)", out.stdout + out.stderr)
    return match.group(1) if match else None


def _same_version(found: str | None, pinned: str) -> bool:
    return found is not None and found == pinned.lstrip("v")


def _is_executable(path: pathlib.Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find(component: str, version: str, tried: list[str], progress: Progress = _quiet) -> pathlib.Path | None:
    """Look for `component` without building; append a line per place looked at to `tried`."""
    for var in ("NODESMITH_BINARIES_DIR", "KUBEBUILDER_ASSETS"):
        dirs = [d for d in os.environ.get(var, "").split(os.pathsep) if d]
        if not dirs:
            tried.append(f"${var}: not set")
        for directory in dirs:
            candidate = pathlib.Path(directory).expanduser() / component
            if not _is_executable(candidate):
                tried.append(f"${var}: no executable {candidate}")
                continue
            found = binary_version(candidate)
            if not _same_version(found, version):
                progress(
                    f"warning: {candidate} reports version {found or '?'}, pinned is {version}; using it"
                )
            return candidate
    on_path = shutil.which(component)
    if on_path is None:
        tried.append(f"PATH: no {component}")
    else:
        found = binary_version(pathlib.Path(on_path))
        if _same_version(found, version):
            return pathlib.Path(on_path)
        tried.append(f"PATH: {on_path} reports {found or 'no version'}, want {version} (skipped)")
    cached = cached_path(component, version)
    if _is_executable(cached):
        return cached
    tried.append(f"cache: no {cached}")
    return None


def ensure_binaries(
    components: collections.abc.Mapping[str, str] | None = None,
    *,
    progress: Progress = _quiet,
    build: bool = True,
) -> dict[str, pathlib.Path]:
    """Paths of every component (name -> pinned version), building what is missing.

    Raises `BinariesUnavailableError` listing every attempt if a component is still missing.
    """
    wanted = dict(versions.COMPONENTS if components is None else components)
    found: dict[str, pathlib.Path] = {}
    tried: dict[str, list[str]] = {}
    for component, version in wanted.items():
        tried[component] = []
        if (path := find(component, version, tried[component], progress)) is not None:
            found[component] = path
    missing = [c for c in wanted if c not in found]
    recipes = list(dict.fromkeys(versions.recipe_for(c) for c in missing))
    for recipe in recipes:
        if not build:
            for component in missing:
                tried[component].append("build: disabled")
            break
        try:
            build_recipe(recipe, progress=progress)
        except BinariesUnavailableError as err:
            for component in set(recipe.binaries) & set(missing):
                tried[component].append(f"build: {err}")
            continue
        for component in set(recipe.binaries) & set(missing):
            path = cached_path(component, wanted[component])
            if _is_executable(path):
                found[component] = path
    still_missing = [c for c in wanted if c not in found]
    if still_missing:
        raise BinariesUnavailableError(_explain(still_missing, wanted, tried))
    for component, path in found.items():
        progress(f"{component}: {path}")
    return found


def _explain(missing: list[str], wanted: dict[str, str], tried: dict[str, list[str]]) -> str:
    lines = ["could not find or build: " + ", ".join(missing)]
    for component in missing:
        lines.append(f"  {component} {wanted[component]}:")
        lines.extend(f"    - {attempt}" for attempt in tried[component])
    lines += [
        "To provide them, any one of:",
        "  * put the binaries in a directory and set NODESMITH_BINARIES_DIR=<dir> (or KUBEBUILDER_ASSETS);",
        "  * put the pinned versions on PATH;",
        "  * install Go >= 1.24 with access to the module proxy and run `nodesmith dev build`.",
    ]
    return "\n".join(lines)


# -- building -------------------------------------------------------------------------------------


def go_binary() -> pathlib.Path | None:
    """The `go` to build with: ``$NODESMITH_GO``, then PATH, then /usr/local/go/bin/go."""
    for candidate in (os.environ.get("NODESMITH_GO"), shutil.which("go"), "/usr/local/go/bin/go"):
        if candidate and _is_executable(pathlib.Path(candidate)):
            return pathlib.Path(candidate)
    return None


def build_module_files(recipe: versions.Recipe) -> dict[str, str]:
    """The throwaway module (go.mod, tools.go) that pins `recipe`'s module and builds its packages."""
    lines = [
        f"module nodesmith.local/build/{recipe.name}",
        "",
        "go 1.24.0",
        "",
        f"require {recipe.module} {recipe.version}",
        "",
    ]
    if recipe.replaces:
        lines.append("replace (")
        lines.extend(f"\t{old} => {new}" for old, new in recipe.replaces)
        lines += [")", ""]
    imports = "\n".join(f'\t_ "{p}"' for p in recipe.packages)
    tools = f"//go:build tools\n\npackage tools\n\nimport (\n{imports}\n)\n"
    return {"go.mod": "\n".join(lines), "tools.go": tools}


def build_recipe(recipe: versions.Recipe, *, progress: Progress = _quiet) -> None:
    """Build every binary of `recipe` into the cache; raises `BinariesUnavailableError` on failure."""
    go = go_binary()
    if go is None:
        raise BinariesUnavailableError("no `go` found ($NODESMITH_GO, PATH, /usr/local/go/bin/go)")
    workdir = cache_dir() / "build" / f"{recipe.name}-{recipe.version}"
    workdir.mkdir(parents=True, exist_ok=True)
    with _locked(workdir.parent / f"{recipe.name}.lock", progress):
        if all(_is_executable(cached_path(b, recipe.version)) for b in recipe.binaries):
            progress(f"{recipe.name} {recipe.version}: built meanwhile by another process")
            return
        started = time.monotonic()
        progress(
            f"building {recipe.name} {recipe.version} with {go} in {workdir} (log: {workdir / 'build.log'})"
        )
        for name, text in build_module_files(recipe).items():
            existing = workdir / name
            if not existing.exists() or existing.read_text() != text:
                existing.write_text(text)
                (workdir / "go.sum").unlink(missing_ok=True)
        env = {
            **os.environ,
            "GOFLAGS": "-mod=mod",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "1" if recipe.cgo else "0",
        }
        log = workdir / "build.log"
        with log.open("w") as log_file:
            _run_step(
                f"{recipe.name}: go mod tidy", [str(go), "mod", "tidy"], workdir, env, log_file, progress
            )
            out = pathlib.Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=_ensure(cache_dir() / "bin")))
            try:
                ldflags = " ".join(("-s", "-w", *recipe.ldflags))
                argv = [
                    str(go),
                    "build",
                    "-v",
                    "-trimpath",
                    "-ldflags",
                    ldflags,
                    "-o",
                    f"{out}/",
                    *recipe.packages,
                ]
                _run_step(f"{recipe.name}: go build", argv, workdir, env, log_file, progress)
                for package, binary in zip(recipe.packages, recipe.binaries, strict=True):
                    _install(out / versions.go_output_name(package), binary, recipe.version, progress)
            finally:
                shutil.rmtree(out, ignore_errors=True)
        progress(f"built {recipe.name} {recipe.version} in {time.monotonic() - started:.0f}s")


def _ensure(path: pathlib.Path) -> pathlib.Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _install(built: pathlib.Path, component: str, version: str, progress: Progress) -> None:
    """Move a freshly built binary into its cache slot with a directory rename (atomic)."""
    final_dir = cached_path(component, version).parent
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{component}-", dir=final_dir.parent))
    try:
        shutil.move(str(built), staging / component)
        (staging / component).chmod(0o755)
        if final_dir.exists():
            shutil.rmtree(final_dir)
        os.rename(staging, final_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    size = (final_dir / component).stat().st_size / 2**20
    progress(f"installed {final_dir / component} ({size:.0f} MiB)")


@contextlib.contextmanager
def _locked(path: pathlib.Path, progress: Progress) -> collections.abc.Iterator[None]:
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another build holding {path}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_step(
    title: str,
    argv: list[str],
    cwd: pathlib.Path,
    env: dict[str, str],
    log_file: typing.TextIO,
    progress: Progress,
) -> None:
    """Run one build command, copying its output to the log and heartbeating progress."""
    started = time.monotonic()
    progress(f"{title} ...")
    write = log_file.write
    write(f"$ {' '.join(argv)}\n")
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    lines: queue.Queue[str | None] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
    count, last, tail = 0, "", collections.deque[str](maxlen=15)
    next_beat = started + HEARTBEAT_SECONDS
    try:
        while True:
            try:
                line = lines.get(timeout=1.0)
            except queue.Empty:
                line = ""
            if line is None:
                break
            if line:
                write(line)
                tail.append(line.rstrip())
                count += 1
                last = line.strip()
            if time.monotonic() >= next_beat:
                next_beat += HEARTBEAT_SECONDS
                progress(
                    f"{title}: {time.monotonic() - started:.0f}s, {count} lines of output, last: {last[:90]}"
                )
        rc = proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    if rc != 0:
        raise BinariesUnavailableError(
            f"`{' '.join(argv[:3])} ...` failed with rc={rc} in {cwd}; last output:\n      "
            + "\n      ".join(tail)
        )
    progress(f"{title}: done in {time.monotonic() - started:.0f}s")


def _pump(stream: collections.abc.Iterable[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)
