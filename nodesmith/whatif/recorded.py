"""The decisions a running daemon made, as it recorded them (``GET /decisions``, `runtime.decisions`),
narrowed to one pod or one node and printed a line each: ``nodesmith explain decisions``.

Where `explain` replays a decision on a snapshot, this reads what was actually decided, including every
rejection (budget, PDB, do-not-disrupt, not cheaper, would not fit) the disruption loop recorded. Pure:
records in, records or lines out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["lines", "select"]

Record = Mapping[str, Any]


def _nodes_of(record: Record) -> set[str]:
    command = record.get("command") or {}
    named = [*(command.get("candidates") or ()), *_rejections(record)]
    if record.get("validation"):
        named.append(record["validation"])
    return {str(n.get(key)) for n in named for key in ("node", "nodeclaim") if n.get(key)}


def _rejections(record: Record) -> list[Record]:
    """The nodes that were not candidates (``ineligible``) and the candidates the method turned down."""
    return [*(record.get("ineligible") or ()), *(record.get("rejections") or ())]


def select(records: Sequence[Record], *, pod: str | None = None, node: str | None = None) -> list[Record]:
    """The records that mention ``pod`` (``namespace/name``, as unschedulable) or ``node`` (a Node or
    NodeClaim name, as a candidate or a rejection); all of them when neither is given."""
    out = []
    for record in records:
        if pod is not None and pod not in (record.get("unschedulable") or {}):
            continue
        if node is not None and node not in _nodes_of(record):
            continue
        out.append(record)
    return out


def _price(value: Any) -> str:
    return "?" if value is None else f"${float(value):.4f}/h"


def _provisioning(record: Record, pod: str | None) -> Iterable[str]:
    claims = record.get("nodeclaims") or ()
    names = ", ".join(f"{c.get('name')} ({c.get('nodepool')}, {c.get('pods')} pods)" for c in claims)
    unschedulable = record.get("unschedulable") or {}
    yield (
        f"provisioning: {record.get('pods')} pod(s), {len(claims)} NodeClaim(s)"
        + (f": {names}" if names else "")
        + (f"; {len(unschedulable)} unschedulable" if unschedulable else "")
    )
    for name, message in sorted(unschedulable.items()):
        if pod is None or name == pod:
            yield f"  pending {name}: {message}"
    for pool, why in sorted((record.get("skipped_nodepools") or {}).items()):
        yield f"  skipped NodePool {pool}: {why}"


def _disruption(record: Record, node: str | None) -> Iterable[str]:
    command = record.get("command")
    head = f"disruption {record.get('method')}: "
    if command:
        candidates = ", ".join(str(c.get("node")) for c in command.get("candidates") or ())
        replacements = " + ".join(
            f"{r.get('nodepool')} {_price(r.get('price'))}" for r in command.get("replacements") or ()
        )
        started = "started" if record.get("started") else "not started"
        yield (
            head + f"{command.get('decision')} {candidates}"
            + (f" -> {replacements}" if replacements else "")
            + f" saving {_price(command.get('savings'))} ({started})"
        )  # fmt: skip
    else:
        yield head + "nothing to do" + (" (timed out)" if record.get("timed_out") else "")
    validation = record.get("validation")
    if validation:
        yield f"  validation failed: {validation.get('node')}: {validation.get('reason')}: {validation.get('message')}"
    for rejection in _rejections(record):
        if node is None or node in (rejection.get("node"), rejection.get("nodeclaim")):
            yield f"  not {rejection.get('node')}: {rejection.get('reason')}: {rejection.get('message')}"


def lines(records: Sequence[Record], *, pod: str | None = None, node: str | None = None) -> list[str]:
    """One block per record: ``#sequence time kind: summary`` and its pods or rejections (only the
    ones about ``pod``/``node`` when given)."""
    out: list[str] = []
    for record in records:
        body = (
            list(_provisioning(record, pod))
            if record.get("kind") == "provisioning"
            else list(_disruption(record, node))
        )
        out.append(f"#{record.get('sequence')} {record.get('at')} {body[0]}")
        out.extend(body[1:])
    return out or ["no recorded decisions" + (" about that" if pod or node else "")]
