"""Small SVG charts, drawn on the server: geometry here, markup in ``templates/chart.svg.j2``.

A chart is a list of shapes (rectangles, lines, circles, text) in a fixed
coordinate box; the template writes each shape as one SVG element, escaped like
every other text of the report, and the report's stylesheet colours them by
class. Means and intervals come from the aggregator's rows; the only thing
computed here is how many values fall into each histogram bin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clinsum.evaluators import metrics
from clinsum.evaluators.aggregate import PairedDifference, Row

LABEL_WIDTH = 190
PLOT_WIDTH = 300
ROW_HEIGHT = 34


@dataclass
class Chart:
    width: float
    height: float
    title: str
    shapes: list[dict[str, object]] = field(default_factory=list)

    def rect(self, x: float, y: float, w: float, h: float, cls: str, title: str = "") -> None:
        self.shapes.append({"kind": "rect", "x": _r(x), "y": _r(y), "w": _r(max(w, 0)), "h": _r(max(h, 0)),
                            "cls": cls, "title": title})

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        self.shapes.append({"kind": "line", "x1": _r(x1), "y1": _r(y1), "x2": _r(x2), "y2": _r(y2), "cls": cls})

    def circle(self, x: float, y: float, r: float, cls: str, title: str = "") -> None:
        self.shapes.append({"kind": "circle", "x": _r(x), "y": _r(y), "r": r, "cls": cls, "title": title})

    def text(self, x: float, y: float, text: str, cls: str = "", anchor: str = "start") -> None:
        self.shapes.append({"kind": "text", "x": _r(x), "y": _r(y), "text": text, "cls": cls, "anchor": anchor})


def _r(value: float) -> float:
    return round(value, 1)


def fmt(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.4g}"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [round(first + i * step, 10) for i in range(int((high - first) / step + 1e-9) + 1)]


class Scale:
    def __init__(self, low: float, high: float, start: float, width: float) -> None:
        if high <= low:
            low, high = (0.0, 1.0) if low == 0 == high else (low - abs(low) * 0.1, high + abs(high) * 0.1)
        self.low, self.high, self.start, self.width = low, high, start, width

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * self.width


def _axis(chart: Chart, scale: Scale, y: float) -> None:
    chart.line(scale.start, y, scale.start + scale.width, y, "axis")
    for tick in nice_ticks(scale.low, scale.high):
        x = scale(tick)
        chart.line(x, y, x, y + 4, "axis")
        chart.text(x, y + 15, f"{tick:g}", "tick", "middle")


def _bins(metric: str, values: Sequence[float]) -> tuple[list[float], bool]:
    """Bin edges over the metric's declared scale (data range where unbounded); True for integer bins."""
    declared = metrics.describe(metric)
    low = declared.low if declared and declared.low is not None else min(values)
    high = declared.high if declared and declared.high is not None else max(values)
    low, high = min(low, min(values)), max(high, max(values))
    integer = declared is not None and declared.kind in ("ordinal", "count") and high - low <= 20
    if integer:
        return [low - 0.5 + i for i in range(int(high - low) + 2)], True
    if high <= low:
        high = low + 1
    return [low + (high - low) * i / 10 for i in range(11)], False


def distribution(metric: str, values: dict[str, list[float]], rows: dict[str, Row], systems: Sequence[str]) -> Chart:
    """A histogram per system on one shared axis, with the aggregator's mean and 95% CI beneath."""
    present = [s for s in systems if values.get(s)]
    every = [v for s in present for v in values[s]]
    chart = Chart(LABEL_WIDTH + PLOT_WIDTH + 20, len(present) * ROW_HEIGHT + 30, metric)
    if not every:
        return chart
    edges, integer = _bins(metric, every)
    scale = Scale(edges[0], edges[-1], LABEL_WIDTH, PLOT_WIDTH)
    for i, system in enumerate(present):
        top = i * ROW_HEIGHT + 4
        counts = [0] * (len(edges) - 1)
        for v in values[system]:
            k = min(max(0, next((j for j in range(len(edges) - 1) if v < edges[j + 1]), len(edges) - 2)),
                    len(counts) - 1)
            counts[k] += 1
        tallest = max(counts) or 1
        chart.text(LABEL_WIDTH - 8, top + 16, system, "label", "end")
        for k, count in enumerate(counts):
            height = (ROW_HEIGHT - 14) * count / tallest
            x0, x1 = scale(edges[k]), scale(edges[k + 1])
            span = f"{edges[k] + 0.5:g}" if integer else f"{edges[k]:.3g}–{edges[k + 1]:.3g}"
            chart.rect(x0 + 0.5, top + ROW_HEIGHT - 14 - height, x1 - x0 - 1, height, "bar",
                       f"{system}: {count} notes at {span}")
        row = rows.get(system)
        if row is not None and row.mean is not None:
            y = top + ROW_HEIGHT - 8
            if row.ci_low is not None and row.ci_high is not None:
                chart.line(scale(row.ci_low), y, scale(row.ci_high), y, "ci")
            chart.circle(scale(row.mean), y, 3, "mean",
                         f"{system}: mean {fmt(row.mean)} [{fmt(row.ci_low)}, {fmt(row.ci_high)}], n={row.n}")
    _axis(chart, scale, len(present) * ROW_HEIGHT + 4)
    return chart


