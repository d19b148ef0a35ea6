"""``clinsum run`` (generate and score) and ``clinsum score`` (score summaries made elsewhere).

Both end the same way (``_finish``): the leaderboard, one line counting failed
summaries, failed evaluations and empty summaries, the outputs, and an exit code
that says whether everything worked (see ``EXIT_CODES_HELP``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from clinsum.cli import app
from clinsum.cli.common import (
    DEFAULT_DB,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    DbOption,
    Format,
    NameOption,
    TagOption,
    console,
    open_store,
    print_skipped,
    reported_errors,
    run_interruptible,
    shown,
)
from clinsum.cli.options import DeprecatedMetricOption, EvaluatorOption, evaluators

REPO_FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEMO_NOTES = REPO_FIXTURES / "aci_dialogues.jsonl"
DEMO_OUT = Path("clinsum-demo")

FailOnErrors = Annotated[bool, typer.Option(
    "--fail-on-errors/--allow-errors",
    help="Exit 1 when any summary or evaluation failed (the default); --allow-errors exits 0 "
         "once the run finished, failures counted and stored all the same.")]
ResumeOption = Annotated[str | None, typer.Option(
    metavar="RUN_ID", help="Finish a stopped run: every missing or failed summary and evaluation. "
                           "Only --concurrency, --workers, --engine, --offline and the output options may be "
                           "given with it.")]
SampleOption = Annotated[int | None, typer.Option(
    "--sample", metavar="N", help="Evaluate a reproducible sample of N notes (score: every summary of them).")]
SampleFractionOption = Annotated[float | None, typer.Option(
    "--sample-fraction", metavar="F", help="Evaluate this fraction of the notes, 0 < F <= 1.")]
StratifyOption = Annotated[str | None, typer.Option(
    "--stratify-by", metavar="FIELD", help="Keep the proportions of this note metadata field in the sample.")]
SampleSeedOption = Annotated[int | None, typer.Option(
    "--sample-seed", help="Seed of the sample (default 0; recorded in the run config).")]
MaxCostOption = Annotated[float | None, typer.Option(
    "--max-cost", metavar="USD", help="Refuse to start (exit 2) if the run may cost more than this.")]
StoreNotesOption = Annotated[bool | None, typer.Option(
    "--store-notes/--no-store-notes",
    help="--no-store-notes keeps only a hash of each note in the store (no note text): resuming the run "
         "then reads its notes file again.")]
FailUnderOption = Annotated[list[str] | None, typer.Option(
    "--fail-under", metavar="METRIC=VALUE",
    help="Exit 1 when a system's mean is worse than VALUE, in the metric's direction (below for "
         "higher-is-better, above for lower-is-better); repeat for several.")]
MaxFlipsOption = Annotated[int | None, typer.Option(
    "--max-critical-flips", min=0, help="Exit 1 when a system's summaries hold more than N critical flips.")]
WorkersOption = Annotated[int | None, typer.Option(
    min=1, help="Processes that compute the scores that ask no model (concepts, facts, ROUGE, length); "
                "default: one per core. The judge runs in the main process.")]
EngineOption = Annotated[str | None, typer.Option(
    metavar="local|ray", help="Where those scores are computed: local (this machine, --workers processes) or "
                              "ray (the cluster of RAY_ADDRESS, or a local Ray); the scores are the same.")]
SortByOption = Annotated[str | None, typer.Option(help="Metric that ranks the systems.")]
LeaderboardFormatOption = Annotated[Format, typer.Option("--format", "-f", help="Leaderboard as table, csv or json.")]
MlflowOption = Annotated[str | None, typer.Option(
    "--mlflow", metavar="TRACKING_URI", help="Also log the run to MLflow (as `clinsum export --mlflow`).")]
MlflowExperimentOption = Annotated[str, typer.Option(help="MLflow experiment for --mlflow.")]
CHANGES_ON_RESUME = ("concurrency", "workers", "engine", "offline")
"""Flags a resumed run applies; every other flag that changes a run is refused with --resume."""


@app.command(epilog=EXIT_CODES_HELP)
def run(
    config_file: Annotated[Path | None, typer.Argument(metavar="[CONFIG.toml]",
                                                       help="Run configuration (TOML).")] = None,
    notes: Annotated[Path | None, typer.Option(help="Notes: JSONL, CSV or a folder of .txt.")] = None,
    provider: Annotated[list[str] | None, typer.Option(
        "--provider", "-p", help="Provider spec NAME:MODEL; repeat for several.")] = None,
    provider_option: Annotated[list[str] | None, typer.Option(
        "--provider-option", "-o", help="[SPEC.]KEY=VALUE, e.g. temperature=0.2.")] = None,
    evaluator: EvaluatorOption = None,
    metric: DeprecatedMetricOption = None,
    judge: Annotated[list[str] | None, typer.Option(
        "--judge", help="Judge provider spec; repeat for a jury. Adds the judge metric.")] = None,
    judge_samples: Annotated[int | None, typer.Option(help="Judge samples per summary.")] = None,
    prompt: Annotated[Path | None, typer.Option(help="Prompt template file containing $note.")] = None,
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write summaries, scores and leaderboard here.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Calls in flight per provider.")] = None,
    workers: WorkersOption = None,
    engine: EngineOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N notes.")] = None,
    resume: ResumeOption = None,
    batch: Annotated[bool | None, typer.Option(
        "--batch", help="Summaries of batch-capable providers (Anthropic, Vertex AI) as one batch job "
                        "each (half price, slower).")] = None,
    offline: Annotated[bool | None, typer.Option(
        "--offline", help="Refuse remote providers and any non-loopback connection.")] = None,
    name: NameOption = None,
    tag: TagOption = None,
    skip_invalid: Annotated[bool | None, typer.Option(
        "--skip-invalid", help="Skip invalid notes (and count them) instead of stopping.")] = None,
    store_notes: StoreNotesOption = None,
    sort_by: SortByOption = None,
    sample: SampleOption = None,
    sample_fraction: SampleFractionOption = None,
    stratify_by: StratifyOption = None,
    sample_seed: SampleSeedOption = None,
    max_cost: MaxCostOption = None,
    format: LeaderboardFormatOption = Format.table,
    fail_on_errors: FailOnErrors = True,
    mlflow: MlflowOption = None,
    mlflow_experiment: MlflowExperimentOption = "clinsum",
    fail_under: FailUnderOption = None,
    max_critical_flips: MaxFlipsOption = None,
) -> None:
    """Summarize notes with each provider, score every summary, print the leaderboard.

    With no arguments at all, runs the bundled offline demo on ACI-Bench fixtures.
    """
    from clinsum import evaluation
    from clinsum.config import RunConfig, apply_flags, load_config

    with reported_errors(resumable="run"):
        tags = _checked_before_any_call(sort_by, mlflow, tag)
        if resume is not None:
            _refuse_changes_on_resume(config=config_file, notes=notes, provider=provider,
                                      provider_option=provider_option, evaluator=evaluator, metric=metric,
                                      judge=judge,
                                      judge_samples=judge_samples, prompt=prompt, limit=limit, batch=batch,
                                      skip_invalid=skip_invalid, sample=sample, sample_fraction=sample_fraction,
                                      stratify_by=stratify_by, sample_seed=sample_seed, max_cost=max_cost,
                                      store_notes=store_notes,
                                      name=name, tag=tag)
        with open_store(db) as store:
            if resume is not None:
                run_id, bars, out = _resumed(store, resume, out, concurrency=concurrency, workers=workers,
                                             engine=engine, offline=offline, fail_under=fail_under,
                                             max_critical_flips=max_critical_flips)
            else:
                demo = config_file is None and notes is None and not provider
                config = load_config(config_file) if config_file else RunConfig()
                if demo:
                    config = _demo_config()
                    out = out or DEMO_OUT
                config = apply_flags(
                    config, notes=str(notes) if notes else None, providers=provider,
                    provider_options=provider_option, metrics=evaluators(evaluator, metric), judges=judge,
                    judge_samples=judge_samples, prompt_template=str(prompt) if prompt else None,
                    concurrency=concurrency, workers=workers, engine=engine, limit=limit, offline=offline,
                    skip_invalid=skip_invalid, batch=batch, sample=sample, sample_fraction=sample_fraction,
                    stratify_by=stratify_by, sample_seed=sample_seed, max_cost_usd=max_cost,
                    store_notes=store_notes)
                bars = _bars(config, fail_under, max_critical_flips)  # a bad gate stops the run before it costs
                out = _checked_out(out or (Path(config.out) if config.out else None))
                _, skipped = evaluation.check_run_notes(config)  # every bad note reported, none kept
                print_skipped(skipped, "notes")
                bar = _progress(announced=True)
                with bar as progress:
                    run_id = run_interruptible(evaluation.run(config, store, notes=evaluation.NotesFile(config),
                                                              progress=progress, announce=bar.announce,
                                                              name=name, tags=tags))
            failed, missed = _concluded(store, run_id, out, bars, sort_by=sort_by, format=format, mlflow=mlflow,
                                        mlflow_experiment=mlflow_experiment)
    if (fail_on_errors and failed) or missed:
        raise typer.Exit(EXIT_FAILED)


@app.command(epilog=EXIT_CODES_HELP)
def score(
    summaries: Annotated[Path | None, typer.Argument(
        help="Summaries JSONL or CSV: note_id, system, text (not with --resume).")] = None,
    notes: Annotated[Path | None, typer.Option(help="The notes the summaries summarize.")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="Run configuration (TOML).")] = None,
    evaluator: EvaluatorOption = None,
    metric: DeprecatedMetricOption = None,
    judge: Annotated[list[str] | None, typer.Option(
        "--judge", help="Judge provider spec; repeat for a jury. Adds the judge metric.")] = None,
    judge_samples: Annotated[int | None, typer.Option(help="Judge samples per summary.")] = None,
    db: DbOption = DEFAULT_DB,
    out: Annotated[Path | None, typer.Option(help="Write summaries, scores and leaderboard here.")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Judge calls in flight per judge.")] = None,
    workers: WorkersOption = None,
    engine: EngineOption = None,
    limit: Annotated[int | None, typer.Option(help="Only the summaries of the first N notes.")] = None,
    resume: ResumeOption = None,
    offline: Annotated[bool | None, typer.Option(
        "--offline", help="Refuse remote judges and any non-loopback connection.")] = None,
    skip_invalid: Annotated[bool | None, typer.Option(
        "--skip-invalid", help="Skip invalid notes and summaries (and count them) instead of stopping.")] = None,
    store_notes: StoreNotesOption = None,
    sort_by: SortByOption = None,
    sample: SampleOption = None,
    sample_fraction: SampleFractionOption = None,
    stratify_by: StratifyOption = None,
    sample_seed: SampleSeedOption = None,
    max_cost: MaxCostOption = None,
    format: LeaderboardFormatOption = Format.table,
    fail_on_errors: FailOnErrors = True,
    mlflow: MlflowOption = None,
    mlflow_experiment: MlflowExperimentOption = "clinsum",
    fail_under: FailUnderOption = None,
    max_critical_flips: MaxFlipsOption = None,
    name: NameOption = None,
    tag: TagOption = None,
) -> None:
    """Score summaries generated elsewhere (production logs, published systems)."""
    from clinsum import evaluation
    from clinsum.config import RunConfig, apply_flags, load_config
    from clinsum.errors import ConfigError

    with reported_errors(resumable="score"):
        tags = _checked_before_any_call(sort_by, mlflow, tag)
        if resume is not None:
            _refuse_changes_on_resume(summaries=summaries, notes=notes, config=config_file, evaluator=evaluator,
                                      metric=metric,
                                      judge=judge, judge_samples=judge_samples, limit=limit,
                                      skip_invalid=skip_invalid, sample=sample, sample_fraction=sample_fraction,
                                      stratify_by=stratify_by, sample_seed=sample_seed, max_cost=max_cost,
                                      store_notes=store_notes,
                                      name=name, tag=tag)
        elif summaries is None or notes is None:
            raise ConfigError("give the SUMMARIES file and --notes PATH (or --resume RUN_ID)")
        with open_store(db) as store:
            if resume is not None:
                run_id, bars, out = _resumed(store, resume, out, concurrency=concurrency, workers=workers,
                                             engine=engine, offline=offline, fail_under=fail_under,
                                             max_critical_flips=max_critical_flips)
            else:
                assert summaries is not None
                config = load_config(config_file) if config_file else RunConfig()
                config = apply_flags(config, notes=str(notes), metrics=evaluators(evaluator, metric), judges=judge,
                                     judge_samples=judge_samples, concurrency=concurrency, workers=workers,
                                     engine=engine, limit=limit, offline=offline, skip_invalid=skip_invalid,
                                     sample=sample, sample_fraction=sample_fraction, stratify_by=stratify_by,
                                     sample_seed=sample_seed, max_cost_usd=max_cost,
                                     store_notes=store_notes)
                bars = _bars(config, fail_under, max_critical_flips)
                out = _checked_out(out or (Path(config.out) if config.out else None))
                note_records, records, skipped, skipped_summaries = evaluation.score_inputs(config, summaries)
                print_skipped(skipped, "notes")
                print_skipped(skipped_summaries, "summaries")
                bar = _progress(announced=True)
                with bar as progress:
                    run_id = run_interruptible(evaluation.score(config, store, note_records, records,
                                                                progress=progress, announce=bar.announce,
                                                                name=name, tags=tags))
            failed, missed = _concluded(store, run_id, out, bars, sort_by=sort_by, format=format, mlflow=mlflow,
                                        mlflow_experiment=mlflow_experiment)
    if (fail_on_errors and failed) or missed:
        raise typer.Exit(EXIT_FAILED)


def _checked_before_any_call(sort_by: str | None, mlflow: str | None, tag: list[str] | None) -> dict[str, str]:
    """What run and score check before they cost anything: the sort metric (a typo fails now, not
    after every call is paid for), MLflow being installed when asked for, the tags; returns the tags."""
    from clinsum.cli.common import parse_tags

    _check_sort_by(sort_by)
    if mlflow is not None:
        from clinsum.cli.export import require_mlflow

        require_mlflow()
    return parse_tags(tag)


def _resumed(store: Any, resume: str, out: Path | None, *, concurrency: int | None, workers: int | None,
             engine: Any, offline: bool | None, fail_under: list[str] | None,
             max_critical_flips: int | None) -> tuple[str, Any, Path | None]:
    """Complete a stopped run with the configuration it was started with; returns (run id, gates, out)."""
    from clinsum import evaluation

    resume = store.resolve_run_id(resume)  # a unique prefix is enough
    kind, config = evaluation.resume_config(store, resume, concurrency=concurrency, workers=workers,
                                             engine=engine, offline=offline)
    bars = _bars(config, fail_under, max_critical_flips)
    out = _checked_out(out or (Path(config.out) if config.out else None))
    with _progress() as progress:
        run_id = run_interruptible(evaluation.resume(store, resume, config, kind, progress))
    return run_id, bars, out


def _concluded(store: Any, run_id: str, out: Path | None, bars: Any, *, sort_by: str | None, format: Format,
               mlflow: str | None, mlflow_experiment: str) -> tuple[int, bool]:
    """The end of run and score: leaderboard and outputs, MLflow, gates; returns (failures, a gate missed)."""
    failed, unranked = _finish(store, run_id, out, sort_by, format)
    if mlflow is not None:
        from clinsum.cli.export import log_to_mlflow

        log_to_mlflow(store, run_id, mlflow, mlflow_experiment)
    return failed, _gates(store, run_id, bars) or unranked


def _bars(config: Any, fail_under: list[str] | None, max_critical_flips: int | None) -> Any:
    """The run's gates: the config's, with the flags' added (a flag replaces the same metric's bar)."""
    from clinsum import gates

    return gates.merged(config.gates, fail_under, max_critical_flips)


def _gates(store: Any, run_id: str, bars: Any) -> bool:
    """Check a finished run against its gates; print each miss; True when any."""
    from clinsum import gates

    missed = gates.check_run(store, run_id, bars)
    for failure in missed:
        console.print(f"[red]gate failed:[/red] {shown(failure)}", highlight=False)
    return bool(missed)


def _refuse_changes_on_resume(**given: Any) -> None:
    """``--resume`` continues a run as it was configured; flags that would change it are refused."""
    from clinsum.errors import ConfigError

    # every such flag defaults to None: 0 (`--max-cost 0`, `--limit 0`) and False (`--no-store-notes`) were given
    changed = [name for name, value in given.items() if not (value is None or value == [])]
    if changed:
        flags = ", ".join("--" + name.replace("_", "-") for name in changed)
        raise ConfigError(
            f"--resume finishes a run with the configuration it was started with; {flags} would change "
            f"it (start a new run for that). With --resume only --concurrency, --workers, --engine, --offline, --out, "
            "--sort-by, the gates (--fail-under, --max-critical-flips) and --fail-on-errors/--allow-errors apply")


def _checked_out(out: Path | None) -> Path | None:
    """Check before any provider call that the outputs can be written into ``out``.

    The folder is created if missing; a probe file is written, flushed to disk and
    removed, which catches a file in the way, a read-only folder or file system and
    a disk with no space left. A disk that fills up later still fails at the end,
    where each output is written to a temporary file and renamed, never by halves.
    """
    from clinsum.errors import ConfigError

    if out is None:
        return None
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder; give a folder for the outputs")
    probe = out / f".clinsum-probe-{uuid.uuid4().hex[:8]}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(descriptor, b"\n" * 4096)
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot write there ({exc.strerror or exc}); nothing was run") from exc
    finally:
        with contextlib.suppress(OSError):  # never created
            probe.unlink()
    return out


def _check_sort_by(sort_by: str | None) -> None:
    from clinsum.reports import check_sort_by

    check_sort_by(sort_by)


def _demo_config() -> Any:
    from clinsum.config import RunConfig
    from clinsum.errors import ConfigError

    if not DEMO_NOTES.exists():
        raise ConfigError(
            f"the demo reads {DEMO_NOTES}, which is only in a source checkout; "
            "give --notes PATH and --provider SPEC instead")
    from clinsum.evaluators.coverage import CONCEPTS_INSTALL, concepts_extra_missing

    metrics = ["overlap", "length"]
    if concepts_extra_missing() is None:
        metrics.append("coverage")
    else:
        console.print(escape(f"concept coverage skipped: {CONCEPTS_INSTALL}"), style="yellow")
    return RunConfig(notes=str(DEMO_NOTES), providers=["extractive:lead", "extractive:centroid"],  # type: ignore[list-item]
                     metrics=metrics, offline=True)


class _progress:
    """A rich progress bar fed by the runner's ``Progress`` counts; names a run that stops.

    With ``announced`` (a new run), ``announce`` prints the run's sample and estimated cost
    and the bar starts with the first summary done, so a run refused by ``--max-cost``
    shows no bar.
    """

    def __init__(self, *, announced: bool = False) -> None:
        self.announced = announced

    def __enter__(self) -> Any:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        from clinsum.runner import Progress

        self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                       TextColumn("[red]{task.fields[failed]} failed"),
                       TextColumn("[red]{task.fields[evaluations]} failed evaluations"),
                       TimeElapsedColumn(), console=console, transient=False)
        self.task = self.bar.add_task("summaries", total=None, failed=0, evaluations=0)
        if not self.announced:
            self.bar.start()

        def update(p: Progress) -> None:
            if not self.bar.live.is_started:
                self.bar.start()
            self.bar.update(self.task, total=p.total, completed=p.done, failed=p.failed,
                            evaluations=p.failed_evaluations)

        self.progress = Progress(on_change=update)
        return self.progress

    def announce(self, sample: Any, cost: Any) -> None:
        """Print the new run's sample and estimated cost (``evaluation.Announce``)."""
        for line in [*(sample.describe() if sample is not None else []), *cost.describe()]:
            console.print(shown(line), highlight=False)

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if self.bar.live.is_started:
            self.bar.stop()
        if kind is not None and self.progress.run_id is not None:
            console.print(f"run [bold]{self.progress.run_id}[/bold] stopped before the end; "
                          f"`--resume {self.progress.run_id}` finishes it", highlight=False)


