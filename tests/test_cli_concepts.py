"""``clinsum concepts``: table for a file or stdin, JSONL in/out with per-line errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clinsum.cli import app

runner = CliRunner()


def test_table_of_a_file(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Denies chest pain. History of COPD.", encoding="utf-8")
    result = runner.invoke(app, ["concepts", str(note)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "clinsum:chest_pain" in result.stdout and "negated" in result.stdout
    assert "clinsum:copd" in result.stdout and "2 concept mention(s)" in result.stdout


def test_table_from_stdin() -> None:
    result = runner.invoke(app, ["concepts", "-"], input="on metformin", env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "drugbank:DB00331" in result.stdout


def test_binary_file_does_not_crash(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(bytes(range(256)) * 50)
    result = runner.invoke(app, ["concepts", str(junk)])
    assert result.exit_code == 0, result.output


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["concepts", str(tmp_path / "nope.txt")])
    assert result.exit_code == 2
    assert "nope.txt" in result.output and "Traceback" not in result.output


def test_jsonl_in_writes_one_line_per_good_input_and_names_bad_lines(tmp_path: Path) -> None:
    source = tmp_path / "notes.jsonl"
    source.write_text("\n".join([
        json.dumps({"id": "n1", "text": "HTN and T2DM, no fever."}),
        "{not json",
        json.dumps({"id": "n2"}),
        json.dumps({"id": "", "text": "x"}),
        json.dumps({"id": "n3", "text": ""}),
        json.dumps({"id": "n4", "text": "Tylenol PRN."}),
    ]) + "\n", encoding="utf-8")
    result = runner.invoke(app, ["concepts", "--jsonl-in", str(source)])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["n1", "n3", "n4"]
    first = lines[0]["mentions"]
    assert [m["concept_id"] for m in first] == ["clinsum:htn", "clinsum:t2dm", "clinsum:fever"]
    assert set(first[0]) == {"start", "end", "text", "concept_id", "name", "group", "assertion"}
    assert first[2]["assertion"] == "negated"
    assert lines[1]["mentions"] == []
    errors = result.stderr
    assert f"{source}:2: invalid JSON" in errors
    assert f"{source}:3: missing or not a string (field 'text')" in errors
    assert f"{source}:4: missing or empty (field 'id')" in errors


def test_file_and_jsonl_in_are_exclusive(tmp_path: Path) -> None:
    result = runner.invoke(app, ["concepts"])
    assert result.exit_code == 2


def test_a_lone_surrogate_fails_its_line_not_the_command(tmp_path: Path) -> None:
    """``"\\ud800"`` is valid JSON but no UTF-8 text; the tokenizer used to crash on it."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "text": "Denies \\ud800 chest pain."}\n{"id": "b", "text": "on metformin"}\n',
                    encoding="utf-8")
    result = runner.invoke(app, ["concepts", "--jsonl-in", str(path)])
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"{path}:1: invalid Unicode: a lone surrogate" in result.stderr
    assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["b"]