def means(metric: str, rows: dict[str, Row], systems: Sequence[str], unit: str = "") -> Chart:
    """Each system's mean with its 95% CI, one row per system (used for latency)."""
    present = [s for s in systems if rows.get(s) is not None and rows[s].mean is not None]
    chart = Chart(LABEL_WIDTH + PLOT_WIDTH + 20, len(present) * 24 + 34, metric)
    if not present:
        return chart
    highs = [rows[s].ci_high if rows[s].ci_high is not None else rows[s].mean for s in present]
    scale = Scale(0, max(h or 0 for h in highs) or 1, LABEL_WIDTH, PLOT_WIDTH)
    for i, system in enumerate(present):
        row = rows[system]
        y = i * 24 + 14
        assert row.mean is not None
        chart.text(LABEL_WIDTH - 8, y + 4, system, "label", "end")
        chart.rect(scale(0), y - 7, scale(row.mean) - scale(0), 14, "bar",
                   f"{system}: mean {fmt(row.mean)}{unit} [{fmt(row.ci_low)}, {fmt(row.ci_high)}], n={row.n}")
        if row.ci_low is not None and row.ci_high is not None:
            chart.line(scale(row.ci_low), y, scale(row.ci_high), y, "ci")
    _axis(chart, scale, len(present) * 24 + 6)
    return chart


def quality_cost(quality: str, quality_rows: dict[str, Row], cost_rows: dict[str, Row],
                 systems: Sequence[str]) -> Chart:
    """Mean quality against mean cost per summary, each with its 95% CI, one point per system."""
    present = [s for s in systems
               if quality_rows.get(s) and quality_rows[s].mean is not None
               and cost_rows.get(s) and cost_rows[s].mean is not None]
    chart = Chart(LABEL_WIDTH + PLOT_WIDTH + 160, 260, f"{quality} vs cost_usd")
    if not present:
        return chart
    def bounds(rows: dict[str, Row]) -> tuple[float, float]:
        lows = [r.ci_low if r.ci_low is not None else r.mean for s in present if (r := rows[s]).mean is not None]
        highs = [r.ci_high if r.ci_high is not None else r.mean for s in present if (r := rows[s]).mean is not None]
        return min(v for v in lows if v is not None), max(v for v in highs if v is not None)

    x_low, x_high = bounds(cost_rows)
    y_low, y_high = bounds(quality_rows)
    x = Scale(min(0.0, x_low), x_high, 60, LABEL_WIDTH + PLOT_WIDTH - 80)
    y = Scale(y_low, y_high, 0, 200)

    def to_y(v: float) -> float:
        return 220 - y(v) + y.start

    chart.line(x.start, 220, x.start + x.width, 220, "axis")
    chart.line(x.start, 20, x.start, 220, "axis")
    for tick in nice_ticks(x.low, x.high):
        chart.text(x(tick), 236, f"{tick:g}", "tick", "middle")
    for tick in nice_ticks(y.low, y.high):
        chart.text(x.start - 6, to_y(tick) + 4, f"{tick:g}", "tick", "end")
    chart.text(x.start + x.width / 2, 254, "cost per summary (USD, mean, 95% CI)", "tick", "middle")
    chart.text(4, 12, f"{quality} ({metrics.direction(quality)} is better)", "tick")
    for system in present:
        q, c = quality_rows[system], cost_rows[system]
        assert q.mean is not None and c.mean is not None
        px, py = x(c.mean), to_y(q.mean)
        if c.ci_low is not None and c.ci_high is not None:
            chart.line(x(c.ci_low), py, x(c.ci_high), py, "ci")
        if q.ci_low is not None and q.ci_high is not None:
            chart.line(px, to_y(q.ci_low), px, to_y(q.ci_high), "ci")
        chart.circle(px, py, 5, "mean", f"{system}: {quality} {fmt(q.mean)}, cost {fmt(c.mean)} USD")
        chart.text(px + 8, py - 6, system, "label")
    return chart


def difference(paired: PairedDifference, width: float = 160) -> Chart:
    """One paired difference: its 95% CI against zero, on an axis symmetric about zero."""
    chart = Chart(width, 18, f"{paired.system_a} − {paired.system_b}")
    if paired.mean is None:
        return chart
    extent = max(abs(paired.ci_low or 0), abs(paired.ci_high or 0), abs(paired.mean)) or 1
    scale = Scale(-extent, extent, 6, width - 12)
    chart.line(scale(0), 1, scale(0), 17, "axis")
    if paired.ci_low is not None and paired.ci_high is not None:
        chart.line(scale(paired.ci_low), 9, scale(paired.ci_high), 9, "ci")
    chart.circle(scale(paired.mean), 9, 3, "mean",
                 f"mean difference {fmt(paired.mean)} [{fmt(paired.ci_low)}, {fmt(paired.ci_high)}], n={paired.n}")
    return chart


