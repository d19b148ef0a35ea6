"""The monitor's statistics and alerts on windows drawn from the fixture pool with planted changes.

The pool (252 production summaries of fixture notes, each with its planted
variants) is scored once per module; each test only draws windows from it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from clinsum.monitoring import significance
from clinsum.monitoring import simulate as sim
from clinsum.monitoring.alerts import MonitorSettings, compare_windows
from clinsum.monitoring.windows import WindowError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SETTINGS = MonitorSettings(n_resamples=1000)
SAFETY = {"critical_flips", "has_critical_flip", "assertion_flips"}


@pytest.fixture(scope="module")
def pool() -> list[sim.PoolItem]:
    return sim.score_pool(sim.fixture_sources(FIXTURES), sim.STANDARD_VARIANTS)


@pytest.fixture(scope="module")
def visit_notes(pool):
    return [item for item in pool if item.fields["note_type"] == "visit_note"]


def detections(pool, size, seeds=10, **current):
    """For each seed: the metrics that alerted, and those reported as mix shifts."""
    out = []
    baseline_weights = current.pop("baseline_weights", None)
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        baseline = sim.draw_window(pool, size, rng, label="b", weights=baseline_weights)
        comparison = compare_windows(baseline, sim.draw_window(pool, size, rng, label="c", **current), SETTINGS)
        out.append(({a.metric for a in comparison.alerts}, {c.metric for c in comparison.mix_shifts}))
    return out


# -- planted changes ------------------------------------------------------------------------


def test_negation_flips_in_a_40_summary_window_alert_on_the_status_metrics(visit_notes):
    runs = detections(visit_notes, 40, variant="flip", share=0.5)
    assert all(alerts & {"critical_flips", "has_critical_flip"} for alerts, _ in runs)
    # the words barely change: length and recall never alert, the flips do
    assert not any(alerts & {"concept_recall", "summary_words", "concept_f1"} for alerts, _ in runs)


def test_a_weaker_system_alerts_on_recall(pool):
    runs = detections(pool, 200, variant="weaker", share=1.0)
    assert all(alerts & {"concept_recall", "concept_f1", "rouge1", "rougeLsum"} for alerts, _ in runs)
    assert sum("concept_recall" in alerts for alerts, _ in runs) >= 8


def test_a_partial_rollout_of_a_weaker_system_alerts(visit_notes):
    runs = detections(visit_notes, 200, variant="weaker", share=0.25)
    assert sum("concept_recall" in alerts for alerts, _ in runs) >= 9


def test_silent_truncation_alerts(pool):
    runs = detections(pool, 100, variant="truncate:0.5", share=1.0)
    assert all(alerts & {"concept_recall", "concept_f1", "rouge1", "rougeLsum"} for alerts, _ in runs)
    assert sum("concept_recall" in alerts for alerts, _ in runs) >= 8


def test_a_case_mix_shift_is_reported_as_such_not_as_a_degradation(pool):
    dialogue_heavy = [9 if item.fields["note_type"] == "dialogue" else 1 for item in pool]
    visit_heavy = [1 if item.fields["note_type"] == "dialogue" else 9 for item in pool]
    runs = detections(pool, 300, weights=visit_heavy, baseline_weights=dialogue_heavy)
    assert sum("concept_recall" in shifts for _, shifts in runs) >= 7
    assert sum("concept_recall" in alerts for alerts, _ in runs) <= 3


def test_a_real_degradation_under_a_case_mix_shift_still_alerts(pool):
    dialogue_heavy = [9 if item.fields["note_type"] == "dialogue" else 1 for item in pool]
    visit_heavy = [1 if item.fields["note_type"] == "dialogue" else 9 for item in pool]
    runs = detections(pool, 300, seeds=5, weights=visit_heavy, baseline_weights=dialogue_heavy,
                      variant="truncate:0.5", share=1.0)
    assert all("concept_recall" in alerts and "concept_recall" not in shifts for alerts, shifts in runs)


def test_same_distribution_splits_keep_the_false_alarm_rate_at_or_below_the_nominal_level(pool):
    """200 pairs of 40-summary windows drawn from the same pool.

    Family-wise, a split with any alert counts as one false alarm: at most 5%.
    Each test on its own (unadjusted one-sided p below 0.05) holds its level too,
    within two Monte Carlo standard errors.
    """
    false_alarms = 0
    rejections: dict[str, list[bool]] = {}
    for seed in range(200):
        rng = np.random.default_rng(seed)
        comparison = compare_windows(sim.draw_window(pool, 40, rng, label="b"),
                                     sim.draw_window(pool, 40, rng, label="c"), SETTINGS)
        false_alarms += bool(comparison.alerts)
        for check in comparison.checks:
            rejections.setdefault(check.test, []).append(check.p_value < 0.05)
    assert false_alarms / 200 <= 0.05
    assert set(rejections) == {"bootstrap", "mann-whitney", "fisher-exact"}
    margin = 2 * np.sqrt(0.05 * 0.95 / len(rejections["bootstrap"]))
    for test, hits in rejections.items():
        assert np.mean(hits) <= 0.05 + margin, (test, np.mean(hits))


def test_a_rise_in_failed_summaries_alerts_on_the_failure_rate(pool):
    """A failed summary has no scores but ``failed``: a fifth of the window failing must alert."""
    for seed in range(5):
        rng = np.random.default_rng(seed)
        baseline, drawn = sim.draw_window(pool, 100, rng, label="b"), sim.draw_window(pool, 100, rng, label="c")
        failing = [replace(o, values={"failed": 1.0, "empty_summary": 0.0}) if i % 5 == 0 else o
                   for i, o in enumerate(drawn.observations)]
        comparison = compare_windows(baseline, replace(drawn, observations=tuple(failing)), SETTINGS)
        failed = next(c for c in comparison.checks if c.metric == "failed")
        assert failed.alert and failed.test == "fisher-exact" and failed.difference == pytest.approx(0.2)


def test_a_fixed_set_of_notes_is_compared_paired_and_catches_truncation_in_20(pool):
    for seed in range(5):
        rng = np.random.default_rng(seed)
        baseline, current = sim.draw_same_notes(pool, 20, rng, variant="truncate:0.5", share=1.0)
        comparison = compare_windows(baseline, current, SETTINGS)
        assert all(c.paired for c in comparison.checks)
        assert {c.test for c in comparison.checks} == {"wilcoxon", "mcnemar-exact"}
        assert comparison.alerts
        unchanged = compare_windows(*sim.draw_same_notes(pool, 20, rng), SETTINGS)
        assert not unchanged.alerts and all(c.p_value == 1.0 for c in unchanged.checks)


def test_empty_summaries_alert_on_the_empty_summary_rate(pool):
    runs = detections(pool, 100, variant="empty", share=0.1)
    assert all("empty_summary" in alerts for alerts, _ in runs)


def test_an_improvement_is_reported_and_never_alerts(pool):
    rng = np.random.default_rng(3)
    worse = sim.draw_window(pool, 100, rng, label="b", variant="truncate:0.5", share=1.0)
    comparison = compare_windows(worse, sim.draw_window(pool, 100, rng, label="c"), SETTINGS)
    recall = next(c for c in comparison.checks if c.metric == "concept_recall" and c.segment == "all")
    assert recall.verdict == "better"
    assert not {"concept_recall", "concept_f1", "rouge1"} & {a.metric for a in comparison.alerts}


def test_segments_are_tested_and_enter_the_correction(pool):
    rng = np.random.default_rng(4)
    comparison = compare_windows(sim.draw_window(pool, 100, rng, label="b"),
                                 sim.draw_window(pool, 100, rng, label="c"), SETTINGS, by="note_type")
    segments = {c.segment for c in comparison.checks}
    assert {"all", "note_type=dialogue", "note_type=visit_note"} <= segments
    p = [c.p_value for c in comparison.checks]
    assert [c.p_adjusted for c in comparison.checks] == pytest.approx(significance.holm(p))


def test_too_few_resamples_for_the_family_are_raised_so_a_clear_change_still_alerts(pool):
    rng = np.random.default_rng(7)
    baseline = sim.draw_window(pool, 100, rng, label="b")
    current = sim.draw_window(pool, 100, rng, label="c", variant="truncate:0.5", share=1.0)
    comparison = compare_windows(baseline, current, MonitorSettings(n_resamples=100))
    tested = len(comparison.checks)
    assert comparison.settings.n_resamples >= 4 * tested / 0.05
    assert "concept_recall" in {a.metric for a in comparison.alerts}


def test_a_window_below_the_minimum_is_refused_with_the_minimum(pool):
    rng = np.random.default_rng(5)
    with pytest.raises(WindowError, match="has 10 summaries; at least 20"):
        compare_windows(sim.draw_window(pool, 10, rng), sim.draw_window(pool, 40, rng), SETTINGS)


def test_a_comparison_in_which_nothing_could_be_tested_is_an_error_not_a_pass(pool):
    rng = np.random.default_rng(6)
    visit_notes_only = [item for item in pool if item.fields["note_type"] == "visit_note"]
    settings = MonitorSettings(n_resamples=200, metrics=["concept_recall"], min_summaries=20)
    baseline, current = sim.draw_window(visit_notes_only, 30, rng), sim.draw_window(visit_notes_only, 30, rng)
    assert compare_windows(baseline, current, settings).checks
    with pytest.raises(WindowError, match="no values in both windows for: rouge1"):
        compare_windows(baseline, current, MonitorSettings(metrics=["rouge1"]))
    # 25 visit notes (no reference, so no ROUGE) and 5 dialogues: 30 summaries but 5 ROUGE values
    positions = [i for i, item in enumerate(pool) if item.fields["note_type"] == "visit_note"][:25]
    positions += [i for i, item in enumerate(pool) if item.fields["note_type"] == "dialogue"][:5]
    mixed = sim.draw_window(pool, 30, rng, indices=positions)
    assert len(mixed.observations) == 30 and len(mixed.values("rouge1")) == 5
    thin = MonitorSettings(n_resamples=200, metrics=["rouge1"], min_summaries=20)
    with pytest.raises(WindowError, match=r"no metric could be tested.*rouge1: 5 baseline"):
        compare_windows(mixed, mixed, thin)


# -- the statistics against scipy -----------------------------------------------------------


def test_holm_matches_a_worked_example():
    assert significance.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).uniform(0, 0.2, 30)
    assert significance.benjamini_hochberg(list(p)) == pytest.approx(stats.false_discovery_control(p))


def test_paired_wilcoxon_and_interval_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.normal(0.5, 0.1, 40)
    b = a - 0.03 + rng.normal(0, 0.05, 40)
    result = significance.compare_paired("continuous", a, b, alternative="less", seed=0, n_resamples=2000)
    assert result.p_value == pytest.approx(stats.wilcoxon(b, a, alternative="less").pvalue)
    ci = stats.bootstrap((b - a,), np.mean, n_resamples=2000, method="percentile",
                         random_state=np.random.default_rng(0), vectorized=True).confidence_interval
    assert result.ci == pytest.approx((ci.low, ci.high))


def test_unpaired_rank_and_exact_tests_match_scipy():
    rng = np.random.default_rng(2)
    a, b = rng.integers(1, 6, 50).astype(float), rng.integers(1, 5, 50).astype(float)
    assert significance.compare_unpaired("ordinal", a, b, alternative="less").p_value == pytest.approx(
        stats.brunnermunzel(b, a, alternative="less").pvalue)
    assert significance.compare_unpaired("count", a, b, alternative="less").p_value == pytest.approx(
        stats.mannwhitneyu(b, a, alternative="less").pvalue)
    x, y = (rng.random(60) < 0.05).astype(float), (rng.random(60) < 0.25).astype(float)
    table = [[int(y.sum()), 60 - int(y.sum())], [int(x.sum()), 60 - int(x.sum())]]
    assert significance.compare_unpaired("rate", x, y, alternative="greater").p_value == pytest.approx(
        stats.fisher_exact(table, alternative="greater").pvalue)


def test_the_bootstrap_test_agrees_with_a_permutation_test():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.6, 0.15, 60), rng.normal(0.55, 0.15, 60)
    ours = significance.compare_unpaired("continuous", a, b, alternative="less", n_resamples=8000).p_value
    permutation = stats.permutation_test((b, a), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
                                         alternative="less", n_resamples=8000, vectorized=True,
                                         random_state=np.random.default_rng(0)).pvalue
    assert ours == pytest.approx(permutation, abs=0.02)


def test_the_stratified_difference_removes_a_pure_mix_change():
    low, high = np.full(30, 0.2), np.full(30, 0.8)
    baseline = [low[:25], high[:5]]   # mostly the low stratum
    current = [low[:5], high[:25]]    # mostly the high one: the raw mean jumps, no stratum changed
    difference, p, _ = significance.stratified_bootstrap(baseline, current, n_resamples=500)
    assert difference == pytest.approx(0.0) and p == 1.0


def test_planted_changes_do_what_they_say():
    assert sim.flip_negation("He denies chest pain. No fever.") == "He reports chest pain. No fever."
    assert sim.flip_negation("Cough for three days.") is None
    assert sim.truncate("one two three\nfour five six seven eight", 0.5) == "one two three\nfour"


def test_paired_rates_use_the_exact_mcnemar_tail_computed_by_hand():
    """Same notes, a 0/1 rate: only the discordant pairs count, and the one-sided p is their binomial tail."""
    import math

    baseline = [0.0] * 30 + [1.0] * 10
    current = [0.0] * 22 + [1.0] * 8 + [1.0] * 8 + [0.0] * 2   # 8 notes got worse, 2 got better
    result = significance.compare_paired("rate", baseline, current, alternative="greater")
    tail = sum(math.comb(10, k) for k in range(8, 11)) / 2 ** 10
    assert result.test == "mcnemar-exact" and result.p_value == pytest.approx(tail)
    assert result.difference == pytest.approx(6 / 40)
    assert significance.compare_paired("rate", baseline, baseline, alternative="greater").p_value == 1.0


def test_a_misspelt_monitor_setting_is_named_with_the_valid_ones_as_written_in_a_file() -> None:
    from clinsum.errors import ConfigError
    from clinsum.monitoring.alerts import load_settings

    with pytest.raises(ConfigError, match=r"\[monitor\]: unknown setting 'alfa'; valid settings: alpha, .*\blambda\b"):
        load_settings({"alfa": 0.1})
