"""Evaluations from a configuration: what ``clinsum run`` and ``clinsum score`` do.

The CLI and the Python API (``clinsum.evaluate``) both come here; this module
builds the providers and evaluators a configuration names, records the run,
and drives the runner.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clinsum import __version__
from clinsum.config import RunConfig
from clinsum.dispatch import Dispatcher
from clinsum.engines import Engine
from clinsum.errors import ConfigError, InputError, StoreError
from clinsum.evaluators import registry as evaluator_registry
from clinsum.evaluators.base import Evaluator
from clinsum.prompts import load_template
from clinsum.providers import registry as provider_registry
from clinsum.providers.base import Provider, Request
from clinsum.records import Note, Summary
from clinsum.runner import Progress, Runner, System, new_run_id
from clinsum.store import Store

if TYPE_CHECKING:
    from clinsum.costs import CostEstimate
    from clinsum.sampling import Sample

log = logging.getLogger(__name__)

Announce = Callable[["Sample | None", "CostEstimate"], None]
"""Called before a new run starts (and before ``--max-cost`` is checked) with its sample and cost."""


def build_systems(config: RunConfig) -> list[System]:
    """The run's summarizers, built like its judges (``providers.registry.build``): with the run's
    prices, and in offline mode refused before they are built unless they are local."""
    if not config.providers:
        raise ConfigError("no providers: give --provider SPEC (for example extractive:lead) or a config")
    systems = []
    for provider_config in config.providers:
        provider = provider_registry.build(provider_config.spec, provider_config.options,
                                           prices=config.prices, offline=config.offline)
        label = provider_config.name or getattr(provider, "system", None) or provider_config.spec
        systems.append(System(label, provider))
    labels = [s.label for s in systems]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"two providers have the same label ({', '.join(labels)}); give each a `name`")
    return systems


def build_evaluators(config: RunConfig, dispatcher: Dispatcher) -> list[Evaluator]:
    evaluators: list[Evaluator] = []
    for metric in dict.fromkeys(config.metrics):  # de-duplicated, order kept
        options: dict[str, Any] = dict(config.metric_options.get(metric, {}))
        if metric == "judge":
            from clinsum.evaluators.judge import create as create_judge

            if config.judge is None or not config.judge.judges:
                raise ConfigError("the judge metric needs at least one --judge SPEC")
            options = {**config.judge.model_dump(exclude_unset=True), **options}
            evaluators.append(create_judge(options, dispatcher, prices=config.prices, offline=config.offline))
            continue
        evaluators.append(evaluator_registry.create(metric, options, dispatcher))
    return evaluators


def load_run_notes(config: RunConfig) -> tuple[list[Note], list[InputError]]:
    from clinsum.inputs import load_notes

    if not config.notes:
        raise ConfigError("no notes: give --notes PATH (JSONL, CSV or a folder of .txt files)")
    loaded = load_notes(Path(config.notes), skip_invalid=config.skip_invalid)
    notes = list(loaded.records)
    if config.limit is not None:
        notes = notes[: config.limit]
    if not notes:
        raise ConfigError(f"{config.notes}: no notes to evaluate")
    return notes, list(loaded.skipped)


def sample_notes(config: RunConfig, notes: Iterable[Note],
                 summaries: Iterable[Summary] = ()) -> tuple[Iterable[Note], Sample | None]:
    """The notes of the run's sample (``--sample``, ``--sample-fraction``), in their order, and
    how it was drawn; all the notes and None when the run takes no sample."""
    from clinsum.sampling import choose

    if config.sample is None and config.sample_fraction is None:
        return notes, None  # as given: a file re-read as needed stays unread until then
    field = config.stratify_by
    from_summaries: dict[str, Any] = {}
    if field is not None:
        for summary in summaries:  # production summaries may carry the field instead of their note
            metadata = getattr(summary, "metadata", None) or {}
            if field in metadata:
                from_summaries.setdefault(summary.note_id, metadata[field])
        if not from_summaries and not any(field in note.meta for note in notes):
            raise ConfigError(f"--stratify-by {field}: no note has '{field}' in its meta"
                              f"{' and no summary in its metadata' if summaries else ''}; nothing was run")
    sample = choose(((n.id, n.meta.get(field, from_summaries.get(n.id)) if field else None) for n in notes),
                    size=config.sample, fraction=config.sample_fraction, seed=config.sample_seed,
                    stratify_by=field)
    return [n for n in notes if n.id in sample.note_ids], sample


def check_run_notes(config: RunConfig) -> tuple[int, list[InputError]]:
    """Validate the run's notes file without keeping its notes: how many will be used, and the bad
    records skipped (every one is reported, as an error, unless ``skip_invalid``)."""
    from clinsum.inputs import check_notes

    if not config.notes:
        raise ConfigError("no notes: give --notes PATH (JSONL, CSV or a folder of .txt files)")
    checked = check_notes(Path(config.notes), skip_invalid=config.skip_invalid)
    count = checked.count if config.limit is None else min(checked.count, config.limit)
    if not count:
        raise ConfigError(f"{config.notes}: no notes to evaluate")
    return count, list(checked.skipped)


class NotesFile:
    """The run's good notes, read again from the file each time they are iterated (never held whole):
    what sampling and the cost estimate walk over before the run streams them into the store."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def __iter__(self) -> Iterator[Note]:
        return iter_run_notes(self.config)


