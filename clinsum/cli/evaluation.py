"""``clinsum run`` (generate and score) and ``clinsum score`` (score summaries made elsewhere)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    EXIT_GATE,
    DbOption,
    console,
    open_store,
    print_skipped,
    reported_errors,
    shown,
    stdout,
)

REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEMO_NOTES = REPO_FIXTURES / "aci_dialogues.jsonl"
DEMO_OUT = Path("clinsum-demo")


@app.command()
def run(
    config_file: Annotated[Path | None, typer.Argument(metavar="[CONFIG.toml]",
                                                       help="Run configuration (TOML).")] = None,
    notes: Annotated[Path | None, typer.Option(help="Notes: JSONL, CSV or a folder of .txt.")] = None,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="Provider spec NAME:MODEL; repeat for several.")] = None,
    provider_option: Annotated[list[str] | None, typer.Option(
        "--provider-option", "-o", help="[SPEC.]KEY=VALUE, e.g. temperature=0.2.")] = None,
    metric: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="overlap, length, coverage, judge (default: the first three).")] = None,
    judge: Annotated[list[str] | None, typer.Option(
        "--judge", help="Judge provider spec; repeat for a jury. Adds the judge metric.")] = None,
    judge_samples: Annotated[int | None, typer.Option(help="Judge samples per summary.")] = None,
    prompt: Annotated[Path | None, typer.Option(help="Prompt template file containing $note.")] = None,
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write summaries, scores and leaderboard here.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Calls in flight per provider.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N notes.")] = None,
    resume: Annotated[str | None, typer.Option(metavar="RUN_ID", help="Finish an interrupted run.")] = None,
    batch: Annotated[bool | None, typer.Option(
        "--batch", help="Anthropic summaries through the Message Batches API (half price, slower).")] = None,
    offline: Annotated[bool | None, typer.Option(
        "--offline", help="Refuse remote providers and any non-loopback connection.")] = None,
    skip_invalid: Annotated[bool | None, typer.Option(
        "--skip-invalid", help="Skip invalid notes (and count them) instead of stopping.")] = None,
    sort_by: Annotated[str | None, typer.Option(help="Metric that ranks the systems.")] = None,
    fail_on_errors: Annotated[bool, typer.Option(
        help="Exit 1 when any summary failed (for CI gates).")] = False,
) -> None:
    """Summarize notes with each provider, score every summary, print the leaderboard.

    With no arguments at all, runs the bundled offline demo on ACI-Bench fixtures.
    """
    from clinsum import evaluation
    from clinsum.config import RunConfig, apply_flags, load_config

    with reported_errors(), open_store(db) as store:
        demo = config_file is None and notes is None and not provider and resume is None
        if resume is not None:
            config = RunConfig.model_validate(store.run(resume)["config"])
            config = apply_flags(config, concurrency=concurrency)
        else:
            config = load_config(config_file) if config_file else RunConfig()
            if demo:
                config = _demo_config()
                out = out or DEMO_OUT
            config = apply_flags(
                config, notes=str(notes) if notes else None, providers=provider,
                provider_options=provider_option, metrics=metric, judges=judge,
                judge_samples=judge_samples, prompt_template=str(prompt) if prompt else None,
                concurrency=concurrency, limit=limit, offline=offline, skip_invalid=skip_invalid, batch=batch)
        skipped: list[Any] = []
        run_notes = None
        if resume is None:
            run_notes, skipped = evaluation.load_run_notes(config)
            print_skipped(skipped, "notes")
        with _progress() as progress:
            run_id = asyncio.run(evaluation.run(config, store, notes=run_notes, run_id=resume,
                                                progress=progress))
        out = out or (Path(config.out) if config.out else None)
        failed = _finish(store, run_id, out, sort_by)
    if fail_on_errors and failed:
        raise typer.Exit(EXIT_GATE)


@app.command()
def score(
    summaries: Annotated[Path, typer.Argument(help="Summaries JSONL: note_id, system, text.")],
    notes: Annotated[Path, typer.Option(help="The notes the summaries summarize.")],
    config_file: Annotated[Path | None, typer.Option("--config", help="Run configuration (TOML).")] = None,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m")] = None,
    judge: Annotated[list[str] | None, typer.Option("--judge")] = None,
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write summaries, scores and leaderboard here.")] = None,
    skip_invalid: Annotated[bool | None, typer.Option("--skip-invalid")] = None,
    sort_by: Annotated[str | None, typer.Option(help="Metric that ranks the systems.")] = None,
) -> None:
    """Score summaries generated elsewhere (production logs, published systems)."""
    from clinsum import evaluation
    from clinsum.config import RunConfig, apply_flags, load_config
    from clinsum.inputs import load_summaries

    with reported_errors(), open_store(db) as store:
        config = load_config(config_file) if config_file else RunConfig()
        config = apply_flags(config, notes=str(notes), metrics=metric, judges=judge,
                             skip_invalid=skip_invalid)
        note_records, skipped = evaluation.load_run_notes(config)
        loaded = load_summaries(summaries, skip_invalid=config.skip_invalid)
        print_skipped(skipped, "notes")
        print_skipped(loaded.skipped, "summaries")
        with _progress() as progress:
            run_id = asyncio.run(evaluation.score(config, store, note_records, loaded.records,
                                                  progress=progress))
        _finish(store, run_id, out or (Path(config.out) if config.out else None), sort_by)


def _demo_config() -> Any:
    from clinsum.config import RunConfig
    from clinsum.errors import ConfigError

    if not DEMO_NOTES.exists():
        raise ConfigError(
            f"the demo reads {DEMO_NOTES}, which is only in a source checkout; "
            "give --notes PATH and --provider SPEC instead")
    metrics = ["overlap", "length"]
    try:
        import spacy  # noqa: F401
        metrics.append("coverage")
    except ImportError:
        console.print(escape("concept coverage skipped: pip install 'clinsum[concepts]'"), style="yellow")
    return RunConfig(notes=str(DEMO_NOTES), providers=["extractive:lead", "extractive:centroid"],  # type: ignore[list-item]
                     metrics=metrics, offline=True)


class _progress:
    """A rich progress bar fed by the runner's ``Progress`` counts."""

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        from clinsum.runner import Progress

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("[red]{task.fields[failed]} failed"), TimeElapsedColumn(),
                       console=console, transient=False)
        self.task = self.bar.add_task("summaries", total=None, failed=0)
        self.bar.start()

        def update(p: Progress) -> None:
            self.bar.update(self.task, total=p.total, completed=p.done, failed=p.failed)

        return Progress(on_change=update)

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _finish(store: Any, run_id: str, out: Path | None, sort_by: str | None) -> int:
    """Print the leaderboard and where the outputs went; returns the number of failed summaries."""
    from clinsum import reports
    from clinsum.evaluators.aggregate import aggregate

    scores = store.scores(run_id)
    rows = aggregate(scores)
    stdout.print(reports.table(rows, sort_by, title=f"run {run_id}"))
    info = store.run(run_id)
    console.print(f"run [bold]{run_id}[/bold]: {info['notes']} notes, {len(info['systems'])} systems, "
                  f"{info['failed']} failed summaries; stored in {shown(store.path)}")
    if info["failed"]:
        errors = [s for s in store.summaries(run_id) if not s.ok][:5]
        for summary in errors:
            console.print(f"  [red]{shown(summary.system)} / {shown(summary.note_id)}:[/red] "
                          f"{shown(summary.error or '')}", highlight=False)
    if out is not None:
        paths = reports.write_outputs(out, store.summaries(run_id), scores, rows)
        console.print("outputs: " + ", ".join(shown(p) for p in paths.values()))
    return int(info["failed"])
