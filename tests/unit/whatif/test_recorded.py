"""``nodesmith explain decisions``: the daemon's recorded decisions, as the reconcilers write them,
narrowed to one pod or node and printed -- and the CLI reading them from a live ``/decisions``."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from nodesmith import cli
from nodesmith.disruption.commands import Method, Outcome, Rejection, RejectionReason
from nodesmith.reconcilers.disruption import MAX_RECORDED_REJECTIONS, DecisionRecord
from nodesmith.runtime.decisions import DecisionLog
from nodesmith.state import simulation
from nodesmith.whatif import recorded
from tests.unit.whatif import factories as f

PROVISIONING: dict[str, Any] = {
    "kind": "provisioning",
    "at": "2026-11-24T05:00:00+00:00",
    "pods": 3,
    "nodeclaims": [{"name": "default-abcde", "nodepool": "default", "pods": 2, "instance_types": 7}],
    "unschedulable": {"team/gpu-0": "incompatible with NodePool default: requirements: example.com/gpu"},
    "skipped_nodepools": {"gpu": "KWOKNodeClass 'gpu' not found"},
    "duration_seconds": 0.01,
}


def _single_node_run() -> tuple[Outcome, list[Rejection]]:
    """A real single-node consolidation run: ``busy`` is deleted, ``kept`` has a do-not-disrupt pod."""
    b = f.Builder()
    b.pool("default")
    b.machine("busy", "c-4")
    b.machine("idle", "c-2")
    b.machine("kept", "c-2")
    b.pod("busy", "1")
    b.pod("idle", "500m")
    b.pod("kept", "500m", name="precious", annotations={"nodesmith.io/do-not-disrupt": "true"})
    file = b.file()
    state, _ = file.state()
    outcome, _, ineligible = simulation.disruption_outcome(
        Method.SINGLE_NODE, state.snapshot(), file.instance_types
    )
    assert outcome.command is not None
    return outcome, ineligible


def _disruption_records() -> list[dict[str, Any]]:
    """Records built the way the disruption loop builds them."""
    outcome, ineligible = _single_node_run()
    record = DecisionRecord(
        dt.datetime(2026, 11, 24, 5, 1, tzinfo=dt.UTC), outcome, None, True, 0.1, tuple(ineligible)
    )
    return [record.to_dict()]


def _numbered(*records: dict[str, Any]) -> list[dict[str, Any]]:
    log = DecisionLog()
    for record in records:
        log.nodesmith_observe_decision(record)
    return [dict(r) for r in log.records()]


def test_a_pod_is_found_in_the_provisioning_run_that_left_it_pending() -> None:
    records = _numbered(PROVISIONING, *_disruption_records())
    (chosen,) = recorded.select(records, pod="team/gpu-0")
    assert chosen["sequence"] == 1
    text = recorded.lines([chosen], pod="team/gpu-0")
    assert text[0].startswith("#1 2026-11-24T05:00:00+00:00 provisioning: 3 pod(s), 1 NodeClaim(s)")
    assert "  pending team/gpu-0: incompatible with NodePool default: requirements: example.com/gpu" in text
    assert "  skipped NodePool gpu: KWOKNodeClass 'gpu' not found" in text
    assert recorded.select(records, pod="team/other") == []


def test_a_node_rejected_by_the_disruption_loop_is_explained_by_its_rejection() -> None:
    records = _numbered(PROVISIONING, *_disruption_records())
    (chosen,) = recorded.select(records, node="kept")
    text = recorded.lines([chosen], node="kept")
    assert text[0].startswith(
        "#2 2026-11-24T05:01:00+00:00 disruption single-node-consolidation: delete busy saving "
    )
    (rejection,) = [line for line in text if line.startswith("  not ")]
    assert rejection.startswith("  not kept: do-not-disrupt: pod default/precious")
    assert recorded.lines([], node="nowhere") == ["no recorded decisions about that"]


def test_the_command_line_names_its_candidate_and_savings() -> None:
    (record,) = _disruption_records()
    (candidate,) = record["command"]["candidates"]
    line = recorded.lines(_numbered(record))[0]
    assert f"{record['command']['decision']} {candidate['node']}" in line
    assert f"saving ${record['command']['savings']:.4f}/h (started)" in line


@pytest.fixture
def daemon_url() -> Iterator[str]:
    """A stand-in for the daemon's health port serving ``/decisions`` from a real `DecisionLog`."""
    log = DecisionLog()
    log.nodesmith_observe_decision(PROVISIONING)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = anyio.run(log.serve)
            self.send_response(status if self.path == "/decisions" else 404)
            self.send_header("Content-Type", content_type)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_cli_reads_a_live_decision_log(daemon_url: str) -> None:
    result = CliRunner().invoke(
        cli.main, ["explain", "decisions", "--url", daemon_url, "--pod", "team/gpu-0"]
    )
    assert result.exit_code == 0, result.output
    assert "pending team/gpu-0: incompatible with NodePool default" in result.output


def test_cli_says_clearly_when_no_daemon_answers() -> None:
    result = CliRunner().invoke(cli.main, ["explain", "decisions", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert "cannot read decisions from http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output


def test_a_record_lists_a_bounded_number_of_ineligible_nodes_and_counts_them_all() -> None:
    outcome, _ = _single_node_run()
    many = tuple(
        Rejection(f"n{i}", RejectionReason.DO_NOT_DISRUPT if i % 2 else RejectionReason.PDB, "blocked")
        for i in range(MAX_RECORDED_REJECTIONS + 50)
    )
    d = DecisionRecord(dt.datetime(2026, 11, 24, tzinfo=dt.UTC), outcome, None, False, 0.1, many).to_dict()
    assert len(d["ineligible"]) == MAX_RECORDED_REJECTIONS
    assert d["ineligible_by_reason"] == {"pdb": 125, "do-not-disrupt": 125}
