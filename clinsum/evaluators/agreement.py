"""Agreement between automatic scores and human ratings, and between human raters.

Every statistic is written once, over a leading batch axis: row ``b`` of the input
is one data set. The point estimate is the batch of one original data set; the
bootstrap evaluates the same code on a batch of resampled data sets. Our own
implementations (numpy only) so that the tests can hold them against scipy,
scikit-learn and the worked example of Shrout & Fleiss (1979) as independent
references.

Decisions worth knowing:

- Ties: Spearman uses average ranks; Kendall is tau-b (tie-corrected).
- Quadratic-weighted Cohen's kappa needs categories. Values that are not whole
  numbers (a judge's mean over K samples, the mean of several raters) are rounded
  half up to the nearest category, and the count of rounded values is reported.
  The categories are the whole numbers of the declared scale (1..5), or, without
  one, every whole number from the smallest to the largest observed value, so that
  the quadratic weights are squared *value* distances (scikit-learn, given only the
  observed labels, would weight by label position instead).
- ICC(2,1) (two-way random, absolute agreement) and ICC(3,1) (two-way mixed,
  consistency), single rater, from the two-way ANOVA mean squares of an
  items x raters table (Shrout & Fleiss 1979, Table 1).
- Bland-Altman: mean of (first - second) with limits mean +- 1.96 SD (SD with n-1).
- Confidence intervals: percentile bootstrap over items (pairs resampled
  together; ``clinsum.evaluators.bootstrap``, the one the aggregator uses), 95%
  unless ``confidence`` says otherwise, a fixed seed, so the same data always
  give the same interval.
  Resamples where a statistic is undefined (all ties, say) are dropped; when more
  than half are undefined the interval is withheld, with the reason.
- Degenerate data (n < 3, no variance, no predicted positives) give a value of
  None with a reason, never an exception.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from clinsum.evaluators.bootstrap import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    DEFAULT_SEED,
    IndexStatistic,
    percentile_interval,
)

FloatArray = NDArray[np.float64]

MIN_ITEMS = 3
LIKERT = (1, 5)


@dataclass(frozen=True)
class Estimate:
    """A statistic with its percentile-bootstrap confidence interval."""

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    reason: str | None = None
    """Why the value or the interval is missing (degenerate data)."""

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci": [self.ci_low, self.ci_high], "reason": self.reason}


# -- statistics over a batch axis ---------------------------------------------------------------

def _counts(idx: NDArray[np.int64], n: int) -> FloatArray:
    """How many times each of the ``n`` items appears in each row of an index batch."""
    batch = idx.shape[0]
    flat = (idx + np.arange(batch)[:, None] * n).ravel()
    return np.bincount(flat, minlength=batch * n).reshape(batch, n).astype(float)


def _spearman(x: FloatArray, y: FloatArray, counts: FloatArray) -> FloatArray:
    """Spearman's rho of the multisets of items given by ``counts`` (B, n), average ranks.

    Item a's average rank among the resampled values is (weight below a) + (weight
    equal to a + 1) / 2; rho is then the count-weighted Pearson correlation of ranks.
    """
    def ranks(v: FloatArray) -> FloatArray:
        below = (v[None, :] < v[:, None]).astype(float)
        equal = (v[None, :] == v[:, None]).astype(float)
        return np.asarray(counts @ below.T + (counts @ equal.T + 1.0) / 2.0)

    rx, ry = ranks(x), ranks(y)
    total = counts.sum(axis=1, keepdims=True)
    dx = rx - (counts * rx).sum(axis=1, keepdims=True) / total
    dy = ry - (counts * ry).sum(axis=1, keepdims=True) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (counts * dx * dy).sum(axis=1) / np.sqrt(
            (counts * dx * dx).sum(axis=1) * (counts * dy * dy).sum(axis=1))
    return np.asarray(rho, dtype=np.float64)


def _kendall_tau_b(x: FloatArray, y: FloatArray, counts: FloatArray) -> FloatArray:
    """Kendall's tau-b of the multisets of items given by ``counts`` (B, n).

    Sums over pairs of resampled positions are quadratic forms of the counts:
    sum_{p,q} f(item_p, item_q) = c' F c, the diagonal p = q included.
    """
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    total = counts.sum(axis=1)

    def pairs_over(matrix: FloatArray) -> FloatArray:
        return np.asarray(((counts @ matrix) * counts).sum(axis=1))

    concordance = pairs_over(sx * sy) / 2.0
    all_pairs = total * (total - 1) / 2.0
    tied_x = (pairs_over((sx == 0).astype(float)) - total) / 2.0
    tied_y = (pairs_over((sy == 0).astype(float)) - total) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt((all_pairs - tied_x) * (all_pairs - tied_y))
    return np.asarray(tau, dtype=np.float64)


def _icc(table: FloatArray, model: Literal["2,1", "3,1"]) -> FloatArray:
    """ICC of a batch of items x raters tables, shape (B, n, k)."""
    _, n, k = table.shape
    grand = table.mean(axis=(1, 2))
    item_means = table.mean(axis=2)
    rater_means = table.mean(axis=1)
    ss_items = k * ((item_means - grand[:, None]) ** 2).sum(axis=1)
    ss_raters = n * ((rater_means - grand[:, None]) ** 2).sum(axis=1)
    ss_total = ((table - grand[:, None, None]) ** 2).sum(axis=(1, 2))
    ms_items = ss_items / (n - 1)
    ms_raters = ss_raters / (k - 1)
    ms_error = (ss_total - ss_items - ss_raters) / ((n - 1) * (k - 1))
    denominator = ms_items + (k - 1) * ms_error
    if model == "2,1":
        denominator = denominator + k * (ms_raters - ms_error) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        result = (ms_items - ms_error) / denominator
    # A zero denominator up to rounding (no variance at all) is undefined, not huge.
    scale = np.abs(ms_items) + np.abs(ms_error) + np.abs(ms_raters)
    result[np.abs(denominator) <= 1e-12 * np.maximum(scale, 1e-300)] = np.nan
    return np.asarray(result, dtype=np.float64)


def _kappa_quadratic(a: NDArray[np.int64], b: NDArray[np.int64], m: int) -> FloatArray:
    """Quadratic-weighted kappa of category indices 0..m-1, shape (B, n)."""
    batch, _ = a.shape
    cells = (np.arange(batch)[:, None] * m * m + a * m + b).ravel()
    observed = np.bincount(cells, minlength=batch * m * m).reshape(batch, m, m).astype(float)
    total = observed.sum(axis=(1, 2))
    expected = observed.sum(axis=2)[:, :, None] * observed.sum(axis=1)[:, None, :] / total[:, None, None]
    grid = np.arange(m, dtype=float)
    weights = (grid[:, None] - grid[None, :]) ** 2
    disagreement_expected = (weights * expected).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        kappa = 1.0 - (weights * observed).sum(axis=(1, 2)) / disagreement_expected
    kappa[disagreement_expected <= 0] = np.nan
    return np.asarray(kappa, dtype=np.float64)


def _bland_altman(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    diff = x - y
    mean = diff.mean(axis=1)
    sd = diff.std(axis=1, ddof=1) if x.shape[1] > 1 else np.full(x.shape[0], np.nan)
    return mean, mean - 1.96 * sd, mean + 1.96 * sd


def _binary(pred: NDArray[np.bool_], truth: NDArray[np.bool_]) -> dict[str, FloatArray]:
    tp = (pred & truth).sum(axis=1).astype(float)
    fp = (pred & ~truth).sum(axis=1).astype(float)
    fn = (~pred & truth).sum(axis=1).astype(float)
    n = float(pred.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "accuracy": (n - fp - fn) / n,
            "precision": tp / (tp + fp),
            "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn),
        }


# -- point estimates (one data set) -------------------------------------------------------------

def _pair(x: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    xa, ya = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xa.shape != ya.shape:
        raise ValueError(f"paired data of different lengths: {xa.size} and {ya.size}")
    return xa, ya


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho with average ranks for ties; NaN when a side has no variance."""
    xa, ya = _pair(x, y)
    return float(_spearman(xa, ya, np.ones((1, xa.size)))[0])


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall's tau-b (tie-corrected); NaN when a side has no variance."""
    xa, ya = _pair(x, y)
    return float(_kendall_tau_b(xa, ya, np.ones((1, xa.size)))[0])


