"""The Markdown summary of a report (leaderboard and paired verdicts), for a pull request or a ticket.

Rendered by the same Jinja2 environment as the HTML, so every value is HTML-escaped
(GitHub renders entities and would otherwise render raw HTML from a system name);
the ``cell`` filter also keeps a value inside its table cell (pipes, newlines).
"""

from __future__ import annotations

from markupsafe import Markup, escape

from clinsum.reporting import charts, tables
from clinsum.reporting.content import Content
from clinsum.reporting.templates import environment


def cell(value: object) -> Markup:
    text = str(escape(str(value)))
    return Markup(" ".join(text.replace("|", "\\|").split()))


def render(content: Content, *, sort_by: str | None = None) -> str:
    board = tables.leaderboard(content.scores, content.summaries, sort_by)
    compared = tables.comparisons(content.scores, board)
    from clinsum.store_runs import how_to_finish

    env = environment().overlay()
    env.filters["cell"] = cell
    return env.get_template("report.md.j2").render(how_to_finish=how_to_finish,
        runs=content.runs, board=board, comparisons=compared, certain=[c for c in compared if c.winner],
        failures=content.failures, notes=len(content.notes), summaries=len(content.summaries),
        failed=len(content.failures), failed_evaluations=content.failed_evaluations,
        incomplete=content.incomplete, versions=sorted({r.clinsum_version for r in content.runs}), fmt=charts.fmt)
