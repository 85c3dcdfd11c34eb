"""How the commands that read user files (``convert``, ``simulate``, ``explain``) read them and fail on bad
input: one clear line on stderr and exit 1, never a traceback.

Used by `nodesmith.cli`. Files are read as bytes and decoded here, so a file that is not UTF-8 is an
error naming the file rather than a ``UnicodeDecodeError``; YAML errors are reduced to their line, column
and problem; `replaying` reports a field of the wrong shape met while replaying a snapshot file (the
loader checks what the API server guarantees of every object, not every kind's schema); `guarded` turns
anything unexpected into one line with exit 2 (``NODESMITH_DEBUG=1`` lets the traceback through), so
a bug still shows as a bug, not as bad input.
"""

from __future__ import annotations

import contextlib
import functools
import os
import typing
from typing import Any, Final

import click

from nodesmith import errors

if typing.TYPE_CHECKING:
    import yaml

__all__ = ["InternalError", "fail", "guarded", "read_text", "replaying", "yaml_documents"]

DEBUG_VARIABLE: Final = "NODESMITH_DEBUG"


class InternalError(click.ClickException):
    """Something nodesmith did not expect (a bug, not bad input): exit 2, one line."""

    exit_code = 2


def fail(message: str) -> click.ClickException:
    """The error for bad input: ``message`` on one line (whitespace runs, newlines included, collapsed)."""
    return click.ClickException(" ".join(message.split()))


def read_text(name: str) -> str:
    """The text of file ``name`` (``-`` is stdin). Raises `fail` if it is not UTF-8."""
    with click.open_file(name, "rb") as stream:
        data = stream.read()
    try:
        return typing.cast(bytes, data).decode("utf-8")
    except UnicodeDecodeError as err:
        raise fail(f"{name}: not UTF-8 text (invalid byte at offset {err.start})") from err


def yaml_error(name: str, err: yaml.YAMLError) -> click.ClickException:
    """``name: not valid YAML at line L, column C: problem``."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None) or str(err)
    return fail(f"{name}: not valid YAML{where}: {problem}")


def yaml_documents(name: str) -> list[Any]:
    """Every YAML document of file ``name`` (``-`` is stdin), empty ones as ``None``."""
    import yaml

    text = read_text(name)
    try:
        return list(yaml.safe_load_all(text))
    except yaml.YAMLError as err:
        raise yaml_error(name, err) from err


SHAPE_ERRORS: Final = (AttributeError, KeyError, TypeError, ValueError)
"""What the daemon's code raises on a field of the wrong shape: the API server never lets one through,
a hand-edited snapshot file can."""


@contextlib.contextmanager
def replaying(path: str | None) -> typing.Iterator[None]:
    """Around a replay of the snapshot file ``path`` (``None``: taken live, so nothing to blame): a field of
    the wrong shape deep in one of its objects, which loading does not check, is reported as a malformed
    snapshot."""
    try:
        yield
    except errors.NodesmithError:
        raise  # the command's own refusal (an invalid change, say), reported by the command
    except SHAPE_ERRORS as err:
        if path is None:
            raise
        raise fail(
            f"{path}: malformed snapshot, a field has the wrong shape ({type(err).__name__}: {err})"
        ) from err


P = typing.ParamSpec("P")


def guarded(function: typing.Callable[P, None]) -> typing.Callable[P, None]:
    """Let click's own errors through; turn any other exception into one `InternalError` line."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
            raise
        except Exception as err:
            if os.environ.get(DEBUG_VARIABLE):
                raise
            raise InternalError(
                " ".join(
                    f"internal error: {type(err).__name__}: {err} (set {DEBUG_VARIABLE}=1 for the traceback)".split()
                )
            ) from err

    return wrapper
