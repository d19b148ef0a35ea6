"""``clinsum feedback import`` (human ratings into the store) and ``clinsum agreement``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    DbOption,
    ListFormat,
    console,
    open_store,
    print_skipped,
    reported_errors,
    shown,
    stdout,
    write_stdout,
)

feedback_app = typer.Typer(help="Human ratings of summaries (physician feedback).", no_args_is_help=True)
app.add_typer(feedback_app, name="feedback")


@feedback_app.command("import")
def import_ratings(
    file: Annotated[Path, typer.Argument(help="Feedback: JSONL or CSV of ratings (run_id, note_id, system, "
                                              "rater, dimension, value) or reviews (reviewer, verdict, "
                                              "errors, rubric ratings); see docs/agreement.md.")],
    db: DbOption = DEFAULT_DB,
    run: Annotated[str | None, typer.Option(
        "--run", metavar="RUN_ID", help="The run holding the rated summaries, for rows without run_id "
                                        "(needed when several runs hold the same note and system).")] = None,
    skip_invalid: Annotated[bool, typer.Option(
        "--skip-invalid", help="Skip bad rows (and list them) instead of stopping.")] = False,
    source: Annotated[str | None, typer.Option(
        help="Where the ratings come from, kept with each (default: the file name).")] = None,
    dimension_columns: Annotated[list[str] | None, typer.Option(
        "--dimension-column", "-d",
        help="Wide format: this column holds the ratings of one dimension; repeat per column.")] = None,
    rubric: Annotated[Path | None, typer.Option(
        help="Rubric whose attributes reviews rate (default: the packaged PDSQI-9 rubric).")] = None,
) -> None:
    """Load physician feedback into the store, each rating tied to the stored summary it rates.

    A rating with the same run, note, system, rater and dimension as a stored one replaces it.
    """
    from clinsum.feedback import tie_to_summaries

    with reported_errors():
        attributes = None
        if rubric is not None:
            from clinsum.evaluators.judge.rubric import Rubric

            attributes = Rubric.load(rubric).names
        with open_store(db) as store:
            if run is not None:
                run = store.resolve_run_id(run)  # a unique prefix is enough; an unknown id is an error
            loaded = tie_to_summaries(file, store.runs_holding(), run=run, skip_invalid=skip_invalid,
                                      dimension_columns=dimension_columns, attributes=attributes)
            print_skipped(loaded.skipped, "ratings")
            if not loaded.records:  # --skip-invalid skips bad rows among good ones; with none, nothing was done
                from clinsum.errors import InputError

                raise InputError(f"no rating to import: all {len(loaded.skipped)} row(s) were skipped as invalid "
                                 "(listed above; rows of summaries no run holds: is --db the store that "
                                 "scored them?)",
                                 path=str(file))
            imported = store.add_ratings(loaded.records, source or file.name)
    summaries = len({(r.run_id, r.note_id, r.system) for r in loaded.records})
    skipped = len(loaded.skipped)
    console.print(f"imported {imported} rating{'s' * (imported != 1)} of {summaries} "
                  f"summar{'y' if summaries == 1 else 'ies'} into {shown(db)}"
                  + (f"; skipped {skipped} bad row{'s' * (skipped != 1)}" if skipped else ""),
                  highlight=False)


@app.command()
def agreement(
    run: Annotated[str | None, typer.Option(
        "--run", metavar="RUN_ID", help="Only the summaries of this run (default: every rated "
                                        "summary, each joined to the scores of its own run).")] = None,
    db: DbOption = DEFAULT_DB,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Only this metric; repeat for several (default: all).")] = None,
    dimension: Annotated[list[str] | None, typer.Option(
        "--dimension", help="Only this rated dimension; repeat for several (default: all).")] = None,
    flag: Annotated[list[str] | None, typer.Option(
        "--flag", metavar="METRIC>=X", help="An automatic flag to check against the human flag, "
                                            "e.g. 'unsupported_concepts>=1' (quoted: > is a shell "
                                            "redirection); repeat for several.")] = None,
    human_flag: Annotated[str | None, typer.Option(
        "--human-flag", metavar="DIMENSION>=X", help="The human judgement the flags are checked "
                                                     "against, e.g. 'unsafe>=1'.")] = None,
    same_scale: Annotated[list[str] | None, typer.Option(
        "--same-scale", metavar="METRIC=DIMENSION",
        help="Also compare values (ICC, mean difference, limits) for this pair, e.g. "
             "concept_recall=FactualRecall; 1-5 and 0/1 pairs are compared without it.")] = None,
    resamples: Annotated[int, typer.Option(min=100, help="Bootstrap resamples per interval.")] = 2000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed (same seed, same intervals).")] = 0,
    output_format: Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")] = ListFormat.table,
) -> None:
    """Agreement of scores with human ratings of the same summaries, and between the raters.

    Agreement between raters is the ceiling any automatic score can reach.
    """
    from clinsum.cli.options import check_choices
    from clinsum.config import parse_option
    from clinsum.errors import InputError
    from clinsum.feedback import FlagRule, agreement_report

    with reported_errors():
        try:
            flags = [FlagRule.parse(text) for text in flag or []]
            truth = FlagRule.parse(human_flag) if human_flag else None
        except ValueError as exc:
            raise InputError(str(exc), field="--flag/--human-flag") from None
        pairs = [parse_option(text, flag="--same-scale", scoped=False, typed=False, form="METRIC=DIMENSION")[1:]
                 for text in same_scale or []]
        with open_store(db, must_exist=True) as store:
            if run is not None:
                run = store.resolve_run_id(run)  # a unique prefix is enough; an unknown id is an error
            ratings, scores = store.ratings(run), store.scores_by_run(run, details=False)
        if run is not None and not ratings:
            raise InputError(f"no ratings of the summaries of run {run}, and none imported without a run")
        check_choices("--metric", metric, (s.metric for _, s in scores), noun="a scored metric",
                      where="metrics of these scores")
        check_choices("--dimension", dimension, (r.dimension for r in ratings), noun="a rated dimension",
                      where="rated dimensions")
        check_choices("--same-scale", [m for m, _ in pairs], (s.metric for _, s in scores), noun="a scored metric",
                      where="metrics of these scores")  # a typo'd pair would be compared by rank alone, silently
        check_choices("--same-scale", [d for _, d in pairs], (r.dimension for r in ratings),
                      noun="a rated dimension", where="rated dimensions")
        report = agreement_report(ratings, scores, metrics=metric or None, dimensions=dimension or None,
                                  flags=flags, human_flag=truth, n_resamples=resamples, seed=seed,
                                  same_scale=[(m, d) for m, d in pairs])
        _check_named_in(report["metric_vs_human"], metric, dimension, pairs)
    report = {"run": run, **report}
    if output_format == ListFormat.json:
        write_stdout(json.dumps(report, indent=2))
    else:
        _print_tables(report)


def _check_named_in(rows: list[dict[str, Any]], metrics: list[str] | None, dimensions: list[str] | None,
                    pairs: list[tuple[str, str]]) -> None:
    """A metric, dimension or --same-scale pair asked for by name that no rated summary joins is an error,
    never a row missing from the table beside the others."""
    from clinsum.errors import InputError

    shown_pairs = {(row["metric"], row["dimension"]) for row in rows}
    missing = [f"--metric {m}" for m in dict.fromkeys(metrics or []) if all(m != p[0] for p in shown_pairs)]
    missing += [f"--dimension {d}" for d in dict.fromkeys(dimensions or []) if all(d != p[1] for p in shown_pairs)]
    missing += [f"--same-scale {m}={d}" for m, d in dict.fromkeys(pairs) if (m, d) not in shown_pairs]
    if missing:
        raise InputError(f"no rated summary has both a rating and a score for {', '.join(missing)}: "
                         "nothing to compare there")


_PAIRED = (("spearman", "Spearman"), ("kendall_tau_b", "Kendall"), ("kappa_quadratic", "kappa (q)"),
           ("icc_2_1", "ICC(2,1)"), ("icc_3_1", "ICC(3,1)"), ("mean_difference", "mean diff."))
_FLAGS = (("accuracy", "accuracy"), ("precision", "precision"), ("recall", "recall"), ("f1", "F1"))


def _cell(estimate: dict[str, Any]) -> str:
    value, (low, high) = estimate["value"], estimate["ci"]
    if value is None:
        return "—"
    return f"{value:.2f}\n[{low:.2f}, {high:.2f}]" if low is not None else f"{value:.2f}"


def _loa(stats: dict[str, Any]) -> str:
    low, high = stats["loa_lower"]["value"], stats["loa_upper"]["value"]
    return "—" if low is None or high is None else f"{low:.2f}\nto {high:.2f}"


def _show(table: Any) -> None:
    """Print a table; into a pipe or file at full width rather than rich's default 80 columns."""
    from rich.console import Console

    (stdout if stdout.is_terminal else Console(width=200)).print(table)


