"""The evaluator protocol: records in, ``Score``s out.

Evaluators are stateless: a call takes a note and a summary and returns scores;
nothing is stored on ``self`` during a call, so one evaluator serves many
concurrent calls. An evaluator that needs a model (the judge) receives a
``Dispatcher`` when it is built and calls providers only through it, so its
calls are cached, rate-limited and retried like every other call.
"""

from __future__ import annotations

from collections.abc import Sequence
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


def is_failure(score: Score) -> bool:
    """A score that records a failed evaluation rather than a measurement.

    The one convention every evaluator follows: a failed evaluation (a judge whose
    answers failed validation after its retries, a provider error, an evaluator
    that crashed) has ``failed: true`` in the detail of at least one of its scores,
    or a ``<evaluator>_error`` metric; a judge that lost some of its samples (the
    others still give a score) lists them under ``judges.<spec>.failures``. The
    runner counts these, the run exits 1, and ``--resume`` runs the evaluator again
    (its good answers come from the response cache). ``store_runs._FAILED_SCORE`` is the
    same rule in SQL.
    """
    judges = score.detail.get("judges")
    lost_samples = isinstance(judges, dict) and any(
        isinstance(j, dict) and isinstance(j.get("failures"), list) for j in judges.values())
    return score.detail.get("failed") is True or score.metric.endswith("_error") or lost_samples


def evaluation_error(scores: Sequence[Score]) -> str | None:
    """Why the evaluation behind ``scores`` failed, or None when it did not."""
    for s in scores:
        if is_failure(s):
            return str(s.detail.get("error") or f"{s.metric} failed")
    return None