def control(metric: str, rows: Sequence[Any]) -> Chart:
    """One metric per window: each window's mean with its 95% CI, the EWMA and its control limits.

    ``rows`` are ``periodic.WindowRow``s in time order; the reference windows (which set the
    limits) are shaded, a window whose EWMA left the limits the bad way is drawn as an alert.
    """
    width, height, left, top, plot_h = 560.0, 190.0, 52.0, 22.0, 120.0
    chart = Chart(width, height, f"{metric} per window")
    bounds = [v for row in rows for v in (row.mean, row.ci_low, row.ci_high, row.ewma, row.lower, row.upper)
              if v is not None and math.isfinite(v)]
    if not rows or not bounds:
        return chart
    step = (width - left - 16) / len(rows)
    y = Scale(min(bounds), max(bounds), 0, plot_h)

    def to_y(value: float) -> float:
        return top + plot_h - (y(value) - y.start)

    def x(index: int) -> float:
        return left + step * (index + 0.5)

    reference = sum(1 for row in rows if row.reference)
    if reference:
        chart.rect(left, top, step * reference, plot_h, "reference", f"reference period: {reference} windows")
        chart.text(left + step * reference / 2, top - 6, "reference period", "tick", "middle")
    chart.line(left, top + plot_h, width - 16, top + plot_h, "axis")
    chart.line(left, top, left, top + plot_h, "axis")
    for tick in nice_ticks(y.low, y.high):
        chart.text(left - 6, to_y(tick) + 4, f"{tick:g}", "tick", "end")
        chart.line(left - 3, to_y(tick), left, to_y(tick), "axis")
    every = max(1, math.ceil(len(rows) / 8))
    previous: Any = None
    for i, row in enumerate(rows):
        if i % every == 0:
            chart.text(x(i), top + plot_h + 14, row.label, "tick", "middle")
        if previous is not None:
            for attribute, cls in (("lower", "limit"), ("upper", "limit"), ("ewma", "ewma")):
                a, b = getattr(previous, attribute), getattr(row, attribute)
                if a is not None and b is not None:
                    chart.line(x(i - 1), to_y(a), x(i), to_y(b), cls)
        if row.ewma is not None:
            previous = row
            for bound in (row.lower, row.upper):  # a tick per window: one monitored window still shows its limits
                if bound is not None:
                    chart.line(x(i) - step * 0.2, to_y(bound), x(i) + step * 0.2, to_y(bound), "limit")
        if row.ci_low is not None and row.ci_high is not None:
            chart.line(x(i), to_y(row.ci_low), x(i), to_y(row.ci_high), "ci")
        if row.mean is not None:
            limits = (f", EWMA {fmt(row.ewma)}, limits [{fmt(row.lower)}, {fmt(row.upper)}]"
                      if row.ewma is not None else "")
            chart.circle(x(i), to_y(row.mean), 5 if row.alert else 3, "alert" if row.alert else "mean",
                         f"{row.label}: mean {fmt(row.mean)} [{fmt(row.ci_low)}, {fmt(row.ci_high)}], "
                         f"n={row.n}{limits}{' ALERT' if row.alert else ''}")
    chart.text(width - 16, height - 8, "mean and 95% CI per window · EWMA — control limits ┄", "tick", "end")
    return chart


def timeline(spans: Sequence[Any], since: datetime, until: datetime) -> Chart:
    """Which version was in service when: one bar per (system, key, value) from first to last seen."""
    rows = len(spans)
    chart = Chart(LABEL_WIDTH + PLOT_WIDTH + 140, rows * 22 + 34, "versions in service")
    if not spans:
        return chart
    several = len({span.system for span in spans}) > 1
    start, end = since.timestamp(), until.timestamp()
    scale = Scale(start, end, LABEL_WIDTH + 20, PLOT_WIDTH + 100)
    for i, span in enumerate(spans):
        top = i * 22 + 4
        first, last = datetime.fromisoformat(span.first).timestamp(), datetime.fromisoformat(span.last).timestamp()
        label = f"{span.system}: " * several + f"{span.key} = {span.value}"
        chart.text(LABEL_WIDTH + 12, top + 13, label, "label", "end")
        chart.rect(scale(first), top + 3, max(scale(last) - scale(first), 3), 14, "bar",
                   f"{span.system}: {span.key} {span.value}, {span.first} to {span.last}, {span.summaries} summaries")
    base = rows * 22 + 6
    chart.line(scale.start, base, scale.start + scale.width, base, "axis")
    chart.text(scale.start, base + 15, since.date().isoformat(), "tick", "start")
    chart.text(scale.start + scale.width, base + 15, until.date().isoformat(), "tick", "end")
    return chart
