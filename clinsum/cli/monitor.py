"""``clinsum monitor``: is the current window of production summaries worse than the baseline?
With ``--trend`` (``clinsum.cli.monitor_trend``): has any window drifted out of its control limits?
Both report the physicians' feedback per window (``clinsum.cli.monitor_feedback``).

Exit status: 0 no degradation (improvements and mix shifts are reported, not
failed), ``EXIT_FAILED`` (1) a degradation alert or, with ``--anchors``, judge
drift (``clinsum.cli.monitor_anchors``), ``EXIT_ERROR`` (2) a usage or data error
(an unknown run, a window too small to test, too few windows for a trend, a judge
that failed on the anchors).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    DbOption,
    ListFormat,
    console,
    open_store,
    reported_errors,
    shown,
    stdout,
    write_stdout,
)
from clinsum.cli.monitor_anchors import AnchorJudgeOption, AnchorReferenceOption, AnchorsOption

if TYPE_CHECKING:
    from clinsum.monitoring.alerts import MonitorSettings

_Since = Annotated[str | None, typer.Option(metavar="ISO-8601", help="Only summaries made at or after this time.")]
_Until = Annotated[str | None, typer.Option(metavar="ISO-8601", help="Only summaries made before this time.")]


@app.command(epilog=EXIT_CODES_HELP)
def monitor(
    baseline: Annotated[str | None, typer.Option(
        metavar="SELECTOR", help="Baseline window: run id or name, RUN1,RUN2, or tags KEY=VALUE[,KEY=VALUE].")] = None,
    current: Annotated[str | None, typer.Option(metavar="SELECTOR", help="Current window, as --baseline.")] = None,
    baseline_since: _Since = None,
    baseline_until: _Until = None,
    current_since: _Since = None,
    current_until: _Until = None,
    system: Annotated[str | None, typer.Option(help="Only summaries of this system.")] = None,
    metrics: Annotated[list[str] | None, typer.Option(
        "--metrics", "-m", help="Metrics to test (repeat or comma-separate); default all with a direction.")] = None,
    by: Annotated[str | None, typer.Option(
        help="Also test per segment of this metadata field (site, specialty...).")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="TOML file with a 'monitor' table (settings, minimum effects).")] = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level after correction (default 0.05).")] = None,
    correction: Annotated[str | None, typer.Option(help="holm (default) or bh.")] = None,
    min_summaries: Annotated[int | None, typer.Option(help="Smallest window that can be tested (default 20).")] = None,
    trend: Annotated[bool, typer.Option(
        "--trend", help="Chart every scored summary with a created_at over time, window by window, against "
                        "control limits set by the first windows; exit 1 when a window leaves them the bad way."
    )] = False,
    window: Annotated[str | None, typer.Option(
        metavar="day|week|N", help="--trend: a window is a day, an ISO week, or N summaries (default day).")] = None,
    reference_windows: Annotated[int | None, typer.Option(
        help="--trend: the first windows set the control limits and are not judged (default 7).")] = None,
    lam: Annotated[float | None, typer.Option(
        "--lambda", help="--trend: EWMA weight of the newest window, in (0, 1] (default 0.2).")] = None,
    limit: Annotated[float | None, typer.Option(
        help="--trend: control limits at this many standard deviations (default 3).")] = None,
    since: Annotated[str | None, typer.Option(
        metavar="ISO-8601", help="--trend: only summaries made at or after this time.")] = None,
    until: Annotated[str | None, typer.Option(
        metavar="ISO-8601", help="--trend: only summaries made before this time.")] = None,
    summary_flag: Annotated[list[str] | None, typer.Option(
        metavar="RULE", help="clinsum flags a summary when any rule holds (repeatable), e.g. critical_flips>=1; "
                             "compared with the physicians' verdicts.")] = None,
    physician_flag: Annotated[list[str] | None, typer.Option(
        metavar="RULE", help="A physician found a summary wrong when any rule holds for one reviewer "
                             "(repeatable), e.g. accepted<1.")] = None,
    min_reviewed: Annotated[int | None, typer.Option(
        help="Test physician acceptance and ratings only with this many reviewed summaries in each window "
             "(default 20).")] = None,
    anchors: AnchorsOption = None,
    judge: AnchorJudgeOption = None,
    anchor_reference: AnchorReferenceOption = None,
    db: DbOption = DEFAULT_DB,
    format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.table,
) -> None:
    """Compare a current window of scored summaries with a baseline window (or, with --trend, chart every
    window against control limits); exit 1 on degradation."""
    with reported_errors():
        overrides: dict[str, Any] = {
            "alpha": alpha, "correction": correction, "min_summaries": min_summaries,
            "metrics": [m.strip() for item in metrics for m in item.split(",") if m.strip()] if metrics else None,
            "window": window, "reference_windows": reference_windows, "lambda": lam, "limit": limit,
            "summary_flag": summary_flag, "physician_flag": physician_flag, "min_reviewed": min_reviewed,
            "anchors": str(anchors) if anchors is not None else None, "judge": judge}
        settings = _monitor_settings(config_file, overrides)
        if trend:
            windows = {"--baseline": baseline, "--current": current, "--baseline-since": baseline_since,
                       "--baseline-until": baseline_until, "--current-since": current_since,
                       "--current-until": current_until}
            _refuse(windows, "--trend charts every summary over time; it takes no baseline or current window "
                             "(narrow it with --since, --until, --system)")
            _refuse({"--alpha": alpha, "--correction": correction, "--min-summaries": min_summaries,
                     "--min-reviewed": min_reviewed, "--anchors": anchors, "--judge": judge,
                     "--anchor-reference": anchor_reference},
                    "these set the comparison's tests; --trend alerts on control limits (--limit, --lambda)")
            if settings.anchors is not None:  # a config shared with the daily comparison: say what is not done
                console.print(f"[yellow]warning:[/yellow] anchors in {shown(config_file)} [monitor] are judged "
                              "by the comparison (--baseline/--current), not by --trend: no judge-drift check "
                              "in this run", highlight=False)
            from clinsum.cli.monitor_trend import trend_report

            report = trend_report(db, settings, since=since, until=until, system=system, by=by)
        else:
            _refuse({"--since": since, "--until": until, "--window": window,
                     "--reference-windows": reference_windows, "--lambda": lam, "--limit": limit},
                    "these options belong to --trend; a comparison takes --baseline-since/--baseline-until "
                    "and --current-since/--current-until")
            report = _comparison_report(db, settings, baseline, current, system=system, by=by,
                                        base_range=(baseline_since, baseline_until),
                                        current_range=(current_since, current_until),
                                        anchors_config=config_file, anchor_reference=anchor_reference)
    if trend:
        from clinsum.cli.monitor_trend import finish_trend

        finish_trend(report, json_output=format is ListFormat.json)
        return
    if format is ListFormat.json:
        write_stdout(json.dumps(report, indent=2))
    else:
        _print_tables(report)
        from clinsum.cli.monitor_feedback import print_feedback

        for label in ("baseline", "current"):
            print_feedback(f"{label} window", report["feedback"][label])
        from clinsum.cli.monitor_anchors import print_judge_drift

        print_judge_drift(report.get("judge_drift"))
    if report["alerts"]:
        from clinsum.cli.monitor_anchors import DRIFT_METRIC

        degradations = [a for a in report["alerts"] if a["metric"] != DRIFT_METRIC]
        if degradations:
            console.print(f"[red]{len(degradations)} degradation alert(s)[/red]")
        raise typer.Exit(EXIT_FAILED)


def _monitor_settings(config_file: Path | None, overrides: dict[str, Any]) -> MonitorSettings:
    """The config file's ``[monitor]`` table, then the command line's options over it."""
    from clinsum.monitoring.alerts import load_settings

    settings = load_settings(_settings_table(config_file), f"{config_file or 'flags'} [monitor]")
    given = {k: v for k, v in overrides.items() if v is not None}
    return load_settings({**settings.model_dump(by_alias=True), **given}, "command line")


def _refuse(given: dict[str, Any], why: str) -> None:
    from clinsum.errors import ConfigError

    named = [flag for flag, value in given.items() if value is not None]
    if named:
        raise ConfigError(f"{', '.join(named)}: {why}")


def _comparison_report(db: Path, settings: MonitorSettings, baseline: str | None, current: str | None, *,
                       system: str | None, by: str | None, base_range: tuple[str | None, str | None],
                       current_range: tuple[str | None, str | None], anchors_config: Path | None = None,
                       anchor_reference: int | None = None) -> dict[str, Any]:
    """The two windows compared, physicians' acceptance and ratings among the metrics, and each window's
    physician feedback (``"feedback": {"baseline": ..., "current": ...}``); with anchors, the judge's drift
    (``"judge_drift"``, ``clinsum.cli.monitor_anchors``; ``anchors_config`` is the config file for the judge)."""
    from clinsum.cli.monitor_anchors import add_to_report, check_judge_drift
    from clinsum.cli.monitor_feedback import feedback_of
    from clinsum.monitoring.alerts import compare_windows
    from clinsum.monitoring.feedback import with_physician_values
    from clinsum.monitoring.windows import load_window, parse_selector, window_ratings

    base_selector = parse_selector(baseline, since=base_range[0], until=base_range[1], system=system)
    current_selector = parse_selector(current, since=current_range[0], until=current_range[1], system=system)
    with open_store(db, must_exist=True) as store:
        windows = {label: load_window(store, selector)
                   for label, selector in (("baseline", base_selector), ("current", current_selector))}
        ratings = {label: window_ratings(store, window) for label, window in windows.items()}
        comparison = compare_windows(with_physician_values(windows["baseline"], ratings["baseline"]),
                                     with_physician_values(windows["current"], ratings["current"]),
                                     settings, by=by)
        feedback = {label: feedback_of(store, window, ratings[label], settings) for label, window in windows.items()}
        judged = check_judge_drift(comparison, store, settings, anchors_config, reference_id=anchor_reference)
        report = comparison.as_dict()
        add_to_report(report, judged)
    return {**report, "feedback": feedback}


def _settings_table(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from clinsum.config import load_config

    return dict(load_config(path).monitor)


def _number(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4f}"
    return str(value)


def _print_tables(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = stdout if stdout.is_terminal else Console(width=200)  # piped: whole rows, no ellipses
    for label in ("baseline", "current"):
        window = report[label]
        console.print(f"{label}: {shown(window['selector'])}: {window['summaries']} summaries, "
                      f"{window['notes']} notes, {len(window['runs'])} run(s), {window['failed']} failed",
                      highlight=False)
    columns = ("metric", "segment", "kind", "test", "baseline_mean", "current_mean", "difference", "ci",
               "p_value", "p_adjusted", "verdict")
    for title, rows in (("alerts", report["alerts"]), ("checks", report["checks"])):
        if title == "alerts" and not rows:
            out.print("no degradation alerts")
            continue
        table = Table(title=title)
        for column in columns if title == "checks" else (*columns[:-1], "explanation"):
            table.add_column(column)
        for row in rows:
            cells = []
            for column in columns if title == "checks" else (*columns[:-1], "explanation"):
                value = row.get(column)
                if column == "ci" and value is not None:
                    value = f"[{_number(value[0])}, {_number(value[1])}]"
                cells.append(shown(_number(value) if not isinstance(value, str) else value))
            table.add_row(*cells)
        out.print(table)
    for shift in report["mix_shifts"]:
        out.print(f"mix shift: {shown(shift['metric'])}: {shown(shift['explanation'])}", highlight=False)
    shifted = [m for m in report["case_mix"] if m["shifted"]]
    for m in shifted:
        out.print(f"case mix: {shown(m['field'])} differs (p={m['p_value']:.3g}): baseline "
                     f"{shown(json.dumps(m['baseline']))}, current {shown(json.dumps(m['current']))}",
                     highlight=False)
    for item in report["skipped"]:
        console.print(f"[yellow]not tested:[/yellow] {shown(item['metric'])} in {shown(item['segment'])}: "
                      f"{shown(item['reason'])}", highlight=False)
