"""``clinsum compare-judge``: pairwise comparison of the systems of a stored run."""

from __future__ import annotations

import asyncio
import json
from itertools import combinations
from typing import TYPE_CHECKING, Annotated

import typer

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    EXIT_FAILED,
    DbOption,
    ListFormat,
    console,
    open_store,
    reported_errors,
    run_interruptible,
    shown,
    stdout,
    write_stdout,
)

if TYPE_CHECKING:
    from clinsum.evaluators.judge.pairwise import PairwiseJudge, PairwiseOutcome, WinRate
    from clinsum.records import Note, Summary
    from clinsum.store import Store


@app.command("compare-judge")
def compare_judge(
    judge: Annotated[list[str], typer.Option(
        "--judge", help="Judge provider spec; repeat for a jury (majority vote).")],
    run: Annotated[str | None, typer.Option(
        "--run", metavar="RUN_ID", help="Run whose summaries to compare (default: the latest).")] = None,
    systems: Annotated[str | None, typer.Option(
        help="Comma-separated systems to compare (default: every system of the run).")] = None,
    judge_option: Annotated[list[str] | None, typer.Option(
        "--judge-option", help="KEY=VALUE provider option for every judge, e.g. temperature=0.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N notes of the run.", min=1)] = None,
    db: DbOption = DEFAULT_DB,
    output_format: Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")] = ListFormat.table,
) -> None:
    """Ask the judge(s) which of two systems' summaries of each note is better, in both orders.

    A verdict that flips with the order counts as a tie. Outcomes are stored as
    scores (metric pairwise_win@OPPONENT) and win rates are printed with Wilson 95% CIs.
    """
    from clinsum.config import parse_option
    from clinsum.dispatch import Dispatcher
    from clinsum.errors import ConfigError
    from clinsum.evaluators.judge.judge import build_judges
    from clinsum.evaluators.judge.pairwise import PairwiseJudge, win_rates

    with reported_errors(), open_store(db) as store:
        run_id = run or store.latest_run_id()
        if run_id is None:
            raise ConfigError(f"{db}: no runs yet; start one with `clinsum run`")
        run_id = store.resolve_run_id(run_id)  # a unique prefix is enough; an unknown id is an error
        notes, by_system = _run_summaries(store, run_id, limit)
        chosen = _systems(systems, by_system)
        options = dict(parse_option(o, flag="--judge-option", scoped=False)[1:] for o in judge_option or [])
        judges = build_judges({"judges": judge, "provider_options": {"*": options}})
        jury = PairwiseJudge(judges, Dispatcher(store))
        jobs = _jobs(notes, by_system, chosen)
        # a signal cancels the calls in flight (each comparison is stored whole or not at all);
        # under plain asyncio.run, SIGTERM landing in a loop callback was logged there and dropped
        outcomes = run_interruptible(_compare_all(jury, store, run_id, jobs))
        rates = win_rates(outcomes)

    failed = sum(r.failed for r in rates)
    if failed:
        console.print(f"[yellow]{failed} comparison(s) had no valid judge answer; "
                      "their raw answers are in the stored scores' detail[/yellow]")
    if output_format == ListFormat.json:
        write_stdout(json.dumps({"run": run_id, "judges": judge, "version": jury.version,
                                 "pairs": [r.as_dict() for r in rates]}, indent=2))
    else:
        _print_table(rates, run_id, jury.version)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def _run_summaries(store: Store, run_id: str, limit: int | None
                   ) -> tuple[dict[str, Note], dict[str, dict[str, Summary]]]:
    notes = store.notes(run_id)
    if limit is not None:
        notes = notes[:limit]
    by_id = {n.id: n for n in notes}
    by_system: dict[str, dict[str, Summary]] = {}
    for summary in store.summaries(run_id):
        if summary.ok and summary.note_id in by_id:
            by_system.setdefault(summary.system, {})[summary.note_id] = summary
    return by_id, by_system


def _systems(requested: str | None, by_system: dict[str, dict[str, Summary]]) -> list[str]:
    from clinsum.errors import ConfigError

    available = list(by_system)
    if requested is None:
        chosen = available
    else:
        chosen = list(dict.fromkeys(s.strip() for s in requested.split(",") if s.strip()))
        unknown = [s for s in chosen if s not in by_system]
        if unknown:
            raise ConfigError(f"no successful summaries for system(s) {', '.join(unknown)} in this run; "
                              f"systems: {', '.join(available) or 'none'}")
    if len(chosen) < 2:
        raise ConfigError(f"pairwise comparison needs two systems; this run has {', '.join(chosen) or 'none'}")
    return chosen


Job = tuple["Note", "Summary", "Summary"]


def _jobs(notes: dict[str, Note], by_system: dict[str, dict[str, Summary]], systems: list[str]) -> list[Job]:
    """(note, summary of A, summary of B) for every pair of systems and every note both summarized.

    A pair with no such note is named (it is left out of the table); none at all is an error,
    never an empty table that exits 0.
    """
    from clinsum.errors import ConfigError

    jobs: list[Job] = []
    unpaired = []
    for a, b in combinations(systems, 2):
        shared = [(notes[n], by_system[a][n], by_system[b][n])
                  for n in notes if n in by_system[a] and n in by_system[b]]
        if not shared:
            unpaired.append(f"{a} / {b}")
        jobs += shared
    if not jobs:
        raise ConfigError(f"no note has successful summaries of two of the systems compared "
                          f"({', '.join(systems)}) among the {len(notes)} note(s) taken; nothing to compare")
    for pair in unpaired:
        console.print(f"[yellow]not compared:[/yellow] {shown(pair)}: no note summarized by both", highlight=False)
    return jobs


async def _compare_all(jury: PairwiseJudge, store: Store, run_id: str, jobs: list[Job]) -> list[PairwiseOutcome]:
    from rich.progress import Progress

    from clinsum.evaluators.judge.pairwise import outcome_scores

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("comparing", total=len(jobs))

        async def one(note: Note, a: Summary, b: Summary) -> PairwiseOutcome:
            outcome = await jury.compare(note, a, b)
            store.add_scores(run_id, outcome_scores(outcome, jury.version))
            progress.advance(task)
            return outcome

        with store.batched_writes():  # the scores of one comparison are written in one transaction
            return list(await asyncio.gather(*(one(*job) for job in jobs)))


def _print_table(rates: list[WinRate], run_id: str, version: str) -> None:
    from rich.table import Table

    table = Table(title=f"Pairwise win rates, run {shown(run_id)} ({shown(version)})")
    table.add_column("A", overflow="fold")
    table.add_column("B", overflow="fold")
    for column in ("n", "A wins", "B wins", "ties", "A win rate", "95% CI", "score", "flips", "failed"):
        table.add_column(column, justify="right", no_wrap=True)
    for r in rates:
        rate = "-" if r.win_rate is None else f"{r.win_rate:.2f}"
        ci = "-" if r.ci_low is None or r.ci_high is None else f"{r.ci_low:.2f}-{r.ci_high:.2f}"
        score = "-" if r.score is None else f"{r.score:.2f}"
        table.add_row(shown(r.system_a), shown(r.system_b), str(r.n), str(r.wins), str(r.losses), str(r.ties), rate, ci,
                      score, str(r.inconsistent), str(r.failed))
    stdout.print(table)
    stdout.print("score = (A wins + ties/2) / n; flips = judge votes that changed with the order "
                 "(counted as ties)", style="dim")
