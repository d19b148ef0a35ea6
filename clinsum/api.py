"""``clinsum.evaluate``: the whole pipeline from Python, in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinsum.config import RunConfig
from clinsum.records import Note, Score, Summary


@dataclass(frozen=True)
class Evaluation:
    """What one run produced; ``leaderboard`` rows are ``clinsum.evaluators.aggregate.Row``."""

    run_id: str
    summaries: list[Summary]
    scores: list[Score]
    leaderboard: list[Any]


def evaluate(notes: str | Path | Sequence[Note], providers: Sequence[str | dict[str, Any]],
             *, metrics: Sequence[str] | None = None, db: str | Path = ":memory:",
             **config: Any) -> Evaluation:
    """Summarize ``notes`` with each provider, score every summary, aggregate.

    ``notes`` is a path (JSONL, CSV, folder of .txt) or a list of ``Note``s;
    ``providers`` are specs (``"extractive:lead"``) or ``{"spec", "name", "options"}``
    tables; other keywords are ``RunConfig`` fields (``judge=``, ``concurrency=``,
    ``offline=``...). The store is in memory unless ``db`` names a file.

    >>> result = evaluate([Note(id="1", text="Denies chest pain. Takes aspirin.")],
    ...                   ["extractive:lead"], metrics=["length"])  # doctest: +SKIP
    """
    from clinsum import evaluation
    from clinsum.evaluators.aggregate import aggregate
    from clinsum.store import Store

    given_notes = None if isinstance(notes, str | Path) else list(notes)
    settings: dict[str, Any] = {"providers": list(providers), **config}
    if given_notes is None:
        settings["notes"] = str(notes)
    if metrics is not None:
        settings["metrics"] = list(metrics)
    run_config = RunConfig.model_validate(settings)
    store = Store.open(db)
    try:
        run_id = asyncio.run(evaluation.run(run_config, store, notes=given_notes))
        scores = store.scores(run_id)
        return Evaluation(run_id, store.summaries(run_id), scores, aggregate(scores))
    finally:
        store.close()
