"""``clinsum export``: a stored run as JSONL, CSV or Parquet files, or into MLflow."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from clinsum.cli import app
from clinsum.cli.common import DEFAULT_DB, EXIT_ERROR, DbOption, console, open_store, reported_errors, shown

if TYPE_CHECKING:
    from clinsum.store import Store


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="A run id from `clinsum runs`, or a unique prefix.")],
    format: Annotated[ExportFormat, typer.Option("--format", "-f", help="File format for --out.")] = ExportFormat.jsonl,
    out: Annotated[Path | None, typer.Option(help="Write summaries, scores, leaderboard and run.json here.")] = None,
    mlflow: Annotated[str | None, typer.Option("--mlflow", metavar="TRACKING_URI",
                                               help="Log the run to MLflow (http://..., sqlite:///mlflow.db).")] = None,
    experiment: Annotated[str, typer.Option(help="MLflow experiment (created if missing).")] = "clinsum",
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export a stored run: files (--out, --format) and/or MLflow runs (--mlflow), at any time after the run."""
    if out is None and mlflow is None:
        console.print("[red]error:[/red] give --out DIR and/or --mlflow TRACKING_URI")
        raise typer.Exit(EXIT_ERROR)
    from clinsum.reporting import export as files

    with reported_errors(), open_store(db) as store:
        run_id = store.resolve_run_id(run_id)  # a unique prefix is enough; an unknown id is an error
        if mlflow is not None:
            check_finished(store.run(run_id))  # before any file is written: exit 2 means nothing was done
        if out is not None:
            try:
                paths = files.write(out, format.value, store.run(run_id), store.summaries(run_id),
                                    store.scores(run_id))
            except OSError as exc:  # a full disk, a read-only folder: exit 3 like run --out, not a traceback
                from clinsum.errors import OutputWriteError

                raise OutputWriteError(f"--out {out}: cannot write the export ({exc.strerror or exc}); "
                                       f"run {run_id} is still whole in {store.path}") from exc
            console.print("exported: " + ", ".join(shown(p) for p in paths.values()))
        if mlflow is not None:
            log_to_mlflow(store, run_id, mlflow, experiment)


def check_finished(run: dict[str, Any]) -> None:
    """MLflow gets finished runs only: it would show a stopped run's partial means as a finished run's."""
    if run["status"] != "finished":
        from clinsum.reporting.export import ExportError
        from clinsum.store_runs import how_to_finish

        raise ExportError(f"run {run['id']} is {run['status']}: MLflow gets finished runs only; "
                          f"{how_to_finish(run['id'], run['status'], run['kind'])} (files: `clinsum export "
                          f"{run['id']} --out DIR`)")


def require_mlflow() -> None:
    """Fail before anything is evaluated when --mlflow is given but MLflow is not installed."""
    try:
        import mlflow  # noqa: F401
    except ImportError:
        from clinsum.reporting.export import MissingExtra

        raise MissingExtra("--mlflow needs mlflow: pip install 'clinsum[mlflow]'") from None


def log_to_mlflow(store: Store, run_id: str, tracking_uri: str, experiment: str) -> None:
    """Log a stored run to MLflow with its HTML report; an error says the run itself is safe in the store."""
    import tempfile

    from clinsum.reporting import content, html, tracking
    from clinsum.reporting.export import ExportWriteError

    run = store.run(run_id)
    check_finished(run)
    summaries, scores = store.summaries(run_id), store.scores(run_id)
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.html"
        html.write(report, html.render(content.load(store, [run_id])))
        try:
            ids = tracking.export(tracking_uri, run, summaries, scores, experiment=experiment, html_report=report)
        except ExportWriteError as exc:
            raise ExportWriteError(f"{exc} (run {run_id} is stored in {store.path}; retry with "
                              f"`clinsum export {run_id} --mlflow {tracking_uri}`)") from exc
    console.print(f"MLflow: experiment {ids['experiment_id']}, parent run {ids['parent']}, "
                  f"{len(ids['systems'])} system runs at {shown(tracking_uri)}")
