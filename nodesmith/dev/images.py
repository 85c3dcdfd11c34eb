"""Container images for the real node, made without a registry or a Docker daemon.

Fed by `nodesmith dev image` and `nodesmith.dev.node` (which imports the sandbox image at start).
No registry is reachable from these machines, so every image is made here and cached under
``<cache>/images/``:

* the pod sandbox image, `PAUSE_IMAGE`: Kubernetes' ``pause.c`` (from the Go module cache, where the
  kubelet build put the pinned ``k8s.io/kubernetes``) compiled statically;
* the Dockerfile's two base images, named by its ``PYTHON_IMAGE``/``UV_IMAGE`` build args: a Debian
  bookworm root made with ``debootstrap`` (Debian's python3 is 3.11, as the project needs) and the
  ``uv`` binary that runs this tooling;
* ``deploy/Dockerfile`` itself, unchanged, built with ``buildah`` (``--layers``: a source-only change
  rebuilds in seconds), pushed to an OCI archive and imported into the node's containerd.

Where egress TLS is intercepted by a machine CA (``/usr/local/share/ca-certificates``), the base image
trusts it too, or ``uv sync`` in the build cannot download wheels. Such an image is for this machine only.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

from nodesmith.dev import binaries, host, oci, versions

PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
PYTHON_BASE = "localhost/nodesmith-base/python:3.11-bookworm"
UV_BASE = "localhost/nodesmith-base/uv:local"
REPOSITORY = "localhost/nodesmith"
SUITE = "bookworm"
_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/locale",
    "var/log",
)


def images_dir() -> pathlib.Path:
    path = binaries.cache_dir() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _go_env(name: str) -> str:
    go = binaries.go_binary()
    if go is None:
        raise host.HostError("no `go`: needed to find Kubernetes' pause.c in the module cache")
    return subprocess.run([str(go), "env", name], capture_output=True, text=True, check=True).stdout.strip()


def pause_archive(progress: binaries.Progress) -> pathlib.Path:
    """The sandbox image as an OCI archive, compiled on first use."""
    out = images_dir() / f"pause-{versions.KUBERNETES}.tar"
    if out.exists():
        return out
    source = (
        pathlib.Path(_go_env("GOMODCACHE"))
        / f"k8s.io/kubernetes@{versions.KUBERNETES}/build/pause/linux/pause.c"
    )
    if not source.exists():
        raise host.HostError(f"{source} missing: build the node binaries first (`nodesmith dev build`)")
    progress(f"compiling the sandbox image {PAUSE_IMAGE} from {source}")
    with tempfile.TemporaryDirectory(dir=images_dir()) as tmp:
        root = pathlib.Path(tmp) / "root"
        root.mkdir()
        host.run(
            [
                "gcc",
                "-Os",
                "-static",
                f"-DVERSION={versions.KUBERNETES}-nodesmith",
                "-o",
                str(root / "pause"),
                str(source),
            ]
        )
        oci.write_archive(
            out, PAUSE_IMAGE, [root], oci.ImageConfig(entrypoint=("/pause",), user="65535:65535")
        )
    return out


def debian_mirror() -> str:
    """The Debian mirror apt already uses on this machine (debootstrap fetches from it)."""
    sources = [
        pathlib.Path("/etc/apt/sources.list"),
        *sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*")),
    ]
    for path in sources:
        text = path.read_text() if path.is_file() else ""
        for line in text.splitlines():
            if line.lstrip().startswith("#"):
                continue
            for word in line.split():
                if "://" in word and word.rstrip("/").endswith("/debian"):
                    return word
    return "http://deb.debian.org/debian"


def base_archive(progress: binaries.Progress) -> pathlib.Path:
    """The Python base image (debootstrap, trimmed), made on first use."""
    out = images_dir() / f"python-{SUITE}.tar"
    if out.exists():
        return out
    mirror = debian_mirror()
    started = time.monotonic()
    progress(f"debootstrap {SUITE} (minbase + python3) from {mirror}: about a minute, once")
    with tempfile.TemporaryDirectory(dir=images_dir()) as tmp:
        root = pathlib.Path(tmp) / "rootfs"
        host.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,ca-certificates",
                SUITE,
                str(root),
                mirror,
            ]
        )
        for sub in _TRIM:
            for child in (root / sub).glob("*"):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
        extra = sorted(pathlib.Path("/usr/local/share/ca-certificates").glob("*.crt"))
        if extra:
            for cert in extra:
                shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
            host.run(["chroot", str(root), "update-ca-certificates"])
            env.append("SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt")
        oci.write_archive(out, PYTHON_BASE, [root], oci.ImageConfig(cmd=("python3",), env=tuple(env)))
    progress(f"base image {PYTHON_BASE} made in {time.monotonic() - started:.0f}s")
    return out


def uv_binary() -> pathlib.Path:
    """The uv running this tooling (``$UV`` inside ``uv run``), else the one on PATH."""
    for candidate in (os.environ.get("UV"), shutil.which("uv")):
        if candidate and pathlib.Path(candidate).is_file():
            return pathlib.Path(candidate)
    raise host.HostError("no uv binary found ($UV, PATH): run through `uv run`")


def uv_archive() -> pathlib.Path:
    uv = uv_binary()
    version = subprocess.run(
        [str(uv), "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    out = images_dir() / f"uv-{version}.tar"
    if not out.exists():
        with tempfile.TemporaryDirectory(dir=images_dir()) as tmp:
            root = pathlib.Path(tmp) / "root"
            root.mkdir()
            shutil.copy(uv, root / "uv")
            oci.write_archive(out, UV_BASE, [root], oci.ImageConfig(entrypoint=("/uv",)))
    return out


def _buildah_has(name: str) -> bool:
    return host.run(["buildah", "inspect", "--type", "image", name], check=False).returncode == 0


def _buildah_pull(archive: pathlib.Path, name: str, fresh: bool) -> None:
    if fresh or not _buildah_has(name):
        host.run(["buildah", "pull", "--quiet", f"oci-archive:{archive}"])


def repository_root() -> pathlib.Path:
    """The checkout holding ``deploy/Dockerfile`` (this package runs from a source checkout)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    if not (root / "deploy" / "Dockerfile").exists():
        raise host.HostError(f"no deploy/Dockerfile under {root}: run from a source checkout")
    return root


