"""Runs an evaluation: notes × systems → summaries → scores, written as they are made.

The runner owns the order of work and nothing else: the dispatcher makes the
calls (cache, limits, retries), evaluators make the scores, the store keeps
them. Each (note, system) pair is one task; a task that fails records a failed
summary and never stops the others. Because every summary and every batch of
scores is stored when it is made, ``resume`` only does what a run has not yet
stored well: a summary stored without error is never asked for again, and an
evaluator whose stored scores are whole is never run again; a failed summary
is asked again, and so is a failed evaluation (a judge whose answers failed
validation, an evaluator that crashed).

An empty or whitespace-only answer is a summary, not a failure: the model said
nothing, and that is what is scored (ROUGE 0, no concept captured) and flagged
(``empty_summary``). Evaluators that ask a model about the summary (the judge)
are not asked about an empty one; ``empty_summary``'s detail records that.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from clinsum.dispatch import Dispatcher, Prepared
from clinsum.engines import Engine
from clinsum.errors import ProviderError, StoreError
from clinsum.evaluators.base import Evaluator, evaluation_error
from clinsum.evaluators.generation import GenerationEvaluator, is_empty
from clinsum.prompts import Template
from clinsum.providers.base import Provider, Request
from clinsum.records import Note, Score, Summary, Usage
from clinsum.store import Store, valid_unicode

log = logging.getLogger(__name__)


def new_run_id() -> str:
    """Sortable and unique: ``20261126-041500-3f9a``."""
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


@dataclass(frozen=True)
class System:
    """A provider under the label its summaries carry."""

    label: str
    provider: Provider


@dataclass
class Progress:
    """Counts the runner reports as it goes; ``on_change`` is called after each update."""

    run_id: str | None = None
    """Set as soon as the run is recorded, so that a run that stops can be named for ``--resume``."""
    total: int = 0
    done: int = 0
    failed: int = 0
    """Summaries that could not be produced."""
    empty: int = 0
    """Summaries with no text (scored and flagged, not failed)."""
    failed_evaluations: int = 0
    """(summary, evaluator) pairs whose evaluation failed (judge answers invalid, evaluator crashed)."""
    on_change: Callable[[Progress], None] | None = field(default=None, repr=False)

    def advance(self, summary: Summary) -> None:
        self.done += 1
        self.failed += 0 if summary.ok else 1
        self.empty += 1 if is_empty(summary) else 0
        self._changed()

    def evaluation_failed(self) -> None:
        self.failed_evaluations += 1
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


def _family(evaluator: str) -> str:
    """``judge:SPEC`` (one judge of a jury) belongs to the evaluator ``judge``."""
    return evaluator.split(":", 1)[0]


def completed(evaluations: dict[tuple[str, str, str], bool]) -> set[tuple[str, str, str]]:
    """(note, system, evaluator) whose stored scores are all free of failure, jury members included."""
    failed = {(n, s, _family(e)) for (n, s, e), ok in evaluations.items() if not ok}
    return {(n, s, e) for (n, s, e), ok in evaluations.items() if ok and (n, s, _family(e)) not in failed}


async def _all(work: Sequence[Coroutine[Any, Any, None]]) -> None:
    """Run every task; if one raises (the store failed) or the run is cancelled (a signal),
    cancel the others and wait for them, so no call goes on and nothing is written after."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


T = TypeVar("T")

WIDTH = 64
"""(note, system) pairs in flight at once, at least; raised to cover the providers' concurrency limits."""


async def through(work: Iterable[T], handle: Callable[[T], Awaitable[None]], width: int) -> None:
    """``handle`` every item of ``work``, at most ``width`` at a time, taking items only as they are needed.

    Work flows through a bounded queue to ``width`` workers, so memory holds ``width``
    items whatever the size of the run (never a task per item). If one raises (the store
    failed) or the run is cancelled, the others are cancelled and waited for (``_all``).
    """
    queue: asyncio.Queue[tuple[bool, T | None]] = asyncio.Queue(maxsize=width)

    async def feed() -> None:
        for item in work:
            await queue.put((True, item))
        for _ in range(width):
            await queue.put((False, None))

    async def worker() -> None:
        while True:
            more, item = await queue.get()
            if not more:
                return
            await handle(item)  # type: ignore[arg-type]

    await _all([feed(), *(worker() for _ in range(width))])


