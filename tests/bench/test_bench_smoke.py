"""Runs the scheduling and what-if benchmarks' workloads at a small size and checks facts, never time."""

from __future__ import annotations

import argparse

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
    assert set(scan) == {"scan", "first", "yardstick", "candidates"}
    assert all(seconds >= 0 for seconds in scan.values())
    assert scan["candidates"] == 20
    solved = bench_all.child("bench_scheduling", "bench_scheduling.run_one(20, 'diverse')")
    assert solved["errors"] == 0
    assert solved["cpu_seconds"] > 0
    state = bench_all.child("bench_state", "anyio.run(bench_state.run, 20, 100, True)")
    assert state["stored"] == 120
    assert state["held_mib"] > 0


#: The groups that need no control plane, at sizes that take seconds.
TINY = bench_all.Sizes(
    solves=(20,),
    scale=(20, 100),
    generic=(100,),
    diverse_cost=(100,),
    consolidation=((20, 200),),
    state=(20, 100),
    coldsync=(1, 2, 0.0),
    idle=(),
    idle_seconds=0.0,
    provisioning=(),
    one_per_node=(),
)


@pytest.mark.bench
def test_the_bench_table_has_a_row_per_goal_and_the_growth_comes_from_two_solves_of_the_run() -> None:
    bench = bench_all.run(TINY, bench_all.only("state,consolidation,cost,scheduling"))
    measures = [row[0] for row in bench.table]
    assert len(measures) == 8, measures  # 2 solves + growth, 2 cost, scan + first command, state
    assert not any("nan" in cell for row in bench.table for cell in row), bench.table
    growth = next(row for row in bench.table if row[0].startswith("solve growth 20 -> 100"))
    ratio = (
        bench.solves[(100, "diverse", "karpenter")]["cpu_seconds"]
        / bench.solves[(20, "diverse", "karpenter")]["cpu_seconds"]
    )
    assert growth[1].startswith(f"{ratio:.2f}x;")
    assert growth[2].startswith("<= 5.5x")
    generic = next(row for row in bench.table if row[0].startswith("generic 100 pods"))
    default, optimised = (
        bench.solves[(100, "generic", packing)] for packing in ("karpenter", "cost-optimised")
    )
    assert (
        generic[1]
        == f"{default['price'] / default['lp_bound']:.3f}x; {optimised['price'] / optimised['lp_bound']:.3f}x"
    )


@pytest.mark.bench
def test_the_bench_table_runs_only_the_groups_asked_for_in_their_order() -> None:
    assert bench_all.only("state, cost") == ["cost", "state"]
    with pytest.raises(argparse.ArgumentTypeError, match="unknown group"):
        bench_all.only("cost,nosuchgroup")
    with pytest.raises(argparse.ArgumentTypeError):
        bench_all.only(",")
    assert bench_all.run(TINY, []).table == []


@pytest.mark.bench
def test_where_the_time_goes_reads_the_timeline_solve_and_writes_of_a_provisioning_run() -> None:
    run = {
        "timeline": {
            "first NodeClaim": 2.0,
            "last NodeClaim": 3.0,
            "last Registered": float("nan"),
            "last pod Running": 9.0,
        },
        "solve_seconds": 0.25,
        "batches": 2.0,
        "writes": {"nodeclaims POST": 10, "pods/binding POST": 1000},
    }
    assert bench_all.where_time_goes(run) == (
        "first claim 2s, last claim 3s, Running 9s, solve 0.25s/2 batches, 1,010 API writes"
    )
