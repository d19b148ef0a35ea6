"""Physicians' feedback as metrics of a monitor window: which ratings a window takes, and how they become
``physician_accepted`` and ``physician_<attribute>`` values that ``compare_windows`` tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clinsum.monitoring.alerts import MonitorSettings, compare_windows
from clinsum.monitoring.feedback import physician_values, with_physician_values
from clinsum.monitoring.windows import (
    Observation,
    Selector,
    Window,
    load_window,
    metric_info,
    parse_selector,
    window_ratings,
)
from clinsum.records import Note, Rating, Summary
from clinsum.store import Store


def rating(note: str, dimension: str, value: float, *, run: str | None, rater: str = "dr-a") -> Rating:
    return Rating(note_id=note, system="p", rater=rater, dimension=dimension, value=value, run_id=run)


def test_a_window_takes_only_the_ratings_of_its_own_summaries(tmp_path: Path) -> None:
    """Runs A and B both summarize n1; only A summarizes n2. The window is run A."""
    store = Store.open(tmp_path / "s.db")
    try:
        for run_id, notes in (("A", ["n1", "n2"]), ("B", ["n1"])):
            store.create_run(run_id, {}, kind="score", version="t",
                             notes=[Note(id=n, text=f"note {n}") for n in notes],
                             summaries=[Summary(note_id=n, system="p", text="s") for n in notes])
        store.add_ratings([rating("n1", "accepted", 1, run="A"), rating("n1", "accepted", 0, run="B"),
                           rating("n1", "accurate", 2, run=None),   # untied, two runs hold n1: no guess
                           rating("n2", "accepted", 0, run=None)],  # untied, only A holds n2: A's
                          "test")
        window = load_window(store, parse_selector("A"))
        taken = sorted((r.run_id, r.note_id, r.dimension, r.value) for r in window_ratings(store, window))
    finally:
        store.close()
    assert taken == [("A", "n1", "accepted", 1.0), ("A", "n2", "accepted", 0.0)]


def test_physician_values_per_summary() -> None:
    ratings = [rating("n1", "accepted", 1, run="A"), rating("n1", "accepted", 0, run="A", rater="dr-b"),
               rating("n1", "accurate", 4, run="A"), rating("n1", "accurate", 3, run="A", rater="dr-b"),
               rating("n1", "unsafe", 0, run="A"), rating("n1", "errors", 1, run="A"),
               rating("n1", "error:omission", 1, run="A"),
               rating("n2", "accepted", 1, run="A"), rating("n2", "thorough", 5, run="A")]
    values = physician_values(ratings)
    # one reviewer rejected n1: not accepted; a 0/1 "unsafe" and the error counts are not ratings
    assert values[("A", "n1", "p")] == {"physician_accepted": 0.0, "physician_accurate": 3.5}
    assert values[("A", "n2", "p")] == {"physician_accepted": 1.0, "physician_thorough": 5.0}
    accepted, accurate = metric_info("physician_accepted"), metric_info("physician_accurate")
    assert accepted is not None and (accepted.direction, accepted.kind) == ("higher", "rate")
    assert accurate is not None and (accurate.direction, accurate.kind, accurate.low, accurate.high) == (
        "higher", "ordinal", 1, 5)


def window(run: str, accepted: list[int]) -> tuple[Window, list[Rating]]:
    """40 summaries of 40 notes; the first ``len(accepted)`` reviewed with those verdicts."""
    rng = np.random.default_rng(0)  # the same recall in both windows
    observations = tuple(Observation(run, f"{run}-n{i}", "p", None, {"concept_recall": float(rng.uniform(0.5, 0.7))},
                                     {}, 100) for i in range(40))
    ratings = [rating(f"{run}-n{i}", "accepted", v, run=run) for i, v in enumerate(accepted)]
    return Window(Selector(runs=(run,)), (run,), observations), ratings


@pytest.mark.parametrize("reviewed", [30, 12])
def test_acceptance_is_tested_only_with_enough_reviews_in_both_windows(reviewed: int) -> None:
    base, base_ratings = window("base", [1] * reviewed)
    current, current_ratings = window("cur", [1, 0, 0] * (reviewed // 3))
    comparison = compare_windows(with_physician_values(base, base_ratings),
                                 with_physician_values(current, current_ratings), MonitorSettings())
    report = comparison.as_dict()
    if reviewed >= 20:
        [alert] = report["alerts"]
        assert alert["baseline_mean"] == 1.0 and alert["current_mean"] == pytest.approx(1 / 3)
        assert alert["test"] == "fisher-exact"
    else:
        assert not report["alerts"]
        [skip] = [s for s in report["skipped"] if s["metric"] == "physician_accepted"]
        assert skip["reason"] == ("12 baseline and 12 current reviewed summaries; at least 20 each are needed "
                                  "(monitor.min_reviewed)")


def test_segments_need_as_many_reviewed_summaries_as_the_whole_windows() -> None:
    """12 reviewed summaries a window: too few for the physicians' verdicts in the whole windows, and so
    in a segment too (``--by site``), whose own minimum for computed metrics is lower (10)."""
    def sited(run: str, accepted: list[int]) -> tuple[Window, list[Rating]]:
        plain, ratings = window(run, accepted)
        observations = tuple(Observation(o.run_id, o.note_id, o.system, o.created_at, o.values, {"site": "a"},
                                         o.note_words) for o in plain.observations)
        return Window(plain.selector, plain.runs, observations), ratings

    base, base_ratings = sited("base", [1] * 12)
    current, current_ratings = sited("cur", [1, 0, 0] * 4)
    report = compare_windows(with_physician_values(base, base_ratings),
                             with_physician_values(current, current_ratings), MonitorSettings(), by="site").as_dict()
    assert not report["alerts"]
    skipped = {s["segment"]: s["reason"] for s in report["skipped"] if s["metric"] == "physician_accepted"}
    assert skipped and all("(monitor.min_reviewed)" in reason for reason in skipped.values()), skipped
    assert any(segment != "all" for segment in skipped), skipped
