"""The self-contained HTML report: one file, no request leaves it.

The page is rendered by Jinja2 with autoescaping on (note and summary texts are
hostile data). Tables, charts and the run's configuration are rendered on the
server; the per-note drill-down is rendered in the browser, on demand, from
JSON embedded in a ``<script type="application/json">`` element (Jinja's
``tojson`` escapes ``<``, ``>``, ``&`` and ``'``), and the script writes every
text with ``textContent``, never as markup. A Content-Security-Policy admits
only the page's own script and stylesheet (by hash) and ``data:`` images, so a
browser refuses any request the page might try, even one smuggled in by a note.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from clinsum import __version__
from clinsum.evaluators import metrics
from clinsum.records import Mention, Score
from clinsum.reporting import charts, evidence, tables
from clinsum.reporting.content import Content
from clinsum.reporting.templates import environment, read


def _compact(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(f"{value:.4g}")


def note_data(content: Content, board: tables.Leaderboard,
              extract: Callable[[str], Iterable[Mention]] | None) -> list[dict[str, Any]]:
    """The drill-down's data: per note, its texts and, per system, its summary, values and evidence."""
    scores: dict[tuple[str, str], list[Score]] = defaultdict(list)
    for s in content.scores:
        scores[(s.note_id, s.system)].append(s)
    summaries = {(s.note_id, s.system): s for s in content.summaries}
    out = []
    for note in content.notes:
        source = evidence.Placer(note.text, extract)  # one per text: it extracts at most once
        systems: dict[str, Any] = {}
        for system in board.systems:
            summary = summaries.get((note.id, system))
            if summary is None:
                continue
            own = scores.get((note.id, system), [])
            by_metric = {s.metric: s for s in own}
            found = evidence.Evidence()
            if summary.ok:
                placer = evidence.Placer(summary.text, extract)
                evidence.concept_evidence(source, placer, by_metric, found)
                evidence.fact_evidence(placer, by_metric, found)
                evidence.judge_evidence(note.text, summary.text, own, found)
            entry: dict[str, Any] = {
                "text": summary.text,
                "m": {s.metric: _compact(s.value) for s in own},
                "hs": [list(h) for h in found.source],
                "hm": [list(h) for h in found.summary],
            }
            if summary.error:
                entry["err"] = summary.error
            if found.judge_errors:
                entry["je"] = found.judge_errors
            if found.judge_ratings:
                entry["jr"] = [[m, _compact(v), r] for m, v, r in found.judge_ratings]
            if found.unplaced:
                entry["unplaced"] = found.unplaced
            rated = content.ratings.get((note.id, system))
            if rated:
                entry["r"] = [[r.rater, r.dimension, r.value, r.comment or ""] for r in rated]
            systems[system] = entry
        item: dict[str, Any] = {"id": note.id, "text": note.text, "sys": systems}
        if note.reference:
            item["ref"] = note.reference
        out.append(item)
    return out


def _metric_header(board: tables.Leaderboard) -> list[dict[str, Any]]:
    return [{"name": line.name, "direction": line.direction, "arrow": line.arrow, "kind": line.kind,
             "description": line.description} for line in board.lines]


def _charts(content: Content, board: tables.Leaderboard) -> dict[str, Any]:
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    latest: dict[tuple[str, str, str], float] = {}
    for s in content.scores:
        if s.value is not None:
            latest[(s.metric, s.system, s.note_id)] = s.value
    for (metric, system, _), value in latest.items():
        values[metric][system].append(value)
    distributions = [charts.distribution(line.name, values[line.name], line.cells, board.systems)
                     for line in board.lines if values.get(line.name)]
    quality = board.sort_metric
    cost = board.line("cost_usd")
    latency = board.line("latency_s")
    quality_line = board.line(quality)
    return {
        "distributions": distributions,
        "quality_cost": charts.quality_cost(quality, quality_line.cells if quality_line else {},
                                            cost.cells if cost else {}, board.systems) if cost else None,
        "latency": charts.means("latency_s", latency.cells, board.systems, " s") if latency else None,
    }


def csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render(content: Content, *, sort_by: str | None = None,
           extract: Callable[[str], Iterable[Mention]] | None = None, use_extractor: bool = True) -> str:
    """The whole report as one HTML document."""
    board = tables.leaderboard(content.scores, content.summaries, sort_by)
    compared = tables.comparisons(content.scores, board)
    if extract is None and use_extractor:
        extract = evidence.default_extractor()
    notes = note_data(content, board, extract)
    script = read("report.js")
    style = read("report.css")
    failures = list(content.failures)
    judge_failures = [(s.note_id, s.system, s.detail.get("error", "")) for s in content.scores
                      if s.metric.startswith("judge_overall") and s.detail.get("failed")]
    data = {"systems": board.systems, "metrics": _metric_header(board), "sort": board.sort_metric,
            "notes": notes}
    return environment().get_template("report.html.j2").render(
        content=content, board=board, comparisons=compared, charts=_charts(content, board),
        fmt=charts.fmt, difference_chart=charts.difference, data=data, script=script, style=style,
        csp_script=csp_hash(script), csp_style=csp_hash(style), failures=failures,
        judge_failures=judge_failures, version=__version__, describe=metrics.describe,
        all_pairs=len(board.systems) <= tables.ALL_PAIRS_UP_TO, min_notes=tables.MIN_NOTES_FOR_VERDICT)


def write(path: Path, html: str) -> None:
    """Write the report atomically."""
    from clinsum.inputs import atomic_output

    with atomic_output(path) as handle:
        handle.write(html)
