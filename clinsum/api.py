"""``clinsum.evaluate``: the whole pipeline from Python, in one call."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from clinsum.config import RunConfig, describe_validation
from clinsum.errors import ConfigError, InputError
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

    ``notes`` is a path (JSONL, CSV, folder of .txt) or a list of ``Note``s (or of dicts
    with a note's fields); ``providers`` are specs (``"extractive:lead"``) or
    ``{"spec", "name", "options"}`` tables; other keywords are ``RunConfig`` fields
    (``judge=``, ``concurrency=``, ``offline=``...). The store is in memory unless ``db``
    names a file.

    A bad argument raises clinsum's own errors, as the CLI reports them, never a raw
    pydantic ``ValidationError``: ``ConfigError`` for the run's settings (naming the
    argument and its valid values), ``InputError`` for a bad note (naming its position
    and field).

    >>> result = evaluate([Note(id="1", text="Denies chest pain. Takes aspirin.")],
    ...                   ["extractive:lead"], metrics=["length"])  # doctest: +SKIP
    """
    from clinsum import evaluation
    from clinsum.evaluators.aggregate import aggregate
    from clinsum.store import Store

    given_notes = None if isinstance(notes, str | Path) else _notes(notes)
    settings: dict[str, Any] = {"providers": _listed("providers", providers), **config}
    if given_notes is None:
        settings["notes"] = str(notes)
    if metrics is not None:
        settings["metrics"] = _listed("metrics", metrics)
    run_config = _run_config(settings)
    store = Store.open(db)
    try:
        run_id = asyncio.run(evaluation.run(run_config, store, notes=given_notes))
        scores = store.scores(run_id)
        return Evaluation(run_id, store.summaries(run_id), scores, aggregate(scores))
    finally:
        store.close()


def _run_config(settings: dict[str, Any]) -> RunConfig:
    """``RunConfig`` from the keywords of ``evaluate``; a bad one is a ``ConfigError`` naming it."""
    try:
        return RunConfig.model_validate(settings)
    except ValidationError as exc:
        raise ConfigError(f"clinsum.evaluate(): {describe_validation(exc, RunConfig, noun='argument')}") from None


def _listed(name: str, values: Any) -> list[Any]:
    """A sequence argument as a list; one string alone is refused (``"extractive:lead"`` would
    otherwise be read as a list of one-letter specs)."""
    if isinstance(values, str | bytes | dict) or not hasattr(values, "__iter__"):
        hint = f"; write [{values!r}]" if isinstance(values, str) else ""
        raise ConfigError(f"clinsum.evaluate(): {name} must be a list, got {type(values).__name__}{hint}")
    return list(values)


def _notes(notes: Any) -> list[Note]:
    """The notes given as objects: ``Note``s or dicts of a note's fields, each validated here."""
    if isinstance(notes, bytes | dict) or not hasattr(notes, "__iter__"):
        raise ConfigError("clinsum.evaluate(): notes must be a path (JSONL, CSV, a folder of .txt) or a list "
                          f"of Note, got {type(notes).__name__}")
    checked = []
    for position, note in enumerate(notes):
        where = f"clinsum.evaluate(): notes[{position}]"
        if isinstance(note, Note):
            checked.append(note)
        elif not isinstance(note, dict):
            raise InputError(f"{where}: expected a Note or a dict of its fields "
                             f"({', '.join(Note.model_fields)}), got {type(note).__name__}")
        else:
            try:
                checked.append(Note.model_validate(note))
            except ValidationError as exc:
                fields = [str(e["loc"][0]) for e in exc.errors() if e["loc"]]
                raise InputError(f"{where}: {describe_validation(exc, Note, noun='field')}",
                                 field=fields[0] if fields else None) from None
    return checked
