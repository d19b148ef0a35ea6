"""Bad input files through the command line: every bad record reported, capped and counted."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import EXIT_ERROR


def _files(tmp_path: Path, bad: int) -> tuple[Path, Path]:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": "n1", "text": "Denies chest pain. Plan: ECG."}) + "\n")
    summaries = tmp_path / "summaries.jsonl"
    lines = [{"note_id": "n1", "system": "prod", "text": "No chest pain."}]
    lines += [{"note_id": "n1", "system": f"s{i}", "text": "x", "latency_s": -1} for i in range(bad)]
    summaries.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return notes, summaries


def test_score_reports_every_bad_summary_capped_and_counted(tmp_path: Path) -> None:
    notes, summaries = _files(tmp_path, 25)
    result = CliRunner().invoke(app, ["score", str(summaries), "--notes", str(notes), "--metric", "length",
                                      "--db", str(tmp_path / "c.db")])
    assert result.exit_code == EXIT_ERROR
    assert "25 invalid summaries" in result.output
    assert f"{summaries}:2: latency_s must not be negative" in result.output
    assert f"{summaries}:21:" in result.output and f"{summaries}:22:" not in result.output
    assert "... and 5 more" in result.output
    assert "Traceback" not in result.output


def test_skip_invalid_lists_the_first_and_counts_all(tmp_path: Path) -> None:
    notes, summaries = _files(tmp_path, 25)
    result = CliRunner().invoke(app, ["score", str(summaries), "--notes", str(notes), "--metric", "length",
                                      "--skip-invalid", "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 0, result.output
    assert result.output.count("skipped: ") == 20
    assert "... and 5 more" in result.output and "25 invalid summaries skipped" in result.output
