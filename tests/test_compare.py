"""``clinsum compare``: paired differences, Wilcoxon p-values and Holm, checked against scipy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR
from clinsum.evaluators.aggregate import bootstrap_ci
from clinsum.evaluators.comparison import compare, holm
from clinsum.records import Note, Score
from clinsum.store import Store

N = 40


def planted(seed: int = 0) -> tuple[list[Note], list[Score]]:
    """`weaker` loses 0.08 ROUGE-1 and adds unsupported concepts, but only on cardiology notes; `twin`
    differs from `base` by noise alone."""
    rng = np.random.default_rng(seed)
    notes = [Note(id=f"n{i:02d}", text="x", meta={"specialty": "cardiology" if i % 2 else "dermatology"})
             for i in range(N)]
    scores = []
    for i, note in enumerate(notes):
        quality = rng.uniform(0.3, 0.6)
        cardiology = i % 2 == 1
        for system, shift, extra in (("base", 0.0, 0), ("twin", 0.0, 0),
                                     ("weaker", -0.08 if cardiology else 0.0, 2 if cardiology else 0)):
            def add(metric: str, value: float, system: str = system, note: Note = note) -> None:
                scores.append(Score(note_id=note.id, system=system, metric=metric, value=value,
                                    evaluator="t", version="1"))
            add("rouge1", quality + shift + rng.normal(scale=0.02))
            add("unsupported_concepts", float(rng.integers(0, 2) + extra))
            add("summary_words", float(rng.integers(50, 80)))
    return notes, scores


@pytest.fixture
def db(tmp_path: Path) -> Path:
    notes, scores = planted()
    path = tmp_path / "c.db"
    store = Store.open(path)
    store.create_run("run-1", {}, kind="score", version="t", notes=notes)
    store.add_scores("run-1", scores)
    store.close()
    return path


def cli_json(db: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["compare", "run-1", "--db", str(db), "--format", "json",
                                      "--resamples", "500", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def find(report: dict[str, Any], system: str, metric: str, segment: str = "all") -> dict[str, Any]:
    (row,) = [c for c in report["comparisons"]
              if (c["system"], c["metric"], c["segment"]) == (system, metric, segment)]
    return row


def differences(system: str, metric: str, notes: set[str] | None = None) -> np.ndarray:
    _, scores = planted()
    by = {(s.system, s.note_id): s.value for s in scores if s.metric == metric}
    keys = sorted(n for (sys, n) in by if sys == "base" and (notes is None or n in notes))
    return np.array([by[(system, n)] - by[("base", n)] for n in keys], dtype=float)


def test_holm_matches_the_step_down_procedure_by_hand() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005, None]) == pytest.approx([0.03, 0.06, 0.06, 0.02, None])
    assert holm([0.5, 0.9]) == [1.0, 1.0]


def test_a_weaker_system_is_worse_and_a_twin_shows_no_difference(db: Path) -> None:
    report = cli_json(db, "--baseline", "base")
    tested = [c for c in report["comparisons"] if c["p_value"] is not None]
    assert len(tested) == 4  # 2 systems x 2 directed metrics; summary_words has no direction

    weaker = find(report, "weaker", "rouge1")
    d = differences("weaker", "rouge1")
    assert weaker["n"] == N and weaker["difference"] == pytest.approx(d.mean())
    assert weaker["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert weaker["ci"] == pytest.approx(list(bootstrap_ci(d, n_resamples=500, seed=0)))
    p_values = [c["p_value"] for c in tested]
    expected = holm(p_values)
    assert [c["p_adjusted"] for c in tested] == pytest.approx(expected)
    assert weaker["verdict"] == "worse"
    assert find(report, "weaker", "unsupported_concepts")["verdict"] == "worse"  # lower is better
    assert find(report, "twin", "rouge1")["verdict"] == "no detectable difference"
    words = find(report, "weaker", "summary_words")
    assert words["verdict"] == "not tested (no direction)" and words["p_adjusted"] is None


def test_by_segment_finds_where_it_is_worse_and_corrects_over_all_segments(db: Path) -> None:
    report = cli_json(db, "--baseline", "base", "--by", "specialty", "--metric", "rouge1")
    assert {c["segment"] for c in report["comparisons"]} == {"all", "cardiology", "dermatology"}
    notes, _ = planted()
    cardiology = {n.id for n in notes if n.meta["specialty"] == "cardiology"}
    row = find(report, "weaker", "rouge1", "cardiology")
    d = differences("weaker", "rouge1", cardiology)
    assert row["n"] == len(cardiology) and row["p_value"] == pytest.approx(stats.wilcoxon(d).pvalue)
    assert row["verdict"] == "worse"
    assert find(report, "weaker", "rouge1", "dermatology")["verdict"] == "no detectable difference"
    smallest = min(c["p_value"] for c in report["comparisons"])
    family = len(report["comparisons"])  # 2 systems x 3 segments
    assert family == 6
    assert min(c["p_adjusted"] for c in report["comparisons"]) == pytest.approx(min(1.0, family * smallest))


def test_without_a_baseline_every_pair_is_compared(db: Path) -> None:
    report = cli_json(db, "--metric", "rouge1")
    assert {(c["baseline"], c["system"]) for c in report["comparisons"]} == {
        ("base", "twin"), ("base", "weaker"), ("twin", "weaker")}


def test_equal_systems_give_p_one_and_too_few_notes_are_not_tested() -> None:
    same = [Score(note_id=f"n{i}", system=s, metric="rouge1", value=0.5, evaluator="t", version="1")
            for i in range(5) for s in ("a", "b")]
    (row,) = compare(same, baseline="a", n_resamples=100)
    assert (row.p_value, row.verdict) == (1.0, "no detectable difference")
    (one,) = compare(same[:2], baseline="a", n_resamples=100)
    assert one.n == 1 and one.verdict == "not tested (fewer than 2 notes)"


def test_table_output_and_errors(db: Path, tmp_path: Path) -> None:
    table = CliRunner().invoke(app, ["compare", "run-1", "--db", str(db), "--baseline", "base",
                                     "--resamples", "200"])
    assert table.exit_code == 0, table.output
    for text in ("weaker", "worse", "no detectable difference", "p (Holm)"):
        assert text in table.stdout
    for args, message in ((["--baseline", "nobody"], "no system 'nobody'"),
                          (["--by", "ward"], "metadata field 'ward'"),
                          (["-m", "rouge1", "-m", "rogue1"],  # a typo is never a silently smaller report
                           "--metric 'rogue1' is not a metric of this run; did you mean 'rouge1'?")):
        result = CliRunner().invoke(app, ["compare", "run-1", "--db", str(db), *args])
        assert result.exit_code == EXIT_ERROR and message in result.output
    missing = CliRunner().invoke(app, ["compare", "nope", "--db", str(db)])
    assert missing.exit_code == EXIT_ERROR and "no run 'nope'" in missing.output
