"""A stored run's summaries, scores (with their details) and leaderboard as files, at any time.

``jsonl`` writes exactly what ``clinsum run --out`` writes (``reports.write_outputs``);
``csv`` and ``parquet`` write the same three tables flat, one column per field,
each score's ``detail`` as a JSON string. Every format also writes ``run.json``,
the run as stored (its configuration redacted). The files of an export are one set
(``clinsum.outputs.output_set``): all new, or on any failure all as they were, never
half a file and never a new table beside an old one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinsum import reports
from clinsum.errors import ClinsumError, OutputWriteError
from clinsum.evaluators.aggregate import Row, aggregate, failures_by_system
from clinsum.outputs import OutputSet, output_set
from clinsum.records import Score, Summary

FORMATS = ("jsonl", "csv", "parquet")
SUMMARY_COLUMNS = ["note_id", "system", "text", "error", "latency_s", "input_tokens", "output_tokens", "cost_usd",
                   "request_id", "prompt_version"]
SCORE_COLUMNS = ["note_id", "system", "metric", "value", "evaluator", "version", "detail"]


class ExportError(ClinsumError):
    """An export cannot be made as asked."""


class MissingExtra(ExportError):
    """An optional package that an export needs is not installed."""


class ExportWriteError(OutputWriteError):
    """The destination of an export (an MLflow tracking store) could not be written."""


def summary_row(summary: Summary) -> dict[str, Any]:
    return {"note_id": summary.note_id, "system": summary.system, "text": summary.text, "error": summary.error,
            "latency_s": summary.latency_s, "input_tokens": summary.usage.input_tokens,
            "output_tokens": summary.usage.output_tokens, "cost_usd": summary.usage.cost_usd,
            "request_id": summary.request_id, "prompt_version": summary.prompt_version}


def score_row(score: Score) -> dict[str, Any]:
    return {"note_id": score.note_id, "system": score.system, "metric": score.metric, "value": score.value,
            "evaluator": score.evaluator, "version": score.version,
            "detail": json.dumps(score.detail, ensure_ascii=False, sort_keys=True)}


def leaderboard_rows(summaries: Sequence[Summary], scores: Sequence[Score]) -> list[Row]:
    return reports.ordered(aggregate(scores, failures=failures_by_system(summaries)))[0]


def write(out: Path, format: str, run: dict[str, Any], summaries: Sequence[Summary],
          scores: Sequence[Score]) -> dict[str, Path]:
    """Write the run in ``format`` into ``out``; returns the files by table name."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format '{format}'; choose one of {', '.join(FORMATS)}")
    rows = leaderboard_rows(summaries, scores)
    if format == "parquet":
        pyarrow = _pyarrow()  # before any file is written
    with output_set(out) as files:  # every file of the export new, or all as they were
        if format == "jsonl":
            paths = reports.write_output_files(files, summaries, scores, rows)
        elif format == "csv":
            paths = {table: out / f"{table}.csv" for table in ("summaries", "scores", "leaderboard")}
            files.write_csv("summaries.csv", SUMMARY_COLUMNS, [summary_row(s) for s in summaries])
            files.write_csv("scores.csv", SCORE_COLUMNS, [score_row(s) for s in scores])
            files.write_csv("leaderboard.csv", reports.LEADERBOARD_COLUMNS, reports.as_dicts(rows))
        else:
            paths = {table: out / f"{table}.parquet" for table in ("summaries", "scores", "leaderboard")}
            _parquet(pyarrow, files, "summaries.parquet", SUMMARY_COLUMNS, [summary_row(s) for s in summaries])
            _parquet(pyarrow, files, "scores.parquet", SCORE_COLUMNS, [score_row(s) for s in scores])
            _parquet(pyarrow, files, "leaderboard.parquet", reports.LEADERBOARD_COLUMNS, reports.as_dicts(rows))
        paths["run"] = out / "run.json"
        with files.open("run.json") as handle:
            handle.write(json.dumps(run, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    return paths


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as exc:
        raise MissingExtra("parquet export needs pyarrow: pip install 'clinsum[parquet]'") from exc
    return pyarrow


_TYPES = {"latency_s": "float64", "cost_usd": "float64", "value": "float64", "mean": "float64",
          "ci_low": "float64", "ci_high": "float64", "input_tokens": "int64", "output_tokens": "int64", "n": "int64"}


def _parquet(pyarrow: Any, files: OutputSet, name: str, columns: Sequence[str],
             rows: Sequence[dict[str, Any]]) -> None:
    schema = pyarrow.schema([(c, getattr(pyarrow, _TYPES.get(c, "string"))()) for c in columns])
    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows], schema=schema)
    with files.path(name) as temporary:
        pyarrow.parquet.write_table(table, temporary)
