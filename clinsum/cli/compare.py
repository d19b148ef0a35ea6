"""``clinsum compare``: the systems of one run against a baseline system, paired on the notes."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    DbOption,
    ListFormat,
    open_store,
    reported_errors,
    shown,
    stdout,
    write_stdout,
)

MISSING = "(none)"
"""The segment of a note without the ``--by`` field."""


@app.command("compare")
def compare_systems(
    run: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id from `clinsum runs`.")],
    baseline: Annotated[str | None, typer.Option(
        help="Compare every other system with this one (default: every pair of systems).")] = None,
    by: Annotated[str | None, typer.Option(
        metavar="FIELD", help="Also compare within each value of this note metadata field "
                              "(specialty, note_type...).")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Only this metric; repeat for several (default: all).")] = None,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="Family-wise error rate (Holm).")] = 0.05,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples per interval.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (same seed, same intervals).")] = 0,
    output_format: Annotated[ListFormat, typer.Option("--format", help="table or json.")] = ListFormat.table,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Paired differences between systems on the notes both summarized, with a verdict per metric.

    Difference = system - baseline, its bootstrap 95% CI, the Wilcoxon signed-rank p-value,
    Holm-adjusted across every comparison shown; better / worse / no detectable difference
    in each metric's declared direction.
    """
    from clinsum.cli.options import check_choices
    from clinsum.errors import InputError
    from clinsum.evaluators.comparison import compare

    with reported_errors():
        with open_store(db, must_exist=True) as store:
            run = store.resolve_run_id(run)  # a unique prefix is enough; an unknown id is an error
            scores, notes = store.scores(run, details=False), store.notes(run)
        check_choices("--metric", metric, (s.metric for s in scores), noun="a metric of this run",
                      where=f"metrics of run {run}")  # a typo must not make a silently smaller report
        systems = sorted({s.system for s in scores})
        if len(systems) < 2:
            raise InputError(f"run {run} has scores of {len(systems)} system(s); compare needs two or more")
        segments = None
        if by is not None:
            segments = {n.id: _segment(n.meta.get(by)) for n in notes}
            if all(value == MISSING for value in segments.values()):
                raise InputError(f"no note of run {run} has the metadata field {by!r}", field="--by")
        try:
            found = compare(scores, baseline=baseline, segments=segments, metrics=metric or None,
                            alpha=alpha, n_resamples=resamples, seed=seed)
        except ValueError as exc:
            raise InputError(str(exc), field="--baseline") from None
        if not found:
            raise InputError(f"no metric of run {run} has values for two systems on the same notes")
        compared = {c.metric for c in found}
        absent = [m for m in dict.fromkeys(metric or []) if m not in compared]
        if absent:  # a metric asked for by name must not vanish from the table
            raise InputError(f"no note scored for two systems on {', '.join(absent)} in run {run}: nothing to "
                             "compare (a judge that failed for a system, a metric only some notes have)",
                             field="--metric")
    report = {"run": run, "baseline": baseline, "by": by, "alpha": alpha,
              "correction": "holm", "test": "wilcoxon signed-rank (paired, two-sided)",
              "comparisons": [c.as_dict() for c in found]}
    if output_format == ListFormat.json:
        write_stdout(json.dumps(report, indent=2))
    else:
        _print(report)


def _segment(value: Any) -> str:
    return MISSING if value is None or value == "" else str(value)


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _print(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    verdict_style = {"better": "green", "worse": "red"}
    table = Table(title=f"run {shown(report['run'])}: system - baseline on shared notes "
                        f"(95% bootstrap CI, Wilcoxon, Holm at alpha {report['alpha']:g})")
    columns = ["system", "baseline", "metric", *(["segment"] if report["by"] else []), "n", "system",
               "baseline", "difference [95% CI]", "p", "p (Holm)", "verdict"]
    for index, name in enumerate(columns):
        table.add_column(name, justify="left" if index < (4 if report["by"] else 3) or name == "verdict"
                         else "right")
    for c in report["comparisons"]:
        low, high = c["ci"]
        interval = f"{_number(c['difference'])} [{_number(low)}, {_number(high)}]"
        style = verdict_style.get(c["verdict"])
        verdict = f"[{style}]{c['verdict']}[/{style}]" if style else c["verdict"]
        table.add_row(shown(c["system"]), shown(c["baseline"]), shown(c["metric"]),
                      *([shown(c["segment"])] if report["by"] else []),
                      str(c["n"]), _number(c["system_mean"]), _number(c["baseline_mean"]), interval,
                      _number(c["p_value"], 4), _number(c["p_adjusted"], 4), verdict)
    (stdout if stdout.is_terminal else Console(width=220)).print(table)