def icc(table: ArrayLike, model: Literal["2,1", "3,1"]) -> float:
    """ICC(2,1) (absolute agreement) or ICC(3,1) (consistency) of an items x raters table."""
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 2:
        raise ValueError(f"ICC needs an items x raters table with at least 2 of each, got {t.shape}")
    return float(_icc(t[None], model)[0])


def kappa_categories(a: ArrayLike, b: ArrayLike, scale: tuple[int, int] | None = None
                     ) -> tuple[NDArray[np.int64], NDArray[np.int64], int, int]:
    """Category indices of two rating series, their number, and how many values were rounded."""
    xa, ya = _pair(a, b)
    both = np.concatenate([xa, ya])
    rounded = np.floor(both + 0.5)
    n_rounded = int((np.abs(both - rounded) > 1e-9).sum())
    low, high = scale if scale else (int(rounded.min()), int(rounded.max()))
    if rounded.min() < low or rounded.max() > high:
        raise ValueError(f"ratings outside the declared scale {low}..{high}")
    codes = (rounded - low).astype(np.int64)
    return codes[: xa.size], codes[xa.size:], high - low + 1, n_rounded


def quadratic_kappa(a: ArrayLike, b: ArrayLike, *, scale: tuple[int, int] | None = None) -> float:
    """Cohen's kappa with quadratic weights over the whole-number categories (see module doc)."""
    ca, cb, m, _ = kappa_categories(a, b, scale)
    return float(_kappa_quadratic(ca[None], cb[None], m)[0])


