"""Every goal of the performance issue in one table (``make bench``), next to Karpenter's figures where they exist.

Each benchmark runs in its own subprocess (so peak RSS is its own) through the same functions its script
runs; this file only collects and prints. Sizes are the issue's targets by default; ``--quick`` runs the
same rows at small sizes (minutes instead of hours on a shared 2-core machine). CPU seconds are the primary
figure where a benchmark reports them: the machine is shared, so wall times are noisy. Each row prints as
soon as it is measured (a run stopped part-way still shows what it measured), then the whole table at the
end: measure, nodesmith's figure, the goal or yardstick the issue judges it against, Karpenter's figure.

Groups, in the order they run (``--only GROUP[,GROUP]`` runs only those, e.g. ``--only cost,state``):

- ``scheduling`` (goal 2): diverse-pod solves, CPU s and peak RSS, and the growth from the scale pair's
  smaller size to its larger one in the same run (goal <= 5.5x for 5x the pods; < 1 GiB at 100,000 pods);
- ``cost`` (goal 3): generic workload cost / LP bound for Karpenter's packing (the default) and
  ``nodesmith.io/packing: cost-optimised`` (goal <= 1.05x), and the diverse workload's cost both ways;
- ``consolidation`` (goal 1): full single-node scan of a cluster where nothing can move (CPU s) against the
  yardstick of one solve of its bound pods, and the first command from the snapshot (half-used cluster);
- ``state`` (goal 2): the cluster state cache holding N nodes and M pods (goal < 600 MiB);
- ``coldsync`` (goal 2): the daemon's cold sync against the real API server, seeded through etcd with
  static nodes (``bench_cluster.py --seed etcd-static``): wall, RSS once synced and after an idle window
  (goals < 60 s, < 600 MiB), and one plain list of the pods (the API server's own share);
- ``idle`` (goal 5): cold sync and idle cost per minute with objects created through the API server;
- ``provisioning`` (goal 4): pending pods to Running, floor / nodesmith / Karpenter (goal <= 1.1x the floor),
  each autoscaler against the launch floor (the floor's nodes created by the benchmark with the pods, no
  autoscaler: the control plane's own cost of making nodes), and where each autoscaler's time goes
  (timeline, solve, API writes);
- ``onepernode`` (goal 4): the same for ``bench_provisioning.py --shape one-per-node``.

Karpenter column: the scheduling figures and node counts are those recorded in ``bench_scheduling`` (Karpenter's
Go scheduling benchmark on the same workload, on this machine) and the table says "recorded"; the idle cost
is what Karpenter's users report (sigs#2972, about 3 vCPU at 500 nodes), not measured here. The provisioning
rows run real Karpenter (its kwok provider, built with Go from the module proxy on first use; see
``bench_provisioning.py --with-karpenter``) on a fresh control plane after the floor and nodesmith; without
Go or the proxy the cell says why it was not measured.

    uv run python tests/bench/bench_all.py [--quick] [--only GROUP[,GROUP]]

Never asserts a time; it only prints figures.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import attrs

HERE = pathlib.Path(__file__).parent
COST_OPTIMISED = "cost-optimised"  # bench_scheduling.COST_OPTIMISED, without importing it here
Row = tuple[str, str, str, str]  # measure, nodesmith, goal or yardstick, Karpenter


@attrs.frozen
class Sizes:
    """What each group measures at; ``FULL`` is the issue's sizes, ``QUICK`` the same rows small."""

    solves: tuple[int, ...]  # diverse pods per solve
    scale: tuple[int, int]  # the growth pair, solved in the same run (the issue's: 20,000 -> 100,000)
    generic: tuple[int, ...]  # generic pods, against the LP bound
    diverse_cost: tuple[int, ...]  # diverse pods, default vs cost-optimised packing
    consolidation: tuple[tuple[int, int], ...]  # (nodes, pods)
    state: tuple[int, int]
    coldsync: tuple[int, int, float]  # nodes, pods, idle seconds observed after the sync
    idle: tuple[tuple[int, int], ...]
    idle_seconds: float
    provisioning: tuple[int, ...]
    one_per_node: tuple[int, ...]


FULL = Sizes(
    solves=(1000, 5000, 20000, 100000),
    scale=(20000, 100000),
    generic=(1000, 20000),
    diverse_cost=(1000, 5000, 20000),
    consolidation=((500, 5000), (5000, 50000)),
    state=(10000, 150000),
    coldsync=(10000, 150000, 60.0),
    idle=((500, 2000), (5000, 5000)),
    idle_seconds=60.0,
    provisioning=(1000, 5000),
    one_per_node=(1000,),
)
QUICK = Sizes(
    solves=(1000, 5000),
    scale=(1000, 5000),
    generic=(100, 1000),
    diverse_cost=(1000,),
    consolidation=((50, 500), (500, 5000)),
    state=(1000, 15000),
    coldsync=(100, 1500, 10.0),
    idle=((50, 500),),
    idle_seconds=60.0,
    provisioning=(100,),
    one_per_node=(20,),
)


