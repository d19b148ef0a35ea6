"""Runs an evaluation: notes × systems → summaries → scores, written as they are made.

The runner owns the order of work and nothing else: the dispatcher makes the
calls (cache, limits, retries), evaluators make the scores, the store keeps
them. Each (note, system) pair is one task; a task that fails records a failed
summary and never stops the others. Because every summary and every batch of
scores is stored when it is made, ``resume`` only does what a run has not yet
stored: a summary stored without error is never asked for again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from clinsum.dispatch import Dispatcher
from clinsum.errors import ProviderError
from clinsum.evaluators.base import Evaluator
from clinsum.evaluators.generation import GenerationEvaluator
from clinsum.prompts import Template
from clinsum.providers.base import Provider, Request
from clinsum.records import Note, Score, Summary, Usage
from clinsum.store import Store

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

    total: int = 0
    done: int = 0
    failed: int = 0
    on_change: Callable[[Progress], None] | None = field(default=None, repr=False)

    def advance(self, summary: Summary) -> None:
        self.done += 1
        self.failed += 0 if summary.ok else 1
        if self.on_change is not None:
            self.on_change(self)


class Runner:
    """Generates and scores the summaries of one run."""

    def __init__(self, store: Store, dispatcher: Dispatcher, evaluators: Sequence[Evaluator],
                 template: Template | None = None) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.evaluators: list[Evaluator] = [GenerationEvaluator(), *evaluators]
        self.template = template

    async def generate_and_score(self, run_id: str, notes: Sequence[Note], systems: Sequence[System],
                                 progress: Progress | None = None) -> None:
        """Summarize every note with every system and score each summary, skipping stored work."""
        stored = {(s.note_id, s.system): s for s in self.store.summaries(run_id) if s.ok}
        scored = self.store.scored(run_id)
        progress = progress or Progress()
        progress.total += len(notes) * len(systems)

        async def one(note: Note, system: System) -> None:
            summary = stored.get((note.id, system.label))
            already_scored = scored
            if summary is None:
                summary = await self.summarize(note, system)
                self.store.add_summary(run_id, summary)
                already_scored = set()  # scores of an earlier failed attempt are replaced
            await self.score(run_id, note, summary, already_scored)
            progress.advance(summary)

        with self.store.batched_writes():
            await asyncio.gather(*(one(note, system) for note in notes for system in systems))

    async def score_summaries(self, run_id: str, notes: Sequence[Note], summaries: Sequence[Summary],
                              progress: Progress | None = None) -> None:
        """Score summaries made elsewhere (production, published systems), skipping stored scores."""
        by_id = {note.id: note for note in notes}
        scored = self.store.scored(run_id)
        progress = progress or Progress()
        progress.total += len(summaries)

        async def one(summary: Summary) -> None:
            await self.score(run_id, by_id[summary.note_id], summary, scored)
            progress.advance(summary)

        with self.store.batched_writes():
            await asyncio.gather(*(one(s) for s in summaries))

    async def summarize(self, note: Note, system: System) -> Summary:
        if self.template is None:
            raise ValueError("a runner that generates summaries needs a prompt template")
        request = Request(prompt=self.template.render(note), note=note)
        started = time.perf_counter()
        try:
            generation = await self.dispatcher.generate(system.provider, request)
        except ProviderError as exc:
            return Summary(note_id=note.id, system=system.label, error=f"{type(exc).__name__}: {exc}",
                           latency_s=time.perf_counter() - started, prompt_version=self.template.version)
        error = None if generation.text.strip() else "EmptySummary: the provider returned no text"
        return Summary(
            note_id=note.id, system=system.label, text=generation.text, error=error,
            usage=Usage(input_tokens=generation.input_tokens, output_tokens=generation.output_tokens,
                        cost_usd=generation.cost_usd),
            latency_s=generation.latency_s, request_id=generation.request_id,
            prompt_version=self.template.version,
        )

    async def score(self, run_id: str, note: Note, summary: Summary,
                    scored: set[tuple[str, str, str]]) -> None:
        """Run each evaluator not yet stored for this summary; one failing evaluator spares the rest."""
        for evaluator in self.evaluators:
            if (note.id, summary.system, evaluator.name) in scored:
                continue
            if not summary.ok and not isinstance(evaluator, GenerationEvaluator):
                continue
            try:
                scores = await evaluator.evaluate(note, summary)
            except Exception as exc:  # an evaluator bug must not lose the other scores
                log.exception("evaluator %s failed on %s/%s", evaluator.name, summary.system, note.id)
                scores = [Score(note_id=note.id, system=summary.system, metric=f"{evaluator.name}_error",
                                value=None, evaluator=evaluator.name, version=evaluator.version,
                                detail={"error": f"{type(exc).__name__}: {exc}"})]
            if scores:
                self.store.add_scores(run_id, scores)
