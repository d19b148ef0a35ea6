"""Metrics over time with control limits: is this window out of line with the reference period?

Scored production summaries, ordered by ``created_at``, are cut into windows
(a calendar day, an ISO week, or every N summaries). Per window and metric:
the mean, and an EWMA of the window means (exponentially weighted moving
average; Roberts 1959, the chart of choice for small persistent shifts and the
one used to monitor deployed clinical models) with control limits set from a
reference period, the first ``reference_windows`` windows:

- ``mu`` and ``sigma``: mean and SD of every summary's value in the reference
  period (summaries, not window means: the limits then follow each window's size);
- the EWMA starts at ``mu`` on the first window after the reference:
  ``z_t = lam * mean_t + (1 - lam) * z_{t-1}``;
- its exact variance for windows of sizes ``n_1..n_t`` is
  ``V_t = (1 - lam)^2 V_{t-1} + lam^2 sigma^2 / n_t``, plus the uncertainty of
  ``mu`` itself, ``(1 - (1 - lam)^t)^2 sigma^2 / n_ref``: without that term a
  short reference period raises false alarms well above nominal;
- limits ``mu +- L sqrt(variance)``.

A window alerts when its EWMA leaves the limits in the metric's bad direction
(``clinsum.evaluators.metrics``): below the lower limit for a higher-is-better
metric, above the upper one for a lower-is-better one. Improvements and
metrics without a direction are reported, never alerted on. With ``L = 3``
the nominal false-alarm rate is one-sided ``1 - Phi(3)`` = 0.00135 per window
(normal window means); ``benchmarks/trend_false_alarms.py`` measures it on stable data.
Reference windows are shown but not judged (they set the limits). A metric
that never varied in the reference period (no critical flip in a week) has
limits at its reference value: any move the bad way alerts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from clinsum.evaluators.metrics import Metric, display_key
from clinsum.records import Score

if TYPE_CHECKING:
    from clinsum.monitoring import windows

DEFAULT_LAMBDA = 0.2
DEFAULT_L = 3.0
DEFAULT_REFERENCE_WINDOWS = 7
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Observation:
    """One scored summary: when it was made, and its metric values (None: does not apply)."""

    created_at: datetime
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class Window:
    label: str
    start: str
    end: str
    n: int
    """Summaries with a value of this metric in the window."""
    mean: float | None
    ewma: float | None = None
    lower: float | None = None
    upper: float | None = None
    reference: bool = False
    alert: bool = False


@dataclass(frozen=True)
class MetricTrend:
    metric: str
    direction: str
    reference_mean: float | None
    reference_sd: float | None
    reference_n: int
    windows: list[Window] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def observations(created_at: Mapping[tuple[str, str, str], datetime],
                 scores: Iterable[tuple[str, Score]]) -> list[Observation]:
    """One ``Observation`` per summary that has a ``created_at`` and at least one score.

    ``created_at`` maps (run_id, note_id, system) to when the summary was made in
    production; ``scores`` are (run_id, score) pairs (``Store.scores_by_run``).
    """
    values: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for run_id, score in scores:
        key = (run_id, score.note_id, score.system)
        if key in created_at:
            values.setdefault(key, {})[score.metric] = score.value
    return [Observation(created_at[key], metrics) for key, metrics in values.items()]


def from_window(window: windows.Window) -> list[Observation]:
    """The window's summaries that have a ``created_at``, in the window's order."""
    return [Observation(datetime.fromisoformat(o.created_at), dict(o.values))
            for o in window.observations if o.created_at]


def describe(metric: str) -> Metric | None:
    """The metric's declaration, the monitor's own (derived rates, physician metrics) included."""
    from clinsum.monitoring.windows import metric_info

    return metric_info(metric)


def cut(observations: Iterable[Observation], window: str | int) -> list[tuple[str, list[Observation]]]:
    """Windows in time order: ``"day"``, ``"week"`` (ISO week) or every ``N`` summaries."""
    ordered = sorted(observations, key=lambda o: o.created_at)
    if isinstance(window, int) or str(window).isdigit():
        size = int(window)
        if size < 1:
            raise ValueError(f"a window of {size} summaries: need at least 1")
        chunks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
        return [(f"#{k + 1}", chunk) for k, chunk in enumerate(chunks)]
    if window not in ("day", "week"):
        raise ValueError(f"window must be day, week or a number of summaries, got {window!r}")
    groups: dict[str, list[Observation]] = {}
    for o in ordered:
        year, week, _ = o.created_at.isocalendar()
        label = o.created_at.date().isoformat() if window == "day" else f"{year}-W{week:02d}"
        groups.setdefault(label, []).append(o)
    return list(groups.items())


def trend(observations: Iterable[Observation], *, window: str | int = "day",
          reference_windows: int = DEFAULT_REFERENCE_WINDOWS, metrics: Sequence[str] | None = None,
          lam: float = DEFAULT_LAMBDA, limit: float = DEFAULT_L) -> dict[str, Any]:
    """Per metric, every window's mean and EWMA with its control limits, and the alerts."""
    if not 0 < lam <= 1:
        raise ValueError(f"lambda must be in (0, 1], got {lam}")
    windows = cut(observations, window)
    if len(windows) <= reference_windows:
        raise ValueError(f"{len(windows)} windows: the reference period takes the first {reference_windows}, "
                         "so there is nothing after it to monitor; use a smaller window or fewer reference "
                         "windows")
    names = sorted({m for _, chunk in windows for o in chunk for m, v in o.values.items() if v is not None
                    and (metrics is None or m in metrics)}, key=display_key)
    trends = [_chart(name, windows, reference_windows, lam, limit) for name in names]
    alerts = [{"metric": t.metric, "window": w.label, "mean": w.mean, "ewma": w.ewma,
               "limit": w.lower if t.direction == "higher" else w.upper, "direction": t.direction}
              for t in trends for w in t.windows if w.alert]
    return {"window": str(window), "lambda": lam, "L": limit, "reference_windows": reference_windows,
            "metrics": [t.as_dict() for t in trends], "alerts": alerts}


