"""Agreement statistics against independent references on the same data, to 1e-6.

References: scipy.stats (Spearman, Kendall tau-b), scikit-learn (weighted kappa,
accuracy/precision/recall/F1), the worked example of Shrout & Fleiss (1979) and a
plain two-way ANOVA written here for the ICCs, and a bootstrap loop written here
(scipy on every resample) for the confidence intervals.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics

from clinsum.evaluators import agreement as ag

TOL = 1e-6

# Shrout & Fleiss (1979), Table 2: six targets rated by four judges.
SHROUT_FLEISS = np.array([
    [9, 2, 5, 8],
    [6, 1, 3, 2],
    [8, 4, 6, 8],
    [7, 1, 2, 6],
    [10, 5, 6, 9],
    [6, 2, 4, 7],
], dtype=float)


def likert_pairs(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated 1-5 rating series with many ties."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 6, n).astype(float)
    y = np.clip(x + rng.integers(-2, 3, n), 1, 5).astype(float)
    return x, y


def continuous_pairs(seed: int, n: int = 80) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    return x, 0.6 * x + 0.4 * rng.random(n)


@pytest.mark.parametrize("seed", range(5))
def test_rank_correlations_match_scipy_with_and_without_ties(seed: int) -> None:
    for x, y in (likert_pairs(seed), continuous_pairs(seed)):
        assert ag.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=TOL)
        assert ag.kendall_tau_b(x, y) == pytest.approx(
            stats.kendalltau(x, y, variant="b").statistic, abs=TOL)


def test_rank_correlations_of_opposite_orders() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert ag.spearman(x, x[::-1]) == pytest.approx(-1.0)
    assert ag.kendall_tau_b(x, x[::-1]) == pytest.approx(-1.0)


@pytest.mark.parametrize("seed", range(5))
def test_quadratic_kappa_matches_scikit_learn_on_the_declared_scale(seed: int) -> None:
    x, y = likert_pairs(seed)
    expected = metrics.cohen_kappa_score(x, y, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert ag.quadratic_kappa(x, y, scale=(1, 5)) == pytest.approx(expected, abs=TOL)


def test_kappa_without_scale_weights_by_value_distance_not_label_position() -> None:
    # Observed values 1, 2 and 5: 5 is three categories from 2, not one.
    x = np.array([1, 2, 5, 5, 2, 1, 5, 2], dtype=float)
    y = np.array([1, 5, 5, 2, 2, 1, 5, 1], dtype=float)
    full_range = metrics.cohen_kappa_score(x, y, weights="quadratic", labels=[1, 2, 3, 4, 5])
    observed_only = metrics.cohen_kappa_score(x, y, weights="quadratic")
    assert ag.quadratic_kappa(x, y) == pytest.approx(full_range, abs=TOL)
    assert abs(full_range - observed_only) > 1e-3  # the choice matters on these data


def test_kappa_rounds_means_of_samples_half_up_and_says_so() -> None:
    judge = np.array([1.5, 2.0, 3.4, 4.5, 4.0, 2.5, 1.0, 3.6])
    human = np.array([2.0, 2.0, 3.0, 5.0, 4.0, 2.0, 1.0, 4.0])
    rounded = np.array([2, 2, 3, 5, 4, 3, 1, 4])
    expected = metrics.cohen_kappa_score(rounded, human.astype(int), weights="quadratic",
                                         labels=[1, 2, 3, 4, 5])
    assert ag.quadratic_kappa(judge, human, scale=(1, 5)) == pytest.approx(expected, abs=TOL)
    kappa = ag.paired_statistics(judge, human, same_scale=True, kappa_scale=(1, 5))["kappa_quadratic"]
    assert kappa.value == pytest.approx(expected, abs=TOL)
    assert kappa.reason is not None and "5 non-integer values rounded" in kappa.reason


def test_kappa_rejects_values_outside_the_declared_scale() -> None:
    with pytest.raises(ValueError, match=r"1\.\.5"):
        ag.quadratic_kappa([1, 2, 6], [1, 2, 3], scale=(1, 5))


def anova_icc(table: np.ndarray) -> tuple[float, float]:
    """ICC(2,1) and ICC(3,1) by the textbook two-way ANOVA, written out with loops."""
    n, k = table.shape
    grand = sum(sum(row) for row in table) / (n * k)
    row_means = [sum(row) / k for row in table]
    col_means = [sum(table[i][j] for i in range(n)) / n for j in range(k)]
    bms = k * sum((m - grand) ** 2 for m in row_means) / (n - 1)
    jms = n * sum((m - grand) ** 2 for m in col_means) / (k - 1)
    residual = sum((table[i][j] - row_means[i] - col_means[j] + grand) ** 2
                   for i in range(n) for j in range(k))
    ems = residual / ((n - 1) * (k - 1))
    icc21 = (bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n)
    icc31 = (bms - ems) / (bms + (k - 1) * ems)
    return icc21, icc31


def test_icc_reproduces_shrout_and_fleiss_table_2() -> None:
    assert round(ag.icc(SHROUT_FLEISS, "2,1"), 2) == 0.29
    assert round(ag.icc(SHROUT_FLEISS, "3,1"), 2) == 0.71
    icc21, icc31 = anova_icc(SHROUT_FLEISS)
    assert ag.icc(SHROUT_FLEISS, "2,1") == pytest.approx(icc21, abs=TOL)
    assert ag.icc(SHROUT_FLEISS, "3,1") == pytest.approx(icc31, abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_icc_matches_the_anova_on_random_tables(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(30, 1))
    table = truth + rng.normal(scale=0.7, size=(30, 2 + seed)) + rng.normal(size=(1, 2 + seed))
    icc21, icc31 = anova_icc(table)
    assert ag.icc(table, "2,1") == pytest.approx(icc21, abs=TOL)
    assert ag.icc(table, "3,1") == pytest.approx(icc31, abs=TOL)


def test_icc_absolute_agreement_punishes_a_constant_offset_consistency_does_not() -> None:
    x, _ = continuous_pairs(3)
    table = np.stack([x, x + 0.5], axis=1)
    assert ag.icc(table, "3,1") == pytest.approx(1.0, abs=TOL)
    assert ag.icc(table, "2,1") < 0.5


def test_bland_altman_matches_the_definition() -> None:
    x, y = continuous_pairs(1)
    diffs = [a - b for a, b in zip(x, y, strict=True)]
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    result = ag.bland_altman(x, y)
    assert result.mean_difference == pytest.approx(mean, abs=TOL)
    assert result.lower_limit == pytest.approx(mean - 1.96 * sd, abs=TOL)
    assert result.upper_limit == pytest.approx(mean + 1.96 * sd, abs=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_binary_flags_match_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.random(70) < 0.3
    pred = np.where(rng.random(70) < 0.8, truth, ~truth)
    result = ag.binary_agreement(pred, truth)
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(truth, pred), abs=TOL)
    assert result["precision"] == pytest.approx(metrics.precision_score(truth, pred), abs=TOL)
    assert result["recall"] == pytest.approx(metrics.recall_score(truth, pred), abs=TOL)
    assert result["f1"] == pytest.approx(metrics.f1_score(truth, pred), abs=TOL)


def reference_percentile_ci(x: np.ndarray, y: np.ndarray, statistic, n_resamples: int, seed: int):
    """The bootstrap written out: same index draws, scipy on every resample."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_resamples, len(x)))
    values = np.array([statistic(x[i], y[i]) for i in idx])
    values = values[np.isfinite(values)]
    return np.percentile(values, [2.5, 97.5])


