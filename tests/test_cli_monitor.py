"""`clinsum score --name/--tag` with production records, `clinsum runs` selection, `clinsum monitor`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_FAILED
from clinsum.monitoring import simulate as sim

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Two days of production summaries of visit notes; on day 2 negations are flipped where a summary has one.

    Day 1 and day 2 summarize different notes (even and odd positions), so the
    windows are compared unpaired; a third run re-scores day 1's notes unchanged.
    """
    folder = tmp_path_factory.mktemp("monitor")
    sources = [s for s in sim.fixture_sources(FIXTURES) if s.fields["note_type"] == "visit_note"]
    notes = folder / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": s.note.id, "text": s.note.text, "meta": dict(s.note.meta)}) + "\n"
                             for s in sources))
    day1, day2, steady = folder / "day1.jsonl", folder / "day2.jsonl", folder / "steady.jsonl"

    def rows(items, day, flip):
        out = []
        for i, s in enumerate(items):
            text = (sim.flip_negated_finding(s.summary) or s.summary) if flip else s.summary
            out.append(json.dumps({"note_id": s.note.id, "system": "production", "text": text,
                                   "created_at": f"2025-03-0{day}T{8 + i % 10:02d}:00:00Z",
                                   "metadata": {"model_version": f"v{day}", "site": "ab"[i % 2]}}) + "\n")
        return "".join(out)

    day1.write_text(rows(sources[0::2], 1, flip=False))
    day2.write_text(rows(sources[1::2], 2, flip=True))
    steady.write_text(rows(sources[1::2], 3, flip=False))
    db = folder / "c.db"
    for path, name, tags in ((day1, "day1", ["env=prod", "week=10"]), (day2, "day2", ["env=prod", "week=10"]),
                             (steady, "steady", ["env=staging"])):
        result = invoke("score", path, "--notes", notes, "-e", "coverage", "-e", "length", "--db", db,
                        "--name", name, *[x for t in tags for x in ("--tag", t)])
        assert result.exit_code == 0, result.output
    return db


def test_runs_are_listed_by_name_and_tag(store):
    listed = json.loads(invoke("runs", "--db", store, "--tag", "env=prod", "--format", "json").stdout)
    assert sorted(r["name"] for r in listed) == ["day1", "day2"]
    assert all(r["tags"] == {"env": "prod", "week": "10"} for r in listed)
    named = json.loads(invoke("runs", "--db", store, "--name", "steady", "--format", "json").stdout)
    assert [r["tags"] for r in named] == [{"env": "staging"}]


def test_run_takes_a_name_and_tags_too(tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "a", "text": "Denies chest pain. Takes lisinopril."}) + "\n")
    db = tmp_path / "r.db"
    result = invoke("run", "--notes", notes, "-p", "extractive:lead", "-e", "length", "--db", db,
                    "--name", "nightly", "--tag", "env=ci")
    assert result.exit_code == 0, result.output
    [listed] = json.loads(invoke("runs", "--db", db, "--name", "nightly", "--format", "json").stdout)
    assert listed["tags"] == {"env": "ci"} and listed["kind"] == "run"
    assert invoke("runs", "--db", db, "--tag", "broken").exit_code == EXIT_ERROR


def test_a_time_range_window_spans_several_runs(store):
    result = invoke("monitor", "--db", store, "--baseline-since", "2025-03-01", "--baseline-until", "2025-03-03",
                    "--current", "steady", "--format", "json")
    window = json.loads(result.stdout)["baseline"]
    assert window["summaries"] == 52 and len(window["runs"]) == 2


def test_flipped_negations_alert_and_exit_1_with_the_json_fields(store):
    result = invoke("monitor", "--db", store, "--baseline", "day1", "--current", "env=prod",
                    "--current-since", "2025-03-02", "--current-until", "2025-03-03", "--format", "json")
    assert result.exit_code == EXIT_FAILED, result.output
    report = json.loads(result.stdout)
    assert report["baseline"]["summaries"] == 26 and report["current"]["summaries"] == 26
    alerted = {a["metric"] for a in report["alerts"]}
    assert alerted & {"critical_flips", "has_critical_flip"}
    assert "concept_recall" not in alerted
    alert = next(a for a in report["alerts"] if a["metric"] in ("critical_flips", "has_critical_flip"))
    assert set(alert) >= {"metric", "segment", "baseline_mean", "current_mean", "difference", "ci", "p_value",
                          "p_adjusted", "test", "kind"}
    assert alert["current_mean"] > alert["baseline_mean"] and alert["p_adjusted"] < 0.05
    assert len(report["checks"]) > len(report["alerts"])
    assert {c["test"] for c in report["checks"] if c["kind"] == "rate"} == {"fisher-exact"}


def test_the_same_notes_unchanged_are_compared_paired_and_pass(store):
    result = invoke("monitor", "--db", store, "--baseline", "env=staging", "--current", "day2", "--format", "json")
    report = json.loads(result.stdout)
    assert all(c["paired"] for c in report["checks"])
    # day 2 is day 3's notes with flips: paired, the flips still alert
    assert result.exit_code == EXIT_FAILED
    same = invoke("monitor", "--db", store, "--baseline", "steady", "--current", "steady")
    assert same.exit_code == 0, same.output
    assert "no degradation alerts" in same.stdout


def test_the_table_view_shows_the_alerts(store):
    result = invoke("monitor", "--db", store, "--baseline", "day1", "--current", "day2", "--by", "site")
    assert result.exit_code == EXIT_FAILED
    assert "alerts" in result.stdout and "p_adjusted" in result.stdout and "site=a" in result.stdout


def test_too_small_a_window_or_an_unknown_run_is_a_usage_error(store):
    small = invoke("monitor", "--db", store, "--baseline", "day1", "--current", "day2", "--min-summaries", "30")
    assert small.exit_code == EXIT_ERROR
    assert "has 26 summaries; at least 30 are needed" in small.output
    unknown = invoke("monitor", "--db", store, "--baseline", "nope", "--current", "day2")
    assert unknown.exit_code == EXIT_ERROR and "no run with id or name 'nope'" in unknown.output


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path):
    result = invoke("monitor", "--db", tmp_path / "none.db", "--baseline", "a", "--current", "b")
    assert result.exit_code == EXIT_ERROR and "no such store" in result.output
    assert not (tmp_path / "none.db").exists()


def test_monitor_settings_come_from_the_config_file(store, tmp_path):
    config = tmp_path / "monitor.toml"
    config.write_text('[monitor]\nmetrics = ["concept_recall"]\n[monitor.min_effect]\nconcept_recall = 0.5\n')
    result = invoke("monitor", "--db", store, "--baseline", "day1", "--current", "day2", "--config", config,
                    "--format", "json")
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    assert [c["metric"] for c in checks] == ["concept_recall"] and checks[0]["min_effect"] == 0.5
    bad = tmp_path / "bad.toml"
    bad.write_text('[monitor]\ncorrection = "bonferroni"\n')
    assert invoke("monitor", "--db", store, "--baseline", "day1", "--current", "day2",
                  "--config", bad).exit_code == EXIT_ERROR
