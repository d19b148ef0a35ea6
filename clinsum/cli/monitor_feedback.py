"""Physician feedback in ``clinsum monitor``'s output: per window, acceptance, ratings, error categories,
and how well clinsum's flags predict the physicians' verdicts (``clinsum.monitoring.feedback``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from clinsum.cli.common import shown, stdout

if TYPE_CHECKING:
    from rich.console import Console

    from clinsum.monitoring.alerts import MonitorSettings
    from clinsum.monitoring.windows import Window
    from clinsum.records import Rating, Score
    from clinsum.store import Store

FLAG_STATISTICS = ("precision", "recall", "f1", "accuracy")


def window_scores(store: Store, window: Window) -> list[tuple[str, Score]]:
    """(run id, score) of every run the window draws on (the window's keys pick its summaries)."""
    return [pair for run_id in window.runs for pair in store.scores_by_run(run_id, details=False)]


def feedback_of(store: Store, window: Window, ratings: Sequence[Rating], settings: MonitorSettings, *,
                scores: Sequence[tuple[str, Score]] | None = None,
                keys: Iterable[tuple[str, str, str]] | None = None) -> dict[str, Any]:
    """``window_feedback`` of the window's summaries (or of ``keys`` among them), flags from ``settings``."""
    from clinsum.monitoring.feedback import window_feedback

    chosen = set(keys) if keys is not None else {(o.run_id, o.note_id, o.system) for o in window.observations}
    report = window_feedback(ratings, window_scores(store, window) if scores is None else scores,
                             summaries=chosen, summary_flag=settings.summary_flag,
                             physician_flag=settings.physician_flag, seed=settings.seed)
    return {"n_summaries": len(chosen), **report}


def _value(estimate: dict[str, Any], digits: int = 2) -> str:
    """``0.83 [0.71, 0.92]``, or why there is no value."""
    value = estimate.get("value", estimate.get("mean"))
    if value is None:
        return f"— ({estimate['reason']})" if estimate.get("reason") else "—"
    low, high = estimate.get("ci", [None, None])
    return f"{value:.{digits}f}" + (f" [{low:.{digits}f}, {high:.{digits}f}]" if low is not None else "")


def print_feedback(title: str, feedback: dict[str, Any], out: Console | None = None) -> None:
    """One window's physician feedback as a few lines of text."""
    if out is None:
        from rich.console import Console

        out = stdout if stdout.is_terminal else Console(width=200)  # piped: whole lines
    reviewed = feedback["n_reviewed"]
    out.print(f"physician feedback, {title}: {reviewed} of {feedback['n_summaries']} summaries reviewed",
              highlight=False)
    if not reviewed:
        return
    acceptance = feedback["acceptance"]
    if acceptance["n"]:
        out.print(f"  acceptance: {_value(acceptance)} (n={acceptance['n']})", highlight=False)
    for dimension, rating in feedback["ratings"].items():
        out.print(f"  mean rating {shown(dimension)}: {_value(rating)} (n={rating['n']})", highlight=False)
    categories = feedback["error_categories"]
    if categories:
        out.print("  error categories: " + ", ".join(f"{shown(c)} {n}" for c, n in categories.items()),
                  highlight=False)
    flags = feedback["flags"]
    left = flags["left_out"]
    out.print(f"  clinsum's flag ({shown(flags['summary_flag'])}) against the physicians' "
              f"({shown(flags['physician_flag'])}): n={flags['n']}, TP {flags['tp']}, FP {flags['fp']}, "
              f"FN {flags['fn']}, TN {flags['tn']}", highlight=False)
    out.print("  " + ", ".join(f"{name} {_value(flags['statistics'][name])}" for name in FLAG_STATISTICS),
              highlight=False)
    if left["no_flag_metric"] or left["no_verdict"]:
        out.print(f"  left out: {left['no_flag_metric']} reviewed summaries without any of the flag's metrics, "
                  f"{left['no_verdict']} without a verdict the physicians' flag can tell", highlight=False)


def feedback_table(rows: Sequence[dict[str, Any]], out: Console) -> None:
    """Trend mode: one row of physician feedback per window that has any."""
    from rich.table import Table

    reviewed = [row for row in rows if row["n_reviewed"]]
    if not reviewed:
        out.print("no physician feedback on these summaries (import it with `clinsum feedback import`)")
        return
    dimensions = sorted({d for row in reviewed for d in row["ratings"]})
    table = Table(title=f"physician feedback per window; flags: clinsum {reviewed[0]['flags']['summary_flag']} "
                        f"against physicians {reviewed[0]['flags']['physician_flag']}")
    for column in ("window", "reviewed", "acceptance", *(f"rating {d}" for d in dimensions), "errors",
                   "TP/FP/FN/TN", *FLAG_STATISTICS, "left out"):
        table.add_column(shown(column))
    for row in reviewed:
        flags = row["flags"]
        left = flags["left_out"]
        table.add_row(shown(row["window"]), str(row["n_reviewed"]), _value(row["acceptance"]),
                      *(_value(row["ratings"][d]) if d in row["ratings"] else "—" for d in dimensions),
                      shown(", ".join(f"{c} {n}" for c, n in row["error_categories"].items()) or "—"),
                      f"{flags['tp']}/{flags['fp']}/{flags['fn']}/{flags['tn']}",
                      *(_value(flags["statistics"][s]) for s in FLAG_STATISTICS),
                      str(left["no_flag_metric"] + left["no_verdict"]))
    out.print(table)
