"""`clinsum monitor --trend` and physician feedback in `clinsum monitor`, run through the CLI on stores
made by `clinsum score` from the fixtures' visit notes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sklearn import metrics as skm
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_FAILED
from clinsum.monitoring import simulate as sim
from clinsum.store import Store

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PER_DAY = 16
STABLE_DAYS = 10
TRUNCATED_DAYS = 3
"""Days 1-10: the production summaries as they are; days 11-13: each loses 70% of its words."""


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def day(d: int) -> str:
    return f"2025-03-{d:02d}"


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """13 days of 16 summaries (one run a day, visit notes in turn), reviewed by physicians on days 1-10:
    a quarter rejected (with an error category), rated 2 when rejected and 4 when accepted."""
    folder = tmp_path_factory.mktemp("trend")
    sources = [s for s in sim.fixture_sources(FIXTURES) if s.fields["note_type"] == "visit_note"]
    notes = folder / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": s.note.id, "text": s.note.text, "meta": dict(s.note.meta)}) + "\n"
                             for s in sources))
    db = folder / "t.db"
    for d in range(1, STABLE_DAYS + TRUNCATED_DAYS + 1):
        rows = []
        for i in range(PER_DAY):
            s = sources[((d - 1) * PER_DAY + i) % len(sources)]
            text = s.summary if d <= STABLE_DAYS else sim.truncate(s.summary, 0.7)
            rows.append(json.dumps({"note_id": s.note.id, "system": "production", "text": text,
                                    "created_at": f"{day(d)}T{8 + i % 10:02d}:{i:02d}:00Z",
                                    "metadata": {"site": "ab"[i % 2]}}) + "\n")
        path = folder / f"{day(d)}.jsonl"
        path.write_text("".join(rows))
        result = invoke("score", path, "--notes", notes, "-e", "coverage", "-e", "length", "--db", db,
                        "--name", f"prod-{day(d)}", "--tag", "env=prod")
        assert result.exit_code == 0, result.output
    import_reviews(db, folder / "reviews.jsonl", lambda d, i: i % 4 == 0)
    return db


def summaries_by_day(db: Path) -> dict[int, list[tuple[str, str]]]:
    """Day -> (run id, note id) of its summaries, in the order written."""
    out: dict[int, list[tuple[str, str]]] = {}
    store = Store.open(db, must_exist=True)
    try:
        for run in store.runs():
            d = int(run["name"].rsplit("-", 1)[1])
            out[d] = [(run["id"], s.note_id) for s in store.summaries(run["id"])]
    finally:
        store.close()
    return out


def import_reviews(db: Path, path: Path, rejected, days=range(1, STABLE_DAYS + 1)) -> None:
    rows = []
    for d, items in summaries_by_day(db).items():
        if d not in days:
            continue
        for i, (run_id, note_id) in enumerate(items):
            reject = rejected(d, i)
            rows.append(json.dumps({"run_id": run_id, "note_id": note_id, "system": "production",
                                    "reviewer": "dr-a", "verdict": "reject" if reject else "accept",
                                    "errors": ["omission"] if reject else [],
                                    "ratings": {"accurate": 2 if reject else 4}}) + "\n")
    path.write_text("".join(rows))
    result = invoke("feedback", "import", path, "--db", db)
    assert result.exit_code == 0, result.output


# -- the trend --------------------------------------------------------------------------------------

def test_stable_days_stay_within_their_limits_and_exit_0(store):
    result = invoke("monitor", "--trend", "--db", store, "--until", day(STABLE_DAYS + 1), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["alerts"] == [] and report["first_alerts"] == {}
    assert report["summaries"] == STABLE_DAYS * PER_DAY
    recall = next(m for m in report["metrics"] if m["metric"] == "concept_recall")
    assert [w["label"] for w in recall["windows"]] == [day(d) for d in range(1, STABLE_DAYS + 1)]
    assert [w["reference"] for w in recall["windows"]] == [True] * 7 + [False] * 3
    assert all(w["lower"] < w["ewma"] < w["upper"] for w in recall["windows"][7:])


def test_anchors_in_a_shared_config_are_not_silently_skipped_by_the_trend(store, tmp_path):
    """The daily job's config names anchors for the comparison; --trend does not judge them, and says so."""
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\nanchors = "anchors.jsonl"\njudge = "ollama:judge"\n')
    result = invoke("monitor", "--trend", "--db", store, "--until", day(STABLE_DAYS + 1), "--config", config,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    assert "not by --trend: no judge-drift check" in result.stderr


def test_truncated_days_alert_from_the_first_truncated_day_and_exit_1(store):
    result = invoke("monitor", "--trend", "--db", store, "--format", "json")
    assert result.exit_code == EXIT_FAILED, result.output
    report = json.loads(result.stdout)
    first_truncated = day(STABLE_DAYS + 1)
    assert report["first_alerts"]["concept_recall"] == first_truncated
    assert all(a["window"] >= first_truncated for a in report["alerts"])  # nothing before the change
    assert f"concept_recall from {first_truncated}" in result.stderr
    # the shape: trend()'s dict, plus the feedback of every window
    assert {"window", "lambda", "L", "reference_windows", "metrics", "alerts", "feedback"} <= set(report)
    charts = {m["metric"]: m for m in report["metrics"]}
    assert charts["concept_recall"]["direction"] == "higher"
    assert [f["window"] for f in report["feedback"]] == [w["label"] for w in charts["concept_recall"]["windows"]]
    assert [f["n_reviewed"] for f in report["feedback"]] == [PER_DAY] * STABLE_DAYS + [0] * TRUNCATED_DAYS


def test_the_table_view_marks_reference_windows_and_alerts(store):
    result = invoke("monitor", "--trend", "--db", store, "--metrics", "concept_recall")
    assert result.exit_code == EXIT_FAILED
    out = result.stdout
    assert "concept_recall (higher is better" in out and "reference" in out
    assert f"ALERT concept_recall in window {day(STABLE_DAYS + 1)}" in out
    assert "physician feedback per window" in out


def test_too_few_windows_is_a_usage_error_stating_the_minimum(store, tmp_path):
    result = invoke("monitor", "--trend", "--db", store, "--until", day(STABLE_DAYS + 1),
                    "--reference-windows", "12")
    assert result.exit_code == EXIT_ERROR
    assert "10 daily windows" in result.output and "needs at least 13" in result.output
    config = tmp_path / "m.toml"
    config.write_text('[monitor]\nreference_windows = 12\nlambda = 0.5\nwindow = "day"\n')
    from_config = invoke("monitor", "--trend", "--db", store, "--config", config, "--until", day(STABLE_DAYS + 1))
    assert from_config.exit_code == EXIT_ERROR and "needs at least 13" in from_config.output
    overridden = invoke("monitor", "--trend", "--db", store, "--config", config, "--reference-windows", "5",
                        "--until", day(STABLE_DAYS + 1), "--format", "json")
    assert overridden.exit_code == 0, overridden.output
    report = json.loads(overridden.stdout)
    assert report["reference_windows"] == 5 and report["lambda"] == 0.5


def test_windows_of_n_summaries_and_weeks(store):
    result = invoke("monitor", "--trend", "--db", store, "--window", "32", "--reference-windows", "4",
                    "--format", "json")
    assert result.exit_code == EXIT_FAILED
    report = json.loads(result.stdout)
    assert [f["n_summaries"] for f in report["feedback"]] == [32] * 6 + [16]
    weeks = invoke("monitor", "--trend", "--db", store, "--window", "week")
    assert weeks.exit_code == EXIT_ERROR and "weekly windows" in weeks.output


def test_trend_usage_errors(store, tmp_path):
    both = invoke("monitor", "--trend", "--db", store, "--baseline", "prod-2025-03-01")
    assert both.exit_code == EXIT_ERROR and "--baseline" in both.output and "--trend" in both.output
    compare_only = invoke("monitor", "--trend", "--db", store, "--alpha", "0.01")
    assert compare_only.exit_code == EXIT_ERROR and "--alpha" in compare_only.output
    stray = invoke("monitor", "--db", store, "--baseline", "prod-2025-03-01", "--current", "prod-2025-03-02",
                   "--since", day(1))
    assert stray.exit_code == EXIT_ERROR and "--since" in stray.output
    bad_time = invoke("monitor", "--trend", "--db", store, "--since", "last tuesday")
    assert bad_time.exit_code == EXIT_ERROR and "invalid time 'last tuesday'" in bad_time.output
    bad_window = invoke("monitor", "--trend", "--db", store, "--window", "fortnight")
    assert bad_window.exit_code == EXIT_ERROR and "fortnight" in bad_window.output
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "a", "text": "Denies chest pain."}) + "\n")
    summaries = tmp_path / "s.jsonl"
    summaries.write_text(json.dumps({"note_id": "a", "system": "p", "text": "No chest pain."}) + "\n")
    undated = tmp_path / "undated.db"
    assert invoke("score", summaries, "--notes", notes, "-e", "length", "--db", undated).exit_code == 0
    empty = invoke("monitor", "--trend", "--db", undated)
    assert empty.exit_code == EXIT_ERROR and "no summary with a created_at" in empty.output


