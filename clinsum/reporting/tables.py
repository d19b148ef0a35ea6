"""The numbers a report shows, as computed by the aggregator, arranged for reading.

Nothing here is a statistic of its own: means and intervals come from
``aggregate``, differences from ``paired_difference``, directions, kinds and
order from ``metrics``. This module only decides which system is marked best
(the best mean in the metric's declared direction) and how a paired interval
reads as a verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from clinsum import reports
from clinsum.evaluators import metrics
from clinsum.evaluators.aggregate import PairedDifference, Row, aggregate, failures_by_system, paired_difference
from clinsum.records import Score, Summary

ARROWS = {"higher": "↑", "lower": "↓", "neutral": "·"}
MIN_NOTES_FOR_VERDICT = 10
"""Below this many shared notes a percentile bootstrap interval is too rough to call a winner on."""
ALL_PAIRS_UP_TO = 4
"""With more systems than this, each system is compared with the leader only (k-1 pairs, not k(k-1)/2)."""


@dataclass(frozen=True)
class MetricLine:
    """One metric across the systems: its declaration and each system's row."""

    name: str
    direction: str
    arrow: str
    kind: str
    scale: str
    unit: str
    description: str
    cells: dict[str, Row]
    best: frozenset[str]
    """Systems with the best mean in the metric's direction (empty for neutral metrics or one system)."""


@dataclass(frozen=True)
class Leaderboard:
    systems: list[str]
    """Best first by ``sort_metric``."""
    sort_metric: str
    lines: list[MetricLine]
    rows: list[Row]

    def line(self, name: str) -> MetricLine | None:
        return next((line for line in self.lines if line.name == name), None)


def best_systems(name: str, cells: dict[str, Row]) -> frozenset[str]:
    direction = metrics.direction(name)
    means = {system: row.mean for system, row in cells.items()
             if row.mean is not None and not math.isnan(row.mean)}
    if direction == "neutral" or len(means) < 2 or len(set(means.values())) < 2:
        return frozenset()
    top = max(means.values()) if direction == "higher" else min(means.values())
    return frozenset(system for system, mean in means.items() if mean == top)


def leaderboard(scores: Sequence[Score], summaries: Sequence[Summary], sort_by: str | None = None) -> Leaderboard:
    rows = aggregate(scores, failures=failures_by_system(summaries))
    present = sorted({r.metric for r in rows}, key=metrics.display_key)
    if sort_by is not None and sort_by not in present:
        from clinsum.reporting.content import ReportError

        raise ReportError(f"--sort-by {sort_by}: no such metric in these runs; they have {', '.join(present)}")
    if not rows:
        return Leaderboard(list(dict.fromkeys(s.system for s in summaries)), sort_by or "failed", [], rows)
    ranked, sort_metric = reports.ordered(rows, sort_by)
    systems = list(dict.fromkeys(r.system for r in ranked))
    lines = []
    for name in present:
        cells = {r.system: r for r in rows if r.metric == name}
        declared = metrics.describe(name)
        direction = metrics.direction(name)
        lines.append(MetricLine(
            name=name, direction=direction, arrow=ARROWS[direction],
            kind=declared.kind if declared else "continuous", scale=declared.scale if declared else "any",
            unit=declared.unit if declared else "", description=declared.description if declared else "",
            cells=cells, best=best_systems(name, cells)))
    return Leaderboard(systems, sort_metric, lines, rows)


@dataclass(frozen=True)
class Comparison:
    """A paired difference read as a verdict."""

    difference: PairedDifference
    direction: str
    verdict: str
    winner: str | None


def verdict(difference: PairedDifference, direction: str) -> tuple[str, str | None]:
    """How the 95% interval of ``a - b`` reads, in the metric's direction."""
    a, b = difference.system_a, difference.system_b
    if difference.n == 0 or difference.mean is None:
        return "no notes in common", None
    if difference.n < MIN_NOTES_FOR_VERDICT:
        return f"too few notes in common ({difference.n}) for a verdict", None
    if not difference.excludes_zero:
        return "no certain difference", None
    if direction == "neutral":
        return f"{a} {'higher' if (difference.ci_low or 0) > 0 else 'lower'}", None
    a_higher = (difference.ci_low or 0) > 0
    winner = a if a_higher == (direction == "higher") else b
    return f"{winner} better", winner


def comparisons(scores: Sequence[Score], board: Leaderboard) -> list[Comparison]:
    """Paired differences on every directional metric: all pairs of a few systems, else each versus the leader."""
    systems = board.systems
    if len(systems) < 2:
        return []
    if len(systems) <= ALL_PAIRS_UP_TO:
        pairs = list(combinations(systems, 2))
    else:
        pairs = [(systems[0], other) for other in systems[1:]]
    by_metric: dict[str, list[Score]] = {}
    for s in scores:
        by_metric.setdefault(s.metric, []).append(s)
    out = []
    for line in board.lines:
        if line.direction == "neutral":
            continue
        for a, b in pairs:
            difference = paired_difference(by_metric.get(line.name, []), line.name, a, b)
            if difference.n == 0:
                continue
            text, winner = verdict(difference, line.direction)
            out.append(Comparison(difference, line.direction, text, winner))
    return out
