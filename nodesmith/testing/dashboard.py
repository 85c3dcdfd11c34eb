"""Which series the shipped Grafana dashboard draws, and whether they moved during a run.

A panel that stays flat through a scale-up and scale-down is either drawing a series nobody sets (a bug
the dashboard hides) or one that is flat in a healthy run by nature (errors, cloud interruptions). The
dashboard says which, in the panel's own ``description``: a sentence starting with `FLAT_MARK` and giving
the reason. ``tests/e2e/test_dashboard_series.py`` scrapes ``/metrics`` through a run into a `SeriesLog`
and fails on every panel that draws a series that never moved and does not say why;
``tests/unit/test_dashboard.py`` checks the parsing and the rule.
"""

from __future__ import annotations

import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

__all__ = ["FLAT_MARK", "Panel", "SeriesLog", "panels", "parse_exposition"]

FLAT_MARK: Final = "Flat in a healthy run:"
"""How a panel's description starts the reason its series may not move in a healthy scale-up/down."""

_METRIC: Final = re.compile(r"\bnodesmith_[a-z0-9_]+")
_SAMPLE: Final = re.compile(r"^(nodesmith_[a-z0-9_]+)(\{[^}]*\})?\s+(\S+)")
_LABEL: Final = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Series = tuple[str, frozenset[tuple[str, str]]]


@typing.final
@attrs.frozen(slots=True)
class Panel:
    """One drawing panel: its title, the ``nodesmith_*`` metrics its queries read, and why it may stay flat."""

    title: str
    metrics: frozenset[str]
    flat_reason: str | None


def _expressions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["expr"]] if isinstance(node.get("expr"), str) else []
        return found + [e for v in node.values() for e in _expressions(v)]
    if isinstance(node, list):
        return [e for v in node for e in _expressions(v)]
    return []


def panels(dashboard: Mapping[str, Any]) -> list[Panel]:
    """The panels of ``dashboard`` (parsed JSON) that draw at least one ``nodesmith_*`` metric."""
    out = []
    for panel in dashboard.get("panels") or ():
        metrics = frozenset(m for e in _expressions(panel.get("targets") or []) for m in _METRIC.findall(e))
        if not metrics:
            continue
        description = str(panel.get("description") or "")
        _, marked, reason = description.partition(FLAT_MARK)
        out.append(Panel(str(panel.get("title")), metrics, reason.strip() if marked else None))
    return out


def parse_exposition(text: str) -> dict[Series, float]:
    """``nodesmith_*`` samples of a Prometheus text exposition, keyed by (name, labels)."""
    samples: dict[Series, float] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        name, labels, value = match.groups()
        samples[(name, frozenset(_LABEL.findall(labels or "")))] = float(value)
    return samples


@attrs.define
class SeriesLog:
    """Every scrape of a run; a series *moved* if it took two different values, absent counting as 0 (so a
    gauge only ever set to 0 never moves, and a counter that appeared with a count did)."""

    scrapes: list[dict[Series, float]] = attrs.field(factory=list)

    def record(self, text: str) -> None:
        self.scrapes.append(parse_exposition(text))

    def moved(self) -> set[str]:
        """Names of the metrics at least one of whose series moved."""
        seen: dict[Series, set[float]] = {}
        for scrape in self.scrapes:
            for series, value in scrape.items():
                seen.setdefault(series, set()).add(value)
        absent_somewhere = {s for s in seen if any(s not in scrape for scrape in self.scrapes)}
        return {
            name
            for (name, labels), values in seen.items()
            if len(values | ({0.0} if (name, labels) in absent_somewhere else set())) > 1
        }

    def flat_panels(self, drawn: Iterable[Panel]) -> list[str]:
        """``"<panel>: <metric>"`` for every metric a panel draws that never moved, unless the panel says
        why it may stay flat."""
        moved = self.moved()
        return sorted(
            f"{panel.title}: {metric}"
            for panel in drawn
            if panel.flat_reason is None
            for metric in panel.metrics - moved
        )
