"""The evaluator protocol: records in, ``Score``s out.

Evaluators are stateless: a call takes a note and a summary and returns scores;
nothing is stored on ``self`` during a call, so one evaluator serves many
concurrent calls. An evaluator that needs a model (the judge) receives a
``Dispatcher`` when it is built and calls providers only through it, so its
calls are cached, rate-limited and retried like every other call.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from clinsum.records import Note, Score, Summary


@runtime_checkable
class Evaluator(Protocol):
    name: str
    """Stable name recorded with every score (``overlap``, ``coverage``, ``judge``)."""
    version: str
    """Changes whenever the logic, prompt, rubric or model behind the scores change."""

    async def evaluate(self, note: Note, summary: Summary) -> list[Score]: ...


def score(note: Note, summary: Summary, evaluator: Evaluator, metric: str,
          value: float | None, **detail: object) -> Score:
    """A ``Score`` for ``summary`` of ``note`` by ``evaluator``."""
    return Score(note_id=note.id, system=summary.system, metric=metric, value=value,
                 evaluator=evaluator.name, version=evaluator.version, detail=dict(detail))
