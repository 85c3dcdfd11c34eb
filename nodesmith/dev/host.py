"""The machine-level prerequisites of a real node: root, Debian packages, commands and sysctls.

Fed by `nodesmith.dev.node` and `nodesmith.dev.images`; they call `ensure_packages` before anything else
so a clean machine installs what it lacks (``apt-get``, idempotent, progress on stderr) and a machine
that cannot (not root, not Debian) fails with a message naming what is missing -- never a skip.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import subprocess

from nodesmith import errors
from nodesmith.dev import binaries

#: command (or absolute file) that proves a package is installed -> the Debian package providing it.
PACKAGES: dict[str, str] = {
    "containerd": "containerd",
    "ctr": "containerd",
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "conntrack": "conntrack",
    "iptables": "iptables",
    "ip": "iproute2",
    "debootstrap": "debootstrap",
    "buildah": "buildah",
    "gcc": "gcc",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
    "tar": "tar",
}


class HostError(errors.NodesmithError):
    """Raised when the machine cannot host a real node (not root, a package cannot be installed)."""


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        raise HostError(f"{what} needs root (it runs containerd, the kubelet and iptables)")


def _present(probe: str) -> bool:
    return pathlib.Path(probe).exists() if probe.startswith("/") else shutil.which(probe) is not None


def missing_packages() -> list[str]:
    return sorted({package for probe, package in PACKAGES.items() if not _present(probe)})


def ensure_packages(progress: binaries.Progress) -> None:
    """Install the Debian packages a real node and the image build need (no-op when all are there)."""
    missing = missing_packages()
    if not missing:
        return
    require_root("installing " + ", ".join(missing))
    if shutil.which("apt-get") is None:
        raise HostError(f"missing {', '.join(missing)} and no apt-get to install them with")
    progress(f"apt-get install {' '.join(missing)} ...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lists = pathlib.Path("/var/lib/apt/lists")
    if not any(lists.glob("*Packages*")):
        run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], env=env)
    if still := missing_packages():
        raise HostError(f"apt-get could not install: {', '.join(still)}")
    progress("packages installed")


def run(
    argv: list[str], *, check: bool = True, env: dict[str, str] | None = None, input_text: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a short command; on failure raise `HostError` quoting its output."""
    result = subprocess.run(argv, capture_output=True, text=True, env=env, input=input_text, check=False)
    if check and result.returncode != 0:
        raise HostError(
            f"`{' '.join(argv)}` failed (rc={result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def read_sysctl(name: str) -> str | None:
    path = pathlib.Path("/proc/sys") / name.replace(".", "/")
    try:
        return path.read_text().strip()
    except OSError:
        return None


def write_sysctl(name: str, value: str) -> None:
    path = pathlib.Path("/proc/sys") / name.replace(".", "/")
    with contextlib.suppress(OSError):
        path.write_text(value + "\n")