def iter_run_notes(config: RunConfig) -> Iterator[Note]:
    """The run's good notes (``--limit`` applied), read from the file as they are needed."""
    from clinsum.inputs import iter_notes

    assert config.notes is not None
    return itertools.islice(iter_notes(Path(config.notes)), config.limit)


async def run(config: RunConfig, store: Store, *, notes: Iterable[Note] | None = None,
              run_id: str | None = None, progress: Progress | None = None,
              announce: Announce | None = None, name: str | None = None,
              tags: dict[str, str] | None = None) -> str:
    """Start (or, with ``run_id``, resume) a run; returns its id.

    On resume the notes come from the store, so the run sees exactly the notes it
    started with. A new run takes its sample of the notes (when the config asks for
    one), estimates its cost, tells ``announce`` both, and refuses to start above
    ``max_cost_usd`` (``clinsum.costs``); with neither ``announce`` nor ``max_cost_usd``
    the estimate would go unread and is not made. In offline mode the socket guard is
    installed before any provider is built and stays until the run ends.
    """
    labels = {"name": name, "tags": tags}
    if not config.offline:
        return await _run(config, store, notes, run_id, progress, announce, labels=labels)
    from clinsum.offline import check_offline_providers, offline_guard

    with offline_guard():
        return await _run(config, store, notes, run_id, progress, announce, check=check_offline_providers,
                          labels=labels)


def _plan(config: RunConfig, store: Store, announce: Announce | None, sample: Sample | None,
          notes: Iterable[Note], **work: Any) -> None:
    """Estimate a new run's cost, announce it with the sample, and refuse it above ``max_cost_usd``.

    With no one to announce it to and no ``max_cost_usd`` to check, no estimate is made: it would
    go unread (the Python API, the benchmarks), and it costs a cache lookup per summarizer call."""
    if announce is None and config.max_cost_usd is None:
        return
    from clinsum.costs import check_max_cost, estimate

    cost = estimate(config, notes, store=store, **work)
    if announce is not None:
        announce(sample, cost)
    check_max_cost(cost, config.max_cost_usd)


async def _run(config: RunConfig, store: Store, notes: Iterable[Note] | None, run_id: str | None,
               progress: Progress | None, announce: Announce | None = None,
               check: Callable[[list[Provider]], None] | None = None,
               labels: dict[str, Any] | None = None) -> str:
    systems = build_systems(config)
    dispatcher = Dispatcher(store, max_attempts=config.max_attempts, concurrency=config.concurrency)
    evaluators = build_evaluators(config, dispatcher)
    if check is not None:  # summarizers and judges alike: nothing may leave the machine
        check([s.provider for s in systems] + [p for e in evaluators for p in getattr(e, "providers", [])])
    engine = build_engine(config, evaluators)
    runner = Runner(store, dispatcher, evaluators, load_template(config.prompt_template), engine)
    if run_id is None:
        if notes is None:
            check_run_notes(config)
            notes = NotesFile(config)
        elif isinstance(notes, Iterator):  # a one-shot stream: the estimate and the run each read it
            notes = list(notes)
        notes, sample = sample_notes(config, notes)
        _plan(config, store, announce, sample, notes, systems=systems, template=runner.template,
              evaluators=evaluators)
        run_id = new_run_id()
        store.create_run(run_id, config.model_dump(mode="json"), kind="run", version=__version__,
                         notes=notes, store_notes=config.store_notes,
                         **(labels or {}))
    with _status(store, run_id), engine:  # from here a failure marks the run interrupted, never left running
        if progress is not None:
            progress.run_id = run_id  # claimed: a stop from now on is this run's to resume
        run_notes = _notes_of(config, store, run_id)
        if config.batch:
            await _answer_in_batches(config, store, run_id, list(run_notes()), systems, runner)
        await runner.generate_and_score(run_id, run_notes(), systems, progress,
                                        total=store.count_notes(run_id) * len(systems))
    return run_id