def _values(chunk: Sequence[Observation], metric: str) -> list[float]:
    return [v for o in chunk if (v := o.values.get(metric)) is not None and math.isfinite(v)]


@dataclass(frozen=True)
class _Scale:
    """Where the chart is drawn: window means of rates and counts are transformed so that their
    spread no longer depends on their level (arcsine-root for 0/1 rates, root for counts).

    Without it the reference period's estimate of the spread moves with its estimate of the
    level (a reference with few failures also looks less variable), and the upper limit of a
    rare-event rate is crossed about twice as often as nominal (benchmarks/trend_false_alarms.py).
    """

    kind: str

    def forward(self, x: float) -> float:
        if self.kind == "rate":
            return math.asin(math.sqrt(min(max(x, 0.0), 1.0)))
        return math.sqrt(max(x, 0.0)) if self.kind == "count" else x

    def back(self, y: float) -> float:
        if self.kind == "rate":
            return math.sin(min(max(y, 0.0), math.pi / 2)) ** 2
        return max(y, 0.0) ** 2 if self.kind == "count" else y

    def spread(self, values: Sequence[float], mu: float, sd: float) -> float:
        """Per-summary SD on the chart's scale (the delta method; exactly 1/2 for 0/1 rates)."""
        if self.kind == "rate" and all(v in (0.0, 1.0) for v in values):
            return 0.5
        derivative = (self.forward(mu + 1e-6) - self.forward(mu - 1e-6)) / 2e-6
        return abs(derivative) * sd