@dataclass(frozen=True)
class BlandAltman:
    mean_difference: float
    lower_limit: float
    upper_limit: float


def bland_altman(x: ArrayLike, y: ArrayLike) -> BlandAltman:
    """Mean of ``x - y`` and its 95% limits of agreement."""
    xa, ya = _pair(x, y)
    mean, low, high = _bland_altman(xa[None], ya[None])
    return BlandAltman(float(mean[0]), float(low[0]), float(high[0]))


def binary_agreement(pred: ArrayLike, truth: ArrayLike) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of an automatic flag against a human flag."""
    p, t = np.asarray(pred, dtype=bool).ravel(), np.asarray(truth, dtype=bool).ravel()
    return {name: float(v[0]) for name, v in _binary(p[None], t[None]).items()}


# -- estimates with bootstrap confidence intervals ----------------------------------------------

def _estimate(stat: IndexStatistic, n: int, *, n_resamples: int, seed: int,
              confidence: float = DEFAULT_CONFIDENCE, reason: str | None = None) -> Estimate:
    """The statistic on all items, with its interval; withheld when most resamples leave it undefined."""
    if reason:
        return Estimate(None, reason=reason)
    value = float(stat(np.arange(n)[None])[0])
    if not math.isfinite(value):
        return Estimate(None, reason="undefined on these data (no variance)")
    interval = percentile_interval(stat, n, n_resamples=n_resamples, confidence=confidence, seed=seed)
    if n_resamples - interval.undefined < n_resamples / 2:
        return Estimate(value, reason=f"confidence interval withheld: undefined in "
                                      f"{interval.undefined} of {n_resamples} resamples")
    return Estimate(value, interval.low, interval.high)


def _no_variance(*series: FloatArray) -> str | None:
    if series[0].size < MIN_ITEMS:
        return f"too few items ({series[0].size} < {MIN_ITEMS})"
    for s in series:
        if np.ptp(s) == 0:
            return "no variance: every item has the same value"
    return None


def infer_scale(values: ArrayLike) -> str | None:
    """The scale a series is on, as far as its values tell.

    '0/1' for binary judgements, '1-5' for values within 1..5 (not all 1), '0-1'
    for other proportions, else None (a count, an unbounded number). Statistics that
    compare values need both series on the same scale.
    """
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    if np.isin(v, (0.0, 1.0)).all():
        return "0/1"
    if v.min() >= 1 and v.max() <= 5:
        return "1-5"
    if v.min() >= 0 and v.max() <= 1:
        return "0-1"
    return None


def paired_statistics(x: ArrayLike, y: ArrayLike, *, same_scale: bool,
                      kappa_scale: tuple[int, int] | None = None,
                      n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                      confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Estimate]:
    """Every agreement statistic of paired series ``x`` (automatic or rater A) and ``y``.

    ``same_scale`` enables the statistics that compare values, not orders (ICC,
    mean difference, limits of agreement); ``kappa_scale`` enables the weighted kappa
    on that whole-number scale. All share one set of resamples (one seed).
    """
    xa, ya = _pair(x, y)
    n = xa.size
    degenerate = _no_variance(xa, ya)
    common: dict[str, Any] = {"n_resamples": n_resamples, "seed": seed, "confidence": confidence}
    out = {
        "spearman": _estimate(lambda i: _spearman(xa, ya, _counts(i, n)), n, reason=degenerate, **common),
        "kendall_tau_b": _estimate(lambda i: _kendall_tau_b(xa, ya, _counts(i, n)), n, reason=degenerate,
                                   **common),
    }
    not_same = None if same_scale else "not on the same scale"
    table = np.stack([xa, ya], axis=1)
    too_few = f"too few items ({n} < {MIN_ITEMS})" if n < MIN_ITEMS else None
    for model in ("2,1", "3,1"):
        out[f"icc_{model.replace(',', '_')}"] = _estimate(
            lambda i, m=model: _icc(table[i], m), n, reason=not_same or too_few, **common)  # type: ignore[misc]
    if kappa_scale is None:
        out["kappa_quadratic"] = Estimate(None, reason="not both on a whole-number rating scale")
    else:
        ca, cb, m, n_rounded = kappa_categories(xa, ya, kappa_scale)
        kappa = _estimate(lambda i: _kappa_quadratic(ca[i], cb[i], m), n, reason=too_few, **common)
        if n_rounded and kappa.value is not None:
            note = f"{n_rounded} non-integer values rounded to the nearest category"
            kappa = Estimate(kappa.value, kappa.ci_low, kappa.ci_high,
                             f"{kappa.reason}; {note}" if kappa.reason else note)
        out["kappa_quadratic"] = kappa
    parts = ("mean_difference", "loa_lower", "loa_upper")
    for k, part in enumerate(parts):
        out[part] = _estimate(lambda i, k=k: _bland_altman(xa[i], ya[i])[k], n,  # type: ignore[misc]
                              reason=not_same or too_few, **common)
    return out


def flag_statistics(pred: ArrayLike, truth: ArrayLike, *, n_resamples: int = DEFAULT_RESAMPLES,
                    seed: int = DEFAULT_SEED, confidence: float = DEFAULT_CONFIDENCE) -> dict[str, Estimate]:
    """Accuracy, precision, recall, F1 of an automatic flag against the human flag, with CIs."""
    p, t = np.asarray(pred, dtype=bool).ravel(), np.asarray(truth, dtype=bool).ravel()
    n = p.size
    reasons = {
        "accuracy": None,
        "precision": "no item flagged automatically" if not p.any() else None,
        "recall": "no item flagged by the humans" if not t.any() else None,
        "f1": "no item flagged by either" if not (p.any() or t.any()) else None,
    }
    too_few = f"too few items ({n} < {MIN_ITEMS})" if n < MIN_ITEMS else None
    return {
        name: _estimate(lambda i, name=name: _binary(p[i], t[i])[name], n,  # type: ignore[misc]
                        reason=too_few or reason, n_resamples=n_resamples, seed=seed, confidence=confidence)
        for name, reason in reasons.items()
    }


def rater_table_statistics(table: ArrayLike, *, n_resamples: int = DEFAULT_RESAMPLES,
                           seed: int = DEFAULT_SEED, confidence: float = DEFAULT_CONFIDENCE
                           ) -> dict[str, Estimate]:
    """ICC(2,1) and ICC(3,1) across all raters of an items x raters table (complete rows)."""
    t = np.asarray(table, dtype=float)
    n = t.shape[0]
    reason = f"too few items ({n} < {MIN_ITEMS})" if n < MIN_ITEMS else None
    return {
        f"icc_{m.replace(',', '_')}": _estimate(lambda i, m=m: _icc(t[i], m), n,  # type: ignore[misc]
                                                reason=reason, n_resamples=n_resamples, seed=seed,
                                                confidence=confidence)
        for m in ("2,1", "3,1")
    }


def summarize(estimates: dict[str, Estimate]) -> dict[str, dict[str, Any]]:
    return {name: e.as_dict() for name, e in estimates.items()}

