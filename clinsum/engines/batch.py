"""What an engine sends and gets back: a batch of (note, summary) pairs, and its scores.

``score_batch`` is the one function that runs evaluators, whichever engine runs it
(a thread of the main process, a pool worker, a Ray worker): the same evaluators on
the same records give the same ``Score``s. It never raises for an evaluator's error:
an evaluator that crashes on a summary gives that summary a ``<evaluator>_error``
score (``failed: true``), the way the runner records a crashed evaluator, and the
other evaluators and summaries of the batch are scored all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from clinsum.evaluators.base import Evaluator
from clinsum.records import Note, Score, Summary

log = logging.getLogger(__name__)

Scores = dict[str, list[Score]]
"""One summary's scores by evaluator name."""


@dataclass(frozen=True)
class Item:
    """One summary to score, with the names of the evaluators to run on it."""

    note_id: str
    summary: Summary
    evaluators: tuple[str, ...]


@dataclass(frozen=True)
class Batch:
    """Summaries to score together; each note travels once, however many of its summaries come."""

    notes: dict[str, Note]
    items: list[Item]

    @classmethod
    def of(cls, pairs: Iterable[tuple[Note, Summary, Sequence[str]]]) -> Batch:
        notes: dict[str, Note] = {}
        items = []
        for note, summary, names in pairs:
            notes.setdefault(note.id, note)
            items.append(Item(note.id, summary, tuple(names)))
        return cls(notes, items)


def failed(evaluator: Evaluator, note_id: str, summary: Summary, error: str) -> list[Score]:
    """The record of an evaluation that failed: the same shape as the runner's for a crashed evaluator."""
    return [Score(note_id=note_id, system=summary.system, metric=f"{evaluator.name}_error", value=None,
                  evaluator=evaluator.name, version=evaluator.version, detail={"failed": True, "error": error})]


def failed_batch(evaluators: Mapping[str, Evaluator], batch: Batch, error: str) -> list[Scores]:
    """Every evaluation of a batch that never came back (a worker that died, a batch that could not be sent)."""
    return [{name: failed(evaluators[name], item.note_id, item.summary, error) for name in item.evaluators}
            for item in batch.items]


def score_batch(evaluators: Mapping[str, Evaluator], batch: Batch) -> list[Scores]:
    """Each item's scores, in the order of the items; run in a thread or process with no event loop."""
    return asyncio.run(_score_batch(evaluators, batch))


async def _score_batch(evaluators: Mapping[str, Evaluator], batch: Batch) -> list[Scores]:
    results = []
    for item in batch.items:
        note = batch.notes[item.note_id]
        scores: Scores = {}
        for name in item.evaluators:
            evaluator = evaluators[name]
            try:
                scores[name] = await evaluator.evaluate(note, item.summary)
            except Exception as exc:  # an evaluator bug must not lose the other scores
                log.exception("evaluator %s failed on %s/%s", name, item.summary.system, note.id)
                scores[name] = failed(evaluator, note.id, item.summary, f"{type(exc).__name__}: {exc}")
        results.append(scores)
    return results


WARM_UP = Batch(
    {"warm-up": Note(id="warm-up", text="Denies chest pain. History of hypertension on lisinopril 10 mg daily.",
                     reference="Hypertension on lisinopril; no chest pain.")},
    [],
)


def warm_up(evaluators: Mapping[str, Evaluator]) -> None:
    """Load what the evaluators load on first use (lexicon, tokenizer, ROUGE) before the first real batch."""
    summary = Summary(note_id="warm-up", system="warm-up", text="Hypertension on lisinopril. No chest pain.")
    batch = Batch(WARM_UP.notes, [Item("warm-up", summary, tuple(evaluators))])
    score_batch(evaluators, batch)
