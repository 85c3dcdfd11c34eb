"""AL2023's node agent as a test oracle: ``nodeadm config check`` / ``config dump`` on rendered user data.

The binary is looked for, never built: ``$NODESMITH_NODEADM``, else
``<nodesmith cache>/bin/nodeadm/nodeadm`` (the cache the control-plane binaries live in). When it is
missing, :func:`find` raises `NodeadmMissing` with one line saying how to get it; tests fail on that
line, they never skip. nodeadm reads a ``file://`` config source entirely offline (no root, no instance
metadata): it parses the MIME archive, merges its NodeConfig parts in order and validates the result.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile

import attrs

from nodesmith.dev import binaries

__all__ = ["NodeadmMissing", "Result", "check", "dump", "find"]

HOW_TO_GET = (
    "nodeadm not found: build it from the nodeadm folder of github.com/awslabs/amazon-eks-ami "
    "(`go build ./cmd/nodeadm` there; the Go module proxy only serves a 2024 release, too old) and put "
    "the binary at {cached} or set NODESMITH_NODEADM=<path>"
)


class NodeadmMissing(RuntimeError):
    """Raised when the nodeadm binary is neither at ``$NODESMITH_NODEADM`` nor in the cache."""


@attrs.frozen
class Result:
    ok: bool
    output: str
    """stdout and stderr (nodeadm logs to stderr)."""
    stdout: str


def cached_path() -> pathlib.Path:
    return binaries.cache_dir() / "bin" / "nodeadm" / "nodeadm"


def find() -> pathlib.Path:
    explicit = os.environ.get("NODESMITH_NODEADM")
    path = pathlib.Path(explicit).expanduser() if explicit else cached_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise NodeadmMissing(HOW_TO_GET.format(cached=cached_path()))
    return path


def _run(subcommand: str, user_data: str) -> Result:
    with tempfile.TemporaryDirectory(prefix="nodeadm-") as tmp:
        source = pathlib.Path(tmp) / "user-data"
        source.write_text(user_data)
        done = subprocess.run(
            [str(find()), "config", subcommand, "--config-source", f"file://{source}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    return Result(done.returncode == 0, done.stdout + done.stderr, done.stdout)


def check(user_data: str) -> Result:
    """``nodeadm config check`` on ``user_data`` (the plain text, not base64)."""
    return _run("check", user_data)


def dump(user_data: str) -> Result:
    """``nodeadm config dump``: the merged NodeConfig nodeadm would boot with (JSON on ``stdout``)."""
    return _run("dump", user_data)