def _print_tables(report: dict[str, Any]) -> None:
    from rich.table import Table

    source = f"run {report['run']}" if report["run"] else "every rated run"
    table = Table(title=f"Agreement with human ratings ({shown(source)}; 95% bootstrap CIs)")
    for header in ("dimension", "metric", "n", *(name for _, name in _PAIRED), "95% limits"):
        table.add_column(header, justify="left" if header in ("dimension", "metric") else "right")
    empty = [row for row in report["metric_vs_human"]
             if all(e["value"] is None for e in row["statistics"].values())]
    for row in report["metric_vs_human"]:
        if row in empty:
            continue
        stats = row["statistics"]
        table.add_row(shown(row["dimension"]), shown(row["metric"]), str(row["n"]),
                      *(_cell(stats[key]) for key, _ in _PAIRED), _loa(stats))
    _show(table)
    if report["inter_rater"]:
        raters = Table(title="Agreement between raters (the ceiling for any automatic score)")
        for header in ("dimension", "raters", "n", *(name for _, name in _PAIRED)):
            raters.add_column(header, justify="left" if header in ("dimension", "raters") else "right")
        for row in report["inter_rater"]:
            stats = row["statistics"]
            raters.add_row(shown(row["dimension"]), shown(" / ".join(row["raters"])), str(row["n"]),
                           *(_cell(stats[key]) if key in stats else "" for key, _ in _PAIRED))
        _show(raters)
    if report["flags"]:
        flags = Table(title=f"Automatic flags against the human flag {shown(report['flags'][0]['human_flag'])}")
        for header in ("flag", "n", "TP", "FP", "FN", "TN", *(name for _, name in _FLAGS)):
            flags.add_column(header, justify="left" if header == "flag" else "right")
        for row in report["flags"]:
            stats = row["statistics"]
            flags.add_row(shown(row["flag"]), str(row["n"]), *(str(row[k]) for k in ("tp", "fp", "fn", "tn")),
                          *(_cell(stats[key]) for key, _ in _FLAGS))
        _show(flags)
    hidden = f"; {len(empty)} pair(s) with no statistic at all (a constant metric) not shown" if empty else ""
    console.print(f"Statistics that do not apply show —{hidden}; `--format json` gives the reasons.")