def _notes_of(config: RunConfig, store: Store, run_id: str) -> Callable[[], Iterable[Note]]:
    """The run's notes, as often as they are needed: streamed from the store, or, for a run that
    kept only their hashes (``store_notes = false``), read again from its notes file and checked."""
    if store.notes_stored(run_id):
        return lambda: store.iter_notes(run_id)
    expected = store.note_hashes(run_id)
    given = {}
    if config.notes:
        from clinsum.store_codec import note_hash

        for note in iter_run_notes(config.model_copy(update={"limit": None})):
            if note.id in expected:
                if note_hash(note.model_dump_json()) != expected[note.id]:
                    raise InputError(f"note {note.id!r} is not the note the run was started with (the run "
                                     "kept only a hash of each note, and this one differs)", path=config.notes)
                given[note.id] = note
    missing = [note_id for note_id in expected if note_id not in given]
    if missing:
        raise InputError(f"run {run_id} kept only hashes of its notes (store_notes = false) and "
                         f"{len(missing)} of them are not in its notes file ({missing[0]!r}...); "
                         "put the notes file back where the run read it", path=config.notes)
    ordered = sorted(given.values(), key=lambda n: store.note_position(run_id, n.id))
    return lambda: ordered


def build_engine(config: RunConfig, evaluators: Sequence[Evaluator]) -> Engine:
    """Where the evaluators that ask no model run (``--workers``, ``--engine``); the judge stays here."""
    from clinsum import engines

    return engines.create(config.engine, [e for e in evaluators if engines.runs_in_engine(e)], config.workers)


async def _answer_in_batches(config: RunConfig, store: Store, run_id: str, notes: Sequence[Note],
                             systems: Sequence[System], runner: Runner) -> None:
    """Put the batch answers of batch-capable providers in the response cache, before the run proper.

    The runner then finds them as cache hits and calls live only for what the batch could
    not answer. Each batch id is stored as soon as the batch is submitted, so a resumed run
    collects the same batch instead of paying for a new one.
    """
    from clinsum.providers.base import BatchCapable
    from clinsum.providers.batch_job import prefill_cache

    assert runner.template is not None
    done = {(s.note_id, s.system) for s in store.summaries(run_id) if s.ok}
    batches = {s.label: s.provider.batch(poll_interval_s=config.batch_poll_s, max_wait_s=config.batch_max_wait_s)
               for s in systems if isinstance(s.provider, BatchCapable)}  # set-up errors before any batch is sent
    for system in systems:
        if system.label not in batches:  # built-in or plugin: the batch interface
            continue
        todo = [Request(prompt=runner.template.render(n), note=n) for n in notes if (n.id, system.label) not in done]
        if todo:
            batch = batches[system.label]
            await prefill_cache(batch, store, todo,
                                batch_id=store.batch_id(run_id, system.label),
                                on_submitted=partial(store.save_batch_id, run_id, system.label))


