"""The test suited to each metric kind, bootstrap intervals of a difference, multiplicity control.

Which test (``choose_test``):

| kind | unpaired (different notes) | paired (the same notes in both windows) |
|---|---|---|
| continuous | bootstrap difference of means | Wilcoxon signed-rank |
| ordinal | Brunner-Munzel | Wilcoxon signed-rank |
| count | Mann-Whitney U | Wilcoxon signed-rank |
| rate (0/1) | Fisher's exact test | exact McNemar (binomial on discordant pairs) |

``alternative`` says which change is tested: ``greater`` (current above
baseline), ``less``, or ``two-sided``. The monitor tests each directional metric
one-sided, toward its bad direction: only a degradation alerts, and a two-sided
test would spend half its error rate on improvements nobody is paged for.

Counts per summary (critical flips) are mostly zeros with a long tail: a rank
test is robust to the tail, where a t-test on the means is not. Brunner-Munzel
does not assume equal variances, which ratings of a changed model rarely keep.

The interval of every difference is a percentile bootstrap: for paired data the
aggregator's ``bootstrap_ci`` over the per-note differences; for unpaired data
each window is resampled on its own (same seed, same draws as the aggregator).
``stratified_bootstrap`` resamples within segments, for the case-mix check.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from clinsum.evaluators.aggregate import bootstrap_ci
from clinsum.evaluators.metrics import Kind

Alternative = Literal["two-sided", "greater", "less"]
"""The change tested, current minus baseline."""

N_RESAMPLES = 4000
"""Bootstrap resamples; the smallest bootstrap p-value is 1/4001, well below Holm's thresholds."""


@dataclass(frozen=True)
class TestResult:
    """One difference (current minus baseline), its interval and its p-value."""

    test: str
    difference: float
    ci: tuple[float, float]
    p_value: float


def choose_test(kind: Kind, *, paired: bool) -> str:
    if paired:
        return "mcnemar-exact" if kind == "rate" else "wilcoxon"
    return {"continuous": "bootstrap", "ordinal": "brunner-munzel",
            "count": "mann-whitney", "rate": "fisher-exact"}[kind]


def compare_unpaired(kind: Kind, baseline: Sequence[float], current: Sequence[float], *,
                     alternative: Alternative = "two-sided", seed: int = 0,
                     n_resamples: int = N_RESAMPLES) -> TestResult:
    """Compare two windows of different summaries."""
    from scipy import stats

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(current, dtype=float)
    test = choose_test(kind, paired=False)
    difference = float(b.mean() - a.mean())
    ci = two_sample_ci(a, b, seed=seed, n_resamples=n_resamples)
    if _constant_together(a, b):
        return TestResult(test, difference, ci, 1.0)
    if test == "bootstrap":
        p = stratified_bootstrap([a], [b], alternative=alternative, seed=seed, n_resamples=n_resamples)[1]
    elif test == "brunner-munzel":
        p = float(stats.brunnermunzel(b, a, alternative=alternative).pvalue)
        if math.isnan(p):  # one window constant: Brunner-Munzel's variance estimate is zero
            p = float(stats.mannwhitneyu(b, a, alternative=alternative).pvalue)
    elif test == "mann-whitney":
        p = float(stats.mannwhitneyu(b, a, alternative=alternative).pvalue)
    else:  # the table's first row is the current window, so "greater" means a higher rate now
        table = [[int(b.sum()), b.size - int(b.sum())], [int(a.sum()), a.size - int(a.sum())]]
        p = float(stats.fisher_exact(table, alternative=alternative).pvalue)
    return TestResult(test, difference, ci, min(1.0, p))


