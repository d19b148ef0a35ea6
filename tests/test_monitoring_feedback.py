"""Physician feedback per window: acceptance, ratings, and clinsum's flags against the verdicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics

from clinsum.monitoring.feedback import window_feedback
from clinsum.records import Rating, Score

RUN = "prod-week-1"


def rating(note: str, rater: str, dimension: str, value: float, run: str | None = RUN) -> Rating:
    return Rating(note_id=note, system="prod", rater=rater, dimension=dimension, value=value, run_id=run)


def score(note: str, metric: str, value: float) -> tuple[str, Score]:
    return RUN, Score(note_id=note, system="prod", metric=metric, value=value, evaluator="t", version="1")


def planted(seed: int = 0) -> tuple[list[Rating], list[tuple[str, Score]], np.ndarray, np.ndarray]:
    """60 reviewed summaries; 20 rejected. clinsum flags 15 of those and 5 of the accepted ones."""
    rng = np.random.default_rng(seed)
    rejected = np.zeros(60, dtype=bool)
    rejected[rng.choice(60, 20, replace=False)] = True
    flagged = rejected.copy()
    flagged[rng.choice(np.flatnonzero(rejected), 5, replace=False)] = False
    flagged[rng.choice(np.flatnonzero(~rejected), 5, replace=False)] = True
    ratings, scores = [], []
    for i in range(60):
        note = f"n{i:02d}"
        ratings.append(rating(note, "dr-a", "accepted", 0.0 if rejected[i] else 1.0))
        ratings.append(rating(note, "dr-a", "accurate", 2.0 if rejected[i] else 4.0 + i % 2))
        # half of the flagged summaries through a critical flip, half through low recall
        scores.append(score(note, "critical_flips", 1.0 if flagged[i] and i % 2 else 0.0))
        scores.append(score(note, "concept_recall", 0.3 if flagged[i] and not i % 2 else 0.8))
    return ratings, scores, flagged, rejected


def test_flags_against_verdicts_match_scikit_learn() -> None:
    ratings, scores, flagged, rejected = planted()
    report = window_feedback(ratings, scores, n_resamples=300)
    flags = report["flags"]
    assert (flags["tp"], flags["fp"], flags["fn"], flags["tn"]) == (15, 5, 5, 35)
    s = flags["statistics"]
    assert s["precision"]["value"] == pytest.approx(metrics.precision_score(rejected, flagged))
    assert s["recall"]["value"] == pytest.approx(metrics.recall_score(rejected, flagged))
    assert s["f1"]["value"] == pytest.approx(metrics.f1_score(rejected, flagged))
    assert s["accuracy"]["value"] == pytest.approx(metrics.accuracy_score(rejected, flagged))
    low, high = s["recall"]["ci"]
    assert low < 0.75 < high


def test_acceptance_and_mean_rating_with_intervals() -> None:
    ratings, scores, _, _ = planted()
    report = window_feedback(ratings, scores, n_resamples=300)
    assert report["n_reviewed"] == 60 and report["n_scored"] == 60
    acceptance = report["acceptance"]
    assert acceptance["mean"] == pytest.approx(40 / 60)
    assert acceptance["ci"][0] < 40 / 60 < acceptance["ci"][1]
    accurate = [r.value for r in ratings if r.dimension == "accurate"]
    assert report["ratings"]["accurate"]["mean"] == pytest.approx(np.mean(accurate))
    assert set(report["ratings"]) == {"accurate"}


def test_any_reviewer_rejecting_or_naming_an_error_is_a_physician_flag() -> None:
    ratings = [rating("a", "dr-a", "accepted", 1), rating("a", "dr-b", "accepted", 0),  # one rejects
               rating("b", "dr-a", "accepted", 1), rating("b", "dr-a", "errors", 1),
               rating("b", "dr-a", "error:omission", 1),                                 # accepted with an error
               rating("c", "dr-a", "accepted", 1), rating("c", "dr-a", "errors", 0),     # clean
               rating("d", "dr-a", "accurate", 3)]                                        # no verdict at all
    scores = [score(n, "critical_flips", 0) for n in "abcd"]
    report = window_feedback(ratings, scores, n_resamples=100)
    flags = report["flags"]
    assert (flags["n"], flags["fn"], flags["tn"]) == (3, 2, 1)
    assert flags["left_out"] == {"no_flag_metric": 0, "no_verdict": 1}
    assert report["acceptance"]["mean"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert report["error_categories"] == {"omission": 1}


def test_the_flag_rule_is_configurable_and_the_window_selects_summaries() -> None:
    ratings, scores, flagged, rejected = planted()
    only_flips = window_feedback(ratings, scores, summary_flag=["critical_flips>=1"], n_resamples=100)
    flips = np.array([i % 2 == 1 and flagged[i] for i in range(60)])
    assert only_flips["flags"]["tp"] == int((flips & rejected).sum())
    assert only_flips["flags"]["summary_flag"] == "critical_flips>=1"
    first_half = {(RUN, f"n{i:02d}", "prod") for i in range(30)}
    half = window_feedback(ratings, scores, summaries=first_half, n_resamples=100)
    assert half["n_reviewed"] == 30 and half["flags"]["n"] == 30
    assert half["acceptance"]["mean"] == pytest.approx(1 - rejected[:30].mean())


def test_summaries_without_any_flag_metric_stay_out() -> None:
    ratings, _, _, _ = planted()
    report = window_feedback(ratings, [score("n00", "rouge1", 0.4)], n_resamples=100)
    assert report["flags"]["n"] == 0 and report["flags"]["left_out"]["no_flag_metric"] == 60
    assert report["flags"]["statistics"]["precision"]["value"] is None
