"""The one percentile bootstrap: every confidence interval clinsum prints comes from here.

The aggregator (means of one metric, paired differences) and the agreement
statistics (correlations, kappa, ICC, flag precision...) differ only in the
statistic they evaluate on a resample, so both hand this module a function of a
batch of resampling indices, shape ``(rows, n)``, returning one value per row.

- The indices are drawn as ``scipy.stats.bootstrap`` draws them
  (``rng.integers(0, n, (n_resamples, n))`` from ``numpy.random.default_rng(seed)``),
  so with the same seed the intervals equal scipy's ``method="percentile"``.
  Large problems are drawn in chunks of at most ``MAX_CELLS`` indices to bound
  memory.
- A fixed seed: the same data always give the same interval.
- Resamples on which the statistic is undefined (NaN: all ties, no positives)
  are left out and counted; the caller decides when too many make the interval
  meaningless.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
MAX_CELLS = 4_000_000
"""Resampling indices held in memory at once; larger problems are drawn in chunks."""

IndexStatistic = Callable[[NDArray[np.int64]], NDArray[np.float64]]
"""A statistic evaluated on the items selected by each row of an index batch ``(rows, n)``."""


@dataclass(frozen=True)
class Interval:
    """A percentile-bootstrap interval and how many resamples it left out."""

    low: float
    high: float
    undefined: int = 0
    """Resamples where the statistic was undefined (not finite), left out of the percentiles."""


def check(n_resamples: int, confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")


def resample_indices(n: int, n_resamples: int, seed: int) -> Iterator[NDArray[np.int64]]:
    """The resampling indices, in chunks of rows; the rows of all chunks are the ``n_resamples`` draws."""
    rng = np.random.default_rng(seed)
    chunk = max(1, MAX_CELLS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        yield rng.integers(0, n, (min(chunk, n_resamples - start), n))


def percentile_interval(statistic: IndexStatistic, n: int, *, n_resamples: int = DEFAULT_RESAMPLES,
                        confidence: float = DEFAULT_CONFIDENCE, seed: int = DEFAULT_SEED) -> Interval:
    """Percentile bootstrap interval of ``statistic`` over ``n`` items resampled with replacement.

    Resamples where the statistic is not finite are left out and counted in
    ``undefined``; when every one is, the interval is ``(nan, nan)``.
    """
    check(n_resamples, confidence)
    if n < 1:
        return Interval(math.nan, math.nan)
    distribution = np.concatenate([np.asarray(statistic(indices), dtype=np.float64).reshape(-1)
                                   for indices in resample_indices(n, n_resamples, seed)])
    finite = distribution[np.isfinite(distribution)]
    undefined = int(distribution.size - finite.size)
    if finite.size == 0:
        return Interval(math.nan, math.nan, undefined)
    alpha = (1 - confidence) / 2
    low, high = np.percentile(finite, [100 * alpha, 100 * (1 - alpha)])
    return Interval(float(low), float(high), undefined)