_Pair = tuple[Note, System, Summary | None, set[tuple[str, str, str]], Prepared | None]
"""A (note, system) pair to work on: its good stored summary and completed evaluations, if any,
and its request prepared when it has no good summary."""


def _asks_a_model(evaluator: Evaluator) -> bool:
    return bool(getattr(evaluator, "providers", None))


class Runner:
    """Generates and scores the summaries of one run."""

    def __init__(self, store: Store, dispatcher: Dispatcher, evaluators: Sequence[Evaluator],
                 template: Template | None = None, engine: Engine | None = None) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.evaluators: list[Evaluator] = [GenerationEvaluator(), *evaluators]
        self.template = template
        self.engine = engine
        """Runs the evaluators it names (those that ask no model) where it runs them; without one,
        every evaluator runs here."""

    def _width(self, systems: Sequence[System] = ()) -> int:
        limits = sum(self.dispatcher.concurrency or s.provider.options.concurrency for s in systems)
        return max(WIDTH, 2 * limits)

    def _stored_work(self, run_id: str, note_id: str, system: str) -> tuple[Summary | None, set[tuple[str, str, str]]]:
        """A summary's stored good version and its completed evaluations (what resume skips)."""
        summary = self.store.summary(run_id, note_id, system)
        done = completed(self.store.evaluations(run_id, note_id, system))
        return (summary if summary is not None and summary.ok else None), done

    async def generate_and_score(self, run_id: str, notes: Iterable[Note], systems: Sequence[System],
                                 progress: Progress | None = None, *, total: int | None = None) -> None:
        """Summarize every note with every system and score each summary, skipping stored work.

        Notes are taken from ``notes`` as the work needs them (an iterator over the store
        keeps memory flat); ``total`` counts the pairs when ``notes`` has no length.
        """
        fresh = not self.store.has_work(run_id)  # a new run: nothing stored to look up
        progress = progress or Progress()
        progress.total += total if total is not None else len(notes) * len(systems)  # type: ignore[arg-type]

        async def one(item: _Pair) -> None:
            note, system, summary, already_scored, prepared = item
            if summary is None:
                summary = await self.summarize(note, system, prepared)
                self.store.add_summary(run_id, summary)
                already_scored = set()  # scores of an earlier failed attempt are replaced
            await self.score(run_id, note, summary, already_scored, progress, replace=not fresh)
            progress.advance(summary)

        width = self._width(systems)
        pairs = ((note, system) for note in notes for system in systems)
        with self.store.batched_writes():
            await through(self._prepared(run_id, pairs, width, fresh=fresh), one, width)

    def _prepared(self, run_id: str, pairs: Iterable[tuple[Note, System]], size: int, *,
                  fresh: bool) -> Iterator[_Pair]:
        """Each pair with its stored work (none in a ``fresh`` run) and, when it has no good summary
        stored, its request prepared: ``size`` pairs at a time, their cached answers looked up in one
        query (``Dispatcher.prepare``). A pair's own writes come after it is prepared, so nothing
        queued is missed."""
        template = self.template
        while chunk := list(itertools.islice(pairs, size)):
            stored = [(None, set()) if fresh else self._stored_work(run_id, note.id, system.label)
                      for note, system in chunk]
            todo = [i for i, (summary, _) in enumerate(stored) if summary is None]
            prepared: dict[int, Prepared] = {}
            if template is not None and todo:  # without a template, summarize says why
                requests: dict[int, Request] = {}  # a note's request made once for all its systems (it is frozen)
                for i in todo:
                    note = chunk[i][0]
                    if id(note) not in requests:
                        requests[id(note)] = Request(prompt=template.render(note), note=note)
                calls = [(chunk[i][1].provider, requests[id(chunk[i][0])]) for i in todo]
                prepared = dict(zip(todo, self.dispatcher.prepare(calls), strict=True))
            for i, ((note, system), (summary, done)) in enumerate(zip(chunk, stored, strict=True)):
                yield note, system, summary, done, prepared.get(i)

    async def score_summaries(self, run_id: str, notes: Iterable[Note] | None, summaries: Iterable[Summary],
                              progress: Progress | None = None, *, total: int | None = None) -> None:
        """Score summaries made elsewhere (production, published systems), skipping stored scores.

        ``notes=None`` reads each summary's note from the store when it is scored (summaries
        of one note coming together, it is read once for them).
        """
        by_id: Mapping[str, Note] | None = None if notes is None else {note.id: note for note in notes}
        fresh = not self.store.has_scores(run_id)
        progress = progress or Progress()
        progress.total += total if total is not None else len(summaries)  # type: ignore[arg-type]
        last: list[Note] = []

        def note_of(note_id: str) -> Note:
            if by_id is not None:
                return by_id[note_id]
            if not last or last[0].id != note_id:
                last[:] = [self.store.note(run_id, note_id)]
            return last[0]

        async def one(summary: Summary) -> None:
            done = set() if fresh else completed(self.store.evaluations(run_id, summary.note_id, summary.system))
            await self.score(run_id, note_of(summary.note_id), summary, done, progress, replace=not fresh)
            progress.advance(summary)

        with self.store.batched_writes():
            await through(summaries, one, self._width())

    async def summarize(self, note: Note, system: System, prepared: Prepared | None = None) -> Summary:
        """The system's summary of the note; ``prepared`` is its request made ahead (``_prepared``)."""
        if self.template is None:
            raise ValueError("a runner that generates summaries needs a prompt template")
        request = prepared.request if prepared is not None else Request(prompt=self.template.render(note), note=note)
        started = time.perf_counter()
        try:
            generation = await self.dispatcher.generate(system.provider, request, prepared=prepared)
        except ProviderError as exc:
            return Summary(note_id=note.id, system=system.label, error=f"{type(exc).__name__}: {exc}",
                           latency_s=time.perf_counter() - started, prompt_version=self.template.version)
        text = valid_unicode(generation.text)
        if text != generation.text:
            log.warning("%s / %s: the answer had invalid Unicode (lone surrogates), replaced by U+FFFD",
                        system.label, note.id)
        return Summary(  # an empty text is the model's answer: scored and flagged, not a failure
            note_id=note.id, system=system.label, text=text,
            usage=Usage(input_tokens=generation.input_tokens, output_tokens=generation.output_tokens,
                        cost_usd=generation.cost_usd),
            latency_s=generation.latency_s, request_id=generation.request_id,
            prompt_version=self.template.version,
        )

    async def score(self, run_id: str, note: Note, summary: Summary,
                    completed: set[tuple[str, str, str]], progress: Progress | None = None, *,
                    replace: bool = True) -> None:
        """Run each evaluator not yet completed for this summary; one failing evaluator spares the rest.

        An evaluator's scores replace all its earlier scores of this summary (those of a
        failed attempt included), in one write; ``replace=False`` (a new run, where no
        summary has scores yet) spares looking for earlier ones.
        """
        todo = [e for e in self.evaluators if (note.id, summary.system, e.name) not in completed
                and (summary.ok or isinstance(e, GenerationEvaluator))
                and not (is_empty(summary) and _asks_a_model(e))]  # the latter recorded in empty_summary
        elsewhere = [e.name for e in todo if self.engine is not None and e.name in self.engine.names]
        computed: dict[str, list[Score]] | None = None
        for evaluator in todo:  # in order: generation's scores land in the same write as the summary
            if self.engine is not None and evaluator.name in elsewhere:
                if computed is None:  # every engine evaluator of this summary in one request
                    computed = await self.engine.evaluate(note, summary, elsewhere)
                scores = computed[evaluator.name]
            else:
                scores = await self._evaluate(evaluator, note, summary)
            if scores and replace:
                self.store.replace_scores(run_id, note.id, summary.system, evaluator.name, scores)
            elif scores:
                self.store.add_scores(run_id, scores)
            error = evaluation_error(scores)
            if error is not None:
                log.warning("evaluation %s failed on %s/%s: %s", evaluator.name, summary.system, note.id, error)
                if progress is not None:
                    progress.evaluation_failed()

    async def _evaluate(self, evaluator: Evaluator, note: Note, summary: Summary) -> list[Score]:
        try:
            if isinstance(evaluator, GenerationEvaluator):
                skipped = [e.name for e in self.evaluators if _asks_a_model(e)]
                return await evaluator.evaluate(note, summary, skipped_if_empty=skipped)
            return await evaluator.evaluate(note, summary)
        except StoreError:
            raise  # the store failed: not this evaluator's failure, and the run must stop
        except Exception as exc:  # an evaluator bug must not lose the other scores
            log.exception("evaluator %s failed on %s/%s", evaluator.name, summary.system, note.id)
            return [Score(note_id=note.id, system=summary.system, metric=f"{evaluator.name}_error",
                          value=None, evaluator=evaluator.name, version=evaluator.version,
                          detail={"failed": True, "error": f"{type(exc).__name__}: {exc}"})]
