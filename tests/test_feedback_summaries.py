"""Physician feedback is tied to the summary it rates (run, note, system), never to a (note, system) pair.

Two runs of the same notes and system are the case that matters: a rating of the
summary in one run must never be compared with the scores of the other.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from scipy import stats
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.errors import InputError
from clinsum.feedback import agreement_report, load_ratings
from clinsum.records import Rating, Score, Summary
from clinsum.store import MIGRATIONS, Store

NOTES = [f"n{i}" for i in range(8)]
RATED = [1, 2, 3, 4, 5, 1, 2, 3]
"""Physicians' 'accurate' ratings of the summaries of run A, note by note."""


def score(note: str, value: float, metric: str = "judge_accurate") -> Score:
    return Score(note_id=note, system="prod", metric=metric, value=value, evaluator="t", version="1")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Run A's judge agrees with the physicians; run B (same notes, same system) ranks them backwards."""
    path = tmp_path / "clinsum.db"
    store = Store.open(path)
    for run_id, values in (("run-a", RATED), ("run-b", [6 - v for v in RATED])):
        store.create_run(run_id, {}, kind="score", version="t", notes=[])
        for note, value in zip(NOTES, values, strict=True):
            store.add_summary(run_id, Summary(note_id=note, system="prod", text=f"summary {run_id}"))
            store.add_scores(run_id, [score(note, value)])
    store.close()
    return path


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def ratings_rows(run_id: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [{"note_id": n, "system": "prod", "rater": "dr-a", "dimension": "accurate",
                                   "value": v} for n, v in zip(NOTES, RATED, strict=True)]
    return [{**row, "run_id": run_id} for row in rows] if run_id else rows


def spearman_of(db: Path, *args: str) -> float:
    result = cli("agreement", "--db", str(db), "--format", "json", "--resamples", "100", *args)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["metric_vs_human"]
    return float(row["statistics"]["spearman"]["value"])


def test_ratings_with_their_run_join_that_runs_scores_only(db: Path, tmp_path: Path) -> None:
    ratings = write_jsonl(tmp_path / "r.jsonl", ratings_rows("run-a"))
    imported = cli("feedback", "import", str(ratings), "--db", str(db))
    assert imported.exit_code == 0, imported.output
    assert spearman_of(db) == pytest.approx(1.0)
    assert spearman_of(db, "--run", "run-a") == pytest.approx(1.0)
    refused = cli("agreement", "--db", str(db), "--run", "run-b")
    assert refused.exit_code == 2 and "no ratings of the summaries of run run-b" in refused.output


def test_a_legacy_file_without_run_is_refused_when_several_runs_hold_the_summary(db: Path, tmp_path: Path) -> None:
    ratings = write_jsonl(tmp_path / "r.jsonl", ratings_rows())
    refused = cli("feedback", "import", str(ratings), "--db", str(db))
    assert refused.exit_code == 2
    assert f"{ratings}:1:" in refused.output and "run-a, run-b" in refused.output
    assert "(field 'run_id')" in refused.output
    store = Store.open(db)
    assert store.ratings() == []  # nothing half-imported
    store.close()

    tied = cli("feedback", "import", str(ratings), "--db", str(db), "--run", "run-b")
    assert tied.exit_code == 0, tied.output
    assert "imported 8 ratings of 8 summaries" in tied.output
    assert spearman_of(db) == pytest.approx(-1.0)


def test_a_legacy_file_is_tied_to_the_only_run_holding_its_summaries(tmp_path: Path) -> None:
    path = tmp_path / "one.db"
    store = Store.open(path)
    store.create_run("only", {}, kind="score", version="t", notes=[])
    store.add_scores("only", [score(n, v) for n, v in zip(NOTES, RATED, strict=True)])
    store.close()
    ratings = write_jsonl(tmp_path / "r.jsonl", [*ratings_rows(), {**ratings_rows()[0], "note_id": "ghost"}])
    refused = cli("feedback", "import", str(ratings), "--db", str(path))
    assert refused.exit_code == 2 and f"{ratings}:9:" in refused.output and "ghost" in refused.output
    imported = cli("feedback", "import", str(ratings), "--db", str(path), "--skip-invalid")
    assert imported.exit_code == 0 and "skipped 1 bad row" in imported.output
    store = Store.open(path)
    assert {r.run_id for r in store.ratings()} == {"only"}
    store.close()


def test_import_refuses_a_run_that_does_not_hold_the_summary(db: Path, tmp_path: Path) -> None:
    rows = ratings_rows("run-a")
    rows[3]["run_id"] = "run-z"
    result = cli("feedback", "import", str(write_jsonl(tmp_path / "r.jsonl", rows)), "--db", str(db))
    assert result.exit_code == 2 and ":4:" in result.output and "run 'run-z' holds no summary" in result.output
    conflict = cli("feedback", "import", str(write_jsonl(tmp_path / "s.jsonl", ratings_rows("run-a"))),
                   "--db", str(db), "--run", "run-b")
    assert conflict.exit_code == 2 and "differs from --run" in conflict.output


def test_untied_ratings_join_only_where_one_run_scored_the_summary() -> None:
    untied = [Rating(note_id=n, system="prod", rater="dr-a", dimension="accurate", value=v)
              for n, v in zip(NOTES, RATED, strict=True)]
    one_run = [("run-a", score(n, v)) for n, v in zip(NOTES, RATED, strict=True)]
    report = agreement_report(untied, one_run, n_resamples=100)
    assert report["metric_vs_human"][0]["statistics"]["spearman"]["value"] == pytest.approx(1.0)
    other_run = [("run-b", score(n, 6 - v)) for n, v in zip(NOTES, RATED, strict=True)]
    with pytest.raises(InputError, match=r"several runs scored them.*--run RUN_ID"):
        agreement_report(untied, one_run + other_run, n_resamples=100)
    # a tied rating wins over the same rater's untied one of the same summary
    tied = [r.model_copy(update={"run_id": "run-b", "value": 6 - r.value}) for r in untied]
    report = agreement_report(tied + untied, other_run, n_resamples=100)
    (row,) = report["metric_vs_human"]
    assert row["n"] == len(NOTES) and row["statistics"]["mean_difference"]["value"] == pytest.approx(0.0)


def test_reviews_become_ratings_verdict_and_error_categories(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "reviews.jsonl", [
        {"run_id": "r1", "note_id": "n1", "system": "prod", "reviewer": "dr-a",
         "reviewed_at": "2026-03-02T09:14:00Z", "verdict": "reject", "errors": ["omission", "negation"],
         "ratings": {"accurate": 2, "thorough": 3}, "comment": "missed the allergy"},
        {"run_id": "r1", "note_id": "n2", "system": "prod", "reviewer": "dr-a", "verdict": "Accept",
         "errors": []},
    ])
    records = load_ratings(jsonl).records
    assert {(r.note_id, r.rated_at, r.run_id, r.rater) for r in records} == {
        ("n1", "2026-03-02T09:14:00Z", "r1", "dr-a"), ("n2", None, "r1", "dr-a")}
    assert {(r.note_id, r.dimension): r.value for r in records} == {
        ("n1", "accurate"): 2.0, ("n1", "thorough"): 3.0, ("n1", "accepted"): 0.0, ("n1", "errors"): 2.0,
        ("n1", "error:omission"): 1.0, ("n1", "error:negation"): 1.0,
        ("n2", "accepted"): 1.0, ("n2", "errors"): 0.0,
    }
    csv = tmp_path / "reviews.csv"
    csv.write_text("run_id,note_id,system,reviewer,reviewed_at,verdict,errors,accurate,useful,comment\n"
                   "r1,n1,prod,dr-b,2026-03-02,reject,omission;wrong dose,2,,too short\n"
                   "r1,n2,prod,dr-b,,accept,,5,4,\n")
    rows = {(r.note_id, r.dimension): r.value for r in load_ratings(csv).records}
    assert rows == {("n1", "accepted"): 0.0, ("n1", "errors"): 2.0, ("n1", "error:omission"): 1.0,
                    ("n1", "error:wrong dose"): 1.0, ("n1", "accurate"): 2.0,
                    ("n2", "accepted"): 1.0, ("n2", "errors"): 0.0, ("n2", "accurate"): 5.0,
                    ("n2", "useful"): 4.0}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"verdict": "maybe"}, "verdict", "accept or reject"),
    ({"ratings": {"accurate": 6}}, "ratings.accurate", "whole number from 1 to 5"),
    ({"ratings": {"accurate": 2.5}}, "ratings.accurate", "whole number from 1 to 5"),
    ({"ratings": {"acurate": 3}}, "ratings.acurate", "not an attribute of the rubric"),
    ({"reviewed_at": "yesterday"}, "reviewed_at", "ISO 8601"),
    ({"errors": "omission;omission"}, "errors", "twice"),
    ({"errors": [3]}, "errors", "list of category names"),
    ({"reviewer": ""}, "reviewer", "empty"),
    ({"verdict": None, "ratings": {}}, "verdict", "needs a verdict, errors or at least one rating"),
    ({"grade": 3}, "grade", "unknown field"),
])
def test_bad_reviews_name_file_line_and_field(tmp_path: Path, change: dict[str, Any], field: str,
                                              message: str) -> None:
    good = {"run_id": "r1", "note_id": "n1", "system": "prod", "reviewer": "dr-a", "verdict": "accept"}
    path = write_jsonl(tmp_path / "r.jsonl", [good, {**good, "note_id": "n2", **change}])
    with pytest.raises(InputError) as caught:
        load_ratings(path)
    assert (caught.value.path, caught.value.line, caught.value.field) == (str(path), 2, field)
    assert message in str(caught.value)


