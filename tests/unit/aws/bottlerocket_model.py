"""Bottlerocket's ``settings.kubernetes`` model, as value checks, to validate the TOML nodesmith writes.

Derived by reading (not copying) Bottlerocket's settings model at
github.com/bottlerocket-os/bottlerocket commit 35e9881f9f4b2cf0897624eb57e6096a9bf4bcd9 (2023-11-02,
the last commit before the models moved to their own repository):

* ``sources/models/src/lib.rs`` — ``struct KubernetesSettings``: the field names (kebab-case in TOML)
  and their types;
* ``sources/models/src/modeled_types/kubernetes.rs`` — what each type accepts: label key/value
  patterns, the taint value pattern (``"<value>:<Effect>"``, value optional), the eviction signal
  enum, threshold values (a quantity or a percentage below 100), reserved-resource keys (cpu, memory,
  ephemeral-storage), durations (``1h2m3s4ms``), ``IntegerPercent`` (0-100, number or string), the
  cluster DNS IP (one address or a list);
* ``sources/models/src/modeled_types/shared.rs`` — ``NonNegativeInteger``, ``Url``, ``ValidBase64``.

``bootstrap-commands`` (used for RAID0 instance storage) is newer than that commit; its shape here
follows Karpenter's ``bottlerocketsettings.go`` (``commands`` a list of argv lists, ``essential`` a
bool, ``mode`` one of always/once/off).

Each check returns ``None`` when the value is valid, else why not.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlparse

Check = Callable[[Any], str | None]

_ALNUM_MIDDLE = r"[A-Za-z0-9](([A-Za-z0-9._-]{0,61})?[A-Za-z0-9])?"
LABEL_KEY: Final = re.compile(rf"^([A-Za-z0-9.-]{{1,253}}/)?{_ALNUM_MIDDLE}$")
LABEL_VALUE: Final = re.compile(rf"^$|^{_ALNUM_MIDDLE}$")
TAINT_VALUE: Final = re.compile(rf"^({_ALNUM_MIDDLE})?:[A-Za-z0-9]{{1,253}}$")
QUANTITY: Final = re.compile(
    r"^([+-]?[0-9.]+)((e)?[0-9]*)$|^([+-]?[0-9.]+)((E|P|T|G|M|K)i?)?$|^([+-]?[0-9.]+)(n|u|m|k)?$"
)
DURATION: Final = re.compile(
    r"^(([0-9]+\.)?[0-9]+h)?(([0-9]+\.)?[0-9]+m)?(([0-9]+\.)?[0-9]+s)?(([0-9]+\.)?[0-9]+ms)?$"
)
EVICTION_KEYS: Final = frozenset(
    {
        "memory.available",
        "nodefs.available",
        "nodefs.inodesFree",
        "imagefs.available",
        "imagefs.inodesFree",
        "pid.available",
    }
)
RESERVED_KEYS: Final = frozenset({"cpu", "memory", "ephemeral-storage"})


def _pattern(regex: re.Pattern[str], thing: str) -> Check:
    return lambda v: None if isinstance(v, str) and regex.match(v) else f"not a valid {thing}: {v!r}"


def _string(v: Any) -> str | None:
    return None if isinstance(v, str) and "\n" not in v else f"not a single-line string: {v!r}"


def _base64(v: Any) -> str | None:
    try:
        base64.b64decode(v, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return f"not valid base64: {v!r}"
    return None


def _url(v: Any) -> str | None:
    parsed = urlparse(v if isinstance(v, str) and "://" in v else f"https://{v}")
    return None if isinstance(v, str) and parsed.netloc else f"not a URL: {v!r}"


def _u32(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
    return None if ok else f"not a u32: {v!r}"


def _non_negative(v: Any) -> str | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31
    return None if ok else f"not a non-negative i32: {v!r}"


def _percent(v: Any) -> str | None:
    try:
        ok = not isinstance(v, bool) and 0 <= int(v) <= 100
    except (TypeError, ValueError):
        ok = False
    return None if ok else f"not an integer percent: {v!r}"


def _bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else f"not a bool: {v!r}"


def _threshold(v: Any) -> str | None:
    if isinstance(v, str) and v.endswith("%"):
        try:
            return None if 0.0 <= float(v[:-1]) < 100.0 else f"percentage out of range: {v!r}"
        except ValueError:
            return f"not a percentage: {v!r}"
    return _pattern(QUANTITY, "quantity")(v)


def _ip(v: Any) -> str | None:
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return f"not an IP address: {v!r}"
    return None


def _dns(v: Any) -> str | None:
    if isinstance(v, list):
        return next((p for p in map(_ip, v) if p), None)
    return _ip(v)


def _map(key: Check, value: Check) -> Check:
    def check(v: Any) -> str | None:
        if not isinstance(v, dict):
            return f"not a table: {v!r}"
        for k, item in v.items():
            problem = key(k) or value(item)
            if problem:
                return f"[{k!r}] {problem}"
        return None

    return check


def _one_of(values: frozenset[str]) -> Check:
    return lambda v: None if v in values else f"not one of {sorted(values)}: {v!r}"


def _taints(v: Any) -> str | None:
    if not isinstance(v, dict):
        return f"not a table: {v!r}"
    for k, values in v.items():
        problem = _pattern(LABEL_KEY, "label key")(k)
        if problem:
            return problem
        if not isinstance(values, list):  # the model also reads one string, but nodesmith writes lists
            return f"[{k!r}] taints must be a list of '<value>:<Effect>' strings, got {values!r}"
        for item in values:
            problem = _pattern(TAINT_VALUE, "taint value")(item)
            if problem:
                return f"[{k!r}] {problem}"
    return None


KUBERNETES: Final[dict[str, Check]] = {
    "cluster-name": lambda v: _pattern(LABEL_VALUE, "cluster name")(v) if v else "empty cluster name",
    "cluster-certificate": _base64,
    "api-server": _url,
    "node-labels": _map(_pattern(LABEL_KEY, "label key"), _pattern(LABEL_VALUE, "label value")),
    "node-taints": _taints,
    "eviction-hard": _map(_one_of(EVICTION_KEYS), _threshold),
    "eviction-soft": _map(_one_of(EVICTION_KEYS), _threshold),
    "eviction-soft-grace-period": _map(_one_of(EVICTION_KEYS), _pattern(DURATION, "duration")),
    "eviction-max-pod-grace-period": _non_negative,
    "kube-reserved": _map(_one_of(RESERVED_KEYS), _pattern(QUANTITY, "quantity")),
    "system-reserved": _map(_one_of(RESERVED_KEYS), _pattern(QUANTITY, "quantity")),
    "cpu-cfs-quota-enforced": _bool,
    "image-gc-high-threshold-percent": _percent,
    "image-gc-low-threshold-percent": _percent,
    "max-pods": _u32,
    "cluster-dns-ip": _dns,
    "pod-infra-container-image": _string,
}
"""The ``settings.kubernetes`` keys nodesmith may write, each with the model's check."""


