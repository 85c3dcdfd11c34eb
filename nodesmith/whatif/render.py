"""Short, table-like text for the ``simulate`` report and the ``explain`` records (``--json`` prints
their ``to_dict`` instead). Pure: records in, lines out."""

from __future__ import annotations

from collections.abc import Iterable

from nodesmith.whatif import explain, replay, simulate

__all__ = ["node_explanation", "pod_explanation", "report"]


def _price(value: float | None) -> str:
    return "?" if value is None else f"${value:.4f}/h"


def _launch(launch: replay.Launch) -> str:
    more = launch.instance_type_count - len(launch.instance_types)
    types = ", ".join(launch.instance_types) + (f", +{more} more" if more > 0 else "")
    return (
        f"  launch  {launch.nodepool:<16} {launch.instance_type or '?'} {launch.zone or '?'} "
        f"{launch.capacity_type or '?'} {_price(launch.price)}  pods={len(launch.pods)}  [{types}]"
    )


def _provisioning(title: str, run: replay.Provisioning) -> Iterable[str]:
    yield (
        f"{title}: {run.pods} pod(s) to place; {len(run.launches)} NodeClaim(s) "
        f"({_price(run.launch_cost)}), {sum(len(p) for p in run.existing.values())} on existing nodes, "
        f"{len(run.pending)} left pending" + (" (timed out)" if run.timed_out else "")
    )
    for launch in run.launches:
        yield _launch(launch)
    for pending in run.pending:
        yield f"  pending {pending.message}"


def report(result: simulate.Report) -> list[str]:
    lines = [
        "NodePools: "
        + ", ".join(
            [f"changed {n}" for n in result.changed]
            + [f"added {n}" for n in result.added]
            + [f"deleted {n}" for n in result.deleted]
        )
        if result.changed or result.added or result.deleted
        else "NodePools: no change"
    ]
    lines += _provisioning("BEFORE", result.before)
    lines += _provisioning("AFTER ", result.after)
    new = [d for d in result.drifted if d.new]
    lines.append(
        f"Drift: {len(new)} node(s) the change replaces, {len(result.drifted) - len(new)} already drifted"
    )
    for d in result.drifted:
        blocked = f"  blocked: {'; '.join(d.blocked_by)}" if d.blocked_by else ""
        lines.append(
            f"  {'new ' if d.new else 'was '} {d.node:<24} {d.nodepool:<16} {d.reason:<20} "
            f"{d.instance_type or '?'} {_price(d.price)} pods={d.pods}{blocked}"
        )
    for pool, allowed in sorted(result.drift_budgets.items()):
        lines.append(f"  budget  {pool}: {allowed} node(s) may be replaced for drift at once")
    cost = result.cost
    sign = "+" if cost.delta >= 0 else "-"
    lines.append(
        f"Cost: now {_price(cost.current)}, BEFORE {_price(cost.before)}, AFTER {_price(cost.after)} "
        f"({sign}${abs(cost.delta):.4f}/h)"
    )
    if cost.unpriced_nodes:
        lines.append(f"  unpriced (left out): {', '.join(cost.unpriced_nodes)}")
    lines += [f"note: {note}" for note in result.notes]
    return lines


def pod_explanation(result: explain.PodExplanation) -> list[str]:
    lines = [f"pod {result.pod}: {result.verdict}", f"  {result.message}"]
    if result.launch is not None:
        lines.append(_launch(result.launch))
    if result.pending is not None:
        for reason in result.pending.reasons:
            lines.append(f"  nodepool {reason['nodepool']}: {reason['constraint']}: {reason['message']}")
    for pool, role in result.nodepools.items():
        lines.append(f"  nodepool {pool}: {role}")
    return lines


def node_explanation(result: explain.NodeExplanation) -> list[str]:
    lines = [
        f"node {result.node}: {result.verdict}",
        f"  {result.message}",
        f"  nodeclaim={result.nodeclaim or '-'} nodepool={result.nodepool or '-'} "
        f"type={result.instance_type or '?'} zone={result.zone or '?'} capacity={result.capacity_type or '?'} "
        f"price={_price(result.price)} pods-to-move={result.pods}",
    ]
    for blocker in result.blockers:
        lines.append(f"  blocked: {blocker.reason.value}: {blocker.message}")
    if result.consolidatable:
        lines.append(f"  {result.consolidatable}")
    if result.drifted:
        lines.append(f"  drifted: {result.drifted}")
    if result.budgets:
        lines.append("  budgets: " + ", ".join(f"{r}={n}" for r, n in result.budgets.items()))
    if result.next_command is not None:
        involved = "includes this node" if result.next_command["includesThisNode"] else "not this node"
        lines.append(
            f"  next disruption: {result.next_command['method']}: {result.next_command['command']} ({involved})"
        )
    else:
        lines.append("  next disruption: none on this snapshot")
    return lines