def test_the_migration_keeps_older_ratings_untied(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    before = next(i for i, m in enumerate(MIGRATIONS) if m.__name__.endswith("_ratings_of_summaries"))
    for migration in MIGRATIONS[:before]:  # a store as it was just before ratings named their run
        migration(db)
    db.execute(f"PRAGMA user_version = {before}")
    old = Rating(note_id="n1", system="prod", rater="dr-a", dimension="accurate", value=4)
    db.execute("INSERT INTO ratings (note_id, system, rater, dimension, value, record, source, imported_at) "
               "VALUES ('n1', 'prod', 'dr-a', 'accurate', 4, ?, 'f.csv', 'then')", (old.model_dump_json(),))
    db.close()
    store = Store.open(path)
    assert store.ratings() == [old]
    store.add_ratings([old.model_copy(update={"run_id": "r1", "value": 2.0})], "g.csv")
    assert [(r.run_id, r.value) for r in store.ratings()] == [(None, 4.0), ("r1", 2.0)]
    assert [r.value for r in store.ratings("r1")] == [4.0, 2.0]  # the run's own, and the untied one
    store.close()


def test_agreement_statistics_of_reviews_match_scipy(db: Path, tmp_path: Path) -> None:
    reviews = write_jsonl(tmp_path / "reviews.jsonl", [
        {"run_id": "run-b", "note_id": n, "system": "prod", "reviewer": "dr-a", "ratings": {"accurate": v}}
        for n, v in zip(NOTES, RATED, strict=True)])
    assert cli("feedback", "import", str(reviews), "--db", str(db)).exit_code == 0
    expected = stats.spearmanr([6 - v for v in RATED], RATED).statistic
    assert spearman_of(db) == pytest.approx(expected)


def test_a_csv_column_no_format_knows_is_refused_as_a_whole_even_when_skipping(tmp_path: Path) -> None:
    path = tmp_path / "reviews.csv"
    path.write_text("run_id,note_id,system,reviewer,verdict,grade\nr1,n1,prod,dr-a,accept,3\nr1,n2,prod,dr-a,accept,3\n")
    with pytest.raises(InputError) as caught:
        load_ratings(path, skip_invalid=True)
    assert (caught.value.line, caught.value.field) == (1, "grade")