def _bootstrap_command(v: Any) -> str | None:
    if not isinstance(v, dict) or set(v) - {"commands", "essential", "mode"}:
        return f"not a bootstrap command: {v!r}"
    commands = v.get("commands")
    if not isinstance(commands, list) or not all(
        isinstance(c, list) and c and all(isinstance(a, str) for a in c) for c in commands
    ):
        return f"commands must be a list of argv lists: {commands!r}"
    return _bool(v.get("essential", False)) or _one_of(frozenset({"always", "once", "off"}))(v.get("mode"))


SETTINGS: Final[dict[str, Check]] = {
    "bootstrap-commands": _map(_pattern(re.compile(r"^[A-Za-z0-9_-]+$"), "identifier"), _bootstrap_command),
}


def problems(document: dict[str, Any], *, ours: set[str]) -> list[str]:
    """Every problem in ``document``'s ``settings.kubernetes`` keys named in ``ours`` (nodesmith's),
    and in the other ``settings`` tables this module knows."""
    out = []
    settings = document.get("settings", {})
    kubernetes = settings.get("kubernetes", {})
    for key in sorted(ours):
        if key not in KUBERNETES:
            out.append(f"settings.kubernetes.{key}: not a Bottlerocket setting")
            continue
        problem = KUBERNETES[key](kubernetes.get(key))
        if problem:
            out.append(f"settings.kubernetes.{key}: {problem}")
    for key, check in SETTINGS.items():
        if key in settings:
            problem = check(settings[key])
            if problem:
                out.append(f"settings.{key}: {problem}")
    return out