def _finish(store: Any, run_id: str, out: Path | None, sort_by: str | None,
            format: Format = Format.table) -> tuple[int, bool]:
    """Print the leaderboard (as ``format``), the run's counts and where the outputs went.

    Returns how many summaries and evaluations failed (0 means everything worked), and whether
    ``sort_by`` could not rank the run (a metric it has no value of: said, and the run ranked
    by the default metric; the outputs are written all the same).
    """
    from clinsum import reports
    from clinsum.errors import OutputWriteError
    from clinsum.evaluators.aggregate import aggregate_values
    from clinsum.evaluators.metrics import display_key

    rows = aggregate_values(store.metric_values(run_id))  # values only: no score held in memory
    from clinsum.cli.history import print_leaderboard  # here: run and score register before runs and show

    produced = {r.metric for r in rows}
    unranked = sort_by is not None and bool(produced) and sort_by not in produced
    if unranked:  # checked as a known metric before the run, which is paid for: end it, do not drop it
        console.print(f"[red]error:[/red] --sort-by {shown(sort_by)}: no value of it in run {shown(run_id)} "
                      f"(metrics: {shown(', '.join(sorted(produced, key=display_key)))}); "
                      "ranked by the default metric", highlight=False)
        sort_by = None
    print_leaderboard(rows, sort_by, run_id, format)
    info = store.run(run_id)
    failed, failed_evaluations, empty = info["failed"], info["failed_evaluations"], info["empty"]
    console.print(f"run [bold]{shown(run_id)}[/bold] {info['status']}: {info['notes']} notes, "
                  f"{len(info['systems'])} systems, {failed} failed summaries, "
                  f"{failed_evaluations} failed evaluations, {empty} empty summaries; "
                  f"stored in {shown(store.path)}", highlight=False)
    for summary in itertools.islice(store.iter_summaries(run_id, failed_only=True, by_system=True), 5):
        console.print(f"  [red]{shown(summary.system)} / {shown(summary.note_id)}:[/red] "
                      f"{shown(summary.error or '')}", highlight=False)
    listed: set[tuple[str, str, str]] = set()
    for s in store.iter_scores(run_id, failed_only=True):
        key = (s.system, s.note_id, s.evaluator.split(":", 1)[0])
        if len(listed) == 5:
            break
        if key not in listed:
            listed.add(key)
            error = str(s.detail.get("error") or f"{s.metric} failed")
            console.print(f"  [red]{shown(s.system)} / {shown(s.note_id)} / {shown(s.evaluator)}:[/red] "
                          f"{shown(error[:300])}", highlight=False)
    if failed or failed_evaluations:
        console.print(f"`clinsum run --resume {run_id}` asks again for every failed summary and evaluation",
                      highlight=False)
    if out is not None:
        try:
            paths = reports.write_outputs(out, store.iter_summaries(run_id, by_system=True),
                                          store.iter_scores(run_id), rows)
        except OSError as exc:
            raise OutputWriteError(f"--out {out}: cannot write the outputs ({exc.strerror or exc}); "
                                   f"the run is stored: `clinsum show {run_id}`") from exc
        console.print("outputs: " + ", ".join(shown(p) for p in paths.values()), highlight=False)
    return int(failed) + int(failed_evaluations), unranked
