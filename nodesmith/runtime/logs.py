"""Structured JSON logs on stderr, one object per line, for the daemon.

``configure(level)`` is called once by ``nodesmith run``; everything else logs through the standard
``logging`` module with ``extra={...}`` fields, which become JSON keys.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger import json as jsonlogger

__all__ = ["configure"]


def configure(level: int = logging.INFO, *, stream: object = None) -> None:
    """Route the root logger to JSON lines with time, level, logger name and message."""
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(
        jsonlogger.JsonFormatter(
            "{asctime}{levelname}{name}{message}",
            style="{",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "kr8s", "botocore", "aiobotocore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