def build(
    progress: binaries.Progress,
    *,
    context: pathlib.Path | None = None,
    labels: dict[str, str] | None = None,
) -> tuple[str, pathlib.Path]:
    """Build ``deploy/Dockerfile``; return the image reference and an OCI archive of it.

    `labels` are added to the image (a different label is a different image: how a test makes a
    "rebuilt" image for a rolling upgrade without touching the source).
    """
    host.ensure_packages(progress)
    host.require_root("building the image")
    context = context or repository_root()
    base, uv = base_archive(progress), uv_archive()
    _buildah_pull(base, PYTHON_BASE, fresh=False)
    _buildah_pull(uv, UV_BASE, fresh=False)
    started = time.monotonic()
    progress("buildah bud deploy/Dockerfile ...")
    tag = f"{REPOSITORY}:dev"
    try:
        result = subprocess.run(
            [
                *("buildah", "bud", "--quiet", "--isolation", "chroot", "--network", "host", "--layers"),
                *("--build-arg", f"PYTHON_IMAGE={PYTHON_BASE}", "--build-arg", f"UV_IMAGE={UV_BASE}"),
                *(f"--label={key}={value}" for key, value in (labels or {}).items()),
                *("-f", str(context / "deploy" / "Dockerfile"), "-t", tag, str(context)),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    finally:
        # Working containers of stages (and of failed builds) stay mounted otherwise.
        host.run(["buildah", "rm", "--all"], check=False)
    if result.returncode != 0:
        raise host.HostError(f"buildah bud failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    image_id = host.run(
        ["buildah", "inspect", "--type", "image", "--format", "{{.FromImageID}}", tag]
    ).stdout.strip()
    reference = f"{REPOSITORY}:{image_id[:12]}"
    host.run(["buildah", "tag", tag, reference])
    _forget_older(keep={tag, reference})
    progress(f"built {reference} in {time.monotonic() - started:.0f}s")
    archive = images_dir() / "nodesmith.tar"
    archive.unlink(missing_ok=True)
    host.run(["buildah", "push", "--quiet", reference, f"oci-archive:{archive}:{reference}"])
    return reference, archive


def _forget_older(keep: set[str]) -> None:
    """Untag earlier builds so buildah's storage does not grow with every source change (the layer
    cache stays; an imported image lives on in the node's containerd)."""
    listed = host.run(["buildah", "images", "--format", "{{.Name}}:{{.Tag}}"], check=False).stdout.split()
    for name in listed:
        if name.startswith(REPOSITORY + ":") and name not in keep:
            host.run(["buildah", "rmi", name], check=False)


def image_size(reference: str) -> str:
    """The size buildah reports for `reference` (human readable, unpacked)."""
    return host.run(["buildah", "images", "--format", "{{.Size}}", reference], check=False).stdout.strip()