@pytest.mark.parametrize("make", [likert_pairs, continuous_pairs])
def test_bootstrap_intervals_equal_scipy_on_every_resample(make) -> None:
    x, y = make(7, 40)
    result = ag.paired_statistics(x, y, same_scale=True, kappa_scale=None, n_resamples=300, seed=11)
    for name, reference in (
        ("spearman", lambda a, b: stats.spearmanr(a, b).statistic),
        ("kendall_tau_b", lambda a, b: stats.kendalltau(a, b).statistic),
        ("mean_difference", lambda a, b: float(np.mean(a - b))),
        ("icc_3_1", lambda a, b: anova_icc(np.stack([a, b], axis=1))[1]),
    ):
        low, high = reference_percentile_ci(x, y, reference, 300, 11)
        assert result[name].ci_low == pytest.approx(low, abs=TOL), name
        assert result[name].ci_high == pytest.approx(high, abs=TOL), name


def test_bootstrap_flag_intervals_equal_scikit_learn_on_every_resample() -> None:
    rng = np.random.default_rng(5)
    truth = rng.random(50) < 0.4
    pred = np.where(rng.random(50) < 0.75, truth, ~truth)
    result = ag.flag_statistics(pred, truth, n_resamples=200, seed=3)
    low, high = reference_percentile_ci(
        pred, truth, lambda p, t: metrics.f1_score(t, p, zero_division=np.nan), 200, 3)
    assert (result["f1"].ci_low, result["f1"].ci_high) == pytest.approx((low, high), abs=TOL)