async def score(config: RunConfig, store: Store, notes: Iterable[Note] | None = None,
                summaries: Iterable[Summary] | None = None, *, run_id: str | None = None,
                progress: Progress | None = None, announce: Announce | None = None,
                name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Score summaries made elsewhere against their notes, as a run of kind ``score``.

    With ``run_id``, resume that run: its notes and summaries come from the store,
    and only evaluations missing or failed are run again. A new run takes its sample,
    estimates and announces its cost, and checks ``max_cost_usd`` as ``run`` does. In
    offline mode the socket guard is installed first and every judge must be local.
    """
    labels = {"name": name, "tags": tags}
    if not config.offline:
        return await _score(config, store, notes, summaries, run_id, progress, announce, labels=labels)
    from clinsum.offline import check_offline_providers, offline_guard

    with offline_guard():
        return await _score(config, store, notes, summaries, run_id, progress, announce,
                            check=check_offline_providers, labels=labels)


async def _score(config: RunConfig, store: Store, notes: Iterable[Note] | None,
                 summaries: Iterable[Summary] | None, run_id: str | None, progress: Progress | None,
                 announce: Announce | None = None,
                 check: Callable[[list[Provider]], None] | None = None,
                 labels: dict[str, Any] | None = None) -> str:
    if run_id is None:
        if notes is None or summaries is None:
            raise ValueError("score needs notes and summaries, or the run_id of a run to resume")
        if isinstance(notes, Sequence) and isinstance(summaries, Sequence):  # streams are checked by their reader
            _check_summaries_match(notes, summaries)
    dispatcher = Dispatcher(store, max_attempts=config.max_attempts, concurrency=config.concurrency)
    evaluators = build_evaluators(config, dispatcher)
    if check is not None:  # the judges: no note may leave the machine
        check([p for e in evaluators for p in getattr(e, "providers", [])])
    engine = build_engine(config, evaluators)
    runner = Runner(store, dispatcher, evaluators, engine=engine)
    if run_id is None:
        assert notes is not None and summaries is not None
        # one-shot streams: the sample, the estimate and the run each read them
        notes = list(notes) if isinstance(notes, Iterator) else notes
        summaries = list(summaries) if isinstance(summaries, Iterator) else summaries
        notes, sample = sample_notes(config, notes, summaries)
        if sample is not None:
            summaries = [s for s in summaries if s.note_id in sample.note_ids]
        if next(iter(summaries), None) is None:  # a run of nothing would read as finished, its gates passed
            raise InputError("no summaries to score: every summary was skipped as invalid, or none is of a "
                             "note taken (--limit, --sample); nothing was run")
        _plan(config, store, announce, sample, notes, summaries=summaries, evaluators=evaluators)
        run_id = new_run_id()
        store.create_run(run_id, config.model_dump(mode="json"), kind="score", version=__version__,
                         notes=notes, summaries=summaries, store_notes=config.store_notes,
                         **(labels or {}))
    with _status(store, run_id), engine:  # from here a failure marks the run interrupted, never left running
        if progress is not None:
            progress.run_id = run_id  # claimed: a stop from now on is this run's to resume
        given = None if store.notes_stored(run_id) else _notes_of(config, store, run_id)()
        await runner.score_summaries(run_id, given, store.iter_summaries(run_id), progress,
                                     total=store.count_summaries(run_id))
    return run_id


def score_inputs(config: RunConfig, summaries_path: Path) -> tuple[NotesFile, SummariesFile,
                                                                   list[InputError], list[InputError]]:
    """Validate the notes and summaries files of ``clinsum score`` keeping no record, then stream them.

    Returns the notes and summaries (read as they are needed), and the bad notes and bad
    summaries skipped. Every bad record is reported before anything runs, and so is a
    summary whose note is not in the notes file.
    """
    from clinsum.inputs import check_summaries, iter_summaries

    _, skipped_notes = check_run_notes(config)
    skipped_summaries = check_summaries(summaries_path, skip_invalid=config.skip_invalid).skipped
    kept = {note.id for note in iter_run_notes(config)}
    all_ids = kept if config.limit is None else {note.id for note in iter_run_notes(
        config.model_copy(update={"limit": None}))}
    missing = sorted({s.note_id for s in iter_summaries(summaries_path)} - all_ids)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} summaries refer to notes not in the notes file: {shown}",
                         field="note_id")
    return NotesFile(config), SummariesFile(summaries_path, kept), skipped_notes, list(skipped_summaries)


class SummariesFile:
    """The good summaries of a file whose notes are in the run, read again each time they are iterated."""

    def __init__(self, path: Path, note_ids: set[str]) -> None:
        self.path, self.note_ids = path, note_ids

    def __iter__(self) -> Iterator[Summary]:
        from clinsum.inputs import iter_summaries

        return (s for s in iter_summaries(self.path) if s.note_id in self.note_ids)


def _check_summaries_match(notes: Sequence[Note], summaries: Sequence[Summary]) -> None:
    known = {n.id for n in notes}
    missing = sorted({s.note_id for s in summaries} - known)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(f"{len(missing)} summaries refer to notes not in the notes file: {shown}",
                         field="note_id")


@contextmanager
def _status(store: Store, run_id: str) -> Iterator[None]:
    """Mark a run running, then ``finished``, or ``interrupted`` if anything stops it (a signal,
    a store that cannot be written, a batch still pending, a bug); an interrupted run resumes.
    When the store itself cannot be written the status cannot be either: the first error is
    the one raised, and the run, still marked ``running``, resumes all the same. A run another live
    process is running is refused before anything is marked (``Store.claim``)."""
    store.claim(run_id)
    try:
        yield
    except BaseException:
        try:
            store.set_status(run_id, "interrupted")
        except StoreError as status_error:
            log.error("could not record that the run was interrupted: %s", status_error)
        raise
    store.set_status(run_id, "finished")


def resume_config(store: Store, run_id: str, **flags: Any) -> tuple[str, RunConfig]:
    """The kind (``run`` or ``score``) and stored configuration of a run, with the flags that
    may change on resume applied (``concurrency``, ``workers``, ``engine``, and ``offline``, which
    only restricts)."""
    from clinsum.config import apply_flags

    info = store.run(run_id)
    config = RunConfig.model_validate(info["config"])
    return str(info["kind"]), apply_flags(config, **flags)


async def resume(store: Store, run_id: str, config: RunConfig, kind: str,
                 progress: Progress | None = None) -> str:
    """Finish a stored run of either kind: every missing or failed summary and evaluation."""
    if kind == "score":
        return await score(config, store, run_id=run_id, progress=progress)
    return await run(config, store, run_id=run_id, progress=progress)
