"""The aggregator: bootstrap intervals, rows per system and metric, leaderboard, paired differences."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from clinsum.evaluators.aggregate import (
    Row,
    aggregate,
    bootstrap_ci,
    failures_by_system,
    leaderboard,
    paired_difference,
)
from clinsum.records import Score, Summary


def _score(note: str, system: str, metric: str, value: float | None) -> Score:
    return Score(note_id=note, system=system, metric=metric, value=value, evaluator="test", version="1")


def test_same_seed_gives_the_same_interval_and_another_seed_a_different_one() -> None:
    values = np.random.default_rng(1).normal(size=50)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_interval_matches_scipy_percentile_bootstrap_with_the_same_resamples() -> None:
    values = np.random.default_rng(2).exponential(size=30)
    for statistic in (np.mean, np.median):
        expected = stats.bootstrap((values,), statistic, n_resamples=2000, confidence_level=0.9,
                                   method="percentile", vectorized=True,
                                   rng=np.random.default_rng(5)).confidence_interval
        ours = bootstrap_ci(values, stat=statistic, n_resamples=2000, confidence=0.9, seed=5)
        assert ours == pytest.approx((expected.low, expected.high), abs=1e-12)


def test_interval_by_hand_for_a_tiny_sample() -> None:
    values = [0.0, 1.0]
    rng = np.random.default_rng(0)
    means = np.asarray(values)[rng.integers(0, 2, (100, 2))].mean(axis=1)
    assert bootstrap_ci(values, n_resamples=100, seed=0) == pytest.approx(
        tuple(np.percentile(means, [2.5, 97.5])))
    # Every resample mean is 0, 0.5 or 1: the interval's ends are among them.
    low, high = bootstrap_ci(values, n_resamples=100, seed=0)
    assert low == 0.0 and high == 1.0


def test_interval_contains_the_mean_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(3)
    widths = []
    for n in (10, 100, 1000):
        values = rng.normal(loc=0.4, scale=0.2, size=n)
        low, high = bootstrap_ci(values)
        assert low < values.mean() < high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # Roughly 1/sqrt(n): a tenfold n makes the interval about 3.2x narrower.
    assert 2.2 < widths[1] / widths[2] < 4.5


def test_large_samples_are_drawn_in_chunks_with_the_same_result_shape() -> None:
    values = np.random.default_rng(4).uniform(size=5000)
    low, high = bootstrap_ci(values, n_resamples=2000)
    assert low < values.mean() < high
    assert high - low < 0.03


def test_edge_cases_of_n() -> None:
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([0.25]) == (0.25, 0.25)
    assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="one-dimensional"):
        bootstrap_ci(np.ones((1, 2)))


def test_aggregate_rows_per_system_and_metric() -> None:
    scores = [
        _score("n1", "a", "rouge1", 0.2), _score("n2", "a", "rouge1", 0.4), _score("n3", "a", "rouge1", None),
        _score("n1", "b", "rouge1", 0.6), _score("n1", "b", "summary_words", 80.0),
    ]
    rows = aggregate(scores)
    assert [(r.system, r.metric) for r in rows] == [("a", "rouge1"), ("b", "rouge1"), ("b", "summary_words")]
    a = rows[0]
    assert (a.n, a.n_not_applicable) == (2, 1)
    assert a.mean == pytest.approx(0.3)
    assert a.mean is not None and a.ci_low is not None and a.ci_high is not None
    assert 0.2 <= a.ci_low <= a.mean <= a.ci_high <= 0.4
    assert (rows[1].n, rows[1].mean, rows[1].ci_low, rows[1].ci_high) == (1, 0.6, 0.6, 0.6)


def test_a_note_scored_twice_counts_once_with_its_latest_value() -> None:
    rows = aggregate([_score("n1", "a", "m", 0.0), _score("n1", "a", "m", 1.0), _score("n2", "a", "m", 1.0)])
    assert (rows[0].n, rows[0].mean) == (2, 1.0)


def test_metric_that_never_applies_has_no_mean() -> None:
    (row,) = aggregate([_score("n1", "a", "rouge1", None), _score("n2", "a", "rouge1", None)])
    assert (row.n, row.n_not_applicable, row.mean, row.ci_low, row.ci_high) == (0, 2, None, None, None)


def test_a_system_that_always_failed_still_has_a_row_for_every_metric() -> None:
    summaries = [Summary(note_id="n1", system="a", text="ok"), Summary(note_id="n2", system="a", error="x"),
                 Summary(note_id="n1", system="dead", error="401"),
                 Summary(note_id="n2", system="dead", error="401")]
    failures = failures_by_system(summaries)
    assert failures == {"a": 1, "dead": 2}
    scores = [_score("n1", "a", "rouge1", 0.5), _score("n1", "dead", "failed", 1.0)]
    rows = aggregate(scores, failures=failures)
    assert [(r.system, r.metric, r.n, r.mean) for r in rows] == [
        ("a", "failed", 0, None), ("a", "rouge1", 1, 0.5), ("dead", "failed", 1, 1.0), ("dead", "rouge1", 0, None)]
    assert [(r.system, r.metric) for r in aggregate(scores)] == [("a", "rouge1"), ("dead", "failed")]


def test_leaderboard_orders_systems_by_the_chosen_metric() -> None:
    scores = [_score(f"n{i}", system, metric, value)
              for i in range(3)
              for system, metric, value in [("low", "rouge1", 0.1), ("high", "rouge1", 0.9),
                                            ("mid", "rouge1", 0.5), ("low", "words", 10.0),
                                            ("high", "words", 300.0), ("mid", "words", 50.0)]]
    rows = aggregate(scores)
    best_first = leaderboard(rows, "rouge1")
    assert [r.system for r in best_first] == ["high", "high", "mid", "mid", "low", "low"]
    assert [r.metric for r in best_first[:2]] == ["rouge1", "words"]
    shortest_first = leaderboard(rows, "words", descending=False)
    assert [r.system for r in shortest_first][::2] == ["low", "mid", "high"]
    # Scores are aggregated on the way in; same order.
    assert leaderboard(scores, "rouge1") == best_first


def test_systems_without_the_metric_rank_last() -> None:
    rows = [Row("z", "rouge1", 2, 0.1, 0.0, 0.2), Row("a", "words", 2, 5.0, 4.0, 6.0),
            Row("m", "rouge1", 0, None, None, None)]
    assert [r.system for r in leaderboard(rows, "rouge1")] == ["z", "a", "m"]
    assert [r.system for r in leaderboard(rows)] == ["a", "m", "z"]


def test_paired_difference_uses_shared_notes_and_has_the_right_sign() -> None:
    rng = np.random.default_rng(6)
    difficulty = rng.uniform(0.2, 0.8, size=40)
    scores = []
    for i, d in enumerate(difficulty):
        scores.append(_score(f"n{i}", "better", "rouge1", d + 0.05 + rng.normal(scale=0.01)))
        scores.append(_score(f"n{i}", "worse", "rouge1", d))
    scores.append(_score("only-better", "better", "rouge1", 1.0))
    scores.append(_score("n0", "worse", "rouge2", 0.9))

    forward = paired_difference(scores, "rouge1", "better", "worse")
    assert forward.n == 40
    assert forward.mean == pytest.approx(0.05, abs=0.01)
    assert forward.mean is not None and forward.ci_low is not None and forward.ci_high is not None
    assert 0 < forward.ci_low < forward.mean < forward.ci_high
    assert forward.excludes_zero
    backward = paired_difference(scores, "rouge1", "worse", "better")
    assert backward.mean is not None and backward.mean == pytest.approx(-forward.mean)
    assert backward.ci_high is not None and backward.ci_high < 0

    # Pairing removes the note difficulty: far narrower than the unpaired interval.
    a_low, a_high = bootstrap_ci([s.value for s in scores
                                  if s.system == "better" and s.metric == "rouge1" and s.value is not None])
    assert (forward.ci_high - forward.ci_low) < (a_high - a_low) / 5


def test_paired_difference_without_shared_notes() -> None:
    result = paired_difference([_score("n1", "a", "m", 1.0), _score("n2", "b", "m", 1.0)], "m", "a", "b")
    assert (result.n, result.mean, result.ci_low, result.excludes_zero) == (0, None, None, False)
