"""A stored run's summaries, scores (with their details) and leaderboard as files, at any time.

``jsonl`` writes exactly what ``clinsum run --out`` writes (``reports.write_outputs``);
``csv`` and ``parquet`` write the same three tables flat, one column per field,
each score's ``detail`` as a JSON string. Every format also writes ``run.json``,
the run as stored (its configuration redacted). Each file is written to a
temporary name and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinsum import reports
from clinsum.errors import ClinsumError, OutputWriteError
from clinsum.evaluators.aggregate import Row, aggregate, failures_by_system
from clinsum.inputs import atomic_output, write_csv
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
    out.mkdir(parents=True, exist_ok=True)
    if format == "jsonl":
        paths = reports.write_outputs(out, summaries, scores, rows)
    elif format == "csv":
        paths = {"summaries": out / "summaries.csv", "scores": out / "scores.csv",
                 "leaderboard": out / "leaderboard.csv"}
        write_csv(paths["summaries"], SUMMARY_COLUMNS, [summary_row(s) for s in summaries])
        write_csv(paths["scores"], SCORE_COLUMNS, [score_row(s) for s in scores])
        write_csv(paths["leaderboard"], reports.LEADERBOARD_COLUMNS, reports.as_dicts(rows))
    else:
        paths = {"summaries": out / "summaries.parquet", "scores": out / "scores.parquet",
                 "leaderboard": out / "leaderboard.parquet"}
        _parquet(pyarrow, paths["summaries"], SUMMARY_COLUMNS, [summary_row(s) for s in summaries])
        _parquet(pyarrow, paths["scores"], SCORE_COLUMNS, [score_row(s) for s in scores])
        _parquet(pyarrow, paths["leaderboard"], reports.LEADERBOARD_COLUMNS, reports.as_dicts(rows))
    paths["run"] = out / "run.json"
    with atomic_output(paths["run"]) as handle:
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


def _parquet(pyarrow: Any, path: Path, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    schema = pyarrow.schema([(c, getattr(pyarrow, _TYPES.get(c, "string"))()) for c in columns])
    table = pyarrow.Table.from_pylist([{c: row.get(c) for c in columns} for row in rows], schema=schema)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        pyarrow.parquet.write_table(table, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