def compare_paired(kind: Kind, baseline: Sequence[float], current: Sequence[float], *,
                   alternative: Alternative = "two-sided", seed: int = 0,
                   n_resamples: int = N_RESAMPLES) -> TestResult:
    """Compare the same notes in two windows (``baseline[i]`` and ``current[i]`` are one note)."""
    from scipy import stats

    a = np.asarray(baseline, dtype=float)
    b = np.asarray(current, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values differ in length: {a.size} and {b.size}")
    differences = b - a
    test = choose_test(kind, paired=True)
    ci = bootstrap_ci(differences, n_resamples=n_resamples, seed=seed)
    difference = float(differences.mean())
    if not np.any(differences):
        return TestResult(test, difference, ci, 1.0)
    if test == "mcnemar-exact":
        worse = int(np.sum(differences > 0))  # current 1, baseline 0
        better = int(np.sum(differences < 0))
        p = float(stats.binomtest(worse, worse + better, 0.5, alternative=alternative).pvalue)
    else:
        p = float(stats.wilcoxon(b, a, zero_method="wilcox", alternative=alternative).pvalue)
    return TestResult(test, difference, ci, min(1.0, p))


def two_sample_ci(a: np.ndarray, b: np.ndarray, *, seed: int = 0, n_resamples: int = N_RESAMPLES,
                  confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``mean(b) - mean(a)``, each window resampled on its own."""
    rng = np.random.default_rng(seed)
    draws = _resampled_means(a, rng, n_resamples)
    draws_b = _resampled_means(b, rng, n_resamples)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(draws_b - draws, [100 * alpha, 100 * (1 - alpha)])
    return float(low), float(high)


def stratified_bootstrap(baseline: Sequence[np.ndarray], current: Sequence[np.ndarray], *,
                         alternative: Alternative = "two-sided", seed: int = 0,
                         n_resamples: int = N_RESAMPLES) -> tuple[float, float, tuple[float, float]]:
    """Difference of means standardised over strata, its bootstrap p-value and interval.

    ``baseline[s]`` and ``current[s]`` are the values of stratum ``s`` in each window.
    The difference is ``sum_s w_s (mean(current_s) - mean(baseline_s))`` with ``w_s`` the
    stratum's share of both windows together, so a change in how many notes fall in each
    stratum (the case mix) does not move it. The p-value follows Efron and Tibshirani
    (1993, algorithm 16.2): each stratum's two groups are shifted to their pooled mean, so
    the null holds, and resampled within the stratum; two-sided p = (1 + #|null| >= |observed|) /
    (1 + B), one-sided counts null differences at least as far the tested way.
    One stratum gives the plain bootstrap test of a difference of means.
    """
    pairs = [(np.asarray(a, float), np.asarray(b, float)) for a, b in zip(baseline, current, strict=True)]
    pairs = [(a, b) for a, b in pairs if a.size and b.size]
    if not pairs:
        return math.nan, math.nan, (math.nan, math.nan)
    total = sum(a.size + b.size for a, b in pairs)
    weights = [(a.size + b.size) / total for a, b in pairs]
    observed = sum(w * (b.mean() - a.mean()) for w, (a, b) in zip(weights, pairs, strict=True))
    rng = np.random.default_rng(seed)
    null = np.zeros(n_resamples)
    spread = np.zeros(n_resamples)
    for w, (a, b) in zip(weights, pairs, strict=True):
        pooled = np.concatenate([a, b]).mean()
        null += w * (_resampled_means(b - b.mean() + pooled, rng, n_resamples)
                     - _resampled_means(a - a.mean() + pooled, rng, n_resamples))
        spread += w * (_resampled_means(b, rng, n_resamples) - _resampled_means(a, rng, n_resamples))
    tolerance = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        extreme = null >= observed - tolerance
    elif alternative == "less":
        extreme = null <= observed + tolerance
    else:
        extreme = np.abs(null) >= abs(observed) - tolerance
    p = (1 + int(np.sum(extreme))) / (1 + n_resamples)
    low, high = np.percentile(spread, [2.5, 97.5])
    return float(observed), min(1.0, p), (float(low), float(high))


def _resampled_means(values: np.ndarray, rng: np.random.Generator, n_resamples: int) -> np.ndarray:
    if values.size == 1:
        return np.full(n_resamples, float(values[0]))
    return values[rng.integers(0, values.size, (n_resamples, values.size))].mean(axis=1)


def _constant_together(a: np.ndarray, b: np.ndarray) -> bool:
    """Both windows hold one and the same value: nothing to test (and rank tests divide by zero)."""
    return bool(a.size and b.size and np.all(a == a[0]) and np.all(b == a[0]))


# -- multiplicity ------------------------------------------------------------------------


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, i in enumerate(order):
        rank = m - position
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return adjusted


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}