def child(module: str, expression: str) -> Any:
    """Evaluate ``expression`` after importing the sibling ``module`` in a fresh interpreter; its JSON."""
    code = (
        f"import sys, json, anyio; sys.path.insert(0, {str(HERE)!r}); import {module}; "
        f"print('@@' + json.dumps({expression}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("@@")]
    return json.loads(lines[-1][2:])


def consolidation_scan(nodes: int, pods: int) -> dict[str, float]:
    """CPU seconds of the full scan (``scan``), its yardstick and the first command (half-used cluster),
    from ``bench_consolidation.figures`` in a subprocess of their own."""
    return dict(child("bench_consolidation", f"bench_consolidation.figures({nodes}, {pods})"))


def karpenter_binary() -> tuple[bool, str]:
    """Whether Karpenter's kwok controller is there or can be built now (Go and the module proxy), and if
    not, why: the provisioning rows then say so instead of a figure."""
    from nodesmith.dev import binaries, karpenter

    try:
        karpenter.ensure()
    except (binaries.BinariesUnavailableError, OSError) as err:
        return False, str(err).splitlines()[0]
    return True, ""


def where_time_goes(run: dict[str, Any]) -> str:
    """One cell from what ``bench_provisioning`` measured for an autoscaler's run: the timeline steps it
    controls or waits for (seconds from the Deployments' creation), its solve, and the API writes."""
    steps = (
        ("first NodeClaim", "first claim"),
        ("last NodeClaim", "last claim"),
        ("last Registered", "registered"),
        ("last pod scheduled", "scheduled"),
        ("last pod Running", "Running"),
    )
    timeline = run.get("timeline") or {}
    parts = [
        f"{short} {timeline[key]:.0f}s"
        for key, short in steps
        if key in timeline and not math.isnan(timeline[key])
    ]
    if "solve_seconds" in run:
        parts.append(f"solve {run['solve_seconds']:.2f}s/{run['batches']:.0f} batches")
    writes = run.get("writes") or {}
    if writes:
        parts.append(f"{sum(writes.values()):,} API writes")
    return ", ".join(parts)


@attrs.define
class Bench:
    """One ``make bench`` run: the sizes, the rows so far, and the solves already measured (the growth
    ratio and the cost rows reuse the scheduling group's solves rather than run them again)."""

    sizes: Sizes
    table: list[Row] = attrs.field(factory=list)
    solves: dict[tuple[int, str, str], dict[str, Any]] = attrs.field(factory=dict)
    karpenter: tuple[bool, str] | None = None

    def measured(self, measure: str, ours: str, goal: str = "", theirs: str = "") -> None:
        """Add a row and print it at once, so a run stopped part-way still shows what it measured."""
        row = (measure, ours, goal, theirs)
        self.table.append(row)
        print(" | ".join(cell for cell in row if cell), flush=True)

    def solve(self, size: int, workload: str, packing: str = "karpenter") -> dict[str, Any]:
        key = (size, workload, packing)
        if key not in self.solves:
            self.solves[key] = child(
                "bench_scheduling", f"bench_scheduling.run_one({size}, {workload!r}, {packing!r})"
            )
        return self.solves[key]

    def karpenter_available(self) -> tuple[bool, str]:
        if self.karpenter is None:
            self.karpenter = karpenter_binary()
        return self.karpenter


def scheduling(bench: Bench) -> None:
    import bench_scheduling  # sibling script

    for size in sorted({*bench.sizes.solves, *bench.sizes.scale}):
        r = bench.solve(size, "diverse")
        karpenter = bench_scheduling.KARPENTER.get(size)
        bench.measured(
            f"solve {size:,} diverse pods (CPU s; peak RSS)",
            f"{r['cpu_seconds']:.2f} s; {r['peak_rss_mb']:.0f} MB",
            theirs=f"{karpenter:.2f} s (recorded)" if karpenter else "",
        )
    small, large = bench.sizes.scale
    a, b = bench.solve(small, "diverse"), bench.solve(large, "diverse")
    bench.measured(
        f"solve growth {small:,} -> {large:,} diverse pods, same run (CPU ratio; peak RSS at {large:,})",
        f"{b['cpu_seconds'] / a['cpu_seconds']:.2f}x; {b['peak_rss_mb']:.0f} MB",
        f"<= {1.1 * large / small:.1f}x (linear + 10%); < 1024 MB",
        "times out after ~60 s, ~13,000 pods here (recorded)" if large >= 20000 else "",
    )


def cost(bench: Bench) -> None:
    import bench_scheduling  # sibling script

    for size in bench.sizes.generic:
        d, c = bench.solve(size, "generic"), bench.solve(size, "generic", COST_OPTIMISED)
        bench.measured(
            f"generic {size:,} pods: cost / LP bound, default; cost-optimised",
            f"{d['price'] / d['lp_bound']:.3f}x; {c['price'] / c['lp_bound']:.3f}x",
            "cost-optimised <= 1.05x",
            "= default (same packing)",
        )
    for size in bench.sizes.diverse_cost:
        d, c = bench.solve(size, "diverse"), bench.solve(size, "diverse", COST_OPTIMISED)
        nodes = bench_scheduling.KARPENTER_NODES.get(size)
        saving = 100 * (1 - c["price"] / d["price"]) if d["price"] else float("nan")
        bench.measured(
            f"diverse {size:,} pods: $/h (nodes), default; cost-optimised",
            f"{d['price']:.2f} ({d['nodes']}); {c['price']:.2f} ({c['nodes']}), {saving:.1f}% cheaper"
            + (f"; {c['errors']} unplaced" if c["errors"] else ""),
            "cost-optimised < Karpenter's cost (= default's)",
            f"{nodes} nodes (recorded)" if nodes else "",
        )


def consolidation(bench: Bench) -> None:
    for nodes, pods in bench.sizes.consolidation:
        c = consolidation_scan(nodes, pods)
        yardstick = (
            f"one solve of the {pods:,} bound pods {c['yardstick']:.2f} s ({c['scan'] / c['yardstick']:.1f}x)"
        )
        bench.measured(
            f"consolidation full scan, {nodes:,} nodes / {pods:,} pods, none movable (CPU s)",
            f"{c['scan']:.2f} s ({c['candidates']:.0f} candidates)",
            ("< 10 s; " if nodes >= 5000 else "<= ") + yardstick,
        )
        bench.measured(
            f"consolidation first command, {nodes:,} nodes / {pods:,} pods half used (CPU s)",
            f"{c['first']:.2f} s",
            "< 1 s",
        )


def state(bench: Bench) -> None:
    nodes, pods = bench.sizes.state
    s = child("bench_state", f"anyio.run(bench_state.run, {nodes}, {pods}, True)")
    bench.measured(
        f"state cache {nodes:,} nodes + {pods:,} pods (held; RSS added)",
        f"{s['held_mib']:.0f} MiB ({s['held_mib'] * 1024 / (nodes + pods):.1f} KiB/object); "
        f"+{s['rss_delta_mib']:.0f} MiB",
        "< 600 MiB at 10,000 + 150,000",
    )


def coldsync(bench: Bench) -> None:
    nodes, pods, idle = bench.sizes.coldsync
    k = child("bench_cluster", f"bench_cluster.measure({nodes}, {pods}, {idle}, 'etcd-static')")
    coldsync_rows(bench, nodes, pods, idle, k)


def coldsync_rows(bench: Bench, nodes: int, pods: int, idle: float, k: dict[str, Any]) -> None:
    """The rows of one ``bench_cluster`` run seeded through etcd (``k``, what its ``run`` returns)."""
    bench.measured(
        f"cold sync, real API server, etcd-seeded {nodes:,} static nodes + {pods:,} pods "
        f"(wall; daemon RSS synced, after {idle:.0f} s idle)",
        f"{k['sync_wall_s']:.1f} s ({k['sync_cpu_s']:.1f} CPU s); "
        f"{k['synced_rss_mib']:.0f} MiB, {k['idle_rss_mib']:.0f} MiB (peak {k['peak_rss_mib']:.0f} MiB)",
        "< 60 s; < 600 MiB",
    )
    servers = "".join(
        f"; {name} {k[f'{name}_rss_mib']:.0f} MiB"
        for name in ("kube-apiserver", "etcd")
        if f"{name}_rss_mib" in k
    )
    bench.measured(
        f"  API server's share: one plain list of the {pods:,} pods (wall; server + etcd CPU s; RSS synced)",
        f"{k['plain_list_s']:.1f} s; {k['plain_list_server_cpu_s']:.1f} s{servers}",
    )


def idle(bench: Bench) -> None:
    for nodes, pods in bench.sizes.idle:
        k = child("bench_cluster", f"bench_cluster.measure({nodes}, {pods}, {bench.sizes.idle_seconds})")
        bench.measured(
            f"cold sync, real API server, {nodes:,} nodes + {pods:,} pods (daemon CPU s; wall)",
            f"{k['sync_cpu_s']:.1f} s; {k['sync_wall_s']:.1f} s",
        )
        bench.measured(
            f"idle daemon, {nodes:,} nodes (CPU s per minute; RSS)",
            f"{k['idle_cpu_s_per_min']:.2f} s/min; {k['idle_rss_mib']:.0f} MiB",
            "report and reduce",
            "~180 s/min at 500 nodes (users' reports)" if nodes == 500 else "",
        )


def provisioning_rows(bench: Bench, size: int, shape: str) -> None:
    """Floor, launch floor, nodesmith and (if it can be built) Karpenter each on a fresh control plane:
    wall times and ratios, then where nodesmith's time went."""
    karpenter, why_not = bench.karpenter_available()
    p = child(
        "bench_provisioning",
        f"bench_provisioning.measure({size}, {karpenter}, {shape!r}, launch_floor=True)",
    )
    floor = p["floor"]["wall_seconds"]
    ours = p["nodesmith"]["wall_seconds"]
    if karpenter:
        theirs = p["karpenter"]["wall_seconds"]
        measured = f"{theirs:.0f} s / {floor:.0f} s = {theirs / floor:.2f}x (measured here)"
    else:
        measured = f"not measured ({why_not})"
    label = f"{size:,} pending pods" + (" one per node" if shape == "one-per-node" else "")
    bench.measured(
        f"{label} to Running: autoscaler / floor (wall s)",
        f"{ours:.0f} s / {floor:.0f} s = {ours / floor:.2f}x",
        "<= 1.1x" + ("; < 120 s (Karpenter's e2e bound)" if size == 1000 and shape == "basic" else ""),
        measured,
    )
    launch = p["launch floor"]["wall_seconds"]
    bench.measured(
        "  yardstick: launch floor, the floor's nodes made with the pods, no autoscaler (wall s); "
        "autoscaler / it",
        f"{launch:.0f} s = {launch / floor:.2f}x the floor; {ours / launch:.2f}x",
        "",
        f"{p['karpenter']['wall_seconds'] / launch:.2f}x" if karpenter else "",
    )
    bench.measured(
        f"  where the time goes, {label} (s from creation)",
        where_time_goes(p["nodesmith"]),
        "",
        where_time_goes(p["karpenter"]) if karpenter else "",
    )


def provisioning(bench: Bench) -> None:
    for size in bench.sizes.provisioning:
        provisioning_rows(bench, size, "basic")


def one_per_node(bench: Bench) -> None:
    for size in bench.sizes.one_per_node:
        provisioning_rows(bench, size, "one-per-node")


GROUPS: dict[str, Callable[[Bench], None]] = {
    "scheduling": scheduling,
    "cost": cost,
    "consolidation": consolidation,
    "state": state,
    "coldsync": coldsync,
    "idle": idle,
    "provisioning": provisioning,
    "onepernode": one_per_node,
}


def only(text: str) -> list[str]:
    """``--only``'s value: known group names, comma-separated, returned in the order the groups run."""
    asked = {name.strip() for name in text.split(",") if name.strip()}
    unknown = asked - GROUPS.keys()
    if unknown or not asked:
        raise argparse.ArgumentTypeError(
            f"unknown group(s) {', '.join(sorted(unknown)) or '(none given)'}; groups: {', '.join(GROUPS)}"
        )
    return [name for name in GROUPS if name in asked]


def run(sizes: Sizes, groups: list[str]) -> Bench:
    """Measure ``groups`` at ``sizes``, printing each row as it comes."""
    bench = Bench(sizes)
    for name in groups:
        GROUPS[name](bench)
    return bench


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument(
        "--only", type=only, default=list(GROUPS), metavar="GROUP[,GROUP]", help=f"of: {', '.join(GROUPS)}"
    )
    args = parser.parse_args()
    table = run(QUICK if args.quick else FULL, args.only).table
    header = ("measure", "nodesmith", "goal / yardstick", "Karpenter")
    # Sub-rows (indented: where the time goes, the API server's share) may overflow their columns rather
    # than widen the whole table.
    main_rows = [row for row in (header, *table) if not row[0].startswith(" ")]
    widths = [max(len(row[i]) for row in main_rows) for i in range(3)]
    for row in (header, *table):
        print(
            "  ".join(f"{cell:<{width}}" for cell, width in zip(row[:3], widths, strict=True)) + "  " + row[3]
        )


if __name__ == "__main__":
    main()
