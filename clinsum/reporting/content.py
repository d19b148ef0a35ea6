"""What a report shows, read from the store: the runs, their notes, summaries, scores and ratings.

Several runs are merged into one comparison. A system name that occurs in more
than one run is labelled with its run (``extractive:lead (20261201-235941-0edd)``)
so that two runs of the same system stay two columns. Notes are matched by id;
a note id whose text differs between runs is an error, because a paired
comparison over different texts would be wrong without saying so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from clinsum.errors import ClinsumError
from clinsum.records import Note, Rating, Score, Summary
from clinsum.store import Store


class ReportError(ClinsumError):
    """The runs asked for cannot be put in one report."""


@dataclass(frozen=True)
class RunInfo:
    """One stored run as the report describes it (its config is stored redacted)."""

    id: str
    created_at: str
    finished_at: str | None
    status: str
    kind: str
    clinsum_version: str
    config: dict[str, Any]
    systems: list[str]
    """Labels of this run's systems in the report."""
    prompt_versions: dict[str, list[str]]
    """Label -> prompt versions its summaries record."""
    evaluators: dict[str, list[str]]
    """Evaluator name -> versions recorded with its scores."""


@dataclass
class Content:
    """Everything one report renders; records carry the report's system labels."""

    runs: list[RunInfo]
    notes: list[Note]
    summaries: list[Summary]
    scores: list[Score]
    ratings: dict[tuple[str, str], list[Rating]] = field(default_factory=dict)
    """(note id, label) -> physician ratings of that summary."""

    @property
    def systems(self) -> list[str]:
        return list(dict.fromkeys(s.system for s in self.summaries))

    @property
    def failures(self) -> list[Summary]:
        return [s for s in self.summaries if not s.ok]

    @property
    def failed_evaluations(self) -> int:
        """Evaluations that failed (``is_failure``), one per summary and evaluator as ``clinsum runs`` counts them."""
        from clinsum.evaluators.base import is_failure

        return len({(s.note_id, s.system, s.evaluator.split(":", 1)[0]) for s in self.scores if is_failure(s)})

    @property
    def incomplete(self) -> list[RunInfo]:
        """The runs that did not finish (interrupted, or still running): their numbers are partial."""
        return [run for run in self.runs if run.status != "finished"]


def labels(per_run: dict[str, list[str]]) -> dict[tuple[str, str], str]:
    """(run id, system) -> label: the system name, with the run id when two runs share it."""
    seen = Counter(system for systems in per_run.values() for system in set(systems))
    return {(run, system): system if seen[system] == 1 else f"{system} ({run})"
            for run, systems in per_run.items() for system in systems}


def load(store: Store, run_ids: Sequence[str]) -> Content:
    """The content of a report on ``run_ids`` (at least one), in the order given."""
    if not run_ids:
        raise ReportError("name at least one run (see `clinsum runs`)")
    run_ids = [store.resolve_run_id(run_id) for run_id in run_ids]  # unique prefixes are enough
    if len(set(run_ids)) != len(run_ids):
        raise ReportError(f"a run is named twice: {', '.join(run_ids)}")
    infos = {run_id: store.run(run_id) for run_id in run_ids}
    summaries_by_run = {run_id: store.summaries(run_id) for run_id in run_ids}
    scores_by_run = {run_id: store.scores(run_id) for run_id in run_ids}
    per_run = {run_id: list(dict.fromkeys(
        [s.system for s in summaries_by_run[run_id]] + [s.system for s in scores_by_run[run_id]]))
        for run_id in run_ids}
    label = labels(per_run)

    notes: dict[str, Note] = {}
    origin: dict[str, str] = {}
    for run_id in run_ids:
        for note in store.notes(run_id):
            if note.id in notes and notes[note.id].text != note.text:
                raise ReportError(f"note '{note.id}' has a different text in run {run_id} than in run "
                                  f"{origin[note.id]}; a report compares systems on the same notes")
            notes.setdefault(note.id, note)
            origin.setdefault(note.id, run_id)

    summaries = [s.model_copy(update={"system": label[(run_id, s.system)]})
                 for run_id in run_ids for s in summaries_by_run[run_id]]
    scores = [s.model_copy(update={"system": label[(run_id, s.system)]})
              for run_id in run_ids for s in scores_by_run[run_id]]

    by_name: dict[str, list[str]] = {}
    for (_, system), name in label.items():
        by_name.setdefault(system, []).append(name)
    ratings: dict[tuple[str, str], list[Rating]] = {}
    for rating in store.ratings():
        if rating.note_id not in notes:
            continue
        for name in by_name.get(rating.system, []):
            ratings.setdefault((rating.note_id, name), []).append(rating)

    runs = []
    for run_id in run_ids:
        info = infos[run_id]
        prompts: dict[str, set[str]] = {}
        for s in summaries_by_run[run_id]:
            prompts.setdefault(label[(run_id, s.system)], set()).add(s.prompt_version or "–")
        evaluators: dict[str, set[str]] = {}
        for score in scores_by_run[run_id]:
            evaluators.setdefault(score.evaluator, set()).add(score.version)
        runs.append(RunInfo(
            id=run_id, created_at=info["created_at"], finished_at=info["finished_at"], status=info["status"],
            kind=info["kind"], clinsum_version=info["clinsum_version"], config=info["config"],
            systems=[label[(run_id, s)] for s in per_run[run_id]],
            prompt_versions={k: sorted(v) for k, v in prompts.items()},
            evaluators={k: sorted(v) for k, v in sorted(evaluators.items())}))
    return Content(runs=runs, notes=list(notes.values()), summaries=summaries, scores=scores, ratings=ratings)
