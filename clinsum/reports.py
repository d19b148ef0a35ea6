"""The leaderboard as a terminal table, CSV and JSON, and the files a run writes with ``--out``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from clinsum.errors import unknown_choice
from clinsum.evaluators import metrics
from clinsum.evaluators.aggregate import Row, aggregate, leaderboard
from clinsum.outputs import OutputSet, output_set
from clinsum.records import Score, Summary

LEADERBOARD_COLUMNS = ["system", "metric", "n", "mean", "ci_low", "ci_high"]


def default_sort_metric(rows: Sequence[Row]) -> str:
    """The first metric present in declared display order that has a direction."""
    present = sorted({r.metric for r in rows}, key=metrics.display_key)
    return next((m for m in present if metrics.direction(m) != "neutral"), "failed")


def check_sort_by(sort_by: str | None, available: Iterable[str] | None = None) -> None:
    """Refuse a ``--sort-by`` that names no metric, naming the valid ones.

    With ``available`` (the metrics of a table) the metric must be one of them;
    without, it must be a metric some evaluator declares (checked before a run).
    """
    if sort_by is None:
        return
    if available is None:
        if metrics.describe(sort_by) is not None:
            return
        valid = list(metrics.catalog())
    else:
        valid = sorted(set(available), key=metrics.display_key)
        if sort_by in valid or not valid:
            return
    where = "metrics of this run" if available is not None else "known metrics"
    raise unknown_choice("--sort-by", sort_by, valid, noun="a metric", where=where)


def ordered(rows: Sequence[Row], sort_by: str | None = None) -> tuple[list[Row], str]:
    """Rows grouped by system, systems ranked by ``sort_by`` (best first), and that metric.

    A ``sort_by`` that names no metric of ``rows`` is a ``ConfigError`` naming those metrics.
    """
    check_sort_by(sort_by, (r.metric for r in rows))
    metric = sort_by or default_sort_metric(rows)
    return leaderboard(rows, metric, descending=metrics.direction(metric) != "lower"), metric


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.4g}"


def _cell(row: Row | None) -> str:
    if row is None or row.mean is None or math.isnan(row.mean):
        return "–"
    if row.ci_low is None or row.ci_high is None or row.n < 2:
        return _number(row.mean)
    return f"{_number(row.mean)} [{_number(row.ci_low)}, {_number(row.ci_high)}]"


def table(rows: Sequence[Row], sort_by: str | None = None, title: str | None = None) -> Table:
    """One column per system (best first), one row per metric: mean [95% CI]."""
    ranked, metric = ordered(rows, sort_by)
    names = sorted({r.metric for r in rows}, key=metrics.display_key)
    systems = list(dict.fromkeys(r.system for r in ranked))
    cells = {(r.system, r.metric): r for r in rows}
    from clinsum.cli.common import shown  # system names are user data: no markup, no escape codes

    out = Table(title=shown(title) if title else None,
                caption=f"systems ranked by {shown(metric)}, best first; mean \\[95% bootstrap CI]")
    out.add_column("metric", style="bold")
    for system in systems:
        out.add_column(shown(system), justify="right", overflow="fold")
    for m in names:
        out.add_row(shown(m), *(shown(_cell(cells.get((system, m)))) for system in systems))
    return out


def as_dicts(rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{c: getattr(r, c) for c in LEADERBOARD_COLUMNS} for r in rows]


def write_outputs(out: Path, summaries: Iterable[Summary], scores: Iterable[Score],
                  rows: Sequence[Row] | None = None) -> dict[str, Path]:
    """``summaries.jsonl``, ``scores.jsonl`` and ``leaderboard.csv``, as one set: all three new or,
    on any failure, all three as they were (``clinsum.outputs.output_set``; what a reader of the
    folder can see while they are put in place is said there).

    Summaries and scores may be iterators (``Store.iter_scores``): they are written as they are read.
    """
    if rows is None:
        scores = list(scores)
        rows = aggregate(scores)
    with output_set(out) as files:
        return write_output_files(files, summaries, scores, rows)


OUTPUT_NAMES = {"summaries": "summaries.jsonl", "scores": "scores.jsonl", "leaderboard": "leaderboard.csv"}


def write_output_files(files: OutputSet, summaries: Iterable[Summary], scores: Iterable[Score],
                       rows: Sequence[Row]) -> dict[str, Path]:
    """The three outputs into a set of files that also holds others (``clinsum export`` adds ``run.json``)."""
    files.write_jsonl(OUTPUT_NAMES["summaries"], summaries)
    files.write_jsonl(OUTPUT_NAMES["scores"], scores)
    files.write_csv(OUTPUT_NAMES["leaderboard"], LEADERBOARD_COLUMNS,
                    [[getattr(r, c) for c in LEADERBOARD_COLUMNS] for r in ordered(rows)[0]])
    return {table: files.folder / name for table, name in OUTPUT_NAMES.items()}
