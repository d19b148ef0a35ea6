"""From ``Score``s to a comparable table: means with bootstrap confidence intervals.

Works on ``Score``s alone, so it never needs to know which evaluator made a
number. Per system and metric: how many notes have a value (``n``), how many
scores said the metric does not apply (``n_not_applicable``, value None), the
mean, and a percentile-bootstrap interval (95% unless ``confidence`` says
otherwise; ``clinsum.evaluators.bootstrap``). Every interval uses the same
fixed seed, so a table is reproducible run after run, and systems scored on the
same notes are resampled with the same indices (common random numbers).

``paired_difference`` compares two systems on the notes both have: the
interval of the mean per-note difference is much narrower than the two
separate intervals suggest, because the notes' difficulty cancels.
"""

from __future__ import annotations

import math
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from clinsum.evaluators import bootstrap
from clinsum.evaluators.bootstrap import DEFAULT_CONFIDENCE, DEFAULT_RESAMPLES, DEFAULT_SEED
from clinsum.records import Score, Summary

Statistic = Callable[..., Any]


def bootstrap_ci(values: Sequence[float] | np.ndarray, *, stat: Statistic = np.mean,
                 n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                 seed: int = DEFAULT_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat`` over ``values`` (``clinsum.evaluators.bootstrap``).

    ``stat`` must accept ``axis=`` (numpy reductions do). With the same seed and
    ``method="percentile"``, ``scipy.stats.bootstrap`` gives the same interval.
    One value gives ``(v, v)``; no values give ``(nan, nan)``.
    """
    bootstrap.check(n_resamples, confidence)
    data = np.asarray(values, dtype=float)
    if data.ndim != 1:
        raise ValueError(f"values must be one-dimensional, got shape {data.shape}")
    if data.size == 0:
        return math.nan, math.nan
    if data.size == 1:
        only = float(stat(data))
        return only, only
    interval = bootstrap.percentile_interval(lambda indices: stat(data[indices], axis=-1), data.size,
                                             n_resamples=n_resamples, confidence=confidence, seed=seed)
    return interval.low, interval.high


@dataclass(frozen=True)
class Row:
    """One system's result on one metric."""

    system: str
    metric: str
    n: int
    """Notes with a value for this metric."""
    mean: float | None
    """None when no note has a value."""
    ci_low: float | None
    ci_high: float | None
    n_not_applicable: int = 0
    """Scores whose value was None (for example ROUGE on a note without a reference)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def failures_by_system(summaries: Iterable[Summary]) -> dict[str, int]:
    """How many summaries of each system failed (every system appears, with 0 if none)."""
    counts: dict[str, int] = {}
    for summary in summaries:
        counts[summary.system] = counts.get(summary.system, 0) + (0 if summary.ok else 1)
    return counts


def _latest_values(scores: Iterable[Score]) -> dict[tuple[str, str], dict[str, float | None]]:
    """(system, metric) -> note id -> value; a later score of the same note replaces an earlier one."""
    table: dict[tuple[str, str], dict[str, float | None]] = defaultdict(dict)
    for s in scores:
        table[(s.system, s.metric)][s.note_id] = s.value
    return table


def aggregate(scores: Iterable[Score], *, failures: dict[str, int] | None = None,
              n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
              seed: int = DEFAULT_SEED) -> list[Row]:
    """One ``Row`` per system and metric, sorted by system then metric.

    A note counts once per system and metric (the last score given for it wins).
    Values of None are left out of the mean and counted in ``n_not_applicable``.
    A system whose every summary failed still has its ``failed`` row (the generation
    evaluator scores every summary); with ``failures`` (``failures_by_system``) it also
    gets an n=0 row for each metric the other systems have, so every table shows it.
    """
    table = _latest_values(scores)
    return aggregate_values(((system, metric, value) for (system, metric), by_note in table.items()
                             for value in by_note.values()), failures=failures, n_resamples=n_resamples,
                            confidence=confidence, seed=seed)


def aggregate_values(values: Iterable[tuple[str, str, float | None]], *, failures: dict[str, int] | None = None,
                     n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                     seed: int = DEFAULT_SEED) -> list[Row]:
    """``aggregate`` from (system, metric, value) triples, one per note (``Store.metric_values``).

    Values are kept in compact arrays of floats (8 bytes each), never as records, so a
    leaderboard of a million scores fits in a few megabytes.
    """
    arrays: dict[tuple[str, str], array[float]] = {}
    not_applicable: dict[tuple[str, str], int] = defaultdict(int)
    for system, metric, value in values:
        kept = arrays.setdefault((system, metric), array("d"))
        if value is None:
            not_applicable[(system, metric)] += 1
        else:
            kept.append(value)
    rows = []
    for (system, metric), kept in arrays.items():
        mean: float | None = None
        low: float | None = None
        high: float | None = None
        if kept:
            data = np.frombuffer(kept, dtype=float)
            low, high = bootstrap_ci(data, n_resamples=n_resamples, confidence=confidence, seed=seed)
            mean = float(np.mean(data))
        rows.append(Row(system, metric, len(kept), mean, low, high,
                        n_not_applicable=not_applicable[(system, metric)]))
    metrics = {metric for _, metric in arrays}
    for system in failures or {}:
        for metric in metrics - {m for s, m in arrays if s == system}:
            rows.append(Row(system, metric, 0, None, None, None))
    return sorted(rows, key=lambda r: (r.system, r.metric))


def leaderboard(items: Iterable[Score] | Iterable[Row], metric: str | None = None, *,
                descending: bool = True, seed: int = DEFAULT_SEED) -> list[Row]:
    """Rows grouped by system, systems ordered by their mean on ``metric``.

    ``items`` are ``Score``s (aggregated here, with ``seed``) or
    ``Row``s from ``aggregate``. Higher is better unless ``descending=False``
    (for example for a hallucination rate). Systems without a value for
    ``metric`` come last; ties and ``metric=None`` fall back to system name.
    Within a system, rows are in metric order.
    """
    given: list[Score | Row] = list(items)
    rows = [i for i in given if isinstance(i, Row)]
    scores = [i for i in given if isinstance(i, Score)]
    if scores:
        rows += aggregate(scores, seed=seed)
    by_system: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_system[row.system].append(row)

    def rank(system: str) -> tuple[int, float, str]:
        mean = next((r.mean for r in by_system[system] if r.metric == metric), None)
        if mean is None:
            return (1, 0.0, system)
        return (0, -mean if descending else mean, system)

    ordered = sorted(by_system, key=rank)
    return [row for system in ordered for row in sorted(by_system[system], key=lambda r: r.metric)]


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``system_a - system_b`` over the notes both have a value for."""

    metric: str
    system_a: str
    system_b: str
    n: int
    mean: float | None
    ci_low: float | None
    ci_high: float | None

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of zero."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > 0 or self.ci_high < 0


def paired_difference(scores: Iterable[Score], metric: str, system_a: str, system_b: str, *,
                      n_resamples: int = DEFAULT_RESAMPLES, confidence: float = DEFAULT_CONFIDENCE,
                      seed: int = DEFAULT_SEED) -> PairedDifference:
    """Paired bootstrap of the per-note difference ``a - b`` on ``metric``."""
    table = _latest_values(s for s in scores if s.metric == metric)
    a = {note: v for note, v in table.get((system_a, metric), {}).items() if v is not None}
    b = {note: v for note, v in table.get((system_b, metric), {}).items() if v is not None}
    differences = [a[note] - b[note] for note in sorted(a.keys() & b.keys())]
    if not differences:
        return PairedDifference(metric, system_a, system_b, 0, None, None, None)
    low, high = bootstrap_ci(differences, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return PairedDifference(metric, system_a, system_b, len(differences), float(np.mean(differences)),
                            low, high)
