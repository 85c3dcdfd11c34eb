"""Every benchmark's headline figures in one table (``make bench``), next to Karpenter's where they exist.

Each benchmark runs in its own subprocess (so peak RSS is its own) through the same functions its script
runs; this file only collects and prints. Sizes are the issue's targets by default; ``--quick`` runs the
small sizes (minutes instead of an hour on a shared 2-core machine). CPU seconds are the primary figure
where a benchmark reports them: the machine is shared, so wall times are noisy.

Karpenter column: the scheduling figures are those recorded in ``bench_scheduling.KARPENTER`` (Karpenter's
Go scheduling benchmark on the same workload); the idle cost is what Karpenter's users report (sigs#2972,
about 3 vCPU at 500 nodes), not measured on this machine, and the table says so. The provisioning rows run
real Karpenter (its kwok provider, built with Go from the module proxy on first use; see
``bench_provisioning.py --with-karpenter``) on a fresh control plane after the floor and nodesmith; without
Go or the proxy the cell says why it was not measured.

    uv run python tests/bench/bench_all.py [--quick]

Never asserts a time; it only prints figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
from typing import Any

HERE = pathlib.Path(__file__).parent


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
    """The worst-case single-node scan and the first command, parsed from bench_consolidation's output."""
    proc = subprocess.run(
        [sys.executable, str(HERE / "bench_consolidation.py"), "--nodes", str(nodes), "--pods", str(pods)],
        check=True,
        capture_output=True,
        text=True,
    )
    out: dict[str, float] = {}
    for key, label in (("scan", r"single-node \(scan of all"), ("first", r"first command")):
        match = re.search(label + r".*?([0-9.]+) s wall\s+([0-9.]+) s cpu", proc.stdout)
        if match:
            out[key] = float(match.group(2))
    return out


def karpenter_binary() -> tuple[bool, str]:
    """Whether Karpenter's kwok controller is there or can be built now (Go and the module proxy), and if
    not, why: the provisioning rows then say so instead of a figure."""
    from nodesmith.dev import binaries, karpenter

    try:
        karpenter.ensure()
    except (binaries.BinariesUnavailableError, OSError) as err:
        return False, str(err).splitlines()[0]
    return True, ""


def provisioning_row(size: int, karpenter: bool, why_not: str) -> tuple[str, str, str]:
    """Floor, nodesmith and (if ``karpenter``) Karpenter each on a fresh control plane: wall times and ratios."""
    p = child("bench_provisioning", f"bench_provisioning.measure({size}, karpenter={karpenter})")
    floor = p["floor"]["wall_seconds"]
    ratio = p["nodesmith"]["wall_seconds"] / floor
    if karpenter:
        theirs = p["karpenter"]["wall_seconds"]
        measured = f"{theirs:.0f} s / {floor:.0f} s = {theirs / floor:.2f}x (measured here)"
    else:
        measured = f"not measured ({why_not})"
    return (
        f"{size:,} pending pods to Running: autoscaler / floor (wall s)",
        f"{p['nodesmith']['wall_seconds']:.0f} s / {floor:.0f} s = {ratio:.2f}x",
        measured + ("; < 120 s (its e2e bound)" if size == 1000 else ""),
    )


def measured(table: list[tuple[str, str, str]], row: tuple[str, str, str]) -> None:
    """Add ``row`` and print it at once, so a run stopped part-way still shows what it measured."""
    table.append(row)
    print(" | ".join(cell for cell in row if cell), flush=True)


def rows(quick: bool) -> list[tuple[str, str, str]]:
    """(measure, nodesmith, Karpenter) rows, each benchmark run as it goes."""
    import bench_scheduling  # sibling script

    table: list[tuple[str, str, str]] = []
    for size in (1000, 5000) if quick else (1000, 5000, 20000, 100000):
        r = child("bench_scheduling", f"bench_scheduling.run_one({size}, 'diverse')")
        karpenter = bench_scheduling.KARPENTER.get(size)
        measured(
            table,
            (
                f"solve {size:,} diverse pods (CPU s; peak RSS)",
                f"{r['cpu_seconds']:.2f} s; {r['peak_rss_mb']:.0f} MB",
                f"{karpenter:.2f} s (recorded)" if karpenter else "",
            ),
        )
    nodes, pods = (500, 5000) if quick else (5000, 50000)
    c = consolidation_scan(nodes, pods)
    measured(
        table,
        (
            f"consolidation scan, {nodes:,} nodes none movable (CPU s); first command",
            f"{c.get('scan', float('nan')):.2f} s; {c.get('first', float('nan')):.2f} s",
            "",
        ),
    )
    nodes, pods = (1000, 15000) if quick else (10000, 150000)
    s = child("bench_state", f"anyio.run(bench_state.run, {nodes}, {pods}, True)")
    measured(
        table,
        (
            f"state cache {nodes:,} nodes + {pods:,} pods (held; RSS added)",
            f"{s['held_mib']:.0f} MiB ({s['held_mib'] * 1024 / (nodes + pods):.1f} KiB/object); "
            f"+{s['rss_delta_mib']:.0f} MiB",
            "",
        ),
    )
    for nodes, pods in ((50, 500),) if quick else ((500, 2000), (5000, 5000)):
        k = child(
            "bench_cluster",
            f"bench_cluster.measure({nodes}, {pods}, 60.0)",
        )
        measured(
            table,
            (
                f"cold sync, real API server, {nodes:,} nodes + {pods:,} pods (daemon CPU s; wall)",
                f"{k['sync_cpu_s']:.1f} s; {k['sync_wall_s']:.1f} s",
                "",
            ),
        )
        measured(
            table,
            (
                f"idle daemon, {nodes:,} nodes (CPU s per minute; RSS)",
                f"{k['idle_cpu_s_per_min']:.2f} s/min; {k['idle_rss_mib']:.0f} MiB",
                "~180 s/min at 500 nodes (users' reports)" if nodes == 500 else "",
            ),
        )
    karpenter, why_not = karpenter_binary()
    for size in (100,) if quick else (1000, 5000):
        measured(table, provisioning_row(size, karpenter, why_not))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    table = rows(args.quick)
    width = max(len(r[0]) for r in table)
    value = max(len(r[1]) for r in table)
    print(f"{'measure':<{width}}  {'nodesmith':<{value}}  Karpenter")
    for measure, ours, theirs in table:
        print(f"{measure:<{width}}  {ours:<{value}}  {theirs}")


if __name__ == "__main__":
    main()
