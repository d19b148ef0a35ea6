"""``clinsum report``: a self-contained HTML report and a Markdown summary of stored runs, or the
periodic performance report of the production summaries made in a period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from clinsum.cli import app
from clinsum.cli.common import DEFAULT_DB, EXIT_ERROR, DbOption, console, open_store, reported_errors, shown


@app.command()
def report(
    run_ids: Annotated[list[str] | None, typer.Argument(
        metavar="RUN", help="Run ids from `clinsum runs`, or unique prefixes; optional with --since/--until "
                                 "(they then limit the period to these runs).")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write the HTML report here.")] = None,
    md: Annotated[Path | None, typer.Option("--md", help="Write a Markdown summary here.")] = None,
    db: DbOption = DEFAULT_DB,
    sort_by: Annotated[str | None, typer.Option(help="Metric that ranks the systems (run reports).")] = None,
    since: Annotated[str | None, typer.Option(
        metavar="DATE", help="Periodic report: production summaries made at or after this time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(
        metavar="DATE", help="Periodic report: ... and before this time (a date is its midnight, UTC).")] = None,
    window: Annotated[str | None, typer.Option(
        metavar="day|week|N", help="Periodic report: windows of a day, an ISO week (default) or N summaries.")] = None,
    reference_windows: Annotated[int | None, typer.Option(
        min=1, help="Periodic report: windows at the start that set the control limits (default 7 days, 3 weeks, "
                    "7 windows).")] = None,
    system: Annotated[str | None, typer.Option(help="Periodic report: only summaries of this system.")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="Periodic report: TOML file with a 'report' table (window, reference_windows, "
                         "ewma_lambda, control_limit, metrics, summary_flag, physician_flag).")] = None,
) -> None:
    """Write a report of stored runs, or (--since/--until) the periodic report of production: HTML and/or Markdown."""
    if html is None and md is None:
        console.print("[red]error:[/red] give --html PATH and/or --md PATH")
        raise typer.Exit(EXIT_ERROR)
    if html is not None and md is not None and html.resolve() == md.resolve():
        console.print(f"[red]error:[/red] --html and --md name the same file ({shown(html)}): give each its own path",
                      highlight=False)
        raise typer.Exit(EXIT_ERROR)
    if since is not None or until is not None:
        _periodic(run_ids or [], since, until, html, md, db, window=window, reference_windows=reference_windows,
                  system=system, config_file=config_file, sort_by=sort_by)
        return
    if not run_ids:
        console.print("[red]error:[/red] name the runs to report (see `clinsum runs`), or a period of production "
                      "with --since DATE --until DATE")
        raise typer.Exit(EXIT_ERROR)
    periodic_only = {"--window": window, "--reference-windows": reference_windows, "--system": system,
                     "--config": config_file}
    given = [name for name, value in periodic_only.items() if value is not None]
    if given:
        console.print(f"[red]error:[/red] {', '.join(given)} belong to the periodic report: add --since DATE "
                      "--until DATE")
        raise typer.Exit(EXIT_ERROR)
    from clinsum.reporting import content, markdown
    from clinsum.reporting import html as html_report
    from clinsum.store_runs import how_to_finish

    with reported_errors(), open_store(db) as store:
        loaded = content.load(store, run_ids)
    for run in loaded.incomplete:  # the report says so too: a partial run must not read as a finished one
        console.print(f"[yellow]warning:[/yellow] run {shown(run.id)} is {shown(run.status)}: incomplete, its "
                      f"numbers partial ({how_to_finish(run.id, run.status, run.kind)})", highlight=False)
    with reported_errors():
        files = []  # both rendered whole before either is written
        if html is not None:
            page = html_report.render(loaded, sort_by=sort_by)
            files.append(_File(html, page, "HTML report", f" ({len(page.encode('utf-8')) / 1e6:.2f} MB, "
                                                          f"{len(loaded.summaries)} summaries)"))
        if md is not None:
            files.append(_File(md, markdown.render(loaded, sort_by=sort_by), "Markdown summary"))
        _write(files)


def _periodic(run_ids: list[str], since: str | None, until: str | None, html: Path | None, md: Path | None,
              db: Path, *, window: str | None, reference_windows: int | None, system: str | None,
              config_file: Path | None, sort_by: str | None) -> None:
    if since is None or until is None:
        console.print("[red]error:[/red] a periodic report needs both --since DATE and --until DATE")
        raise typer.Exit(EXIT_ERROR)
    if sort_by is not None:
        console.print("[red]error:[/red] --sort-by ranks the systems of a run report; a periodic report has none")
        raise typer.Exit(EXIT_ERROR)
    from clinsum.monitoring.windows import parse_time
    from clinsum.reporting import periodic

    with reported_errors():
        table: dict[str, Any] = {}
        if config_file is not None:
            from clinsum.config import load_config

            table = dict(load_config(config_file).report)
        overrides = {"window": window, "reference_windows": reference_windows}
        settings = periodic.load_settings({**table, **{k: v for k, v in overrides.items() if v is not None}},
                                          f"{config_file or 'options'} [report]")
        start, end = parse_time(since), parse_time(until)
        assert start is not None and end is not None
        with open_store(db, must_exist=True) as store:
            runs = [store.resolve_run_id(r) for r in run_ids]
            built = periodic.build(store, start, end, settings, runs=runs, system=system)
        files = []  # both rendered whole before either is written
        if html is not None:
            page = periodic.render_html(built)
            files.append(_File(html, page, "periodic report", f" ({len(page.encode('utf-8')) / 1e6:.2f} MB, "
                               f"{built.summaries} summaries in {len(built.windows)} windows, "
                               f"{len(built.alerts)} alert(s))"))
        if md is not None:
            files.append(_File(md, periodic.render_markdown(built), "Markdown summary"))
        _write(files)


class _File(NamedTuple):
    path: Path
    text: str
    what: str
    detail: str = ""


def _write(files: list[_File]) -> None:
    """Write the report files as one set (``clinsum.outputs.output_files``): all new or, on any failure
    (a full disk, a read-only folder, a signal), all as they were, with no temporary left. A disk
    that cannot take them is exit 3 naming the file, not a traceback."""
    from clinsum.errors import OutputWriteError
    from clinsum.outputs import output_files

    failing = ""
    try:
        with output_files() as out:
            for path, text, what, _ in files:
                failing = f"{path}: cannot write the {what}"
                with out.open(path) as handle:
                    handle.write(text)
            failing = f"{', '.join(str(f.path) for f in files)}: cannot put the report in place"
    except OSError as exc:
        unchanged = "any earlier file there is unchanged" if len(files) == 1 else "the earlier files are unchanged"
        notes = getattr(exc, "__notes__", [])
        raise OutputWriteError(f"{failing} ({exc.strerror or exc}); " + ("; ".join(notes) or unchanged)) from exc
    for path, _, what, detail in files:
        console.print(f"{what}: {shown(path)}{detail}", highlight=False)
