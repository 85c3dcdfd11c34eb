"""A small TOML writer: enough for Bottlerocket settings (tables, scalars, arrays, inline tables).

The standard library reads TOML (`tomllib`) but does not write it. Round trip is the contract:
``tomllib.loads(dumps(d)) == d`` for any document `tomllib` produced; the tests check it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["dumps"]

_BARE: Final = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _table(table: Mapping[str, Any], path: tuple[str, ...], out: list[str]) -> None:
    scalars = [(k, v) for k, v in table.items() if not isinstance(v, Mapping)]
    if path and (scalars or not table):
        out.append("[" + ".".join(_key(p) for p in path) + "]")
    out.extend(f"{_key(k)} = {_value(v)}" for k, v in scalars)
    if scalars:
        out.append("")
    for key, sub in table.items():
        if isinstance(sub, Mapping):
            _table(sub, (*path, key), out)


def dumps(document: Mapping[str, Any]) -> str:
    out: list[str] = []
    _table(document, (), out)
    return "\n".join(out).strip() + "\n"
