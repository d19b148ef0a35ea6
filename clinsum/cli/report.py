"""``clinsum report``: a self-contained HTML report and a Markdown summary of stored runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from clinsum.cli import app
from clinsum.cli.common import DEFAULT_DB, EXIT_ERROR, DbOption, console, open_store, reported_errors, shown


@app.command()
def report(
    run_ids: Annotated[list[str], typer.Argument(
        metavar="RUN...", help="Run ids from `clinsum runs`, or unique prefixes.")],
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown summary here.")] = None,
    db: DbOption = DEFAULT_DB,
    sort_by: Annotated[str | None, typer.Option(help="Metric that ranks the systems.")] = None,
) -> None:
    """Write a report of one or more stored runs: HTML (one file, opens offline) and/or Markdown."""
    if html is None and md is None:
        console.print("[red]error:[/red] give --html PATH and/or --md PATH")
        raise typer.Exit(EXIT_ERROR)
    from clinsum.inputs import atomic_output
    from clinsum.reporting import content, markdown
    from clinsum.reporting import html as html_report

    with reported_errors(), open_store(db) as store:
        loaded = content.load(store, run_ids)
    with reported_errors():
        if html is not None:
            page = html_report.render(loaded, sort_by=sort_by)
            html_report.write(html, page)
            console.print(f"HTML report: {shown(html)} ({len(page.encode('utf-8')) / 1e6:.2f} MB, "
                          f"{len(loaded.summaries)} summaries)")
        if md is not None:
            with atomic_output(md) as handle:
                handle.write(markdown.render(loaded, sort_by=sort_by))
            console.print(f"Markdown summary: {shown(md)}")