def test_bootstrap_is_reproducible_and_depends_on_the_seed() -> None:
    x, y = continuous_pairs(2)
    first = ag.paired_statistics(x, y, same_scale=True)
    again = ag.paired_statistics(x, y, same_scale=True)
    other = ag.paired_statistics(x, y, same_scale=True, seed=1)
    assert first == again
    assert first["spearman"].ci_low != other["spearman"].ci_low
    for estimate in first.values():
        if estimate.value is not None and estimate.ci_low is not None:
            assert estimate.ci_low <= estimate.value + TOL
            assert estimate.value - TOL <= estimate.ci_high  # type: ignore[operator]


def test_degenerate_data_give_none_with_a_reason() -> None:
    too_few = ag.paired_statistics([1.0, 2.0], [2.0, 3.0], same_scale=True, kappa_scale=(1, 5))
    assert all(e.value is None and e.reason and "too few" in e.reason for e in too_few.values())

    constant = ag.paired_statistics([3.0] * 6, [1, 2, 3, 4, 5, 5], same_scale=True)
    assert constant["spearman"].value is None and "no variance" in str(constant["spearman"].reason)
    assert constant["kendall_tau_b"].value is None

    other_scales = ag.paired_statistics([0.1, 0.5, 0.9, 0.3], [1, 3, 5, 2], same_scale=False)
    assert other_scales["icc_2_1"].value is None and other_scales["mean_difference"].value is None
    assert other_scales["spearman"].value == pytest.approx(1.0)

    no_flags = ag.flag_statistics([False] * 5, [True, False, True, False, False])
    assert no_flags["precision"].value is None and "no item flagged automatically" in str(
        no_flags["precision"].reason)
    assert no_flags["recall"].value == 0.0
    assert no_flags["accuracy"].value == pytest.approx(0.6)


def test_interval_is_withheld_when_most_resamples_are_undefined() -> None:
    # Each series has one odd item: most resamples of 4 items miss one of them, and a
    # series without its odd item has no variance.
    x, y = [2.0, 1.0, 1.0, 1.0], [1.0, 2.0, 1.0, 1.0]
    result = ag.paired_statistics(x, y, same_scale=True, n_resamples=500)
    assert result["spearman"].value == pytest.approx(stats.spearmanr(x, y).statistic)
    assert result["spearman"].ci_low is None and "withheld" in str(result["spearman"].reason)


def test_rater_table_icc_across_several_raters() -> None:
    result = ag.rater_table_statistics(SHROUT_FLEISS, n_resamples=200)
    assert round(result["icc_2_1"].value or 0, 2) == 0.29
    assert round(result["icc_3_1"].value or 0, 2) == 0.71


def test_scale_inference() -> None:
    assert ag.infer_scale([1, 2, 5, 3]) == "1-5"
    assert ag.infer_scale([0.0, 0.25, 1.0]) == "0-1"
    assert ag.infer_scale([0, 1, 1, 0]) == "0/1"
    assert ag.infer_scale([1, 1, 2.5]) == "1-5"
    assert ag.infer_scale([0, 3, 7]) is None
    assert ag.infer_scale([]) is None
