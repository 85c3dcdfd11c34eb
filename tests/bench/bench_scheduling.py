"""Scheduling benchmark: Karpenter's "diverse pods" over 400 fake instance types (spec 10.2).

Run: ``uv run python tests/bench/bench_scheduling.py [--sizes 1,100,1000,5000,20000] [--generic-sizes ...]``.
Each size runs in a fresh subprocess so peak RSS is per size. Prints a table (wall seconds, CPU seconds
-- what the solve itself spent, comparable on a shared machine --, pods/s, nodes, $/h, peak RSS) and, for
the generic-pods workload, the cost against an LP lower bound (the LP relaxation of the bin packing:
fractional machines of any type covering total cpu, memory and pods, solved with scipy's HiGHS).
Prints, never asserts time; ``test_bench_smoke.py`` checks correctness facts at a small size.

Both tables run each size twice: Karpenter's packing (the default, the same decisions Karpenter makes) and
the NodePool opted into ``nodesmith.io/packing: cost-optimised`` (`nodesmith.scheduling.packing`; its
seconds include the Karpenter-packing run it compares itself with).

Workload (seeded ``random.Random(42)``): one fifth each of generic pods, zonal spread (maxSkew 1), hostname
spread (maxSkew 1), zonal self-affinity and hostname self-anti-affinity; CPU ∈ {100m, 250m, 500m, 1, 1.5},
memory ∈ {100Mi, 256Mi, 512Mi, 1Gi, 2Gi, 4Gi}; labels and selectors drawn from seven values, as in
Karpenter's ``scheduling_benchmark_test.go``.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from typing import Any

from nodesmith import scheduling
from nodesmith.testing import factories

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"
CPUS = ("100m", "250m", "500m", "1", "1500m")
MEMORIES = ("100Mi", "256Mi", "512Mi", "1Gi", "2Gi", "4Gi")
VALUES = ("a", "b", "c", "d", "e", "f", "g")
KARPENTER = {1000: 0.89, 5000: 5.1, 10000: 12.1, 20000: 35.7}
COST_OPTIMISED = "cost-optimised"
KARPENTER_NODES = {1000: 200, 5000: 1000, 10000: 2000, 20000: 4000}


def _sized(rng: random.Random) -> dict[str, Any]:
    return {"cpu": rng.choice(CPUS), "memory": rng.choice(MEMORIES)}


def diverse_pods(count: int, seed: int = 42) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    fifth = count // 5
    out: list[dict[str, Any]] = []
    out += generic_pods(fifth, rng)
    for key in (ZONE, HOSTNAME):
        for _ in range(fifth):
            out.append(
                factories.pod(
                    labels={"my-label": rng.choice(VALUES)},
                    spread=[factories.spread(key, {"my-label": rng.choice(VALUES)})],
                    **_sized(rng),
                )
            )
    for _ in range(fifth):
        affinity_labels = {"my-affinity": rng.choice(VALUES)}
        out.append(
            factories.pod(
                labels=affinity_labels,
                affinity=[factories.affinity_term(ZONE, affinity_labels)],
                **_sized(rng),
            )
        )
    for _ in range(fifth):
        out.append(
            factories.pod(
                labels={"app": "nginx"},
                anti_affinity=[factories.affinity_term(HOSTNAME, {"app": "nginx"})],
                **_sized(rng),
            )
        )
    out += generic_pods(count - len(out), rng)
    return out


def generic_pods(count: int, rng: random.Random | None = None) -> list[dict[str, Any]]:
    rng = rng or random.Random(42)
    return [factories.pod(labels={"my-label": rng.choice(VALUES)}, **_sized(rng)) for _ in range(count)]


def snapshot(
    pod_dicts: list[dict[str, Any]], instance_types: int = 400, packing: str = "karpenter"
) -> scheduling.SchedulingInput:
    return scheduling.SchedulingInput(
        pods=pod_dicts,
        templates=[
            factories.template("default", factories.fake_instance_types(instance_types), packing=packing)
        ],
    )


def lp_lower_bound(pod_dicts: list[dict[str, Any]], instance_types: int = 400) -> float:
    """min Σ price_t·x_t  s.t.  Σ allocatable_t·x_t ≥ Σ requests (cpu, memory, pods), x ≥ 0."""
    from scipy.optimize import linprog  # dev dependency, only for the bound

    types = factories.fake_instance_types(instance_types)
    parsed = [scheduling.parse_pod(p) for p in pod_dicts]
    names = ("cpu", "memory", "pods")
    demand = [sum(p.requests.get(n, 0) for p in parsed) / 1e6 for n in names]
    prices = [min(o.price for o in it.offerings if o.available) for it in types]
    a_ub = [[-it.allocatable.get(n, 0) / 1e6 for it in types] for n in names]
    result = linprog(prices, A_ub=a_ub, b_ub=[-d for d in demand], bounds=(0, None), method="highs")
    if not result.success:
        raise RuntimeError(result.message)
    return float(result.fun)


def run_one(size: int, workload: str, packing: str = "karpenter") -> dict[str, Any]:
    pod_dicts = diverse_pods(size) if workload == "diverse" else generic_pods(size)
    snap = snapshot(pod_dicts, packing=packing)
    start, cpu = time.perf_counter(), time.process_time()
    result = scheduling.solve(snap)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    out: dict[str, Any] = {
        "workload": workload,
        "size": size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "scheduled": result.scheduled_count(),
        "errors": len(result.pod_errors),
        "nodes": len(result.new_nodeclaims),
        "price": result.total_price(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if workload == "generic":
        out["lp_bound"] = lp_lower_bound(pod_dicts)
    return out


def _spawn(size: int, workload: str, packing: str = "karpenter") -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, "--one", str(size), "--workload", workload, "--packing", packing],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,100,1000,5000,20000")
    parser.add_argument("--generic-sizes", default="100,1000,5000,20000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="diverse", help=argparse.SUPPRESS)
    parser.add_argument("--packing", default="karpenter", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.workload, args.packing)))
        return
    print("diverse pods, 400 instance types, 1 NodePool")
    print(
        f"{'pods':>7} {'seconds':>9} {'cpu s':>9} {'pods/s':>9} {'nodes':>6} {'$/h':>10} {'unplaced':>8} {'peak RSS MB':>11}  Karpenter (s / nodes)"
    )
    sizes = [int(s) for s in args.sizes.split(",") if s]
    defaults = {}
    for size in sizes:
        r = defaults[size] = _spawn(size, "diverse")
        ref = f"{KARPENTER[size]:.2f} / {KARPENTER_NODES[size]}" if size in KARPENTER else ""
        print(
            f"{size:>7} {r['seconds']:>9.3f} {r['cpu_seconds']:>9.3f} {size / r['seconds']:>9.0f} {r['nodes']:>6} "
            f"{r['price']:>10.2f} {r['errors']:>8} {r['peak_rss_mb']:>11.0f}  {ref}"
        )
    print()
    print("diverse pods: Karpenter's packing (default) vs nodesmith.io/packing: cost-optimised")
    print(
        f"{'pods':>7} {'default $/h':>12} {'nodes':>6} {'cost-opt $/h':>13} {'nodes':>6} {'unplaced':>8} "
        f"{'saving':>7} {'cost-opt s':>10} {'cpu s':>7} {'default cpu s':>13}"
    )
    for size in sizes:
        d, c = defaults[size], _spawn(size, "diverse", COST_OPTIMISED)
        print(
            f"{size:>7} {d['price']:>12.2f} {d['nodes']:>6} {c['price']:>13.2f} {c['nodes']:>6} {c['errors']:>8} "
            f"{_saving(d['price'], c['price']):>7} {c['seconds']:>10.3f} {c['cpu_seconds']:>7.3f} {d['cpu_seconds']:>13.3f}"
        )
    print()
    print("generic pods, cost against the LP lower bound: default vs cost-optimised packing")
    print(
        f"{'pods':>7} {'seconds':>9} {'pods/s':>9} {'nodes':>6} {'$/h':>10} {'LP bound':>10} {'ratio':>7}"
        f" {'cost-opt s':>10} {'nodes':>6} {'$/h':>10} {'ratio':>7}"
    )
    for size in [int(s) for s in args.generic_sizes.split(",") if s]:
        r = _spawn(size, "generic")
        c = _spawn(size, "generic", COST_OPTIMISED)
        print(
            f"{size:>7} {r['seconds']:>9.3f} {size / r['seconds']:>9.0f} {r['nodes']:>6} {r['price']:>10.2f} "
            f"{r['lp_bound']:>10.2f} {r['price'] / r['lp_bound']:>7.3f}"
            f" {c['seconds']:>10.3f} {c['nodes']:>6} {c['price']:>10.2f} {c['price'] / c['lp_bound']:>7.3f}"
        )


def _saving(default: float, cost: float) -> str:
    return f"{100 * (1 - cost / default):.1f}%" if default else "-"


if __name__ == "__main__":
    main()
