"""The run/score/runs/show commands end to end, in process, with a scripted provider."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from fakes import ScriptedProvider
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.errors import FatalError
from clinsum.providers import registry

NOTES = [
    {"id": "a", "text": "Patient has hypertension. Denies chest pain. Takes lisinopril 10 mg daily.",
     "reference": "Hypertension on lisinopril 10 mg. No chest pain."},
    {"id": "b", "text": "Type 2 diabetes, A1c 8.1. Started metformin.", "reference": "Diabetes; metformin started."},
    {"id": "c", "text": "Cough for three days. No fever.", "reference": "Three days of cough without fever."},
]


@pytest.fixture
def notes_file(tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(n) + "\n" for n in NOTES))
    return path


@pytest.fixture(autouse=True)
def echo_provider():
    """`echo:MODEL` repeats the first sentence of the note; `echo:broken` fails on note b."""
    def create(spec, options):
        def answer(request):
            if spec == "echo:broken" and request.note.id == "b":
                return FatalError("400 context too long")
            return request.note.text.split(".")[0] + "."
        return ScriptedProvider(spec, options, default=answer)
    registry.register("echo", create)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_run_writes_outputs_and_the_leaderboard(tmp_path, notes_file):
    db, out = tmp_path / "c.db", tmp_path / "out"
    result = invoke("run", "--notes", str(notes_file), "-p", "echo:good", "-p", "echo:broken",
                    "-m", "overlap", "-m", "length", "--db", str(db), "--out", str(out))
    assert result.exit_code == 1, result.output  # finished, but a summary failed
    assert "1 failed summaries, 0 failed evaluations" in result.output
    summaries = [json.loads(line) for line in (out / "summaries.jsonl").read_text().splitlines()]
    assert len(summaries) == 6
    broken_b = next(s for s in summaries if s["system"] == "echo:broken" and s["note_id"] == "b")
    assert broken_b["error"].startswith("FatalError") and broken_b["text"] == ""
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert {"note_id", "system", "metric", "value", "evaluator", "version", "detail"} <= set(scores[0])
    assert {s["metric"] for s in scores} >= {"rouge1", "rouge2", "rougeLsum", "summary_words", "failed"}
    with (out / "leaderboard.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["system", "metric", "n", "mean", "ci_low", "ci_high"]
    failed = {r["system"]: float(r["mean"]) for r in rows if r["metric"] == "failed"}
    assert failed == {"echo:good": 0.0, "echo:broken": pytest.approx(1 / 3)}
    rouge_n = {r["system"]: int(r["n"]) for r in rows if r["metric"] == "rouge1"}
    assert rouge_n == {"echo:good": 3, "echo:broken": 2}  # the failed summary is not scored


def test_failures_exit_1_and_allow_errors_opts_out(tmp_path, notes_file):
    args = ["run", "--notes", str(notes_file), "-p", "echo:broken", "-m", "length", "--db", str(tmp_path / "c.db")]
    assert invoke(*args).exit_code == 1
    assert invoke(*args, "--fail-on-errors").exit_code == 1  # the default, still accepted
    allowed = invoke(*args, "--allow-errors")
    assert allowed.exit_code == 0 and "1 failed summaries" in allowed.output


def test_runs_and_show_read_the_store(tmp_path, notes_file):
    db = str(tmp_path / "c.db")
    invoke("run", "--notes", str(notes_file), "-p", "echo:one", "-m", "length", "--db", db)
    invoke("run", "--notes", str(notes_file), "-p", "echo:two", "-m", "length", "--db", db)
    listed = json.loads(invoke("runs", "--db", db, "--format", "json").stdout)
    assert [r["systems"] for r in listed] == [["echo:two"], ["echo:one"]]  # newest first
    assert {"id", "created_at", "systems", "notes", "status"} <= set(listed[0])
    assert listed[0]["notes"] == 3 and listed[0]["status"] == "finished"
    shown = json.loads(invoke("show", listed[1]["id"], "--db", db, "--format", "json").stdout)
    assert {r["system"] for r in shown} == {"echo:one"}
    csv_out = invoke("show", listed[1]["id"], "--db", db, "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "system,metric,n,mean,ci_low,ci_high"
    missing = invoke("show", "nope", "--db", db)
    assert missing.exit_code == 2 and "no run 'nope'" in missing.output


def test_a_second_identical_run_is_served_from_the_cache(tmp_path, notes_file):
    db = str(tmp_path / "c.db")
    calls: list[str] = []

    def create(spec, options):
        provider = ScriptedProvider(spec, options)
        original = provider.generate

        async def generate(request):
            calls.append(request.note.id)
            return await original(request)
        provider.generate = generate  # type: ignore[method-assign]
        return provider

    registry.register("counted", create)
    for _ in range(2):
        assert invoke("run", "--notes", str(notes_file), "-p", "counted:m", "-m", "length", "--db", db).exit_code == 0
    assert sorted(calls) == ["a", "b", "c"]


def test_score_rescoring_summaries_made_elsewhere(tmp_path, notes_file):
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text(
        json.dumps({"note_id": "a", "system": "production", "text": "Hypertension on lisinopril."}) + "\n"
        + json.dumps({"note_id": "b", "system": "production", "text": "Diabetes on metformin."}) + "\n")
    out = tmp_path / "out"
    result = invoke("score", str(summaries), "--notes", str(notes_file), "-m", "overlap",
                    "--db", str(tmp_path / "c.db"), "--out", str(out))
    assert result.exit_code == 0, result.output
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert {(s["note_id"], s["metric"]) for s in scores if s["evaluator"] == "overlap"} == {
        (n, m) for n in "ab" for m in ("rouge1", "rouge2", "rougeLsum")}


def test_score_refuses_summaries_of_unknown_notes(tmp_path, notes_file):
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text(json.dumps({"note_id": "zzz", "system": "production", "text": "x"}) + "\n")
    result = invoke("score", str(summaries), "--notes", str(notes_file), "--db", str(tmp_path / "c.db"))
    assert result.exit_code == 2 and "zzz" in result.output


def test_bad_notes_name_file_line_and_field_and_skip_invalid_counts(tmp_path):
    notes = tmp_path / "bad.jsonl"
    notes.write_text(json.dumps(NOTES[0]) + "\n" + json.dumps({"id": "x", "text": ""}) + "\n")
    result = invoke("run", "--notes", str(notes), "-p", "echo:m", "-m", "length", "--db", str(tmp_path / "c.db"))
    assert result.exit_code == 2
    assert "bad.jsonl:2" in result.output and "text" in result.output
    skipped = invoke("run", "--notes", str(notes), "-p", "echo:m", "-m", "length",
                     "--db", str(tmp_path / "c.db"), "--skip-invalid")
    assert skipped.exit_code == 0 and "1 invalid notes skipped" in skipped.output


def test_help_imports_no_provider_sdk_or_nlp_library():
    code = ("import sys; from typer.testing import CliRunner; from clinsum.cli import app; "
            "CliRunner().invoke(app, ['--help']); CliRunner().invoke(app, ['run', '--help']); "
            "heavy = [m for m in sys.modules if m.split('.')[0] in "
            "('anthropic', 'google', 'langchain', 'langchain_core', 'ollama', 'spacy', 'torch', 'scispacy', "
            "'medspacy', 'numpy', 'scipy', 'rouge_score', 'httpx')]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_score_takes_the_flags_of_run(tmp_path, notes_file, monkeypatch):
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": n["id"], "system": "production", "text": n["reference"]}) + "\n"
                                 for n in NOTES))
    db = str(tmp_path / "c.db")
    limited = invoke("score", str(summaries), "--notes", str(notes_file), "-m", "length", "--limit", "2",
                     "--concurrency", "1", "--db", db)
    assert limited.exit_code == 0, limited.output
    [run] = json.loads(invoke("runs", "--db", db, "--format", "json").stdout)
    assert run["notes"] == 2 and run["summaries"] == 2

    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    offline = invoke("score", str(summaries), "--notes", str(notes_file), "--offline",
                     "--judge", "anthropic:claude-sonnet-5-5", "--judge-samples", "2", "--db", db)
    assert offline.exit_code == 2 and "anthropic:claude-sonnet-5-5" in offline.output
    assert len(json.loads(invoke("runs", "--db", db, "--format", "json").stdout)) == 1  # refused before any run


def test_score_scores_and_flags_an_empty_production_summary(tmp_path, notes_file):
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text(json.dumps({"note_id": "a", "system": "production", "text": "  "}) + "\n"
                         + json.dumps({"note_id": "b", "system": "production", "text": "Diabetes."}) + "\n")
    out = tmp_path / "out"
    result = invoke("score", str(summaries), "--notes", str(notes_file), "-m", "overlap",
                    "--db", str(tmp_path / "c.db"), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "0 failed summaries, 0 failed evaluations, 1 empty summaries" in result.output
    scores = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    by = {(s["note_id"], s["metric"]): s["value"] for s in scores}
    assert by[("a", "empty_summary")] == 1.0 and by[("a", "rouge1")] == 0.0
    assert by[("b", "empty_summary")] == 0.0 and by[("b", "rouge1")] > 0


@pytest.mark.parametrize("command", [["runs"], ["show", "some-run"], ["agreement"]])
def test_read_only_commands_never_create_a_store(tmp_path, command):
    result = invoke(*command, "--db", str(tmp_path / "typo.db"))
    assert result.exit_code == 2
    assert "typo.db: no such store" in result.output
    assert not (tmp_path / "typo.db").exists()


def test_resume_refuses_flags_that_would_change_the_run(tmp_path, notes_file):
    db = str(tmp_path / "c.db")
    assert invoke("run", "--notes", str(notes_file), "-p", "echo:m", "-m", "length", "--db", db).exit_code == 0
    [run] = json.loads(invoke("runs", "--db", db, "--format", "json").stdout)
    refused = invoke("run", "--resume", run["id"], "-m", "judge", "--limit", "1", "--db", db)
    assert refused.exit_code == 2 and "--metric, --limit would change it" in refused.output
    applied = invoke("run", "--resume", run["id"], "--concurrency", "1", "--db", db)
    assert applied.exit_code == 0, applied.output
