"""Systems of one run compared on the notes both summarized: which is better, on what, how surely.

For each (system, baseline, metric, segment): the per-note difference
``system - baseline`` on the notes where both have a value, its mean with a
paired bootstrap interval (``aggregate.paired_difference``), and the Wilcoxon
signed-rank p-value of the differences (``scipy.stats.wilcoxon``, two-sided,
zero differences dropped as Wilcoxon did; all differences zero gives p = 1).
The p-values of every comparison made are adjusted together by Holm's step-down
method, so the chance of any false "better" or "worse" in the whole table stays
at ``alpha``. The verdict follows the metric's declared direction: ``better``
or ``worse`` when the adjusted p-value is below ``alpha``, else ``no detectable
difference``. Metrics without a direction (summary length) are shown, not
tested, and stay out of the correction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from typing import Any

import numpy as np

from clinsum.evaluators.aggregate import paired_difference
from clinsum.evaluators.metrics import describe, display_key
from clinsum.records import Score

ALL = "all"
"""The segment of every note."""
MIN_PAIRS = 2


@dataclass(frozen=True)
class Comparison:
    """One system against the baseline on one metric, over one segment of the notes."""

    system: str
    baseline: str
    metric: str
    segment: str
    n: int
    """Notes where both systems have a value."""
    system_mean: float | None
    baseline_mean: float | None
    difference: float | None
    """Mean of ``system - baseline`` over those notes."""
    ci: tuple[float | None, float | None]
    p_value: float | None
    p_adjusted: float | None
    test: str
    verdict: str
    """``better``, ``worse``, ``no detectable difference``, ``not tested (...)``."""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ci": list(self.ci)}


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1); None stays None."""
    tested = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    m = len(tested)
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def wilcoxon_p(differences: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value; 1 when every difference is zero, None below 2 pairs."""
    d = np.asarray(differences, dtype=float)
    if d.size < MIN_PAIRS:
        return None
    if not np.any(d != 0):
        return 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def compare(scores: Iterable[Score], *, baseline: str | None = None, segments: Mapping[str, str] | None = None,
            metrics: Sequence[str] | None = None, alpha: float = 0.05, n_resamples: int = 2000,
            seed: int = 0) -> list[Comparison]:
    """Every system against ``baseline`` (or every pair of systems), per metric and segment.

    ``segments`` maps note id to its segment (``--by FIELD``); each segment is compared
    on its own besides ``all``, and all comparisons share one Holm correction.
    """
    scores = list(scores)
    systems = sorted({s.system for s in scores})
    if baseline is not None and baseline not in systems:
        raise ValueError(f"no system {baseline!r} in this run; systems: {', '.join(systems)}")
    pairs = ([(s, baseline) for s in systems if s != baseline] if baseline is not None
             else [(b, a) for a, b in combinations(systems, 2)])
    names = sorted({s.metric for s in scores if metrics is None or s.metric in metrics}, key=display_key)
    groups: dict[str, list[Score]] = {ALL: scores}
    if segments is not None:
        for name in sorted(set(segments.values())):
            notes = {note for note, segment in segments.items() if segment == name}
            groups[name] = [s for s in scores if s.note_id in notes]
    found = [_one(group, system, other, metric, segment, n_resamples, seed)
             for segment, group in groups.items() for system, other in pairs for metric in names]
    found = [c for c in found if c.n > 0]
    adjusted = holm([c.p_value for c in found])
    return [replace(c, p_adjusted=p, verdict=_verdict(c, p, alpha)) for c, p in zip(found, adjusted, strict=True)]


def _one(scores: list[Score], system: str, baseline: str, metric: str, segment: str,
         n_resamples: int, seed: int) -> Comparison:
    values: dict[str, dict[str, float]] = {system: {}, baseline: {}}
    for s in scores:
        if s.metric == metric and s.system in values and s.value is not None:
            values[s.system][s.note_id] = s.value
    common = sorted(values[system].keys() & values[baseline].keys())
    differences = [values[system][n] - values[baseline][n] for n in common]
    declared = describe(metric)
    directed = declared is not None and declared.direction != "neutral"
    paired = paired_difference(scores, metric, system, baseline, n_resamples=n_resamples, seed=seed)

    def mean_of(name: str) -> float | None:
        return float(np.mean([values[name][n] for n in common])) if common else None

    return Comparison(
        system=system, baseline=baseline, metric=metric, segment=segment, n=len(common),
        system_mean=mean_of(system), baseline_mean=mean_of(baseline), difference=paired.mean,
        ci=(paired.ci_low, paired.ci_high), p_value=wilcoxon_p(differences) if directed else None,
        p_adjusted=None, test="wilcoxon signed-rank" if directed else "none", verdict="")


def _verdict(c: Comparison, p_adjusted: float | None, alpha: float) -> str:
    declared = describe(c.metric)
    if declared is None or declared.direction == "neutral":
        return "not tested (no direction)"
    if p_adjusted is None:
        return f"not tested (fewer than {MIN_PAIRS} notes)"
    if p_adjusted >= alpha or not c.difference:
        return "no detectable difference"
    return "worse" if declared.is_worse(c.difference) else "better"
