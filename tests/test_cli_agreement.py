"""``clinsum feedback import`` and ``clinsum agreement`` end to end on a temporary store.

Scores and ratings go in through the store API (or the import command); the
command's JSON output is checked against scipy and scikit-learn on the same data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.records import Rating, Score
from clinsum.store import Store

TOL = 1e-6
SYSTEMS = ("prod", "cand")
NOTES = [f"n{i:02d}" for i in range(30)]


def make_data(seed: int = 0) -> tuple[list[Score], list[Rating]]:
    """A judge on 1-5 (some means of samples), a 0-1 metric, a count; two raters, one flag."""
    rng = np.random.default_rng(seed)
    scores, ratings = [], []
    for note in NOTES:
        for system in SYSTEMS:
            quality = int(rng.integers(1, 6))
            a = int(np.clip(quality + rng.integers(-1, 2), 1, 5))
            b = int(np.clip(quality + rng.integers(-1, 2), 1, 5))
            judge = float(np.clip(quality + rng.choice([-1, -0.5, 0, 0, 0.5, 1]), 1, 5))
            unsafe = bool(quality <= 2)
            flips = int(rng.integers(0, 2)) + (1 if unsafe and rng.random() < 0.7 else 0)
            def score(metric: str, value: float, note: str = note, system: str = system) -> Score:
                return Score(note_id=note, system=system, metric=metric, value=value,
                             evaluator="test", version="1")
            scores += [score("judge_accurate", judge), score("concept_recall", quality / 5 - 0.1),
                       score("assertion_flips", flips)]
            ratings += [
                Rating(note_id=note, system=system, rater="dr-a", dimension="accurate", value=a),
                Rating(note_id=note, system=system, rater="dr-b", dimension="accurate", value=b),
                Rating(note_id=note, system=system, rater="dr-a", dimension="unsafe", value=unsafe),
                Rating(note_id=note, system=system, rater="dr-a", dimension="fact_recall",
                       value=float(np.clip(quality / 5 + rng.normal(scale=0.1), 0, 1))),
            ]
    return scores, ratings


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "clinsum.db"
    scores, ratings = make_data()
    store = Store.open(path)
    try:
        store.create_run("run-1", {}, kind="score", version="test", notes=[])
        store.add_scores("run-1", scores)
        store.add_ratings(ratings, "test")
    finally:
        store.close()
    return path


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def agreement_json(db: Path, *args: str) -> dict[str, Any]:
    result = run_cli("agreement", "--db", str(db), "--format", "json", "--resamples", "300", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def series(metric: str, dimension: str) -> tuple[np.ndarray, np.ndarray]:
    """The joined (metric, mean of raters) series, computed here independently of clinsum."""
    scores, ratings = make_data()
    by_score = {(s.note_id, s.system): s.value for s in scores if s.metric == metric}
    human: dict[tuple[str, str], list[float]] = {}
    for r in ratings:
        if r.dimension == dimension:
            human.setdefault((r.note_id, r.system), []).append(r.value)
    keys = sorted(set(by_score) & set(human))
    return (np.array([by_score[k] for k in keys], dtype=float),
            np.array([np.mean(human[k]) for k in keys]))


def anova_icc(table: np.ndarray) -> tuple[float, float]:
    """ICC(2,1) and ICC(3,1) from the two-way ANOVA mean squares (Shrout & Fleiss 1979)."""
    n, k = table.shape
    grand = table.mean()
    bms = k * ((table.mean(axis=1) - grand) ** 2).sum() / (n - 1)
    jms = n * ((table.mean(axis=0) - grand) ** 2).sum() / (k - 1)
    residual = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + grand
    ems = (residual ** 2).sum() / ((n - 1) * (k - 1))
    return ((bms - ems) / (bms + (k - 1) * ems + k * (jms - ems) / n),
            (bms - ems) / (bms + (k - 1) * ems))


def row(report: dict[str, Any], dimension: str, metric: str) -> dict[str, Any]:
    (found,) = [r for r in report["metric_vs_human"]
                if r["dimension"] == dimension and r["metric"] == metric]
    return found


def test_judge_against_the_mean_of_raters_matches_scipy_and_scikit_learn(db: Path) -> None:
    report = agreement_json(db, "--run", "run-1")
    judge = row(report, "accurate", "judge_accurate")
    x, y = series("judge_accurate", "accurate")
    assert judge["n"] == len(NOTES) * len(SYSTEMS)
    assert (judge["scale_metric"], judge["scale_human"]) == ("1-5", "1-5")
    s = judge["statistics"]
    assert s["spearman"]["value"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=TOL)
    assert s["kendall_tau_b"]["value"] == pytest.approx(stats.kendalltau(x, y).statistic, abs=TOL)
    half_up = np.floor(np.concatenate([x, y]) + 0.5).astype(int)
    kappa = metrics.cohen_kappa_score(half_up[: x.size], half_up[x.size:], weights="quadratic",
                                      labels=[1, 2, 3, 4, 5])
    assert s["kappa_quadratic"]["value"] == pytest.approx(kappa, abs=TOL)
    assert "rounded" in s["kappa_quadratic"]["reason"]
    assert s["mean_difference"]["value"] == pytest.approx(float(np.mean(x - y)), abs=TOL)
    sd = float(np.std(x - y, ddof=1))
    assert s["loa_upper"]["value"] == pytest.approx(float(np.mean(x - y)) + 1.96 * sd, abs=TOL)
    for name, estimate in s.items():
        if estimate["value"] is not None:
            low, high = estimate["ci"]
            assert low <= estimate["value"] + TOL and estimate["value"] <= high + TOL, name


def test_metric_on_another_scale_gets_rank_statistics_only(db: Path) -> None:
    report = agreement_json(db, "--metric", "concept_recall")
    recall = row(report, "accurate", "concept_recall")
    x, y = series("concept_recall", "accurate")
    s = recall["statistics"]
    assert s["spearman"]["value"] == pytest.approx(stats.spearmanr(x, y).statistic, abs=TOL)
    for name in ("icc_2_1", "icc_3_1", "mean_difference", "kappa_quadratic"):
        assert s[name]["value"] is None and s[name]["reason"], name
    assert {r["metric"] for r in report["metric_vs_human"]} == {"concept_recall"}


def test_proportions_are_compared_by_value_only_when_declared_the_same_scale(db: Path) -> None:
    plain = row(agreement_json(db, "--metric", "concept_recall"), "fact_recall", "concept_recall")
    assert (plain["scale_metric"], plain["scale_human"], plain["same_scale"]) == ("0-1", "0-1", False)
    assert plain["statistics"]["icc_2_1"]["value"] is None

    declared = row(agreement_json(db, "--metric", "concept_recall", "--same-scale",
                                  "concept_recall=fact_recall"), "fact_recall", "concept_recall")
    x, y = series("concept_recall", "fact_recall")
    icc21, icc31 = anova_icc(np.stack([x, y], axis=1))
    s = declared["statistics"]
    assert declared["same_scale"] is True
    assert s["icc_2_1"]["value"] == pytest.approx(icc21, abs=TOL)
    assert s["icc_3_1"]["value"] == pytest.approx(icc31, abs=TOL)
    assert s["mean_difference"]["value"] == pytest.approx(float(np.mean(x - y)), abs=TOL)
    assert s["kappa_quadratic"]["value"] is None


def test_inter_rater_agreement_between_the_two_raters(db: Path) -> None:
    report = agreement_json(db, "--dimension", "accurate")
    (pair,) = report["inter_rater"]
    _, ratings = make_data()
    a = np.array([r.value for r in ratings if r.rater == "dr-a" and r.dimension == "accurate"])
    b = np.array([r.value for r in ratings if r.rater == "dr-b" and r.dimension == "accurate"])
    assert pair["raters"] == ["dr-a", "dr-b"] and pair["n"] == a.size
    s = pair["statistics"]
    assert s["spearman"]["value"] == pytest.approx(stats.spearmanr(a, b).statistic, abs=TOL)
    kappa = metrics.cohen_kappa_score(a, b, weights="quadratic", labels=[1, 2, 3, 4, 5])
    assert s["kappa_quadratic"]["value"] == pytest.approx(kappa, abs=TOL)
    assert {r["dimension"] for r in report["metric_vs_human"]} == {"accurate"}


def test_automatic_flags_against_the_human_flag_match_scikit_learn(db: Path) -> None:
    report = agreement_json(db, "--flag", "assertion_flips>=1", "--flag", "judge_accurate<=2",
                            "--human-flag", "unsafe>=1", "--metric", "concept_recall")
    assert {r["metric"] for r in report["metric_vs_human"]} == {"concept_recall"}
    assert [f["flag"] for f in report["flags"]] == ["assertion_flips>=1", "judge_accurate<=2"]
    for flag, (metric, predicate) in zip(report["flags"], [
            ("assertion_flips", lambda v: v >= 1), ("judge_accurate", lambda v: v <= 2)], strict=True):
        x, truth = series(metric, "unsafe")
        pred, truth = predicate(x), truth >= 1
        s = flag["statistics"]
        assert flag["n"] == x.size and flag["tp"] == int((pred & truth).sum())
        assert s["accuracy"]["value"] == pytest.approx(metrics.accuracy_score(truth, pred), abs=TOL)
        assert s["precision"]["value"] == pytest.approx(metrics.precision_score(truth, pred), abs=TOL)
        assert s["recall"]["value"] == pytest.approx(metrics.recall_score(truth, pred), abs=TOL)
        assert s["f1"]["value"] == pytest.approx(metrics.f1_score(truth, pred), abs=TOL)


def test_same_seed_same_intervals_other_seed_other_intervals(db: Path) -> None:
    first = agreement_json(db, "--metric", "judge_accurate")
    again = agreement_json(db, "--metric", "judge_accurate")
    other = agreement_json(db, "--metric", "judge_accurate", "--seed", "1")
    assert first == again
    assert first["metric_vs_human"] != other["metric_vs_human"]


def test_table_output_names_the_statistics(db: Path) -> None:
    result = run_cli("agreement", "--db", str(db), "--resamples", "200", "--flag", "assertion_flips>=1",
                     "--human-flag", "unsafe>=1")
    assert result.exit_code == 0, result.output
    for text in ("Spearman", "ICC(2,1)", "judge_accurate", "dr-a / dr-b", "assertion_flips>=1", "recall"):
        assert text in result.stdout


def test_nothing_joins_is_an_error_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "clinsum.db"
    scores, ratings = make_data()
    store = Store.open(path)
    store.create_run("run-1", {}, kind="score", version="test", notes=[])
    store.add_scores("run-1", scores)
    store.add_ratings([r.model_copy(update={"system": "other"}) for r in ratings], "test")
    store.close()
    result = run_cli("agreement", "--db", str(path))
    assert result.exit_code == 2
    assert "no rating joins a score" in result.output and "other" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (("--run", "nope"), "no run 'nope'"),
    (("--flag", "assertion_flips>=1"), "need a human flag"),
    (("--flag", "flips>>1", "--human-flag", "unsafe>=1"), "NAME>=NUMBER"),
    (("--flag", "missing_metric>=1", "--human-flag", "unsafe>=1"), "missing_metric"),
    (("--flag", "assertion_flips>=1", "--human-flag", "nobody>=1"), "no ratings on dimension 'nobody'"),
    (("--same-scale", "concept_recall"), "METRIC=DIMENSION"),
    (("--same-scale", "concept_recal=fact_recall"), "--same-scale 'concept_recal' is not a scored metric"),
    (("--same-scale", "concept_recall=fact_recal"), "--same-scale 'fact_recal' is not a rated dimension"),
])
def test_bad_options_exit_2_with_a_message(db: Path, args: tuple[str, ...], message: str) -> None:
    result = run_cli("agreement", "--db", str(db), "--resamples", "100", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_feedback_import_then_agreement(tmp_path: Path) -> None:
    path = tmp_path / "clinsum.db"
    scores, ratings = make_data()
    store = Store.open(path)
    store.create_run("run-1", {}, kind="score", version="test", notes=[])
    store.add_scores("run-1", scores)
    store.close()
    ratings_file = tmp_path / "ratings.jsonl"
    lines = [r.model_dump_json(exclude={"schema_version", "comment"}) for r in ratings]
    ratings_file.write_text("\n".join([*lines, '{"note_id": "n00", "system": "prod"}']) + "\n")

    refused = run_cli("feedback", "import", str(ratings_file), "--db", str(path))
    assert refused.exit_code == 2
    assert f"{ratings_file}:{len(lines) + 1}" in refused.output and "rater" in refused.output
    assert Store.open(path).ratings() == []

    imported = run_cli("feedback", "import", str(ratings_file), "--db", str(path), "--skip-invalid")
    assert imported.exit_code == 0, imported.output
    assert f"imported {len(lines)} ratings of {len(NOTES) * len(SYSTEMS)} summaries" in imported.output
    assert "skipped 1 bad row" in imported.output and "rows" not in imported.output

    report = agreement_json(path, "--metric", "judge_accurate")
    x, y = series("judge_accurate", "accurate")
    spearman = row(report, "accurate", "judge_accurate")["statistics"]["spearman"]["value"]
    assert spearman == pytest.approx(stats.spearmanr(x, y).statistic, abs=TOL)


MTS_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "mts_dialog_ratings.jsonl"


@pytest.mark.skipif(not MTS_FIXTURE.exists(), reason="fixtures/mts_dialog_ratings.jsonl not present")
def test_mts_dialog_worked_example_end_to_end(tmp_path: Path) -> None:
    """The documented example: convert, score with ROUGE, import the ratings, compare."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mts_agreement", MTS_FIXTURE.parents[1] / "benchmarks" / "mts_agreement.py")
    assert spec and spec.loader
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    rows = [json.loads(line) for line in MTS_FIXTURE.read_text().splitlines() if line]
    notes, summaries, ratings = converter.convert(rows)
    assert (len(notes), len(summaries), len(ratings)) == (50, 200, 1200)
    from clinsum.inputs import write_jsonl

    write_jsonl(tmp_path / "notes.jsonl", notes)
    write_jsonl(tmp_path / "summaries.jsonl", summaries)
    write_jsonl(tmp_path / "ratings.jsonl", ratings)
    db = tmp_path / "mts.db"
    scored = run_cli("score", str(tmp_path / "summaries.jsonl"), "--notes", str(tmp_path / "notes.jsonl"),
                     "--db", str(db), "--metric", "overlap")
    assert scored.exit_code == 0, scored.output
    imported = run_cli("feedback", "import", str(tmp_path / "ratings.jsonl"), "--db", str(db))
    assert imported.exit_code == 0 and "imported 1200 ratings of 200 summaries" in imported.output

    report = agreement_json(db, "--metric", "rouge1", "--dimension", "FactualRecall")
    (found,) = report["metric_vs_human"]
    store = Store.open(db)
    rouge = {(s.note_id, s.system): s.value for s in store.scores() if s.metric == "rouge1"}
    store.close()
    human = {(r["dialogue_id"], r["system"]): r["ratings"]["FactualRecall"] for r in rows}
    keys = sorted(human)
    expected = stats.spearmanr([rouge[k] for k in keys], [human[k] for k in keys]).statistic
    assert found["n"] == 200
    assert found["statistics"]["spearman"]["value"] == pytest.approx(expected, abs=TOL)
    # The data set's README states 0.42 for ROUGE-1 F against FactualRecall.
    assert round(found["statistics"]["spearman"]["value"], 2) == 0.42
