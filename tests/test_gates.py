"""Gates: ``--fail-under METRIC=VALUE`` in the metric's direction, ``--max-critical-flips N``, ``[gates]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import ScriptedProvider
from typer.testing import CliRunner

from clinsum import gates
from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR, EXIT_GATE
from clinsum.config import GatesConfig, load_config
from clinsum.errors import ConfigError, FatalError
from clinsum.providers import registry
from clinsum.records import Score
from clinsum.store import Store

NOTES = [
    {"id": "a", "text": "Patient has hypertension. Denies chest pain.", "reference": "Hypertension. No chest pain."},
    {"id": "b", "text": "Type 2 diabetes. Started metformin.", "reference": "Diabetes; metformin started."},
    {"id": "c", "text": "Cough for three days. No fever.", "reference": "Three days of cough, no fever."},
]


@pytest.fixture
def notes_file(tmp_path: Path) -> Path:
    path = tmp_path / "notes.jsonl"
    path.write_text("".join(json.dumps(n) + "\n" for n in NOTES))
    return path


@pytest.fixture(autouse=True)
def echo_provider() -> None:
    """`echo:MODEL` repeats the note's first sentence; `echo:broken` fails on note b."""
    def create(spec: str, options: dict) -> ScriptedProvider:
        def answer(request):  # type: ignore[no-untyped-def]
            if spec == "echo:broken" and request.note.id == "b":
                return FatalError("400 context too long")
            return request.note.text.split(".")[0] + "."
        return ScriptedProvider(spec, options, default=answer)
    registry.register("echo", create)


def run(notes: Path, tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    """A run in which echo:broken fails one summary; --allow-errors, so only the gates decide the exit."""
    return CliRunner().invoke(app, ["run", "--notes", str(notes), "-p", "echo:good", "-p", "echo:broken",
                                    "-m", "length", "--db", str(tmp_path / "c.db"), "--allow-errors", *args])


def test_a_lower_is_better_bar_fails_above_it(notes_file: Path, tmp_path: Path) -> None:
    # echo:broken fails one summary in three: its `failed` rate is 0.33, echo:good's is 0
    missed = run(notes_file, tmp_path, "--fail-under", "failed=0.2")
    assert missed.exit_code == EXIT_GATE, missed.output
    assert "echo:broken: failed <= 0.2 not met (0.3333)" in missed.output
    assert "gate failed: echo:good" not in missed.output
    passed = run(notes_file, tmp_path, "--fail-under", "failed=0.5")
    assert passed.exit_code == 0, passed.output


def test_a_gate_that_cannot_be_checked_fails(notes_file: Path, tmp_path: Path) -> None:
    # no coverage evaluator ran, so no system has shown it has no critical flip
    result = run(notes_file, tmp_path, "--max-critical-flips", "0")
    assert result.exit_code == EXIT_GATE
    assert "echo:good: critical_flips total <= 0 not met (no value)" in result.output


def test_gates_from_the_config_file_and_flags_replace_the_same_metric(notes_file: Path, tmp_path: Path) -> None:
    config = tmp_path / "eval.toml"
    config.write_text(f'notes = "{notes_file}"\nproviders = ["echo:broken"]\nmetrics = ["length"]\n'
                      "[gates]\nfail_under = { failed = 0.1 }\n")
    assert load_config(config).gates.fail_under == {"failed": 0.1}
    db = str(tmp_path / "c.db")
    assert CliRunner().invoke(app, ["run", str(config), "--db", db, "--allow-errors"]).exit_code == EXIT_GATE
    relaxed = CliRunner().invoke(app, ["run", str(config), "--db", db, "--allow-errors", "--fail-under",
                                       "failed=0.5"])
    assert relaxed.exit_code == 0, relaxed.output


def test_score_has_the_same_gates(notes_file: Path, tmp_path: Path) -> None:
    summaries = tmp_path / "prod.jsonl"
    summaries.write_text("".join(json.dumps({"note_id": n["id"], "system": "production", "text": n["text"]}) + "\n"
                                 for n in NOTES))
    args = ["score", str(summaries), "--notes", str(notes_file), "-m", "overlap", "--db", str(tmp_path / "c.db")]
    assert CliRunner().invoke(app, [*args, "--fail-under", "rouge1=0.99"]).exit_code == EXIT_GATE
    assert CliRunner().invoke(app, [*args, "--fail-under", "rouge1=0.1"]).exit_code == 0


@pytest.mark.parametrize(("flag", "message"), [
    ("summary_words=50", "has no better direction"),
    ("no_such_metric=1", "is not a declared metric"),
    ("rouge1", "expected METRIC=NUMBER"),
    ("rouge1=high", "expected METRIC=NUMBER"),
])
def test_a_bad_gate_is_refused_before_anything_runs(notes_file: Path, tmp_path: Path, flag: str,
                                                    message: str) -> None:
    result = run(notes_file, tmp_path, "--fail-under", flag)
    assert result.exit_code == EXIT_ERROR and message in result.output
    store = Store.open(tmp_path / "c.db")
    assert store.runs() == []  # refused before the run was recorded, let alone paid for
    store.close()


def score(system: str, note: str, metric: str, value: float | None) -> Score:
    return Score(note_id=note, system=system, metric=metric, value=value, evaluator="t", version="1")


def test_failures_follow_the_declared_direction_and_count_flips_in_all() -> None:
    scores = [score("a", n, "concept_recall", v) for n, v in (("1", 0.9), ("2", 0.5))]
    scores += [score("b", n, "concept_recall", 0.8) for n in "12"]
    scores += [score("a", "1", "critical_flips", 0), score("a", "2", "critical_flips", 0)]
    scores += [score("b", "1", "critical_flips", 1), score("b", "2", "critical_flips", 1)]
    bars = GatesConfig(fail_under={"concept_recall": 0.75}, max_critical_flips=1)
    found = gates.failures(scores, ["a", "b"], bars)
    assert [(f.system, f.gate, f.value) for f in found] == [
        ("a", "concept_recall >= 0.75", pytest.approx(0.7)), ("b", "critical_flips total <= 1", 2.0)]
    assert gates.failures(scores, ["a", "b"], GatesConfig(fail_under={"concept_recall": 0.7},
                                                           max_critical_flips=2)) == []


def test_merged_gates_refuse_an_undirected_metric_from_the_config_too() -> None:
    with pytest.raises(ConfigError, match="compression_ratio"):
        gates.merged(GatesConfig(fail_under={"compression_ratio": 0.2}), None, None)


def test_gates_apply_to_a_resumed_run(notes_file: Path, tmp_path: Path) -> None:
    first = run(notes_file, tmp_path)
    assert first.exit_code == 0, first.output
    store = Store.open(tmp_path / "c.db")
    (stored,) = store.runs()
    store.close()
    resumed = CliRunner().invoke(app, ["run", "--resume", stored["id"], "--db", str(tmp_path / "c.db"),
                                       "--allow-errors", "--fail-under", "failed=0.2"])
    assert resumed.exit_code == EXIT_GATE and "echo:broken: failed <= 0.2 not met" in resumed.output
