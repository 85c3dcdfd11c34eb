"""deploy/grafana/nodesmith.json charts only series nodesmith exports.

Two checks: every ``nodesmith_*`` name in the dashboard's PromQL is (1) an instrument declared in the code
(``meter.create_<kind>("nodesmith_...")``) with the suffix Prometheus exposition gives that kind
(counters ``_total``, histograms ``_bucket``/``_sum``/``_count``), and (2) present in the real ``/metrics``
text, rendered by the runtime's telemetry set-up in a fresh process after recording into every instrument
(and publishing into every `nodesmith.metrics.Readings`, which feeds an observable gauge).
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
from typing import Any

from nodesmith.testing import dashboard as dashboard_series

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "nodesmith.json"
SOURCES = [ROOT / "nodesmith", ROOT / "providers"]
DECLARATION = re.compile(
    r"create_(counter|histogram|up_down_counter|gauge|observable_gauge|observable_counter|"
    r"observable_up_down_counter)\(\s*(?:name=)?\"(nodesmith_\w+)\""
)
SUFFIXES = {
    "counter": ("_total",),
    "observable_counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
}
# Modules that declare instruments at import time (the fresh process imports them all).
INSTRUMENT_MODULES = [
    "nodesmith.metrics",
    "nodesmith.reconcilers.interruption",
    "nodesmith.runtime.app",
    "nodesmith_aws.interruption",
]
RENDER = """
import importlib, sys
from nodesmith import metrics
from nodesmith.runtime import telemetry
telemetry.setup()
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    for value in vars(module).values():
        if isinstance(value, metrics.Readings):  # what an observable gauge's callback reports
            value.publish([(1, {})])
            continue
        for method in ("add", "record", "set"):
            if type(value).__module__.startswith("opentelemetry") and hasattr(value, method):
                getattr(value, method)(1)
                break
sys.stdout.write(telemetry.prometheus_text().decode())
"""


def expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        query = node.get("query")
        if isinstance(query, dict) and isinstance(query.get("query"), str):
            found.append(query["query"])
        return found + [e for v in node.values() for e in expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in expressions(v)]
    return []


def dashboard_metrics() -> set[str]:
    exprs = expressions(json.loads(DASHBOARD.read_text()))
    assert len(exprs) > 20
    return {m for e in exprs for m in re.findall(r"\bnodesmith_[a-z0-9_]+", e)}


def declared_series() -> set[str]:
    series: set[str] = set()
    for root in SOURCES:
        for path in root.rglob("*.py"):
            if "testing" in path.parts or ".venv" in path.parts:
                continue
            for kind, name in DECLARATION.findall(path.read_text()):
                series.update(name + suffix for suffix in SUFFIXES.get(kind, ("",)))
    return series


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "nodesmith-overview"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("cpu", "unschedulable", "launched", "disrupted by reason", "cost"):
        assert topic in titles


def test_dashboard_references_only_declared_metrics() -> None:
    declared = declared_series()
    assert "nodesmith_nodeclaims_created_total" in declared
    assert dashboard_metrics() - declared == set()


def test_dashboard_metrics_appear_in_the_real_exposition() -> None:
    result = subprocess.run(
        [sys.executable, "-c", RENDER, *INSTRUMENT_MODULES],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    exposed = set(re.findall(r"^(nodesmith_[a-z0-9_]+)", result.stdout, re.MULTILINE))
    assert dashboard_metrics() - exposed == set(), result.stdout[:2000]


# -- series that never move ---------------------------------------------------------------------------


def test_every_panel_drawing_nodesmith_series_is_found_and_each_flat_reason_says_something() -> None:
    drawn = dashboard_series.panels(json.loads(DASHBOARD.read_text()))
    assert {m for p in drawn for m in p.metrics} == dashboard_metrics()
    for panel in drawn:
        assert panel.flat_reason is None or len(panel.flat_reason) > 20, panel


def test_a_gauge_only_ever_set_to_zero_never_moves_and_its_panel_is_reported() -> None:
    log = dashboard_series.SeriesLog()
    for depth, unschedulable in ((0, 0), (4, 0), (0, 0)):
        log.record(
            f"# TYPE nodesmith_scheduler_queue_depth gauge\nnodesmith_scheduler_queue_depth {depth}\n"
            f"nodesmith_pods_unschedulable {unschedulable}\n"
        )
    drawn = [
        dashboard_series.Panel("Batch", frozenset({"nodesmith_scheduler_queue_depth"}), None),
        dashboard_series.Panel("Unschedulable", frozenset({"nodesmith_pods_unschedulable"}), None),
        dashboard_series.Panel("Errors", frozenset({"nodesmith_reconcile_errors_total"}), "errors only"),
    ]
    assert log.moved() == {"nodesmith_scheduler_queue_depth"}
    assert log.flat_panels(drawn) == ["Unschedulable: nodesmith_pods_unschedulable"]


def test_a_series_appearing_with_a_value_or_changing_labels_moved() -> None:
    log = dashboard_series.SeriesLog()
    log.record('nodesmith_nodes_created_total{nodepool="a"} 0\n')
    log.record('nodesmith_nodes_created_total{nodepool="a"} 0\nnodesmith_leader 1\n')
    log.record('nodesmith_nodes_created_total{nodepool="a"} 0\nnodesmith_leader 1\n')
    assert log.moved() == {"nodesmith_leader"}  # absent, then 1; the counter stayed at 0