def test_segments_get_their_own_trend(store):
    result = invoke("monitor", "--trend", "--db", store, "--by", "site", "--metrics", "concept_recall",
                    "--reference-windows", "7", "--format", "json")
    assert result.exit_code == EXIT_FAILED
    report = json.loads(result.stdout)
    assert [s["segment"] for s in report["segments"]] == ["site=a", "site=b"]
    assert all(len(s["metrics"][0]["windows"]) == STABLE_DAYS + TRUNCATED_DAYS for s in report["segments"])


# -- physician feedback ---------------------------------------------------------------------------

def test_feedback_per_window_matches_scikit_learn_on_the_same_labels(store):
    """clinsum's flag is set to concept recall below its median, so about half are flagged; the planted
    verdicts reject every fourth summary. Each window's counts and statistics must be scikit-learn's."""
    by_day = summaries_by_day(store)
    recall: dict[tuple[str, str], float] = {}
    s = Store.open(store, must_exist=True)
    try:
        for run_id, score in s.scores_by_run():
            if score.metric == "concept_recall" and score.value is not None:
                recall[(run_id, score.note_id)] = score.value
    finally:
        s.close()
    stable = sorted(recall[k] for d in range(1, STABLE_DAYS + 1) for k in by_day[d])
    threshold = stable[len(stable) // 2]
    result = invoke("monitor", "--trend", "--db", store, "--until", day(STABLE_DAYS + 1), "--format", "json",
                    "--summary-flag", f"concept_recall<{threshold}")
    assert result.exit_code in (0, EXIT_FAILED), result.output
    feedback = {f["window"]: f for f in json.loads(result.stdout)["feedback"]}
    checked = 0
    for d in range(1, STABLE_DAYS + 1):
        pred = [recall[k] < threshold for k in by_day[d]]
        truth = [i % 4 == 0 for i in range(len(by_day[d]))]
        flags = feedback[day(d)]["flags"]
        assert flags["summary_flag"] == f"concept_recall<{threshold:g}"
        [[tp, fn], [fp, tn]] = skm.confusion_matrix(truth, pred, labels=[True, False])
        assert (flags["tp"], flags["fp"], flags["fn"], flags["tn"]) == (tp, fp, fn, tn)
        stats = flags["statistics"]
        assert stats["accuracy"]["value"] == pytest.approx(skm.accuracy_score(truth, pred))
        if any(pred):
            assert stats["precision"]["value"] == pytest.approx(skm.precision_score(truth, pred))
            assert stats["f1"]["value"] == pytest.approx(skm.f1_score(truth, pred))
            checked += 1
        assert stats["recall"]["value"] == pytest.approx(skm.recall_score(truth, pred))
        assert feedback[day(d)]["acceptance"]["mean"] == pytest.approx(0.75)
        assert feedback[day(d)]["ratings"]["accurate"]["mean"] == pytest.approx(3.5)
        assert feedback[day(d)]["error_categories"] == {"omission": 4}
    assert checked >= 5  # the median threshold flags summaries on most days


def test_comparison_reports_feedback_and_tests_stable_acceptance_without_alert(store):
    result = invoke("monitor", "--db", store, "--baseline-since", day(1), "--baseline-until", day(6),
                    "--current-since", day(6), "--current-until", day(11), "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["feedback"]["baseline"]["n_reviewed"] == 5 * PER_DAY
    assert report["feedback"]["current"]["acceptance"]["mean"] == pytest.approx(0.75)
    checked = {c["metric"]: c for c in report["checks"] if c["segment"] == "all"}
    assert checked["physician_accepted"]["test"] in ("fisher-exact", "mcnemar-exact")
    assert checked["physician_accepted"]["verdict"] == "not significant"
    table = invoke("monitor", "--db", store, "--baseline-since", day(1), "--baseline-until", day(6),
                   "--current-since", day(6), "--current-until", day(11))
    assert "physician feedback, current window: 80 of 80 summaries reviewed" in table.stdout
    assert "acceptance: 0.75" in table.stdout and "precision" in table.stdout


def test_a_drop_of_physician_acceptance_and_ratings_alerts(store, tmp_path):
    """Same summaries, same scores: only the physicians' verdicts change (days 6-10: 3 in 4 rejected)."""
    db = tmp_path / "drop.db"
    shutil.copy(store, db)
    import_reviews(db, tmp_path / "drop.jsonl", lambda d, i: i % 4 == 0 if d <= 5 else i % 4 != 0)
    result = invoke("monitor", "--db", db, "--baseline-since", day(1), "--baseline-until", day(6),
                    "--current-since", day(6), "--current-until", day(11), "--format", "json")
    assert result.exit_code == EXIT_FAILED, result.output
    report = json.loads(result.stdout)
    alerts = {a["metric"]: a for a in report["alerts"]}
    assert set(alerts) == {"physician_accepted", "physician_accurate"}
    assert alerts["physician_accepted"]["baseline_mean"] == pytest.approx(0.75)
    assert alerts["physician_accepted"]["current_mean"] == pytest.approx(0.25)
    assert alerts["physician_accurate"]["kind"] == "ordinal"
    trend = invoke("monitor", "--trend", "--db", db, "--until", day(STABLE_DAYS + 1), "--reference-windows", "5",
                   "--format", "json")
    assert trend.exit_code == EXIT_FAILED, trend.output
    first = json.loads(trend.stdout)["first_alerts"]
    assert first == {"physician_accepted": day(6), "physician_accurate": day(6)}
    few = invoke("monitor", "--db", db, "--baseline-since", day(1), "--baseline-until", day(6),
                 "--current-since", day(6), "--current-until", day(11), "--min-reviewed", "100",
                 "--format", "json")
    assert few.exit_code == 0, few.output
    skipped = {s["metric"]: s["reason"] for s in json.loads(few.stdout)["skipped"]}
    assert "at least 100 each" in skipped["physician_accepted"] and "min_reviewed" in skipped["physician_accepted"]


def test_ratings_of_other_summaries_of_the_same_notes_are_not_counted(store, tmp_path):
    """Days 11-13 summarize notes also summarized on days 1-10: their reviews must not join them."""
    result = invoke("monitor", "--db", store, "--baseline-since", day(1), "--baseline-until", day(11),
                    "--current-since", day(11), "--current-until", day(14), "--format", "json")
    report = json.loads(result.stdout)
    assert report["feedback"]["current"]["n_reviewed"] == 0
    assert any(s["metric"] == "physician_accepted" and "only the baseline" in s["reason"]
               for s in report["skipped"])


def test_flag_rules_come_from_the_config_and_bad_rules_are_usage_errors(store, tmp_path):
    config = tmp_path / "flags.toml"
    config.write_text('[monitor]\nsummary_flag = ["critical_flips>=1"]\nphysician_flag = ["accurate<3"]\n')
    result = invoke("monitor", "--trend", "--db", store, "--config", config, "--until", day(11), "--format", "json")
    flags = json.loads(result.stdout)["feedback"][0]["flags"]
    assert flags["summary_flag"] == "critical_flips>=1" and flags["physician_flag"] == "accurate<3"
    assert flags["tp"] + flags["fn"] == 4  # every rejected summary was rated 2
    bad = invoke("monitor", "--trend", "--db", store, "--summary-flag", "recall is low")
    assert bad.exit_code == EXIT_ERROR and "recall is low" in bad.output


def test_flipped_negations_alert_on_the_first_day_they_appear(tmp_path):
    """Eight days of eight summaries; on day 8 every summary with a negated finding has it reversed."""
    sources = [s for s in sim.fixture_sources(FIXTURES) if s.fields["note_type"] == "visit_note"]
    flippable = [s for s in sources if sim.flip_negated_finding(s.summary, s)]
    assert len(flippable) >= 8
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": s.note.id, "text": s.note.text}) + "\n" for s in sources))
    db = tmp_path / "f.db"
    for d in range(1, 9):
        chosen = [flippable[((d - 1) * 8 + i) % len(flippable)] for i in range(8)]
        path = tmp_path / f"{d}.jsonl"
        path.write_text("".join(json.dumps({
            "note_id": s.note.id, "system": "production",
            "text": (sim.flip_negated_finding(s.summary, s) or s.summary) if d == 8 else s.summary,
            "created_at": f"{day(d)}T09:{i:02d}:00Z"}) + "\n" for i, s in enumerate(chosen)))
        assert invoke("score", path, "--notes", notes, "-e", "coverage", "--db", db).exit_code == 0
    result = invoke("monitor", "--trend", "--db", db, "--format", "json")
    assert result.exit_code == EXIT_FAILED, result.output
    first = json.loads(result.stdout)["first_alerts"]
    assert first.get("has_critical_flip") == day(8) and first.get("critical_flips") == day(8)
    assert set(first.values()) == {day(8)}