def _scale_of(metric: str, values: Sequence[float], mu: float) -> _Scale:
    declared = describe(metric)
    kind = declared.kind if declared is not None else "continuous"
    if kind == "rate" and (mu <= 0 or mu >= 1 or not all(0 <= v <= 1 for v in values)):
        kind = "continuous"
    if kind == "count" and (mu <= 0 or min(values) < 0):
        kind = "continuous"
    return _Scale(kind if kind in ("rate", "count") else "continuous")


def _chart(metric: str, windows: Sequence[tuple[str, list[Observation]]], reference_windows: int,
           lam: float, limit: float) -> MetricTrend:
    declared = describe(metric)
    direction = declared.direction if declared is not None else "neutral"
    reference = [v for _, chunk in windows[:reference_windows] for v in _values(chunk, metric)]
    n_ref = len(reference)
    mu = sum(reference) / n_ref if reference else None
    sd = (math.sqrt(sum((v - mu) ** 2 for v in reference) / (n_ref - 1))
          if mu is not None and n_ref > 1 else None)
    out = MetricTrend(metric, direction, mu, sd, n_ref)
    if mu is None or sd is None:
        for index, (label, chunk) in enumerate(windows):
            values = _values(chunk, metric)
            out.windows.append(Window(label, chunk[0].created_at.isoformat(), chunk[-1].created_at.isoformat(),
                                      len(values), sum(values) / len(values) if values else None,
                                      reference=index < reference_windows))
        return out
    scale = _scale_of(metric, reference, mu)
    centre = scale.forward(mu)
    spread = scale.spread(reference, mu, sd)
    third = (sum((v - mu) ** 3 for v in reference) / n_ref) if scale.kind == "continuous" else 0.0
    z, variance, cumulant3, weight_left = centre, 0.0, 0.0, 1.0
    for index, (label, chunk) in enumerate(windows):
        values = _values(chunk, metric)
        mean = sum(values) / len(values) if values else None
        span = (chunk[0].created_at.isoformat(), chunk[-1].created_at.isoformat())
        if index < reference_windows:
            out.windows.append(Window(label, *span, len(values), mean, reference=True))
            continue
        if mean is not None:  # a window without a value leaves the EWMA where it was
            n = len(values)
            z = lam * scale.forward(mean) + (1 - lam) * z
            variance = (1 - lam) ** 2 * variance + lam ** 2 * spread ** 2 / n
            cumulant3 = (1 - lam) ** 3 * cumulant3 + lam ** 3 * third / n ** 2
            weight_left *= 1 - lam
        lower, upper = _limits(centre, spread, third, n_ref, variance, cumulant3, 1 - weight_left, limit)
        alert = mean is not None and (
            (direction == "higher" and z < lower) or (direction == "lower" and z > upper))
        out.windows.append(Window(label, *span, len(values), mean, scale.back(z), scale.back(lower),
                                  scale.back(upper), alert=alert))
    return out


def _limits(mu: float, sd: float, third: float, n_ref: int, variance: float, cumulant3: float,
            weight: float, limit: float) -> tuple[float, float]:
    """``mu`` plus the quantiles of ``z_t - mu``: normal, moved for skewness (Cornish-Fisher).

    ``z_t - mu`` sums the EWMA's own spread and ``weight`` times the error of the
    reference mean (with the opposite sign, so its third cumulant is subtracted).
    Skewness is corrected on the continuous scale only (the transforms of rates and
    counts remove most of theirs).
    """
    total = variance + weight ** 2 * sd ** 2 / n_ref
    skew_total = cumulant3 - weight ** 3 * third / n_ref ** 2
    spread = math.sqrt(total)
    if spread <= _TOLERANCE * max(1.0, abs(mu)):  # a constant reference: any bad move alerts
        margin = _TOLERANCE * max(1.0, abs(mu))
        return mu - margin, mu + margin
    shift = (limit ** 2 - 1) * (skew_total / spread ** 3) / 6
    return mu + spread * (-limit + shift), mu + spread * (limit + shift)
