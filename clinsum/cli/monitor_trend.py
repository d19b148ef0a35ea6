"""``clinsum monitor --trend``: every scored summary with a ``created_at``, cut into windows (a day, an
ISO week or N summaries), each metric's window mean and EWMA against control limits set by the first
windows (``clinsum.monitoring.trend``), with the physicians' feedback per window.

Exit status: 0 no window after the reference period leaves its limits the bad way; ``EXIT_FAILED``
(1) one does; ``EXIT_ERROR`` (2) usage or data error (no summary with a ``created_at``, too few
windows for a reference period and one window after it, a bad time or setting).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from clinsum.cli.common import EXIT_FAILED, console, shown, stdout, write_stdout

if TYPE_CHECKING:
    from clinsum.monitoring.alerts import MonitorSettings
    from clinsum.monitoring.windows import Observation

_BEGINNING = datetime(1, 1, 1, tzinfo=UTC)
"""A time range that starts here takes every summary with a ``created_at``."""


def trend_report(db: Path, settings: MonitorSettings, *, since: str | None, until: str | None,
                 system: str | None, by: str | None) -> dict[str, Any]:
    """The ``trend()`` dict of the whole store's period (``--since``/``--until``), plus ``feedback``
    (one entry per window), ``first_alerts`` (metric -> first alerting window) and, with ``by``,
    ``segments`` (one trend per value of that field)."""
    from clinsum.cli.common import open_store
    from clinsum.cli.monitor_feedback import feedback_of, window_scores
    from clinsum.monitoring.feedback import with_physician_values
    from clinsum.monitoring.windows import Selector, WindowError, load_window, parse_time, window_ratings

    start, end = parse_time(since), parse_time(until)
    period = f"[{since or '…'}, {until or '…'})"
    selector = Selector(since=start or _BEGINNING, until=end, system=system)
    with open_store(db, must_exist=True) as store:
        window = load_window(store, selector)
        if not window.observations:
            raise WindowError(f"no summary with a created_at in {db} in {period}"
                              f"{f' from system {system}' if system else ''}: the trend charts production "
                              "summaries recorded with created_at (clinsum score; see docs/production.md)")
        ratings = window_ratings(store, window)
        window = with_physician_values(window, ratings)
        report = _trend_of(window.observations, settings, what=f"summaries in {db} in {period}")
        scores = window_scores(store, window)
        report["feedback"] = [
            {"window": label, **feedback_of(store, window, ratings, settings, scores=scores,
                                            keys={(o.run_id, o.note_id, o.system) for o in chunk})}
            for label, chunk in _cut(window.observations, settings.window)]
    report.update({"period": {"since": since, "until": until}, "system": system,
                   "summaries": len(window.observations), "runs": list(window.runs)})
    if by is not None:
        report["segments"], report["skipped_segments"] = _segment_trends(window.observations, settings, by)
    alerts = [*report["alerts"], *(dict(a, segment=s["segment"]) for s in report.get("segments", [])
                                   for a in s["alerts"])]
    report["first_alerts"] = {}
    for alert in alerts:
        report["first_alerts"].setdefault(f"{alert['metric']}{_in(alert.get('segment'))}", alert["window"])
    return report


def _in(segment: str | None) -> str:
    return f" ({segment})" if segment else ""


def _cut(observations: tuple[Observation, ...] | list[Observation],
         window: str) -> list[tuple[str, list[Observation]]]:
    """The monitor's observations in the trend's windows (the same cut, so labels match)."""
    from clinsum.monitoring.trend import cut, from_window
    from clinsum.monitoring.windows import Selector, Window

    timed = [o for o in observations if o.created_at]
    points = from_window(Window(Selector(), (), tuple(timed)))
    of_point = {id(p): o for p, o in zip(points, timed, strict=True)}
    return [(label, [of_point[id(p)] for p in chunk]) for label, chunk in cut(points, _window(window))]


def _window(text: str) -> str | int:
    return int(text) if text.isdigit() else text


def _trend_of(observations: tuple[Observation, ...] | list[Observation], settings: MonitorSettings, *,
              what: str) -> dict[str, Any]:
    from clinsum.monitoring.trend import cut, from_window, trend
    from clinsum.monitoring.windows import Selector, Window, WindowError

    points = from_window(Window(Selector(), (), tuple(observations)))
    windows = cut(points, _window(settings.window))
    needed = settings.reference_windows + 1
    if len(windows) < needed:
        raise WindowError(
            f"{len(windows)} {_unit(settings.window)} of {what}; the trend needs at least {needed}: "
            f"{settings.reference_windows} reference windows to set the control limits and one after them "
            "to monitor (lower --reference-windows or use a shorter --window)")
    charted = {m for p in points for m in p.values}
    missing = [m for m in settings.metrics or [] if m not in charted]
    if missing:
        raise WindowError(f"no values for: {', '.join(missing)} (available: {', '.join(sorted(charted))})")
    report = trend(points, window=_window(settings.window), reference_windows=settings.reference_windows,
                   metrics=settings.metrics, lam=settings.lam, limit=settings.limit)
    # a metric with a direction but no limits (fewer than 2 values in the reference windows) can never alert:
    # named, that is a check that cannot be made (exit 2); in the default set, it is said, never silent
    report["not_monitored"] = [
        {"metric": chart["metric"], "reason": f"{chart['reference_n']} value(s) in the {settings.reference_windows} "
                                              "reference windows: no control limits (they need 2), so it cannot alert"}
        for chart in report["metrics"] if chart["direction"] != "neutral" and chart["reference_sd"] is None]
    for chart in report["metrics"]:  # limits, but no value lately: the EWMA holds still and cannot alert
        after = chart["windows"][settings.reference_windows:]
        silent = list(itertools.takewhile(lambda w: w["n"] == 0, reversed(after)))
        if chart["direction"] != "neutral" and chart["reference_sd"] is not None and silent:
            report["not_monitored"].append({"metric": chart["metric"], "reason": (
                f"no value since {silent[-1]['label']} ({len(silent)} window(s)): its EWMA holds still and "
                "cannot alert (an evaluator dropped from the scoring?)")})
    named = [item for item in report["not_monitored"] if item["metric"] in (settings.metrics or [])]
    if named:  # either way, a metric asked for by name that cannot alert is a check that cannot be made
        raise WindowError("; ".join(f"{item['metric']}: {item['reason']}" for item in named)
                          + " (a metric named with --metrics must be one the trend can alert on: lower "
                          "--reference-windows, wait for a reference period, or score the metric again)")
    return report


def _unit(window: str) -> str:
    return {"day": "daily windows", "week": "weekly windows"}.get(window, f"windows of {window} summaries")


def _segment_trends(observations: tuple[Observation, ...], settings: MonitorSettings,
                    by: str) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """One trend per value of ``by`` (a metadata field, or ``system``); a segment with too few windows is
    listed with the reason, not charted."""
    from clinsum.monitoring.windows import WindowError

    groups: dict[str, list[Observation]] = {}
    for o in observations:
        groups.setdefault(str(o.fields.get(by)), []).append(o)
    if set(groups) == {"None"}:
        raise WindowError(f"--by {by}: no summary or note has a '{by}' field in its metadata")
    segments, skipped = [], []
    for value in sorted(groups):
        try:
            segments.append({"segment": f"{by}={value}", **_trend_of(groups[value], settings,
                                                                      what=f"{by}={value}")})
        except WindowError as exc:
            skipped.append({"segment": f"{by}={value}", "reason": str(exc)})
    return segments, skipped


def finish_trend(report: dict[str, Any], *, json_output: bool) -> None:
    """Print the report; exit ``EXIT_FAILED`` when a window after the reference period alerted."""
    if json_output:
        write_stdout(json.dumps(report, indent=2))
    else:
        _print_trend(report)
    if report["first_alerts"]:
        listed = "; ".join(f"{metric} from {window}" for metric, window in report["first_alerts"].items())
        console.print(f"[red]trend alert: {shown(listed)}[/red]", highlight=False)
        raise typer.Exit(EXIT_FAILED)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def _print_trend(report: dict[str, Any]) -> None:
    from rich.console import Console

    from clinsum.cli.monitor_feedback import feedback_table

    out = stdout if stdout.is_terminal else Console(width=200)  # piped: whole rows, no ellipses
    console.print(f"trend: {report['summaries']} summaries from {len(report['runs'])} run(s), windows of one "
                  f"{shown(report['window'])}, first {report['reference_windows']} set the limits; "
                  f"EWMA lambda {report['lambda']}, limits at {report['L']} SD", highlight=False)
    for segment in [None, *report.get("segments", [])]:
        charts = report if segment is None else segment
        for chart in charts["metrics"]:
            _chart_table(chart, _in(segment and segment["segment"]), out)
    alerts = [*report["alerts"], *(dict(a, segment=s["segment"]) for s in report.get("segments", [])
                                   for a in s["alerts"])]
    if not alerts:
        out.print("no trend alerts")
    for alert in alerts:
        side = "below the lower" if alert["direction"] == "higher" else "above the upper"
        out.print(f"ALERT {shown(alert['metric'])}{shown(_in(alert.get('segment')))} in window "
                  f"{shown(alert['window'])}: EWMA {_number(alert['ewma'])} {side} limit "
                  f"{_number(alert['limit'])} (window mean {_number(alert['mean'])})", highlight=False)
    for segment in [None, *report.get("segments", [])]:
        for item in (report if segment is None else segment).get("not_monitored", []):
            console.print(f"[yellow]not monitored:[/yellow] {shown(item['metric'])}"
                          f"{shown(_in(segment and segment['segment']))}: {shown(item['reason'])}", highlight=False)
    for item in report.get("skipped_segments", []):
        console.print(f"[yellow]not charted:[/yellow] {shown(item['segment'])}: {shown(item['reason'])}",
                      highlight=False)
    feedback_table(report["feedback"], out)


def _chart_table(chart: dict[str, Any], segment: str, out: Any) -> None:
    from rich.table import Table

    title = (f"{chart['metric']}{segment} ({chart['direction']} is better; reference mean "
             f"{_number(chart['reference_mean'])}, SD {_number(chart['reference_sd'])}, n {chart['reference_n']})"
             if chart["direction"] != "neutral" else f"{chart['metric']}{segment} (no direction: never alerts)")
    table = Table(title=shown(title))
    for column in ("window", "n", "mean", "EWMA", "lower", "upper", "", ""):
        table.add_column(column)
    for w in chart["windows"]:
        table.add_row(shown(w["label"]), str(w["n"]), _number(w["mean"]), _number(w["ewma"]), _number(w["lower"]),
                      _number(w["upper"]), "reference" if w["reference"] else "", "ALERT" if w["alert"] else "")
    out.print(table)
