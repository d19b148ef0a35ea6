"""EWMA control limits over time: planted shifts alert, stable data alerts at about the nominal rate."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import NormalDist

import numpy as np
import pytest

from clinsum.monitoring.trend import Observation, cut, observations, trend
from clinsum.records import Score

START = datetime(2026, 1, 5)  # a Monday
PER_DAY = 40
REFERENCE = 7


def production(seed: int, days: int = 37, *, shift_from: int | None = None, recall_drop: float = 0.0,
               flip_rate: float = 0.1, failure_rate: float = 0.1) -> list[Observation]:
    """PER_DAY summaries a day: a continuous metric, a 0/1 rate and a count of rare events.

    From day ``shift_from`` on, concept recall drops by ``recall_drop`` and critical flips
    occur at ``flip_rate`` per summary (0.1 before).
    """
    rng = np.random.default_rng(seed)
    observations = []
    for day in range(days):
        shifted = shift_from is not None and day >= shift_from
        for i in range(PER_DAY):
            observations.append(Observation(START + timedelta(days=day, minutes=7 * i), {
                "concept_recall": float(rng.normal(0.6 - (recall_drop if shifted else 0.0), 0.15)),
                "failed": float(rng.random() < failure_rate),
                "critical_flips": float(rng.poisson(flip_rate if shifted else 0.1)),
                "summary_words": float(rng.integers(80, 120)),
            }))
    return observations


def alerts(report: dict, metric: str) -> list[str]:
    return [a["window"] for a in report["alerts"] if a["metric"] == metric]


def test_windows_by_day_week_and_count() -> None:
    observations = production(0, days=14)
    days = cut(observations, "day")
    assert [label for label, _ in days[:2]] == ["2026-01-05", "2026-01-06"] and len(days) == 14
    assert [(label, len(chunk)) for label, chunk in cut(observations, "week")] == [
        ("2026-W02", 7 * PER_DAY), ("2026-W03", 7 * PER_DAY)]
    by_count = cut(list(reversed(observations)), 100)
    assert [len(chunk) for _, chunk in by_count] == [100] * 5 + [60]
    assert by_count[0][1][0].created_at == START  # ordered by created_at whatever the input order


def test_a_planted_drop_in_recall_alerts_soon_after_it_starts() -> None:
    """Recall down 0.05 (a third of its per-summary SD) from day 20, over 20 seeds.

    Measured when written: the first alert came 1 to 14 days after the shift, median 4.
    """
    delays = []
    for seed in range(20):
        report = trend(production(seed, shift_from=20, recall_drop=0.05), window="day",
                       reference_windows=REFERENCE)
        found = alerts(report, "concept_recall")
        assert found and found[0] >= "2026-01-25", (seed, found)  # day 20, never before the shift
        delays.append((datetime.fromisoformat(found[0]) - (START + timedelta(days=20))).days)
    assert float(np.median(delays)) <= 5
    report = trend(production(1, shift_from=20, recall_drop=0.05), window="day", reference_windows=REFERENCE)
    (chart,) = [m for m in report["metrics"] if m["metric"] == "concept_recall"]
    assert chart["direction"] == "higher" and chart["reference_n"] == REFERENCE * PER_DAY
    first = chart["windows"][REFERENCE]
    assert first["lower"] < chart["reference_mean"] < first["upper"]
    assert all(w["ewma"] is None for w in chart["windows"][:REFERENCE])


def test_more_critical_flips_alert_and_an_improvement_does_not() -> None:
    worse = trend(production(2, shift_from=20, flip_rate=0.3), window="day", reference_windows=REFERENCE)
    assert alerts(worse, "critical_flips") and min(alerts(worse, "critical_flips")) >= "2026-01-25"
    better = trend(production(2, shift_from=20, recall_drop=-0.1, flip_rate=0.0), window="day",
                   reference_windows=REFERENCE)
    assert alerts(better, "concept_recall") == [] and alerts(better, "critical_flips") == []
    assert alerts(worse, "summary_words") == []  # no direction, never alerts


def test_a_constant_reference_alerts_on_the_first_bad_move() -> None:
    observations = [Observation(START + timedelta(days=d, minutes=i), {"critical_flips": 0.0})
                    for d in range(10) for i in range(20)]
    observations.append(Observation(START + timedelta(days=9, minutes=30), {"critical_flips": 1.0}))
    assert alerts(trend(observations, reference_windows=REFERENCE), "critical_flips") == ["2026-01-14"]


@pytest.mark.parametrize("limit", [2.0, 3.0])
def test_stable_data_alert_at_no_more_than_the_nominal_rate(limit: float) -> None:
    """Same-distribution data over 100 seeds: the share of monitored windows alerting, per metric.

    The figures for the docs come from benchmarks/trend_false_alarms.py (same design, more seeds).
    """
    nominal = 1 - NormalDist().cdf(limit)
    seeds, monitored = 100, 30
    counts = {"concept_recall": 0, "failed": 0, "critical_flips": 0}
    for seed in range(seeds):
        report = trend(production(1000 + seed, days=REFERENCE + monitored), reference_windows=REFERENCE,
                       limit=limit)
        for metric in counts:
            counts[metric] += len(alerts(report, metric))
    rates = {metric: count / (seeds * monitored) for metric, count in counts.items()}
    for metric, rate in rates.items():
        assert rate <= 1.5 * nominal, (metric, rate, nominal)
    if limit == 2.0:  # enough alarms to tell a chart that never fires from a calibrated one
        assert all(rate >= 0.3 * nominal for rate in rates.values()), rates


def test_too_few_windows_for_the_reference_is_an_error() -> None:
    with pytest.raises(ValueError, match="reference period takes the first 7"):
        trend(production(0, days=7), reference_windows=REFERENCE)
    with pytest.raises(ValueError, match="day, week or a number"):
        trend(production(0, days=9), window="month")


def test_observations_join_scores_to_the_time_their_summary_was_made() -> None:
    made = {("r1", "n1", "prod"): START, ("r2", "n1", "prod"): START + timedelta(days=1)}
    scores = [(run, Score(note_id="n1", system="prod", metric=m, value=v, evaluator="t", version="1"))
              for run, m, v in (("r1", "rouge1", 0.4), ("r1", "failed", 0.0), ("r2", "rouge1", 0.2),
                                ("r3", "rouge1", 0.9))]
    found = sorted(observations(made, scores), key=lambda o: o.created_at)
    assert [(o.created_at, dict(o.values)) for o in found] == [
        (START, {"rouge1": 0.4, "failed": 0.0}), (START + timedelta(days=1), {"rouge1": 0.2})]
