"""Runs the scheduling and what-if benchmarks' workloads at a small size and checks facts, never time."""

from __future__ import annotations

import bench_all
import bench_consolidation
import bench_scheduling as bench  # a sibling script: pytest puts this folder on sys.path
import bench_whatif
import pytest

from nodesmith import scheduling


@pytest.mark.bench
def test_diverse_pods_all_schedule_one_node_per_anti_affinity_pod() -> None:
    result = scheduling.solve(bench.snapshot(bench.diverse_pods(100)))
    assert result.pod_errors == {}
    assert result.scheduled_count() == 100
    assert len(result.new_nodeclaims) == 20, "the 20 hostname anti-affinity pods need one node each"


@pytest.mark.bench
def test_generic_pods_cost_at_least_the_lp_bound() -> None:
    pods = bench.generic_pods(100)
    result = scheduling.solve(bench.snapshot(pods))
    assert result.pod_errors == {}
    bound = bench.lp_lower_bound(pods)
    assert result.total_price() >= bound - 1e-6
    assert result.total_price() <= 1.5 * bound


@pytest.mark.bench
def test_cost_optimised_packing_side_by_side_with_karpenters() -> None:
    """Both packings on both workloads at a small size, printed as the benchmark prints them: the opt-in
    packing brings the generic workload within 1.05x of the LP bound and costs less on the diverse one."""
    generic = bench.generic_pods(1000)
    bound = bench.lp_lower_bound(generic)
    rows = []
    for workload, pods in (("generic", generic), ("diverse", bench.diverse_pods(200))):
        default = scheduling.solve(bench.snapshot(pods))
        cost = scheduling.solve(bench.snapshot(pods, packing=bench.COST_OPTIMISED))
        assert default.pod_errors == {}
        assert cost.pod_errors == {}
        rows.append((workload, len(pods), default.total_price(), cost.total_price()))
    print(
        f"\n{'workload':>8} {'pods':>5} {'default $/h':>12} {'cost-opt $/h':>13}  (generic LP bound {bound:.2f})"
    )
    for workload, count, default_price, cost_price in rows:
        print(f"{workload:>8} {count:>5} {default_price:>12.2f} {cost_price:>13.2f}")
    (_, _, generic_default, generic_cost), (_, _, diverse_default, diverse_cost) = rows
    assert bound - 1e-6 <= generic_cost <= 1.05 * bound < generic_default
    assert diverse_cost < diverse_default


@pytest.mark.bench
def test_benchmark_is_deterministic() -> None:
    a = scheduling.solve(bench.snapshot(bench.diverse_pods(50)))
    b = scheduling.solve(bench.snapshot(bench.diverse_pods(50)))
    # Pod names come from a counter, so compare everything but them.
    assert [len(c.pods) for c in a.new_nodeclaims] == [len(c.pods) for c in b.new_nodeclaims]
    assert [c.requirements for c in a.new_nodeclaims] == [c.requirements for c in b.new_nodeclaims]
    assert [c.instance_types for c in a.new_nodeclaims] == [c.instance_types for c in b.new_nodeclaims]
    assert a.total_price() == b.total_price()


@pytest.mark.bench
def test_whatif_bench_drifts_every_node_and_repacks_cheaper() -> None:
    report, pod = bench_whatif.run(20, 200, 10)
    summary = report.to_dict()
    assert len(summary["drifted"]) == 20, "every node is fake-it-7, which the change no longer allows"
    assert summary["cost"]["afterPerHour"] < summary["cost"]["currentPerHour"]
    launched = {launch["cheapest"]["instanceType"] for launch in summary["after"]["launches"]}
    assert launched
    assert "fake-it-7" not in launched
    assert pod.verdict in ("existing-node", "new-nodeclaim")


@pytest.mark.bench
def test_consolidation_bench_finds_commands_when_half_used_and_none_when_full() -> None:
    half = bench_consolidation.run(20, 200, full=False)
    assert half["single"] is not None
    assert half["multi"] is not None
    full = bench_consolidation.run(20, 200, full=True, reference=5)
    assert full["single"].command is None
    assert len(full["single"].rejections) == full["candidates"] == 20


@pytest.mark.bench
def test_the_bench_table_reads_the_figures_of_each_benchmark() -> None:
    scan = bench_all.consolidation_scan(20, 200)
    assert set(scan) == {"scan", "first"}
    assert all(seconds >= 0 for seconds in scan.values())
    solved = bench_all.child("bench_scheduling", "bench_scheduling.run_one(20, 'diverse')")
    assert solved["errors"] == 0
    assert solved["cpu_seconds"] > 0
    state = bench_all.child("bench_state", "anyio.run(bench_state.run, 20, 100, True)")
    assert state["stored"] == 120
    assert state["held_mib"] > 0
