"""``clinsum runs`` and ``clinsum show``: what the store holds."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    DbOption,
    Format,
    ListFormat,
    TagOption,
    console,
    open_store,
    reported_errors,
    shown,
    stdout,
    write_stdout,
)

if TYPE_CHECKING:
    from clinsum.evaluators.aggregate import Row

RUN_COLUMNS = ("id", "name", "tags", "created_at", "kind", "status", "systems", "notes", "failed")


def _cell(item: dict[str, Any], column: str) -> object:
    if column == "systems":
        return ", ".join(item["systems"])
    if column == "tags":
        return ", ".join(f"{k}={v}" for k, v in item["tags"].items())
    return "" if item[column] is None else item[column]


@app.command()
def runs(db: DbOption = DEFAULT_DB,
         format: Annotated[ListFormat, typer.Option("--format", "-f", help="table or json.")] = ListFormat.table,
         name: Annotated[str | None, typer.Option("--name", help="Only runs with this name.")] = None,
         tag: TagOption = None) -> None:
    """List stored runs, newest first, with their full ids (any command also takes a unique prefix).

    ``--name`` and every ``--tag KEY=VALUE`` given narrow the list to the runs that have them.
    """
    from rich.table import Table

    from clinsum.cli.common import parse_tags

    with reported_errors(), open_store(db, must_exist=True) as store:
        selected = store.runs(name=name, tags=parse_tags(tag))
        items = [{k: v for k, v in r.items() if k != "config"} for r in selected]
    if format is ListFormat.json:
        write_stdout(json.dumps(items, indent=2))
        return
    table = Table(title=f"runs in {shown(db)}")
    widest = max((len(shown(item["id"])) for item in items), default=2)
    for column in RUN_COLUMNS:
        if column == "id":  # never cut: the id is what the other commands take
            table.add_column(column, no_wrap=True, min_width=widest)
        else:
            table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(*(shown(_cell(item, c)) for c in RUN_COLUMNS))
    stdout.print(table)


@app.command()
def show(run_id: Annotated[str, typer.Argument(help="A run id from `clinsum runs`, or a unique prefix.")],
         db: DbOption = DEFAULT_DB,
         format: Annotated[Format, typer.Option("--format", "-f", help="table, csv or json.")] = Format.table,
         sort_by: Annotated[str | None, typer.Option(help="Metric that ranks the systems.")] = None) -> None:
    """Print the leaderboard of a stored run."""
    from clinsum.evaluators.aggregate import aggregate

    with reported_errors(), open_store(db, must_exist=True) as store:
        run_id = store.resolve_run_id(run_id)  # a unique prefix is enough; an unknown id is an error
        rows = aggregate(store.scores(run_id, details=False))
        print_leaderboard(rows, sort_by, run_id, format)
        info = store.run(run_id)
    from clinsum.store_runs import how_to_finish

    if info["status"] != "finished":  # on stderr: the table stays the stored one, and must not read as finished
        console.print(f"[yellow]warning:[/yellow] run {shown(run_id)} is {shown(info['status'])}: incomplete, its "
                      f"numbers partial ({how_to_finish(run_id, info['status'], info['kind'])})", highlight=False)


def print_leaderboard(rows: Sequence[Row], sort_by: str | None, run_id: str, format: Format) -> None:
    """A run's leaderboard on stdout as a table, CSV or JSON (``show``, ``run`` and ``score``)."""
    from clinsum import reports

    ranked, _ = reports.ordered(rows, sort_by)  # a --sort-by this run has no metric for is an error
    if format is Format.table:
        stdout.print(reports.table(rows, sort_by, title=f"run {run_id}"))
    elif format is Format.json:
        write_stdout(json.dumps(reports.as_dicts(ranked), indent=2))
    else:
        from clinsum.outputs import format_csv

        write_stdout(format_csv(reports.LEADERBOARD_COLUMNS, reports.as_dicts(ranked)))
