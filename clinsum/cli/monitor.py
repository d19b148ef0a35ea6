"""``clinsum monitor``: is the current window of production summaries worse than the baseline?

Exit status: 0 no degradation (improvements and mix shifts are reported, not
failed), ``EXIT_FAILED`` (1) a degradation alert, ``EXIT_ERROR`` (2) a usage or data
error (an unknown run, a window too small to test).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
    db: DbOption = DEFAULT_DB,
    format: Annotated[ListFormat, typer.Option("--format", "-f")] = ListFormat.table,
) -> None:
    """Compare a current window of scored summaries with a baseline window; exit 1 on degradation."""
    from clinsum.monitoring.alerts import compare_windows, load_settings
    from clinsum.monitoring.windows import load_window, parse_selector

    with reported_errors():
        settings = load_settings(_settings_table(config_file), f"{config_file or 'flags'} [monitor]")
        overrides: dict[str, Any] = {"alpha": alpha, "correction": correction, "min_summaries": min_summaries,
                                     "metrics": [m.strip() for item in metrics for m in item.split(",") if m.strip()]
                                     if metrics else None}
        settings = load_settings({**settings.model_dump(), **{k: v for k, v in overrides.items() if v is not None}},
                                 "command line")
        base_selector = parse_selector(baseline, since=baseline_since, until=baseline_until, system=system)
        current_selector = parse_selector(current, since=current_since, until=current_until, system=system)
        with open_store(db, must_exist=True) as store:
            comparison = compare_windows(load_window(store, base_selector), load_window(store, current_selector),
                                         settings, by=by)
    report = comparison.as_dict()
    if format is ListFormat.json:
        write_stdout(json.dumps(report, indent=2))
    else:
        _print_tables(report)
    if comparison.alerts:
        console.print(f"[red]{len(comparison.alerts)} degradation alert(s)[/red]")
        raise typer.Exit(EXIT_FAILED)


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
